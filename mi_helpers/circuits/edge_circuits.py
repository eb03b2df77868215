"""From edge scores to circuits, and how faithful the circuits are at each size.

Every edge method here (exact edge patching, EAP, EAP-IG) returns a
:class:`~mi_helpers.core.results.SweepResult` over ``graph.edges``;
:func:`edge_effects` turns it into each edge's **effect** with one sign for all of them
(positive: the clean edge raises the metric). A circuit is then chosen by

* :func:`top_edges`: the ``n`` edges with the largest ``|effect|``;
* :func:`edges_above`: every edge with ``|effect|`` above a threshold;
* :func:`greedy_circuit`: grown from the logits backwards, each time adding the
  highest-scoring edge into a node already reached, so the circuit stays connected
  (as in hannamw/EAP-IG and MIB).

**Faithfulness** of a circuit ``C`` (Mueller et al., 2025, MIB): run the model with
every edge outside ``C`` patched from the corrupted run
(:func:`~.edge_patching.circuit_metrics`); ``f(C) = (m(C) - m(corrupted)) /
(m(clean) - m(corrupted))``: 0 for the empty circuit, 1 for the full graph. Over edge
budgets ``k`` (fractions of all edges, :data:`MIB_BUDGETS`), MIB summarises the curve
``f(k)`` by two areas (trapezoids over ``k``):

* **CPR** (circuit performance ratio): the area under ``f``, higher is better;
* **CMD** (circuit-model difference): the area between ``f`` and 1, lower is better.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from ..core.graph import Circuit, CircuitGraph
from ..core.results import SweepResult
from .edge_memory import DEFAULT_MEMORY_BUDGET
from .edge_patching import build_edge_model, circuit_metrics
from .patching import Metric, metric_value

__all__ = ["edge_effects", "top_edges", "edges_above", "greedy_circuit", "select_circuit",
           "FaithfulnessCurve", "faithfulness_curves", "cpr_cmd", "spearman", "MIB_BUDGETS",
           "SELECTIONS"]

MIB_BUDGETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
SELECTIONS = ("top", "greedy")


def edge_effects(result: SweepResult) -> Float[Tensor, "edge"]:
    """Each edge's effect on the metric, positive when the clean edge raises it.

    ``clean - values`` for a noising sweep (the metric falls when the edge is
    corrupted), ``values - corrupted`` for a denoising one or an attribution estimate.

    Raises:
        ValueError: not an edge sweep, or a method without ``(noise)``/``(denoise)``.
    """
    if result.axes != ("edge",):
        raise ValueError(f"expected an edge sweep (axes ('edge',)), got axes {result.axes}")
    if result.method.endswith("(noise)"):
        return result.clean - result.values
    if result.method.endswith("(denoise)"):
        return result.values - result.corrupted
    raise ValueError(f"cannot tell the direction of {result.method!r}: edge methods end their "
                     f"name with '(noise)' or '(denoise)'")


def _graph(result: SweepResult) -> CircuitGraph:
    """The circuit graph whose edges the sweep covers (all of them, in graph order)."""
    edges = list(result.coords["edge"])
    graph = None
    if edges and edges[-1].receiver.kind == "logits":
        heads = [n.head for e in edges for n in (e.sender, e.receiver) if n.kind == "head"]
        channels = tuple(dict.fromkeys(e.channel for e in edges if e.receiver.kind == "head"))
        if heads and channels:
            graph = CircuitGraph(edges[-1].receiver.layer, max(heads) + 1, channels=channels,
                                 mlps=any(e.sender.kind == "mlp" for e in edges))
    if graph is None or graph.edges != edges:
        raise ValueError("the sweep's edges are not a whole circuit graph; select circuits "
                         "from a sweep over every edge")
    return graph


def _ranking(result: SweepResult, absolute: bool) -> Tensor:
    effects = edge_effects(result)
    if effects.isnan().any():
        raise ValueError("some edges were not scored (NaN); select from a sweep of every edge")
    return effects.abs() if absolute else effects


def top_edges(result: SweepResult, n: int, *, absolute: bool = True) -> Circuit:
    """The circuit of the ``n`` edges with the largest ``|effect|`` (or effect)."""
    graph, ranking = _graph(result), _ranking(result, absolute)
    if not 0 <= n <= len(graph.edges):
        raise ValueError(f"n must be in 0..{len(graph.edges)} (the graph's edges), got {n}")
    order = ranking.argsort(descending=True, stable=True)[:n]
    return Circuit.from_edges(graph, [graph.edges[i] for i in order.tolist()])


def edges_above(result: SweepResult, threshold: float, *, absolute: bool = True) -> Circuit:
    """The circuit of every edge whose ``|effect|`` (or effect) exceeds ``threshold``."""
    graph, ranking = _graph(result), _ranking(result, absolute)
    return Circuit.from_mask(graph, ranking > threshold)


def greedy_circuit(result: SweepResult, n: int, *, absolute: bool = True) -> Circuit:
    """``n`` edges grown from the logits: each step adds the best edge into a reached node.

    A node is *reached* once one of its outgoing edges is in the circuit (the logits
    from the start), so every edge of the result lies on a path to the logits.
    """
    graph, ranking = _graph(result), _ranking(result, absolute).tolist()
    if not 0 <= n <= len(graph.edges):
        raise ValueError(f"n must be in 0..{len(graph.edges)} (the graph's edges), got {n}")
    into: dict = {}
    for i, edge in enumerate(graph.edges):
        into.setdefault(edge.receiver, []).append(i)
    frontier: list[tuple[float, int]] = []
    reached = set()

    def reach(node) -> None:
        if node not in reached:
            reached.add(node)
            for i in into.get(node, []):
                heapq.heappush(frontier, (-ranking[i], i))

    reach(graph.nodes[-1])
    chosen = []
    while len(chosen) < n and frontier:
        _, i = heapq.heappop(frontier)
        chosen.append(graph.edges[i])
        reach(graph.edges[i].sender)
    return Circuit.from_edges(graph, chosen)


def select_circuit(result: SweepResult, n: int, selection: str = "top", *,
                   absolute: bool = True) -> Circuit:
    """``n`` edges by ``selection``: ``"top"`` (:func:`top_edges`) or ``"greedy"``."""
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, not {selection!r}")
    pick = top_edges if selection == "top" else greedy_circuit
    return pick(result, n, absolute=absolute)


def cpr_cmd(budgets: Sequence[float], faithfulness: Sequence[float]) -> tuple[float, float]:
    """MIB's CPR (area under ``f``) and CMD (area between ``f`` and 1), trapezoids over budgets."""
    x = torch.as_tensor(budgets, dtype=torch.float64)
    f = torch.as_tensor(faithfulness, dtype=torch.float64)
    if x.ndim != 1 or x.shape != f.shape or len(x) < 2:
        raise ValueError(f"give at least two budgets and one faithfulness each, got "
                         f"{tuple(x.shape)} and {tuple(f.shape)}")
    if not (x[1:] > x[:-1]).all():
        raise ValueError(f"budgets must increase, got {x.tolist()}")
    return torch.trapezoid(f, x).item(), torch.trapezoid((1 - f).abs(), x).item()


