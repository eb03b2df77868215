"""Circuit graph helpers used by edge-level methods: senders, edge blocks, masks."""

import pytest
import torch

from mi_helpers.core.graph import Circuit, CircuitGraph, Edge, Node


def test_senders_and_edges_into_cover_every_edge_once():
    graph = CircuitGraph(3, 2)
    assert graph.senders == graph.nodes[:-1] and graph.nodes[-1].kind == "logits"
    covered = []
    for receiver in graph.nodes[1:]:
        for channel in (graph.channels if receiver.kind == "head" else ("in",)):
            block = graph.edges_into(receiver, channel)
            edges = graph.edges[block]
            assert all(e.receiver == receiver and e.channel == channel for e in edges)
            assert [e.sender for e in edges] == graph.senders_of(receiver)
            covered += range(block.start, block.stop)
    assert covered == list(range(len(graph.edges)))
    # the MLP of layer 1 also reads layer 1's heads; the heads of layer 1 do not
    assert Node(1, "head", 1) in [e.sender for e in graph.edges[graph.edges_into(Node(1, "mlp"))]]
    assert graph.edges_into(Node(1, "head", 0), "q").stop - graph.edges_into(
        Node(1, "head", 0), "q").start == 1 + 3  # embed, L0H0, L0H1, MLP0
    with pytest.raises(KeyError, match="no input 'q'"):
        graph.edges_into(Node(0, "mlp"), "q")
    with pytest.raises(KeyError, match="embed has no input 'in'"):  # the embeddings read nothing
        graph.edges_into(graph.node("embed"))


def test_circuit_mask_round_trip():
    graph = CircuitGraph(2, 2)
    edges = [graph.edges[3], graph.edges[-1], Edge(graph.node("L0H1"), graph.node("MLP0"))]
    circuit = Circuit.from_edges(graph, edges)
    mask = circuit.mask
    assert mask.dtype == torch.bool and mask.sum() == 3
    assert Circuit.from_mask(graph, mask) == circuit
    assert Circuit.from_mask(graph, mask.tolist()) == circuit  # a list of booleans works too
    assert mask[graph.edge_index[edges[2]]]
    with pytest.raises(ValueError, match="one entry per edge"):
        Circuit.from_mask(graph, mask[:-1])
    with pytest.raises(ValueError, match="boolean"):
        Circuit.from_mask(graph, mask.float())


def test_graphs_of_one_shape_are_equal_so_their_circuits_compare():
    a, b = CircuitGraph(2, 2), CircuitGraph(2, 2)
    assert a == b and hash(a) == hash(b) and a != CircuitGraph(2, 2, mlps=False)
    assert Circuit.from_edges(a, a.edges[:3]) == Circuit.from_edges(b, b.edges[:3])
    assert Circuit.from_edges(a, a.edges[:3]) != Circuit.from_edges(b, b.edges[:4])
