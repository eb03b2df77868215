"""The package's one edge engine (mi_helpers.circuits) on Tracr models: no LayerNorm and
bidirectional attention, reproduced exactly; checked against naive one-edge patching through
TransformerLens' own forward pass, and against the numbers of the tracr-only engine it replaced."""

import json
from functools import partial
from pathlib import Path

import pytest
import torch

from mi_helpers.circuits import activation_patching, edge_attribution, edge_patching
from mi_helpers.circuits.edge_model import EdgeModel
from mi_helpers.circuits.edge_patching import build_edge_model, edge_differences
from mi_helpers.core.graph import Node
from mi_helpers.core.hooks import hook_name
from mi_helpers.tracr import load_tracr, tracr_names
from mi_helpers.tracr.ground_truth import ablation_changes
from mi_helpers.tracr.methods import output_metric

OLD_ENGINE = json.loads((Path(__file__).parents[1] / "data" / "tracr_old_engine.json").read_text())


@pytest.fixture(scope="module")
def sort(make_tracr_pair):
    return make_tracr_pair("sort")


@pytest.mark.parametrize("name", tracr_names())
def test_the_engine_reproduces_every_compiled_model(name):
    model = load_tracr(name)
    cfg = model.model.cfg
    assert cfg.normalization_type is None and cfg.attention_dir == "bidirectional"
    tokens = model.encode(model.inputs(4))
    em = EdgeModel(model.model, tokens, tokens.flip(0))
    with torch.no_grad():
        torch.testing.assert_close(em.clean.logits, model.model(tokens), atol=1e-5, rtol=0)
    assert em.graph == model.graph


