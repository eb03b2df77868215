"""The core: hook names, heads, sweep results, the activation collector, the circuit graph."""

import pytest
import torch
from transformer_lens.utilities.components_utils import get_act_name

from mi_helpers.core import (Circuit, CircuitGraph, Edge, Head, Node, SweepResult,
                             collect_activations, heads_above, hook_name, iter_activations,
                             layer_hooks, run_cached, token_rows, top_heads)
from mi_helpers.core.hooks import SITES

TL_NAMES = {"resid_pre": "resid_pre", "resid_mid": "resid_mid", "resid_post": "resid_post",
            "attn_out": "attn_out", "mlp_out": "mlp_out", "q": "q", "k": "k", "v": "v", "z": "z",
            "pattern": "pattern", "mlp_pre": "pre", "mlp_post": "post"}


@pytest.mark.parametrize("site", sorted(TL_NAMES))
def test_hook_names_agree_with_transformer_lens(site):
    for layer in (0, 3):
        assert hook_name(site, layer) == get_act_name(TL_NAMES[site], layer)


def test_hook_name_errors():
    with pytest.raises(ValueError, match="unknown site 'zz'"):
        hook_name("zz", 0)
    with pytest.raises(ValueError, match="per layer"):
        hook_name("z")
    with pytest.raises(ValueError, match="not per layer"):
        hook_name("embed", 0)
    assert hook_name("embed") == "hook_embed" and set(SITES) >= set(TL_NAMES)


def test_every_site_exists_in_a_gpt2(tiny_model):
    for site in TL_NAMES:
        assert layer_hooks(tiny_model, site) == [hook_name(site, 0), hook_name(site, 1)]
    with pytest.raises(KeyError, match="Did you mean"):
        run_cached(tiny_model, tiny_model.to_tokens("Mary"), ["blocks.0.hook_resid_pots"])


def test_head_is_a_tuple_with_a_label():
    head = Head(3, 1)
    layer, h = head
    assert (layer, h) == (3, 1) and head == (3, 1) and head.label == "L3H1" == str(head)
    grid = torch.arange(20.0).reshape(4, 5)
    assert grid[head] == 16.0


def test_top_heads_and_heads_above_on_a_planted_grid():
    grid = torch.zeros(3, 4)
    grid[2, 1], grid[0, 3], grid[1, 0] = 5.0, 4.0, -7.0
    grid[1, 2] = float("nan")
    assert top_heads(grid, 2) == [Head(2, 1), Head(0, 3)]
    assert top_heads(grid, 1, largest=False) == [Head(1, 0)]
    assert top_heads(grid, 1, min_layer=1) == [Head(2, 1)]
    assert len(top_heads(grid, 100)) == 11  # the NaN cell is skipped
    assert heads_above(grid, 3.0) == [Head(0, 3), Head(2, 1)]
    with pytest.raises(ValueError, match=r"\[layer, head\]"):
        top_heads(torch.zeros(5), 1)


def test_sweep_result_normalisations():
    values = torch.tensor([[2.0, 4.0], [1.0, 3.0]])
    result = SweepResult(values, ("layer", "head"), {"layer": [0, 1], "head": [0, 1]},
                         clean=4.0, corrupted=0.0)
    assert torch.equal(result.score, values / 4)
    assert torch.equal(result.relative, values / 4 - 1) and torch.equal(result.drop, 1 - values / 4)
    assert result.top_heads(1) == [Head(1, 0)]  # the largest drop
    assert result.top(1) == [{"layer": 0, "head": 1, "value": 4.0}]
    assert result.select(layer=1).tolist() == [1.0, 3.0]
    with pytest.raises(ValueError, match="undefined"):
        SweepResult(values, ("layer", "head"), {}, clean=1.0, corrupted=1.0).score
    with pytest.raises(ValueError, match="2 axes but 1 names"):
        SweepResult(values, ("layer",), {}, clean=1.0, corrupted=0.0)
    with pytest.raises(KeyError, match="was not swept"):
        result.select(layer=7)


