"""Discovery methods as sweeps over the graph, and scoring against a known circuit."""


import pytest
import torch
from transformer_lens.tools.analysis import attribution_patching as tl_attribution

from mi_helpers.circuits import edge_attribution, edge_patching
from mi_helpers.core.graph import Circuit, Edge, Node
from mi_helpers.core.results import SweepResult
from mi_helpers.tracr.methods import node_patching, output_metric, path_patching_edges
from mi_helpers.tracr.recovery import auroc, importance, recovery_table, score_recovery


@pytest.fixture(scope="module")
def run(make_tracr_pair):
    return make_tracr_pair("induction_count", 16, seed=1)


def test_output_metric_separates_clean_and_corrupted(run):
    model, clean, corrupted, metric = run
    with torch.no_grad():
        gap = metric(model.model(clean)) - metric(model.model(corrupted))
        squared = ((model.model(clean) - model.model(corrupted))[:, 1:] ** 2).sum(-1).mean()
    assert gap.item() == pytest.approx(squared.item(), rel=1e-5) and gap > 0


def test_eap_sums_to_transformer_lens_node_attribution(run):
    """Each sender's EAP edge scores sum to TransformerLens 4.3's node attribution score."""
    model, clean, corrupted, _ = run
    ours = edge_attribution(model.model, clean[:1], corrupted[:1],
                            output_metric(model.model(clean[:1]), model.model(corrupted[:1])))
    per_sender = {}
    for edge, value in zip(ours.coords["edge"], (ours.values - ours.corrupted).tolist()):
        per_sender[edge.sender] = per_sender.get(edge.sender, 0.0) + value
    theirs = tl_attribution.attribution_patch(
        model.model, clean[:1], corrupted[:1],
        output_metric(model.model(clean[:1]), model.model(corrupted[:1])),
        tl_attribution.EdgeAttributionConfig(granularity="node"))
    summed = {}
    for node, value in theirs.node_scores.items():
        key = {"embed": Node(-1, "embed"), "mlp_out": Node(node.layer or 0, "mlp"),
               "attn_head_out": Node(node.layer or 0, "head", node.head or 0)}[node.kind]
        summed[key] = summed.get(key, 0.0) + value
    assert any(abs(v) > 0.1 for v in summed.values())
    for sender, value in summed.items():
        assert per_sender[sender] == pytest.approx(value, abs=1e-5)


def test_eap_is_exact_on_edges_into_the_logits(run):
    """The metric is linear in the logits, so for those edges EAP = exact patching."""
    model, clean, corrupted, metric = run
    estimate = importance(edge_attribution(model.model, clean, corrupted, metric))
    exact = importance(edge_patching(model.model, clean, corrupted, metric))
    into_logits = [e for e in model.graph.edges if e.receiver.kind == "logits"]
    assert any(exact[e] > 0.1 for e in into_logits)
    for edge in into_logits:
        assert estimate[edge] == pytest.approx(exact[edge], abs=1e-5)


def test_node_and_path_patching_cover_the_graph(run):
    model, clean, corrupted, metric = run
    nodes = node_patching(model.model, clean, corrupted, metric)
    assert nodes.coords["node"] == [Node(0, "head", 0), Node(1, "head", 0), Node(0, "mlp"),
                                    Node(1, "mlp")]
    paths = path_patching_edges(model.model, model.graph, clean, corrupted, metric)
    assert Edge(Node(0, "head", 0), Node(1, "head", 0), "k") in paths.coords["edge"]
    assert all(e.sender.kind == "head" for e in paths.coords["edge"])


def test_auroc_by_hand():
    assert auroc({"a": 3, "b": 2, "c": 1}, {"a"}) == 1.0
    assert auroc({"a": 1, "b": 2, "c": 3}, {"a"}) == 0.0
    assert auroc({"a": 1, "b": 1, "c": 0}, {"a"}) == 0.75  # a tie counts half
    assert auroc({"a": 1}, {"a"}) != auroc({"a": 1}, {"a"})  # NaN without negatives


def test_precision_recall_by_hand():
    rec = score_recovery("m", {"a": 0.5, "b": 0.2, "c": 0.0, "d": 0.3}, {"a", "c"}, "edge",
                         threshold=0.1)
    assert rec.found == ["a", "b", "d"] and rec.missed == ["c"]
    assert rec.precision == pytest.approx(1 / 3) and rec.recall == 0.5


