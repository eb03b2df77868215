"""Exact edge patching (the oracle) and circuit evaluation on the circuit graph."""

import pytest
import torch
from transformer_lens.tools.analysis.attribution_patching import faithfulness as tl_faithfulness

from mi_helpers.circuits import edge_model as edge_model_module
from mi_helpers.circuits.edge_model import EdgeModel
from mi_helpers.circuits.edge_patching import (build_edge_model, circuit_metrics, edge_patching,
                                               metric_per_copy)
from mi_helpers.core.graph import Circuit, CircuitGraph
from mi_helpers.core.metrics import PositionMetric, PositionReader


@pytest.fixture(params=["zoo2l", "random_gpt2"])
def model(request):
    """A rotary GPT-NeoX zoo model and a random GPT-2 (learned positions)."""
    return request.getfixturevalue(request.param)


def test_full_and_empty_circuits_are_the_clean_and_corrupted_runs(model, edge_tools):
    clean, corrupted, metric = edge_tools.make_pair(model)
    em, _ = build_edge_model(model, clean, corrupted)
    with torch.no_grad():
        clean_logits, corrupted_logits = model(clean), model(corrupted)
    n = len(em.graph.edges)
    logits = em.patched_logits(torch.tensor([[0.0] * n, [1.0] * n]))
    assert torch.allclose(logits[:3], clean_logits, atol=1e-4)
    assert torch.allclose(logits[3:], corrupted_logits, atol=1e-4)
    graph = em.graph
    values = circuit_metrics(model, clean, corrupted, metric,
                             [Circuit.from_edges(graph, graph.edges), Circuit(graph, frozenset())])
    assert values.tolist() == pytest.approx([metric(clean_logits).item(),
                                            metric(corrupted_logits).item()], abs=1e-4)


def test_the_batched_sweep_matches_one_edge_per_pass_and_the_general_patcher(model, edge_tools):
    """Three code paths: many edges per pass, one per pass, and the any-edges patcher with a
    one-hot mask (which rebuilds every receiver from live sender outputs)."""
    clean, corrupted, metric = edge_tools.make_pair(model)
    batched = edge_patching(model, clean, corrupted, metric, patches_per_pass=37)
    graph = batched.coords["edge"]
    picks = torch.randperm(len(graph))[:30].tolist()
    single = edge_patching(model, clean, corrupted, metric, patches_per_pass=1,
                           edges=[graph[i] for i in picks])
    assert torch.allclose(single.values[picks], batched.values[picks], atol=1e-5)
    assert single.values.isnan().sum() == len(graph) - 30
    em, _ = build_edge_model(model, clean, corrupted)
    onehot = torch.zeros(30, len(graph))
    onehot[torch.arange(30), picks] = 1
    general = metric_per_copy(metric, em.patched_logits(onehot), len(clean))
    assert torch.allclose(torch.tensor(general, dtype=torch.float64), batched.values[picks],
                          atol=1e-5)
    effects = (batched.clean - batched.values).abs()
    assert effects.max() > 1e-2, "a random model's edges should matter somewhere"


def test_denoising_one_edge_runs_the_corrupted_prompts(model, edge_tools):
    clean, corrupted, metric = edge_tools.make_pair(model)
    noise = edge_patching(model, clean, corrupted, metric)
    denoise = edge_patching(model, corrupted, clean, metric, mode="denoise")
    # denoising "clean into corrupted" with the roles swapped is noising
    assert torch.allclose(noise.values, denoise.values, atol=1e-5)
    assert noise.method == "exact edge patching (noise)"


def test_circuit_metrics_agree_with_transformer_lens_faithfulness(model, edge_tools):
    """transformer-lens 4.3 ablates every per-position edge outside a circuit with the
    corrupted run's writer outputs; our edges sum over positions, so a circuit of ours
    is the same circuit at every position."""
    clean, corrupted, metric = edge_tools.make_pair(model, batch=1)
    em, _ = build_edge_model(model, clean, corrupted)
    graph = em.graph
    gen = torch.Generator().manual_seed(1)
    keep = torch.rand(len(graph.edges), generator=gen) < 0.5
    circuit = Circuit.from_mask(graph, keep)
    ours = circuit_metrics(model, clean, corrupted, metric, [circuit]).item()
    theirs = tl_faithfulness(model, clean, corrupted, metric,
                             edge_tools.tl_edges_of(circuit.edges, graph.n_layers, clean.shape[1]))
    ablated = theirs.recovered * (theirs.full_metric - theirs.corrupt_metric) + theirs.corrupt_metric
    assert ours == pytest.approx(ablated, abs=1e-4)
    assert abs(ours - theirs.full_metric) > 1e-3, "the circuit should change the metric"


def test_bad_input(tiny_model, edge_tools):
    clean, corrupted, metric = edge_tools.make_pair(tiny_model)
    with pytest.raises(ValueError, match="mode must be"):
        edge_patching(tiny_model, clean, corrupted, metric, mode="resample")
    with pytest.raises(ValueError, match="same number of tokens"):
        edge_patching(tiny_model, clean, corrupted[:, :-1], metric)
    with pytest.raises(MemoryError, match=r"needs about .* GiB per pass .* memory_budget"):
        edge_patching(tiny_model, clean, corrupted, metric, memory_budget=1000)
    with pytest.raises(ValueError, match="patches per pass must be > 0"):
        edge_patching(tiny_model, clean, corrupted, metric, patches_per_pass=0)
    with pytest.raises(MemoryError, match="fewer patches per pass"):
        edge_patching(tiny_model, clean, corrupted, metric, patches_per_pass=10**6)
    with pytest.raises(ValueError, match="not in the graph"):
        other = build_edge_model(tiny_model, clean, corrupted)[0].graph.edges[0]
        edge_patching(tiny_model, clean, corrupted, metric,
                      edges=[type(other)(other.receiver, other.sender)])


