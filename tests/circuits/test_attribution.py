"""Node and edge attribution patching (EAP) and EAP-IG on the circuit graph."""

import pytest
import torch
from transformer_lens.tools.analysis.attribution_patching import (EdgeAttributionConfig,
                                                                  attribution_patch)

from mi_helpers.circuits import edge_model as edge_model_module
from mi_helpers.circuits.attribution import (_activation_path_scores, edge_attribution,
                                             node_attribution)
from mi_helpers.circuits.edge_circuits import edge_effects
from mi_helpers.circuits.edge_model import EdgeModel
from mi_helpers.circuits.edge_patching import build_edge_model, edge_patching
from mi_helpers.core.graph import Node


@pytest.fixture(params=["zoo2l", "random_gpt2"])
def model(request):
    """A rotary GPT-NeoX zoo model and a random GPT-2 (learned positions)."""
    return request.getfixturevalue(request.param)


def test_eap_agrees_with_transformer_lens(model, edge_tools):
    """transformer-lens 4.3 scores an edge per position (writer and reader at the same
    position) and averages per-example scores; our edge is the same edge at every
    position, so its score is the sum of theirs over positions."""
    clean, corrupted, metric = edge_tools.make_pair(model)
    ours = edge_attribution(model, clean, corrupted, metric)
    theirs = attribution_patch(model, clean, corrupted, metric,
                               EdgeAttributionConfig(granularity="edge"))
    graph = build_edge_model(model, clean, corrupted)[0].graph
    expected = edge_tools.aggregate_tl_edges(theirs.edge_scores, graph)
    assert ours.method == "EAP (denoise)"
    assert torch.allclose(edge_effects(ours), expected, atol=1e-5)
    assert expected.abs().max() > 0.05


def test_node_attribution_agrees_with_transformer_lens_and_sums_edges(model, edge_tools):
    clean, corrupted, metric = edge_tools.make_pair(model)
    nodes = node_attribution(model, clean, corrupted, metric)
    theirs = attribution_patch(model, clean, corrupted, metric)  # node granularity
    totals = {}
    for node, value in theirs.node_scores.items():
        ours = (Node(-1, "embed") if node.kind == "embed" else
                Node(node.layer, "head", node.head) if node.kind == "attn_head_out" else
                Node(node.layer, "mlp"))
        totals[ours] = totals.get(ours, 0.0) + value
    expected = torch.tensor([totals[n] for n in nodes.coords["node"]], dtype=torch.float64)
    scores = nodes.values - nodes.corrupted
    assert torch.allclose(scores, expected, atol=1e-5)
    edges = edge_effects(edge_attribution(model, clean, corrupted, metric))
    senders = nodes.coords["node"]
    per_sender = torch.zeros(len(senders), dtype=torch.float64)
    for edge, value in zip(build_edge_model(model, clean, corrupted)[0].graph.edges, edges):
        per_sender[senders.index(edge.sender)] += value
    assert torch.allclose(per_sender, scores, atol=1e-5)


def test_eap_is_exact_where_the_metric_is_linear_in_the_edge(model, edge_tools, monkeypatch):
    """A model made linear along some edges: layer norms replaced by the identity and the
    MLPs silenced. Then an edge into the logits, or into a last-layer head's *value*
    (whose attention pattern it does not touch), changes a logit difference linearly, so
    the first-order estimate in the corrupted run *is* denoising that edge exactly. Query
    and key edges go through a softmax and must differ."""
    original = EdgeModel._weights

    def linear_weights(self):
        original(self)
        if self.graph.mlps:
            self.w["W_out"].zero_()
        self.w["W_qkv"][:, :2] *= 10  # sharper attention, so queries and keys matter
        self.w["W_U"] *= 3  # larger effects, far above the tolerance

    monkeypatch.setattr(EdgeModel, "_weights", linear_weights)
    monkeypatch.setattr(EdgeModel, "norm", lambda self, x, params: x)
    monkeypatch.setattr(edge_model_module, "LOGIT_TOLERANCE", float("inf"))
    clean, corrupted, metric = edge_tools.make_pair(model)
    eap = edge_effects(edge_attribution(model, clean, corrupted, metric))
    exact = edge_effects(edge_patching(model, clean, corrupted, metric, mode="denoise"))
    graph = build_edge_model(model, clean, corrupted)[0].graph
    last = graph.n_layers - 1
    linear = torch.tensor([e.receiver.kind == "logits" or
                           (e.receiver.layer == last and e.channel == "v") for e in graph.edges])
    query_key = torch.tensor([e.channel in ("q", "k") for e in graph.edges])
    assert torch.allclose(eap[linear], exact[linear], atol=1e-5)
    assert exact[linear].abs().max() > 0.02  # 2000 times the tolerance
    assert (eap[query_key] - exact[query_key]).abs().max() > 1e-3


