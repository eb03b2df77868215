"""Choosing circuits from edge scores, faithfulness curves and MIB's CPR and CMD."""

import pytest
import torch

from mi_helpers.circuits.edge_circuits import (cpr_cmd, edge_effects, edges_above,
                                               faithfulness_curves, greedy_circuit, select_circuit,
                                               spearman, top_edges)
from mi_helpers.circuits.edge_patching import circuit_metrics, edge_patching
from mi_helpers.core.graph import CircuitGraph
from mi_helpers.core.results import SweepResult


def sweep(effects, method="EAP (denoise)", clean=3.0, corrupted=1.0, graph=None):
    graph = graph or CircuitGraph(2, 2)
    effects = torch.as_tensor(effects, dtype=torch.float64)
    values = clean - effects if method.endswith("(noise)") else corrupted + effects
    return SweepResult(values, ("edge",), {"edge": graph.edges}, clean=clean,
                       corrupted=corrupted, method=method)


def test_edge_effects_share_one_sign_for_noising_and_denoising():
    graph = CircuitGraph(2, 2)
    effects = torch.linspace(-1, 2, len(graph.edges), dtype=torch.float64)
    for method in ("exact edge patching (noise)", "exact edge patching (denoise)", "EAP (denoise)"):
        assert torch.allclose(edge_effects(sweep(effects, method)), effects)
    with pytest.raises(ValueError, match="cannot tell the direction"):
        edge_effects(sweep(effects, "EAP"))
    grid = SweepResult(torch.zeros(2, 2), ("layer", "head"), {"layer": [0, 1], "head": [0, 1]},
                       clean=1.0, corrupted=0.0, method="x (noise)")
    with pytest.raises(ValueError, match="expected an edge sweep"):
        edge_effects(grid)


def test_top_threshold_and_greedy_selection():
    graph = CircuitGraph(2, 2)
    n = len(graph.edges)
    effects = torch.zeros(n, dtype=torch.float64)
    logits_in = graph.edges_into(graph.nodes[-1])
    deep = graph.edges.index(next(e for e in graph.edges if e.receiver.name == "L0H0"))
    effects[deep] = -5.0  # the largest |effect|, but into a head nothing reads (yet)
    effects[logits_in.start + 1] = 2.0  # L0H0 -> logits
    effects[logits_in.start + 2] = 1.0  # L0H1 -> logits
    result = sweep(effects)
    top = top_edges(result, 2)
    assert {e.name for e in top.edges} == {graph.edges[deep].name, "L0H0 -> logits"}
    assert {e.name for e in top_edges(result, 2, absolute=False).edges} == {
        "L0H0 -> logits", "L0H1 -> logits"}
    assert edges_above(result, 1.5) == top
    assert [e.name for e in greedy_circuit(result, 1).edges] == ["L0H0 -> logits"]
    greedy = greedy_circuit(result, 2)  # L0H0 is reached, so the edge into it comes in
    assert {e.name for e in greedy.edges} == {"L0H0 -> logits", graph.edges[deep].name}
    for circuit in (greedy_circuit(result, k) for k in range(n + 1)):
        senders = {e.sender for e in circuit.edges}
        assert all(e.receiver.kind == "logits" or e.receiver in senders for e in circuit.edges)
    assert len(select_circuit(result, 7, "greedy")) == 7
    with pytest.raises(ValueError, match="selection must be one of"):
        select_circuit(result, 3, "random")
    with pytest.raises(ValueError, match="n must be in"):
        top_edges(result, n + 1)
    with pytest.raises(ValueError, match="not a whole circuit graph"):
        top_edges(SweepResult(result.values[:5], ("edge",), {"edge": graph.edges[:5]},
                              clean=3.0, corrupted=1.0, method="EAP (denoise)"), 2)


def test_cpr_and_cmd_are_trapezoid_areas():
    budgets = [0.0, 0.5, 1.0]
    assert cpr_cmd(budgets, [1.0, 1.0, 1.0]) == pytest.approx((1.0, 0.0))
    # f = 0, 0.5, 1: CPR = 0.5 * (0 + 0.5) / 2 + 0.5 * (0.5 + 1) / 2 = 0.5
    assert cpr_cmd(budgets, [0.0, 0.5, 1.0]) == pytest.approx((0.5, 0.5))
    # overshooting counts against CMD: |1 - 1.5| = 0.5
    assert cpr_cmd(budgets, [1.0, 1.5, 1.0]) == pytest.approx((1.25, 0.25))
    with pytest.raises(ValueError, match="budgets must increase"):
        cpr_cmd([0.5, 0.1], [0, 1])


def test_spearman_uses_average_ranks():
    a = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert spearman(a, a ** 3) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    # ties: ranks [0.5, 0.5, 2, 3] against [0, 1, 2, 3] -> Pearson of the ranks
    tied = torch.tensor([1.0, 1.0, 3.0, 4.0])
    expected = torch.corrcoef(torch.tensor([[0.5, 0.5, 2, 3], [0.0, 1, 2, 3]]))[0, 1].item()
    assert spearman(tied, a) == pytest.approx(expected)
    with pytest.raises(ValueError, match="same length"):
        spearman(a, a[:3])


def test_faithfulness_curves_run_each_method_s_circuits(zoo2l, edge_tools):
    clean, corrupted, metric = edge_tools.induction_pair(zoo2l)
    exact = edge_patching(zoo2l, clean, corrupted, metric)
    reverse = sweep(-edge_effects(exact), graph=CircuitGraph(2, 4), clean=exact.clean,
                    corrupted=exact.corrupted)
    budgets = [0.05, 0.2, 0.5, 1.0]
    curves = faithfulness_curves(zoo2l, clean, corrupted, metric, [exact, reverse],
                                 budgets=budgets, absolute=False)
    n = len(exact.coords["edge"])
    assert curves[0].n_edges == [int(b * n) for b in budgets]
    assert curves[0].faithfulness[-1] == pytest.approx(1.0, abs=1e-4)
    circuit = top_edges(exact, int(0.2 * n), absolute=False)
    value = circuit_metrics(zoo2l, clean, corrupted, metric, [circuit]).item()
    f = (value - exact.corrupted) / (exact.clean - exact.corrupted)
    assert curves[0].faithfulness[1] == pytest.approx(f, abs=1e-6)
    # keeping the most helpful edges beats keeping the most harmful ones
    assert curves[0].cpr > curves[1].cpr and curves[0].cmd < curves[1].cmd
    with pytest.raises(ValueError, match="budgets are fractions"):
        faithfulness_curves(zoo2l, clean, corrupted, metric, [exact], budgets=[0, 0.5])