def test_unsupported_architectures_are_refused(tiny_model, edge_tools, monkeypatch):
    clean, corrupted, _ = edge_tools.make_pair(tiny_model)
    monkeypatch.setattr(tiny_model.cfg, "parallel_attn_mlp", True)
    with pytest.raises(ValueError, match="parallel attention and MLP"):
        EdgeModel(tiny_model, clean, corrupted)
    monkeypatch.setattr(tiny_model.cfg, "parallel_attn_mlp", False)
    monkeypatch.setattr(edge_model_module, "ACTIVATIONS",
                        {**edge_model_module.ACTIVATIONS, "gelu_new": torch.relu})
    with pytest.raises(ValueError, match="does not reproduce this model's logits"):
        EdgeModel(tiny_model, clean, corrupted)


def test_zero_ablation_sweep_matches_the_general_patcher(model, edge_tools):
    """corrupted=None: each edge's receiver reads zeros; the one-edge sweep and the
    any-edges patcher (two code paths) agree, and patching every edge is the anchor."""
    clean, _, metric = edge_tools.make_pair(model)
    result = edge_patching(model, clean, None, metric, patches_per_pass=23)
    assert result.method == "exact edge patching, zero ablation (noise)"
    em, _ = build_edge_model(model, clean, None)
    assert em.ablation == "zero" and em.replacement.abs().max() == 0
    picks = torch.randperm(len(em.graph.edges), generator=torch.Generator().manual_seed(0))[:20]
    onehot = torch.zeros(20, len(em.graph.edges))
    onehot[torch.arange(20), picks] = 1
    general = metric_per_copy(metric, em.patched_logits(onehot), len(clean))
    assert torch.allclose(torch.tensor(general, dtype=torch.float64), result.values[picks],
                          atol=1e-5)
    assert result.corrupted == pytest.approx(metric(em.corrupted_logits).item(), abs=1e-6)
    assert (result.values - result.clean).abs().max() > 1e-2


def test_zero_ablation_bad_input(tiny_model, edge_tools):
    from mi_helpers.circuits import edge_attribution, node_attribution
    from mi_helpers.circuits.edge_patching import edge_differences
    clean, corrupted, metric = edge_tools.make_pair(tiny_model)
    with pytest.raises(ValueError, match="zero ablation .* only noises"):
        edge_patching(tiny_model, clean, None, metric, mode="denoise")
    for attribution in (edge_attribution, node_attribution):
        with pytest.raises(ValueError, match="needs corrupted prompts"):
            attribution(tiny_model, clean, None, metric)
    with pytest.raises(ValueError, match="without normalization"):
        edge_differences(tiny_model, clean, corrupted)


def test_attention_directions(tiny_model, edge_tools, monkeypatch):
    clean, corrupted, _ = edge_tools.make_pair(tiny_model)
    monkeypatch.setattr(tiny_model.cfg, "attention_dir", "sideways")
    with pytest.raises(ValueError, match="attention direction sideways"):
        EdgeModel(tiny_model, clean, corrupted)
    monkeypatch.setattr(tiny_model.cfg, "attention_dir", "bidirectional")
    with pytest.raises(ValueError, match="does not reproduce this model's logits"):
        EdgeModel(tiny_model, clean, corrupted)  # the model masks, the engine would not


def test_a_position_metric_gives_the_same_edges_and_circuits_unembedding_one_position(
        model, edge_tools, monkeypatch):
    """Declaring the one position per prompt the metric reads changes no edge's value nor
    any circuit's metric; the passes then unembed only there (the rest of the logits NaN)."""
    clean, corrupted, metric = edge_tools.make_pair(model)
    graph = CircuitGraph.from_model(model)
    edges = graph.edges[::7]  # edges into every kind of receiver, logits included
    circuits = [Circuit.from_edges(graph, graph.edges[::3]), Circuit(graph, frozenset())]
    full = edge_patching(model, clean, corrupted, metric, edges=edges)
    full_circuits = circuit_metrics(model, clean, corrupted, metric, circuits)
    nan_logits = []
    real = PositionReader.read_logits

    def counting(self, x, unembed):
        out = real(self, x, unembed)
        if self.read_positions is not None:
            nan_logits.append(out.isnan().any().item())
        return out

    monkeypatch.setattr(PositionReader, "read_logits", counting)
    declared = PositionMetric(metric, torch.full((len(clean),), clean.shape[1] - 1))
    fast = edge_patching(model, clean, corrupted, declared, edges=edges)
    assert torch.allclose(fast.values, full.values, atol=1e-5, equal_nan=True)
    assert fast.values.isfinite().sum() == len(edges)
    assert torch.allclose(circuit_metrics(model, clean, corrupted, declared, circuits),
                          full_circuits, atol=1e-5)
    assert nan_logits and all(nan_logits), "the passes should unembed only the last position"
    reads_first = PositionMetric(lambda logits: logits[:, 0, 5].mean(), declared.positions)
    with pytest.raises(ValueError, match="outside its declared positions"):
        edge_patching(model, clean, corrupted, reads_first, edges=edges)