def test_summed_edge_scores_are_the_first_order_change_of_the_metric(model, edge_tools):
    """The edges into the logits carry every sender's difference, so their EAP scores add
    up to d/de M(corrupted final residual + e * (clean - corrupted)) at e = 0, computed here
    with a hook on the model itself."""
    clean, corrupted, metric = edge_tools.make_pair(model)
    eap = edge_effects(edge_attribution(model, clean, corrupted, metric))
    graph = build_edge_model(model, clean, corrupted)[0].graph
    into_logits = graph.edges_into(graph.nodes[-1])
    name = f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"
    with torch.no_grad():
        _, clean_cache = model.run_with_cache(clean, names_filter=name)
        _, corrupted_cache = model.run_with_cache(corrupted, names_filter=name)
    shift = clean_cache[name] - corrupted_cache[name]
    step = torch.zeros((), requires_grad=True)
    with model.hooks(fwd_hooks=[(name, lambda act, hook: act + step * shift)]):
        (slope,) = torch.autograd.grad(metric(model(corrupted)), step)
    assert eap[into_logits].sum().item() == pytest.approx(slope.item(), abs=1e-4)
    assert abs(slope.item()) > 0.05


def test_one_ig_step_is_eap_for_both_variants(model, edge_tools):
    clean, corrupted, metric = edge_tools.make_pair(model)
    eap = edge_attribution(model, clean, corrupted, metric)
    inputs = edge_attribution(model, clean, corrupted, metric, ig_steps=1, variant="inputs")
    assert torch.equal(inputs.values, eap.values)
    em, _ = build_edge_model(model, clean, corrupted)  # the activations code path, one step
    activations = _activation_path_scores(em, metric, torch.zeros(1), per_pass=1)
    assert torch.allclose(activations.double(), edge_effects(eap), atol=1e-6)


def test_ig_on_activations_adds_up_to_each_group_s_patching_effect(zoo2l, edge_tools):
    """Integrated gradients are complete: a sender group's edge scores add up to the
    effect of patching its whole output from corrupted to clean (up to the Riemann sum's
    error, about 1/ig_steps)."""
    clean, corrupted, metric = edge_tools.make_pair(zoo2l)
    result = edge_attribution(zoo2l, clean, corrupted, metric, ig_steps=64,
                              variant="activations")
    scores = edge_effects(result)
    em, _ = build_edge_model(zoo2l, clean, corrupted)
    senders = torch.tensor([em.slots[e.sender] for e in em.graph.edges])
    base = metric(em.corrupted.logits).item()
    gaps = []
    for index, group in enumerate(em.stages[:-1]):
        slots = em.sender_slots(group)

        def send(stage, out, group=group, slots=slots):
            clean_out = em.clean.senders[:, :, slots]
            return out if stage != group else (clean_out if out.ndim == 4 else clean_out[:, :, 0])

        with torch.no_grad():
            exact = metric(em.forward(em.entering(em.corrupted, index), start=index,
                                      send=send)).item() - base
        ours = scores[(senders >= slots.start) & (senders < slots.stop)].sum().item()
        gaps.append(abs(ours - exact) / max(abs(exact), 0.1))
    assert max(gaps) < 0.05, gaps


def test_bad_input(random_gpt2, edge_tools):
    clean, corrupted, metric = edge_tools.make_pair(random_gpt2)

    def top1_accuracy(logits):
        return (logits[:, -1].argmax(-1) == 5).float().mean()

    with pytest.raises(ValueError, match="top1_accuracy is not differentiable"):
        edge_attribution(random_gpt2, clean, corrupted, top1_accuracy)
    with pytest.raises(ValueError, match="not differentiable"):
        node_attribution(random_gpt2, clean, corrupted, top1_accuracy)
    with pytest.raises(ValueError, match="ig_steps must be > 0"):
        edge_attribution(random_gpt2, clean, corrupted, metric, ig_steps=0)
    with pytest.raises(ValueError, match="variant must be one of"):
        edge_attribution(random_gpt2, clean, corrupted, metric, ig_steps=2, variant="outputs")
    with pytest.raises(ValueError, match="same number of tokens"):
        edge_attribution(random_gpt2, clean, corrupted[:, 1:], metric)
    with pytest.raises(MemoryError, match=r"edge attribution needs about .* GiB"):
        edge_attribution(random_gpt2, clean, corrupted, metric, memory_budget=10_000)


@pytest.mark.parametrize("kwargs", [{}, {"ig_steps": 3}, {"ig_steps": 3, "variant": "activations"}])
def test_a_position_metric_gives_the_same_scores_unembedding_one_position(model, edge_tools,
                                                                           kwargs, monkeypatch):
    """Declaring the one position per prompt a metric reads changes no edge or node score;
    the gradient passes then unembed only there."""
    from mi_helpers.core.metrics import PositionMetric, PositionReader

    clean, corrupted, metric = edge_tools.make_pair(model)
    declared = PositionMetric(metric, torch.full((len(clean),), clean.shape[1] - 1))
    plain = edge_attribution(model, clean, corrupted, metric, **kwargs)
    reads, real = [], PositionReader.read_logits
    monkeypatch.setattr(PositionReader, "read_logits",
                        lambda self, x, unembed: reads.append(self.read_positions is not None)
                        or real(self, x, unembed))
    fast = edge_attribution(model, clean, corrupted, declared, **kwargs)
    assert sum(reads) >= 1 and reads[-1], "the gradient passes should read one position"
    assert torch.allclose(fast.values, plain.values, atol=1e-5)
    assert (fast.clean, fast.corrupted) == (plain.clean, plain.corrupted)
    if not kwargs:
        assert torch.allclose(node_attribution(model, clean, corrupted, declared).values,
                              node_attribution(model, clean, corrupted, metric).values, atol=1e-5)
