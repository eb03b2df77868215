"""The committed ground truth holds: read again from the weights, and checked by ablation."""

import pytest

from mi_helpers.core.graph import Node
from mi_helpers.tracr import load_tracr
from mi_helpers.tracr.files import parse_edge
from mi_helpers.tracr.ground_truth import ablation_changes, node_dims, true_edges, variable_site


@pytest.fixture(scope="module")
def double_hist():
    return load_tracr("double_hist")


@pytest.mark.parametrize("name", ["reverse", "induction_count"])
def test_connected_edges_are_read_from_the_weights(name):
    model = load_tracr(name)
    writes, reads = node_dims(model.model)
    assert [e.name for e in true_edges(model.graph, writes, reads)] == \
        model.spec["ground_truth"]["connected_edges"]


def test_edges_by_ablation(double_hist):
    """An edge outside the true circuit changes no output on any input; every true edge does."""
    changes = ablation_changes(double_hist, double_hist.graph.edges)
    true = double_hist.circuit.edges
    assert true and len(true) < len(double_hist.graph.edges)
    assert all(changes[e] == 0 for e in double_hist.graph.edges if e not in true)
    assert all(changes[e] > 0 for e in true)


def test_inert_edges_are_the_constant_selector(double_hist):
    """length's Select(TRUE) gives every key the same score: its query and key are inert."""
    length = load_tracr("length")
    assert length.spec["ground_truth"]["inert_edges"] == ["embed -> L0H0.q", "embed -> L0H0.k"]
    assert double_hist.spec["ground_truth"]["inert_edges"] == []


def test_induction_count_composes_through_the_keys():
    model = load_tracr("induction_count")
    edge = parse_edge(model.graph, "L0H0 -> L1H0.k")
    assert edge in model.circuit.edges
    assert parse_edge(model.graph, "L0H0 -> L1H0.q") not in model.circuit.edges
    assert [n.name for n in model.operations["prev_token"]] == ["L0H0"]


def test_variable_site():
    assert variable_site([Node(-1, "embed")]) == ("resid_pre", 0)
    assert variable_site([Node(1, "head", 0)]) == ("resid_mid", 1)
    assert variable_site([Node(1, "head", 0), Node(1, "mlp")]) == ("resid_post", 1)


def test_ablation_changes_by_length():
    """reverse's length edges: zeroed, the length head's 1/(n+1) reads as the longest length."""
    model = load_tracr("reverse")
    edges = [parse_edge(model.graph, "L0H0 -> MLP0"), parse_edge(model.graph, "embed -> L2H0.v")]
    at_five = ablation_changes(model, edges, lengths=[5])
    shorter = ablation_changes(model, edges, lengths=range(1, 5))
    every = ablation_changes(model, edges)
    assert at_five[edges[0]] == 0 and shorter[edges[0]] > 0
    assert at_five[edges[1]] > 0
    assert all(every[e] == at_five[e] + shorter[e] for e in edges)
    with pytest.raises(ValueError, match="length must be in"):
        ablation_changes(model, edges, lengths=[6])
