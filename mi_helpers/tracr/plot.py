"""Draw a circuit graph's nodes and some of its edges, styled by what a method found.

Nodes are stacked in the order information flows (embeddings at the bottom, logits at
the top; a layer's heads side by side, its MLP above them); an edge is an arc from
sender to receiver, labelled with the receiver's channel (``q``, ``k``, ``v``).
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
from matplotlib.colors import is_color_like

from ..core.checks import check_type
from ..core.graph import CircuitGraph, Edge, Node

__all__ = ["draw_circuit"]


_OFFSET = {"q": -0.22, "k": 0.0, "v": 0.22, "in": 0.0}  # where an arrow meets a head
_SIDE = {"q": 1, "k": -1, "v": -1}


def _positions(graph: CircuitGraph) -> dict[Node, tuple[float, float]]:
    positions, row = {}, 0
    for node in graph.nodes:
        if node.kind == "head":
            row += node.head == 0
            positions[node] = (node.head - (graph.n_heads - 1) / 2, row)
        else:
            row += 1
            positions[node] = (0.0, row)
    return positions


def _check_drawing(graph: CircuitGraph, edges: Mapping, legend: Mapping | None) -> None:
    check_type("graph", graph, CircuitGraph, "e.g. tracr_model.graph")
    check_type("edges", edges, Mapping, "map each edge to a colour, e.g. {edge: 'black' for "
               "edge in circuit.edges}")
    unknown = [e for e in edges if not isinstance(e, Edge) or e not in graph.edge_index]
    if unknown:
        raise ValueError(f"edges not in the graph ({graph}): {[str(e) for e in unknown[:3]]}; "
                         f"draw edges of graph.edges (Edge values)")
    for edge, colour in edges.items():
        if not is_color_like(colour):
            raise ValueError(f"edge {edge.name} has colour {colour!r}, which matplotlib does "
                             f"not know; use e.g. 'tab:green' or '0.7'")
    if legend is not None:
        check_type("legend", legend, Mapping, "map each colour to a label")


def draw_circuit(graph: CircuitGraph, edges: Mapping[Edge, str], title: str = "", *,
                 legend: Mapping[str, str] | None = None, ax=None):
    """Draw ``edges`` (edge -> matplotlib colour) between all of ``graph``'s nodes.

    Args:
        graph: the model's circuit graph.
        edges: the edges to draw and their colours.
        title: the axes' title.
        legend: colour -> label, shown as a legend.
        ax: axes to draw on (default: a new figure).

    Returns:
        The axes.

    Raises:
        TypeError: ``graph`` is not a CircuitGraph, or ``edges`` / ``legend`` not dicts.
        ValueError: an edge not in ``graph``, or a colour matplotlib does not know.
    """
    _check_drawing(graph, edges, legend)
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 0.8 * len(graph.nodes)))
    where = _positions(graph)
    for edge, colour in edges.items():
        (x0, y0), (x1, y1) = where[edge.sender], where[edge.receiver]
        x1 += _OFFSET[edge.channel]
        span = y1 - y0
        side = _SIDE[edge.channel] if edge.channel != "in" else (-1) ** int(y0)
        bend = side * min(0.6, 0.12 + 0.08 * span) if span > 1 else 0.0
        ax.annotate("", (x1, y1 - 0.17), (x0, y0 + 0.17), arrowprops={
            "arrowstyle": "-|>", "color": colour, "lw": 1.6, "shrinkA": 0, "shrinkB": 0,
            "connectionstyle": f"arc3,rad={bend:.2f}"})
        if edge.channel != "in":
            ax.text(x1, y1 - 0.32, edge.channel, fontsize=7, color=colour, ha="center",
                    va="center")
    for node, (x, y) in where.items():
        ax.text(x, y, node.name, ha="center", va="center", fontsize=9,
                bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "0.4"})
    for colour, label in (legend or {}).items():
        ax.plot([], [], color=colour, lw=2, label=label)
    if legend:
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    xs = [x for x, _ in where.values()]
    ax.set_xlim(min(xs) - 1.2, max(xs) + 1.2)
    ax.set_ylim(0.3, max(y for _, y in where.values()) + 0.7)
    ax.set_title(title)
    ax.axis("off")
    return ax