def test_importance_follows_the_direction_of_patching():
    edges = [Edge(Node(-1, "embed"), Node(0, "mlp")), Edge(Node(0, "mlp"), Node(1, "logits"))]
    values = torch.tensor([1.0, 0.25])
    noise = SweepResult(values, ("edge",), {"edge": edges}, 1.0, 0.0, "x (noise)")
    denoise = SweepResult(values, ("edge",), {"edge": edges}, 1.0, 0.0, "x, denoise")
    assert list(importance(noise).values()) == [0.0, 0.75]
    assert list(importance(denoise).values()) == [1.0, 0.25]


def test_recovery_table_takes_scores_and_circuits(run):
    model = run[0]
    truth = model.circuit
    half = Circuit.from_edges(model.graph, sorted(truth.edges)[: len(truth) // 2])
    rows = recovery_table({"truth": truth, "half": half}, truth)
    assert rows[0]["edge precision"] == rows[0]["edge recall"] == rows[0]["edge AUROC"] == 1.0
    assert rows[1]["edge precision"] == 1.0 and rows[1]["edge recall"] == pytest.approx(
        (len(truth) // 2) / len(truth))


def test_through_mlps():
    from mi_helpers.core.graph import CircuitGraph
    from mi_helpers.tracr.recovery import through_mlps
    graph = CircuitGraph(2, 1)
    head0, mlp0, head1, logits = Node(0, "head", 0), Node(0, "mlp"), Node(1, "head", 0), \
        Node(2, "logits")
    circuit = Circuit.from_edges(graph, [Edge(head0, mlp0), Edge(mlp0, head1, "k"),
                                         Edge(head1, logits)])
    assert through_mlps(circuit, Edge(head0, head1, "k"))
    assert not through_mlps(circuit, Edge(head0, head1, "q"))  # the route ends in the keys
    assert not through_mlps(circuit, Edge(head0, logits))  # head1 is not an MLP


def test_draw_circuit(run):
    import matplotlib
    matplotlib.use("Agg")
    from mi_helpers.tracr.plot import draw_circuit
    model = run[0]
    ax = draw_circuit(model.graph, dict.fromkeys(model.circuit.edges, "k"), "t",
                      legend={"k": "true"})
    assert ax.get_title() == "t" and len(ax.texts) >= len(model.graph.nodes)


def test_acdc_on_a_tracr_model(make_tracr_pair):
    """With zero ablation ACDC recovers double_hist's true circuit exactly; with resample
    ablation it keeps exactly the true edges whose signal differs between the runs."""
    from mi_helpers.circuits import acdc
    from mi_helpers.circuits.edge_patching import edge_differences
    model, clean, corrupted, metric = make_tracr_pair("double_hist", 32, seed=0)
    with torch.no_grad():
        gap = (metric(model.model(clean)) - metric(model.model(corrupted))).item()
    zero = acdc(model.model, clean, None, metric, tau=0.01 * gap, progress=False)
    assert zero.edges == model.circuit.edges
    resample = acdc(model.model, clean, corrupted, metric, tau=0.01 * gap, progress=False)
    carried = edge_differences(model.model, clean, corrupted)
    visible = {e for e in model.circuit.edges if carried[e] > 1e-6}
    assert resample.edges == visible and len(visible) < len(model.circuit.edges)


def test_clean_distance_is_zero_on_the_clean_run_and_the_gap_on_the_corrupted(run):
    from mi_helpers.tracr.methods import clean_distance
    model, clean, corrupted, metric = run
    with torch.no_grad():
        clean_logits, corrupted_logits = model.model(clean), model.model(corrupted)
    distance = clean_distance(clean_logits)
    assert distance(clean_logits).item() == 0
    gap = (metric(clean_logits) - metric(corrupted_logits)).item()
    assert distance(corrupted_logits).item() == pytest.approx(gap, rel=1e-5) and gap > 0
    shifted = clean_logits.clone()
    shifted[:, 0] += 5.0  # BOS has no output: not counted
    assert distance(shifted).item() == 0
