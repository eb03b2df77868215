"""Score what a circuit-discovery method found against a circuit known to be true.

Any method plugs in through the package's one result type, a
:class:`~mi_helpers.core.results.SweepResult` over the circuit graph: axis ``"edge"``
with :class:`~mi_helpers.core.graph.Edge` coordinates (edge patching, EAP, EAP-IG,
ACDC's per-edge metric changes), axis ``"node"`` with
:class:`~mi_helpers.core.graph.Node` coordinates, or axes ``("layer", "head")``. A
method's **importance** for an edge or node is how far its intervention moves the
metric, as a share of the clean-to-corrupted gap: ``|1 - score|`` for a noising sweep
(measured from the clean run), ``|score|`` for a denoising one. A method that returns a
circuit instead of scores (ACDC) counts its edges as importance 1, the rest 0.

Against the truth:

* **precision**: of what the method finds (importance above ``threshold``), the share
  that is in the circuit; **recall**: of the circuit, the share it finds;
* **AUROC**: the chance that a random true edge (node) outranks a random false one,
  over all thresholds (ties count half), as ACDC's paper and InterpBench report.
  Importances are rounded to ``1e-6`` of the gap first, so that an edge a method
  scores as zero up to float rounding ties with the others instead of being ranked
  by noise (which would differ from one CPU to the next).

Nodes are the heads and MLPs (the embeddings and logits are in every circuit); an
edge method's importance for a node is the largest of its edges'. Edges a method
does not score (e.g. path patching has only head senders) count as not found, and
AUROC is taken over the edges it scores.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import torch

from ..core.checks import check_circuit, check_positive, check_type
from ..core.graph import Circuit, CircuitGraph, Edge, Node
from ..core.results import SweepResult

__all__ = ["Recovery", "importance", "node_importance", "auroc", "score_recovery",
           "recovery_table", "through_mlps"]

DEFAULT_THRESHOLD = 0.01  # 1% of the clean-to-corrupted gap
RESOLUTION = 6  # importances are rounded to 1e-6 of the gap: float noise ranks no edge


def importance(result: SweepResult | Circuit, mode: str | None = None) -> dict:
    """Each swept edge (or node) -> its share of the clean-to-corrupted gap.

    Args:
        result: a sweep with axis ``"edge"`` or ``"node"`` or axes ``("layer", "head")``;
            or a :class:`~mi_helpers.core.graph.Circuit` (its edges 1).
        mode: ``"noise"`` or ``"denoise"``; by default ``"noise"`` when the method's
            name says so, else ``"denoise"``.

    Raises:
        TypeError: ``result`` is neither a SweepResult nor a Circuit. ValueError: an
            unknown ``mode``, or axes other than those above.
    """
    check_type("result", result, (SweepResult, Circuit), "pass a method's sweep (e.g. "
               "edge_patching(...)) or the Circuit it returned (e.g. acdc(...))")
    if mode is not None and mode not in ("noise", "denoise"):
        raise ValueError(f"mode must be 'noise' or 'denoise', not {mode!r}")
    if isinstance(result, Circuit):
        return {edge: float(edge in result.edges) for edge in result.graph.edges}
    if result.axes == ("layer", "head"):
        keys = [Node(layer, "head", head) for layer in result.coords["layer"]
                for head in result.coords["head"]]
    elif result.axes in (("edge",), ("node",)):
        keys = list(result.coords[result.axes[0]])
    else:
        raise ValueError(f"score a sweep over axis 'edge' or 'node' or ('layer', 'head'), "
                         f"not {result.axes}")
    if mode is None:
        mode = "noise" if "noise" in result.method.replace("denoise", "") else "denoise"
    share = (1 - result.score) if mode == "noise" else result.score
    return {key: round(abs(value), RESOLUTION) for key, value in zip(keys, share.flatten().tolist())
            if not math.isnan(value)}


def node_importance(scores: Mapping) -> dict[Node, float]:
    """Node importances from edge or node importances (a node: its largest edge's)."""
    nodes: dict[Node, float] = {}
    for key, value in scores.items():
        for node in ((key.sender, key.receiver) if isinstance(key, Edge) else (key,)):
            if node.kind in ("head", "mlp"):
                nodes[node] = max(nodes.get(node, 0.0), value)
    return nodes


def auroc(scores: Mapping, truth: set) -> float:
    """P(a true key outranks a false one) over the scored keys; NaN if either set is empty."""
    positive = torch.tensor([v for k, v in scores.items() if k in truth], dtype=torch.float64)
    negative = torch.tensor([v for k, v in scores.items() if k not in truth],
                            dtype=torch.float64)
    if not len(positive) or not len(negative):
        return float("nan")
    above = (positive[:, None] > negative[None, :]).double()
    ties = (positive[:, None] == negative[None, :]).double()
    return (above + 0.5 * ties).mean().item()


@dataclass
class Recovery:
    """How well one method's scores recover the true set, at one level (edges or nodes)."""

    method: str
    level: str
    precision: float
    recall: float
    auroc: float
    n_true: int
    n_scored: int
    found: list = field(repr=False)
    missed: list = field(repr=False)


def score_recovery(method: str, scores: Mapping, truth: Iterable, level: str,
                   threshold: float = DEFAULT_THRESHOLD) -> Recovery:
    """Precision and recall at ``threshold``, and AUROC, of ``scores`` against ``truth``."""
    truth = set(truth)
    found = sorted(k for k, v in scores.items() if v > threshold)
    hits = sum(k in truth for k in found)
    return Recovery(method, level,
                    precision=hits / len(found) if found else float("nan"),
                    recall=hits / len(truth) if truth else float("nan"),
                    auroc=auroc(scores, truth), n_true=len(truth), n_scored=len(scores),
                    found=found, missed=sorted(truth - set(found)))


def recovery_table(results: Mapping[str, SweepResult | Circuit], circuit: Circuit,
                   threshold: float = DEFAULT_THRESHOLD) -> list[dict]:
    """One row per method: node and edge precision, recall and AUROC against ``circuit``.

    Edge columns are NaN for a method that scores only nodes.

    Args:
        results: method name -> its sweep or the circuit it returned (see :func:`importance`).
        circuit: the true circuit (e.g. ``tracr_model.circuit``).
        threshold: importance above which an edge or node counts as found (share of the gap).

    Raises:
        TypeError: ``results`` is not a dict, ``circuit`` not a Circuit, or a result neither
            a SweepResult nor a Circuit. ValueError: no results, a negative ``threshold``,
            or a result that scores edges or nodes outside the circuit's graph.
    """
    check_type("results", results, Mapping, "a dict {method name: its SweepResult or "
               "Circuit}, e.g. {'EAP': result}")
    if not results:
        raise ValueError("no results given: pass {method name: its SweepResult or Circuit}")
    check_circuit(circuit)
    check_positive("threshold", threshold, allow_zero=True)
    true_nodes = {n for n in circuit.nodes if n.kind in ("head", "mlp")}
    rows = []
    for method, result in results.items():
        scores = importance(result)
        _check_on_graph(method, scores, circuit.graph)
        row = {"method": method}
        levels = [("node", node_importance(scores), true_nodes)]
        if any(isinstance(k, Edge) for k in scores):
            levels.append(("edge", scores, circuit.edges))
        for level, level_scores, truth in levels:
            rec = score_recovery(method, level_scores, truth, level, threshold)
            row.update({f"{level} precision": rec.precision, f"{level} recall": rec.recall,
                        f"{level} AUROC": rec.auroc, f"{level}s scored": rec.n_scored,
                        f"{level}s missed": [k.name for k in rec.missed]})
        rows.append(row)
    return rows


def _check_on_graph(method: str, scores: Mapping, graph: CircuitGraph) -> None:
    """Raise unless every edge or node ``method`` scored is one of ``graph``'s."""
    known = set(graph.edge_index) | set(graph.nodes)
    unknown = [key.name for key in scores if key not in known]
    if unknown:
        raise ValueError(f"{method!r} scores {unknown[:3]}, not in the circuit's graph "
                         f"({graph}): were its results computed on another model?")


def through_mlps(circuit: Circuit, edge: Edge) -> bool:
    """Whether ``circuit`` joins ``edge``'s sender to its receiver (same channel) through
    one or more MLPs: the route path patching counts as part of a head's path.

    Raises:
        TypeError: ``circuit`` is not a Circuit or ``edge`` not an Edge. ValueError:
            ``edge`` is not an edge of the circuit's graph.
    """
    check_circuit(circuit)
    check_type("edge", edge, Edge, "take one from circuit.graph.edges, or parse a name with "
               "mi_helpers.tracr.files.parse_edge(graph, 'L0H0 -> L1H0.q')")
    if edge not in circuit.graph.edge_index:
        raise ValueError(f"edge {edge.name} is not in the circuit's graph ({circuit.graph})")
    reached, frontier = set(), [edge.sender]
    while frontier:
        node = frontier.pop()
        for e in circuit.edges:
            if e.sender == node and e.receiver.kind == "mlp" and e.receiver not in reached:
                reached.add(e.receiver)
                frontier.append(e.receiver)
    return any(e.sender in reached and e.receiver == edge.receiver and e.channel == edge.channel
               for e in circuit.edges)
