"""Exact edge interventions: identities that hold exactly, and agreement with activation patching."""

import random

import pytest
import torch

from mi_helpers.circuits import activation_patching
from mi_helpers.core.graph import Node
from mi_helpers.tracr import load_tracr
from mi_helpers.tracr.edges import edge_patching, run_without_edges, sender_outputs
from mi_helpers.tracr.methods import output_metric


@pytest.fixture(scope="module")
def sort():
    model = load_tracr("sort")
    inputs = model.inputs(5)
    rng = random.Random(0)
    clean, corrupted = model.encode(rng.sample(inputs, 32)), model.encode(rng.sample(inputs, 32))
    return model, clean, corrupted


def test_removing_nothing_or_everything(sort):
    model, clean, corrupted = sort
    graph = model.graph
    with torch.no_grad():
        clean_logits, corrupted_logits = model.model(clean), model.model(corrupted)
    logits = run_without_edges(model.model, graph, clean, [(), graph.edges],
                               sender_outputs(model.model, graph, corrupted))
    assert torch.equal(logits[:32], clean_logits)
    torch.testing.assert_close(logits[32:], corrupted_logits, atol=1e-5, rtol=0)
    zeroed = run_without_edges(model.model, graph, clean, [graph.edges])
    assert zeroed.abs().max() == 0  # no input reaches the logits (the unembedding has no bias)


def test_all_outgoing_edges_equal_activation_patching(sort):
    """Removing every edge out of a node, resampled, is noising that node's output."""
    model, clean, corrupted = sort
    graph = model.graph
    with torch.no_grad():
        metric = output_metric(model.model(clean), model.model(corrupted))
    heads = activation_patching(model.model, clean, corrupted, metric, "z", mode="noise")
    replacement = sender_outputs(model.model, graph, corrupted)
    for layer in range(model.model.cfg.n_layers):
        node = Node(layer, "head", 0)
        outgoing = [e for e in graph.edges if e.sender == node]
        logits = run_without_edges(model.model, graph, clean, [outgoing], replacement)
        assert metric(logits).item() == pytest.approx(heads.values[layer, 0].item(), abs=1e-5)


def test_edge_patching_result(sort):
    model, clean, corrupted = sort
    with torch.no_grad():
        metric = output_metric(model.model(clean), model.model(corrupted))
    result = edge_patching(model.model, model.graph, clean, corrupted, metric, edges_per_pass=7)
    assert result.axes == ("edge",) and len(result.values) == len(model.graph.edges)
    assert result.clean > result.corrupted
    outside = [i for i, e in enumerate(model.graph.edges) if e not in model.circuit.edges]
    assert torch.allclose(result.values[outside], torch.tensor(result.clean), atol=1e-5)


def test_needs_a_model_without_layernorm(tiny_model):
    from mi_helpers.core.graph import CircuitGraph
    graph = CircuitGraph.from_model(tiny_model)
    with pytest.raises(ValueError, match="without LayerNorm"):
        run_without_edges(tiny_model, graph, torch.zeros(1, 3, dtype=torch.long), [()])


def test_edges_must_be_in_the_graph(sort):
    model, clean, _ = sort
    other = load_tracr("hist").graph
    with pytest.raises(ValueError, match="not in the graph"):
        run_without_edges(model.model, model.graph, clean, [[other.edges[-1]]])