def test_collector_rows_positions_and_bos(tiny_model):
    tokens = tiny_model.to_tokens(["Mary likes the cat .", "John sees a dog near Mary"])
    hook = hook_name("resid_post", 1)
    _, cache = run_cached(tiny_model, tokens, [hook, hook_name("z", 0)])
    every = collect_activations(tiny_model, tokens, [hook], batch_size=1)[hook]
    assert torch.allclose(every, cache[hook].reshape(-1, 32), atol=1e-6)
    no_bos = collect_activations(tiny_model, tokens, [hook], drop_bos=True)[hook]
    assert torch.allclose(no_bos, cache[hook][:, 1:].reshape(-1, 32), atol=1e-6)
    at = collect_activations(tiny_model, tokens, [hook, hook_name("z", 0)],
                             positions=torch.tensor([2, 4]))
    assert torch.allclose(at[hook], cache[hook][[0, 1], [2, 4]], atol=1e-6)
    assert at[hook_name("z", 0)].shape == (2, 32)  # head x d_head flattened
    batches = [rows for rows, _ in iter_activations(tiny_model, tokens, [hook], batch_size=1)]
    assert batches == [slice(0, 1), slice(1, 2)]
    assert token_rows(cache[hook], drop_bos=True).shape == (2 * (tokens.shape[1] - 1), 32)
    with pytest.raises(ValueError, match="drop_bos"):
        collect_activations(tiny_model, tokens, [hook], positions=1, drop_bos=True)


def test_collector_stops_after_the_last_block_it_needs(tiny_model, monkeypatch):
    """Collecting from block 0 of a 2-layer model runs block 0 only (no block 1, no
    unembedding: what makes collection on gpt2 cheap), with the same activations as a whole
    pass; an intervention in a later block runs that block, and hooks after the blocks
    need the whole pass; every block but no unembedding when only block hooks are read."""
    from mi_helpers.core.hooks import blocks_needed

    assert blocks_needed(tiny_model, [hook_name("resid_post", 0), hook_name("z", 0)]) == 1
    assert blocks_needed(tiny_model, ["hook_embed", hook_name("mlp_out", 0)]) == 1
    assert blocks_needed(tiny_model, [hook_name("resid_pre", 1)]) == 2  # both blocks
    assert blocks_needed(tiny_model, [hook_name("resid_post", 0), "ln_final.hook_scale"]) is None
    assert blocks_needed(tiny_model, [lambda name: True]) is None
    tokens = tiny_model.to_tokens(["Mary likes the cat .", "John sees a dog near Mary"])
    hook = hook_name("resid_post", 0)
    _, whole = run_cached(tiny_model, tokens, [hook])
    stops = []
    real = tiny_model.run_with_cache
    monkeypatch.setattr(tiny_model, "run_with_cache",
                        lambda *a, **k: stops.append(k.get("stop_at_layer")) or real(*a, **k))
    rows = collect_activations(tiny_model, tokens, [hook])[hook]
    assert stops == [1]
    assert torch.allclose(rows, whole[hook].reshape(-1, 32), atol=1e-6)
    unembedded = []
    handle = tiny_model.unembed.register_forward_hook(lambda *args: unembedded.append(1))
    try:
        later = [(hook_name("resid_post", 1), lambda act, hook: act)]
        list(iter_activations(tiny_model, tokens, [hook], fwd_hooks=later))
        assert stops[-1] is None and not unembedded  # both blocks, but no unembedding
        last = hook_name("resid_post", 1)
        rows = collect_activations(tiny_model, tokens, [last])[last]
        assert not unembedded
        assert torch.allclose(rows, run_cached(tiny_model, tokens, [last])[1][last].reshape(-1, 32),
                              atol=1e-6)
        assert unembedded  # a plain run unembeds and keeps its logits
        logits, _ = run_cached(tiny_model, tokens, [hook])
        assert stops[-1] is None and logits.shape[-1] == tiny_model.cfg.d_vocab
        assert "ln_final.hook_scale" in collect_activations(tiny_model, tokens,
                                                            ["ln_final.hook_scale"])
    finally:
        handle.remove()