@dataclass
class FaithfulnessCurve:
    """A method's circuits at each edge budget and how faithful they are.

    Attributes:
        method: the scores' method, e.g. ``"EAP (denoise)"``.
        budgets: fractions of the graph's edges.
        n_edges: the edges kept at each budget (``int(budget * total)``, as MIB).
        faithfulness: ``f`` at each budget.
    """

    method: str
    budgets: list[float]
    n_edges: list[int]
    faithfulness: list[float]

    @property
    def cpr(self) -> float:
        """Area under the curve (higher is better)."""
        return cpr_cmd(self.budgets, self.faithfulness)[0]

    @property
    def cmd(self) -> float:
        """Area between the curve and 1 (lower is better)."""
        return cpr_cmd(self.budgets, self.faithfulness)[1]


def faithfulness_curves(model, clean, corrupted, metric: Metric, results: Sequence[SweepResult],
                        *, budgets: Sequence[float] = MIB_BUDGETS, selection: str = "top",
                        absolute: bool = True, patches_per_pass: int | None = None,
                        memory_budget: int = DEFAULT_MEMORY_BUDGET) -> list[FaithfulnessCurve]:
    """Each method's circuit at each budget, all scored in shared passes.

    Args:
        results: edge sweeps (from :func:`~.edge_patching.edge_patching` or
            :func:`~.attribution.edge_attribution`) on the same prompts.
        budgets: increasing fractions of the graph's edges in ``(0, 1]``.
        selection: ``"top"`` or ``"greedy"`` (:func:`select_circuit`).

    Returns:
        One :class:`FaithfulnessCurve` per result.
    """
    budgets = [float(b) for b in budgets]
    if not budgets or any(not 0 < b <= 1 for b in budgets):
        raise ValueError(f"budgets are fractions of the edges in (0, 1], got {budgets}")
    em, _ = build_edge_model(model, clean, corrupted)
    total = len(em.graph.edges)
    sizes = [int(b * total) for b in budgets]
    circuits = [select_circuit(r, n, selection, absolute=absolute) for r in results for n in sizes]
    values = circuit_metrics(model, clean, corrupted, metric, circuits, engine=em,
                             patches_per_pass=patches_per_pass, memory_budget=memory_budget)
    clean_m = metric_value(metric, em.clean.logits).item()
    corrupted_m = metric_value(metric, em.corrupted_logits).item()
    f = ((values - corrupted_m) / (clean_m - corrupted_m)).view(len(results), len(sizes))
    return [FaithfulnessCurve(r.method, budgets, sizes, row.tolist()) for r, row in zip(results, f)]


def spearman(a: Float[Tensor, "n"], b: Float[Tensor, "n"]) -> float:
    """Spearman's rank correlation (ties get their average rank)."""
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError(f"give two 1-D tensors of the same length >= 2, got {tuple(a.shape)} "
                         f"and {tuple(b.shape)}")
    ra, rb = _ranks(a), _ranks(b)
    return torch.corrcoef(torch.stack([ra, rb]))[0, 1].item()


def _ranks(x: Tensor) -> Tensor:
    """Average ranks (0-based) of ``x``'s entries."""
    _, inverse, counts = torch.unique(x, return_inverse=True, return_counts=True)
    first = torch.cumsum(counts, 0) - counts
    return (first + (counts - 1) / 2).to(torch.float64)[inverse]