def test_removing_nothing_or_everything(sort):
    model, clean, corrupted, _ = sort
    em, _ = build_edge_model(model.model, clean, corrupted)
    n = len(em.graph.edges)
    with torch.no_grad():
        clean_logits, corrupted_logits = model.model(clean), model.model(corrupted)
    logits = em.patched_logits(torch.tensor([[0.0] * n, [1.0] * n]))
    torch.testing.assert_close(logits[:32], clean_logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(logits[32:], corrupted_logits, atol=1e-5, rtol=0)
    zero, _ = build_edge_model(model.model, clean, None)
    assert zero.ablation == "zero" and zero.corrupted is None
    assert zero.corrupted_logits.abs().max() == 0  # nothing reaches the logits (no biases)


# --- an independent oracle: one edge at a time, through the model's own hooks -------------------
def _sender_outputs(model, tokens):
    """Each sender's output, read from TransformerLens' cache (not from the edge engine)."""
    _, cache = model.run_with_cache(tokens)
    outputs = {Node(-1, "embed"): cache["hook_embed"] + cache["hook_pos_embed"]}
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            z = cache[hook_name("z", layer)][:, :, head]
            outputs[Node(layer, "head", head)] = z @ model.W_O[layer, head]
        outputs[Node(layer, "mlp")] = cache[hook_name("mlp_out", layer)]
    return outputs


def _add(act, hook, *, delta, head=None):
    act = act.clone()
    if head is None:
        act += delta
    else:
        act[:, :, head] += delta
    return act


def _naive_patch(model, tokens, edge, ours, replacement):
    """Logits with ``edge``'s receiver reading ``replacement`` instead of ``ours`` (no LayerNorm,
    so the receiver's input moves by exactly ``(replacement - ours) @ W``)."""
    change = replacement - ours
    receiver = edge.receiver
    with torch.no_grad():
        if receiver.kind == "logits":
            return model(tokens) + change @ model.W_U
        if receiver.kind == "mlp":
            hook = (hook_name("mlp_pre", receiver.layer),
                    partial(_add, delta=change @ model.W_in[receiver.layer]))
        else:
            weight = {"q": model.W_Q, "k": model.W_K, "v": model.W_V}[edge.channel]
            hook = (f"blocks.{receiver.layer}.attn.hook_{edge.channel}", partial(
                _add, delta=change @ weight[receiver.layer, receiver.head], head=receiver.head))
        return model.run_with_hooks(tokens, fwd_hooks=[hook])


@pytest.mark.parametrize("name,ablation", [("sort", "resample"), ("induction_count", "zero")])
def test_edge_patching_equals_naive_one_edge_patching(name, ablation, make_tracr_pair):
    model, clean, corrupted, metric = make_tracr_pair(name, n=16, seed=3)
    result = edge_patching(model.model, clean, corrupted if ablation == "resample" else None, metric)
    ours = _sender_outputs(model.model, clean)
    theirs = (_sender_outputs(model.model, corrupted) if ablation == "resample"
              else {node: torch.zeros_like(out) for node, out in ours.items()})
    naive = torch.tensor([metric(_naive_patch(model.model, clean, e, ours[e.sender],
                                              theirs[e.sender])).item()
                          for e in model.graph.edges], dtype=torch.float64)
    torch.testing.assert_close(result.values, naive, atol=1e-5, rtol=0)
    assert (result.clean - naive).abs().max() > 0.1, "some edge must matter"


def test_edge_differences_by_hand(sort):
    model, clean, corrupted, _ = sort
    found = edge_differences(model.model, clean, corrupted)
    ours, theirs = _sender_outputs(model.model, clean), _sender_outputs(model.model, corrupted)
    for edge in model.graph.edges[::5]:
        weight = (model.model.W_U if edge.receiver.kind == "logits"
                  else model.model.W_in[edge.receiver.layer] if edge.receiver.kind == "mlp"
                  else {"q": model.model.W_Q, "k": model.model.W_K, "v": model.model.W_V}[
                      edge.channel][edge.receiver.layer, edge.receiver.head])
        expected = ((ours[edge.sender] - theirs[edge.sender]) @ weight).abs().max().item()
        assert found[edge] == pytest.approx(expected, abs=1e-6)


def test_all_outgoing_edges_equal_activation_patching(sort):
    """Patching every edge out of a node is noising that node's output."""
    model, clean, corrupted, metric = sort
    heads = activation_patching(model.model, clean, corrupted, metric, "z", mode="noise")
    em, _ = build_edge_model(model.model, clean, corrupted)
    for layer in range(model.model.cfg.n_layers):
        node = Node(layer, "head", 0)
        mask = torch.tensor([[float(e.sender == node) for e in em.graph.edges]])
        value = metric(em.patched_logits(mask)).item()
        assert value == pytest.approx(heads.values[layer, 0].item(), abs=1e-5)


# --- the numbers of the tracr-only engine this replaced (tests/data/tracr_old_engine.json) ------
@pytest.mark.parametrize("name", sorted(OLD_ENGINE["pairs"]))
def test_the_old_engines_numbers_are_reproduced(name):
    old = OLD_ENGINE["pairs"][name]
    model = load_tracr(name)
    assert [e.name for e in model.graph.edges] == old["edges"]
    clean = model.encode([tuple(x) for x in old["clean"]])
    corrupted = model.encode([tuple(x) for x in old["corrupted"]])
    with torch.no_grad():
        metric = output_metric(model.model(clean), model.model(corrupted))
    new = {
        "edge patching (resample)": edge_patching(model.model, clean, corrupted, metric).values,
        "edge patching (zero)": edge_patching(model.model, clean, None, metric).values,
        "EAP": edge_attribution(model.model, clean, corrupted, metric).values,
        "EAP-IG 8": edge_attribution(model.model, clean, corrupted, metric, ig_steps=8).values,
        "edge differences": list(edge_differences(model.model, clean, corrupted).values()),
    }
    for key, values in new.items():
        torch.testing.assert_close(torch.as_tensor(values, dtype=torch.float64),
                                   torch.tensor(old[key], dtype=torch.float64),
                                   atol=2e-6, rtol=0, msg=lambda m, key=key: f"{key}: {m}")
    values = old["edge patching (resample)"]
    assert max(values) - min(values) > 0.1, "the reference must tell edges apart"


@pytest.mark.parametrize("name", ["reverse", "induction_count", "frac_prevs"])
def test_ablation_changes_are_the_old_engines(name):
    model = load_tracr(name)
    changes = ablation_changes(model, model.graph.edges, patches_per_pass=7)
    assert {e.name: n for e, n in changes.items() if n} == OLD_ENGINE["ablation_changes"][name]