def test_graph_counts_and_order():
    graph = CircuitGraph(2, 3)
    # nodes: embed, 3 heads + MLP per layer, logits
    assert len(graph.nodes) == 1 + 2 * 4 + 1
    names = [n.name for n in graph.nodes]
    assert names[:5] == ["embed", "L0H0", "L0H1", "L0H2", "MLP0"] and names[-1] == "logits"
    # layer-0 heads read embed (x3 channels); MLP0 reads embed + 3 heads; layer-1 heads read
    # embed, 3 heads, MLP0 (x3 channels); MLP1 reads all 8 earlier nodes + 3 layer-1 heads... :
    l0_heads = 3 * 3 * 1
    mlp0 = 4
    l1_heads = 3 * 3 * 5
    mlp1 = 1 + 3 + 1 + 3
    logits = 1 + 3 + 1 + 3 + 1
    assert len(graph.edges) == l0_heads + mlp0 + l1_heads + mlp1 + logits
    edge = Edge(graph.node("L0H1"), graph.node("L1H2"), "k")
    assert edge.name == "L0H1 -> L1H2.k" and edge in graph.edge_index
    assert Edge(graph.node("L1H2"), graph.node("L0H1"), "k") not in graph.edge_index
    assert CircuitGraph(2, 3, mlps=False).nodes[-2].name == "L1H2"
    with pytest.raises(KeyError, match="no node named"):
        graph.node("L9H9")
    assert graph.nodes[0] == Node(-1, "embed") and graph.nodes[-1] == Node(2, "logits")
    # an MLP reads its own layer's heads and earlier ones, never later ones
    assert Edge(graph.node("L0H1"), graph.node("MLP0")) in graph.edge_index
    assert Edge(graph.node("L1H1"), graph.node("MLP0")) not in graph.edge_index
    assert [n.name for n in graph.senders_of(graph.node("MLP1"))] == \
        ["embed", "L0H0", "L0H1", "L0H2", "MLP0", "L1H0", "L1H1", "L1H2"]


def test_graph_from_a_model_config():
    from types import SimpleNamespace
    cfg = SimpleNamespace(n_layers=3, n_heads=2)
    assert CircuitGraph.from_model(SimpleNamespace(cfg=cfg)).mlps
    cfg.attn_only = True
    graph = CircuitGraph.from_model(SimpleNamespace(cfg=cfg))
    assert not graph.mlps and (graph.n_layers, graph.n_heads) == (3, 2)
    assert not any(n.kind == "mlp" for n in graph.nodes)


def test_circuit_from_heads_keeps_edges_between_kept_nodes():
    graph = CircuitGraph(2, 2)
    circuit = Circuit.from_heads(graph, [(0, 1), Head(1, 0)])
    assert circuit.heads == [Head(0, 1), Head(1, 0)]
    assert Node(0, "head", 0) not in circuit
    assert all(e.sender.kind != "head" or e.sender.as_head in circuit.heads for e in circuit.edges)
    assert Edge(graph.node("L0H1"), graph.node("L1H0"), "q") in circuit
    with pytest.raises(ValueError, match="heads not in the graph"):
        Circuit.from_heads(graph, [(5, 0)])
    with pytest.raises(ValueError, match="edges not in the graph"):
        Circuit.from_edges(graph, [Edge(graph.node("L1H0"), graph.node("L0H0"), "q")])


def test_edits_at_resid_mid_are_refused_because_they_do_not_propagate(tiny_model):
    """The reason, measured: in a TransformerBridge an edit at hook_resid_mid changes the
    block's output only through the MLP (so writing there would be silently wrong)."""
    from mi_helpers.core.hooks import check_writable_hooks
    from mi_helpers.interventions import steer
    tokens = tiny_model.to_tokens("Mary likes the cat")
    mid, mlp, post = (hook_name(s, 0) for s in ("resid_mid", "mlp_out", "resid_post"))
    _, before = run_cached(tiny_model, tokens, [mlp, post])
    push = torch.randn(tiny_model.cfg.d_model) * 5
    with tiny_model.hooks(fwd_hooks=[(mid, lambda act, hook: act + push)]):
        _, after = run_cached(tiny_model, tokens, [mlp, post])
    through_mlp = after[mlp] - before[mlp]
    assert torch.allclose(after[post] - before[post], through_mlp, atol=1e-5)  # push is lost
    with pytest.raises(ValueError, match="reach only the MLP"):
        check_writable_hooks(tiny_model, [mid])
    with pytest.raises(ValueError, match="reach only the MLP"):
        with steer(tiny_model, mid, push):
            pass
    assert check_writable_hooks(tiny_model, [post]) == [post]
