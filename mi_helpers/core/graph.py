"""The computational graph a circuit lives in, and circuits as subgraphs of it.

A transformer's residual stream lets every component read what every earlier one
wrote, so its computation is a graph (Elhage et al., 2021; Conmy et al., 2023):

* **nodes** are the token embeddings (``embed``), each attention head (``L1H2``), each
  MLP (``MLP1``) and the output (``logits``);
* an **edge** runs from a *sender* (embeddings, a head's output, an MLP's output) to a
  *receiver input* of a later node: a head's query, key or value input (channel ``q``,
  ``k``, ``v``), an MLP's input or the logits (channel ``in``). A head in layer ``l``
  reads senders of layers ``< l``; the MLP of layer ``l`` also reads layer ``l``'s heads
  (it comes after them); the logits read everything.

:class:`CircuitGraph` lists the nodes and edges of a model's graph in a fixed order
(so an edge can index a score tensor); a :class:`Circuit` is a set of its edges.
Circuit evaluation (:mod:`mi_helpers.circuits.evaluation`), edge attribution and
ACDC, and Tracr ground truth all speak in these terms.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor

from .checks import check_positive, check_type
from .heads import Head

__all__ = ["Node", "Edge", "CircuitGraph", "Circuit"]

KINDS = ("embed", "head", "mlp", "logits")


@dataclass(frozen=True, order=True)
class Node:
    """A node: ``kind`` is ``"embed"``, ``"head"``, ``"mlp"`` or ``"logits"``.

    ``layer`` is -1 for the embeddings and ``n_layers`` for the logits, so that nodes
    sort in the order information flows; ``head`` is -1 except for heads.
    """

    layer: int
    kind: str
    head: int = -1

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown node kind {self.kind!r}; choose one of {KINDS}")

    @property
    def name(self) -> str:
        """``"embed"``, ``"L1H2"``, ``"MLP1"`` or ``"logits"``."""
        if self.kind == "head":
            return Head(self.layer, self.head).label
        return f"MLP{self.layer}" if self.kind == "mlp" else self.kind

    @property
    def as_head(self) -> Head:
        """This node as a :class:`~mi_helpers.core.heads.Head` (heads only)."""
        if self.kind != "head":
            raise ValueError(f"{self.name} is not a head")
        return Head(self.layer, self.head)

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, order=True)
class Edge:
    """``sender`` writes into ``receiver``'s input ``channel`` (``q``, ``k``, ``v`` or ``in``)."""

    sender: Node
    receiver: Node
    channel: str = "in"

    @property
    def name(self) -> str:
        """e.g. ``"L0H3 -> L1H2.k"`` or ``"MLP1 -> logits"``."""
        to = self.receiver.name + ("" if self.channel == "in" else f".{self.channel}")
        return f"{self.sender.name} -> {to}"

    def __str__(self) -> str:
        return self.name


class CircuitGraph:
    """Every node and edge of a model of ``n_layers`` layers with ``n_heads`` heads each.

    Args:
        n_layers, n_heads: the model's shape.
        mlps: whether blocks have MLPs (attention-only models have none).
        channels: the head inputs that count as separate receivers.
    """

    def __init__(self, n_layers: int, n_heads: int, *, mlps: bool = True,
                 channels: tuple[str, ...] = ("q", "k", "v")):
        check_positive("n_layers", n_layers, integer=True)  # a graph needs n_layers >= 1
        check_positive("n_heads", n_heads, integer=True)
        if not set(channels) <= {"q", "k", "v"} or not channels:
            raise ValueError(f"channels must be a non-empty subset of q, k, v; got {channels}")
        self.n_layers, self.n_heads, self.mlps, self.channels = n_layers, n_heads, mlps, channels

    @classmethod
    def from_model(cls, model, **kwargs) -> CircuitGraph:
        """The graph of a TransformerLens model (MLPs unless ``cfg.attn_only``)."""
        kwargs.setdefault("mlps", not getattr(model.cfg, "attn_only", False))
        return cls(model.cfg.n_layers, model.cfg.n_heads, **kwargs)

    @cached_property
    def nodes(self) -> list[Node]:
        """Embeddings, then each layer's heads and MLP, then the logits."""
        nodes = [Node(-1, "embed")]
        for layer in range(self.n_layers):
            nodes += [Node(layer, "head", h) for h in range(self.n_heads)]
            if self.mlps:
                nodes.append(Node(layer, "mlp"))
        return nodes + [Node(self.n_layers, "logits")]

    @cached_property
    def edges(self) -> list[Edge]:
        """Every edge, ordered by receiver, then channel, then sender."""
        edges = []
        for receiver in self.nodes[1:]:
            channels = self.channels if receiver.kind == "head" else ("in",)
            for channel in channels:
                edges += [Edge(sender, receiver, channel) for sender in self.senders_of(receiver)]
        return edges

    @cached_property
    def edge_index(self) -> dict[Edge, int]:
        """Each edge's position in :attr:`edges` (to index a ``[edge]`` score tensor)."""
        return {edge: i for i, edge in enumerate(self.edges)}

    @cached_property
    def senders(self) -> list[Node]:
        """The nodes that write into the residual stream (every node but the logits)."""
        return self.nodes[:-1]

    @cached_property
    def _input_slices(self) -> dict[tuple[Node, str], slice]:
        slices, start = {}, 0
        for receiver in self.nodes[1:]:
            n = len(self.senders_of(receiver))
            for channel in (self.channels if receiver.kind == "head" else ("in",)):
                slices[receiver, channel] = slice(start, start + n)
                start += n
        return slices

    def edges_into(self, receiver: Node, channel: str = "in") -> slice:
        """Where the edges into ``receiver``'s ``channel`` sit in :attr:`edges` (a slice).

        Edges are ordered by receiver, then channel, then sender, so the edges into one
        input are contiguous and their senders are :meth:`senders_of` the receiver.
        """
        try:
            return self._input_slices[receiver, channel]
        except KeyError:
            raise KeyError(f"{receiver.name} has no input {channel!r} in this graph; heads "
                           f"read {self.channels}, MLPs and the logits read 'in'") from None

    def senders_of(self, receiver: Node) -> list[Node]:
        """The nodes whose output ``receiver`` reads, in flow order."""
        def before(node: Node) -> bool:
            if node.kind == "logits":
                return False
            if receiver.kind == "mlp" and node.kind == "head":
                return node.layer <= receiver.layer  # the MLP comes after its layer's heads
            return node.layer < receiver.layer
        return [node for node in self.nodes if before(node)]

    def node(self, name: str) -> Node:
        """The node called ``name`` (``"embed"``, ``"L1H2"``, ``"MLP1"``, ``"logits"``)."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(f"no node named {name!r}; nodes look like 'embed', 'L0H1', 'MLP0', 'logits'")

    def __eq__(self, other) -> bool:
        """Graphs of the same shape are equal (their nodes and edges are the same)."""
        if not isinstance(other, CircuitGraph):
            return NotImplemented
        return self._shape == other._shape

    def __hash__(self) -> int:
        return hash(self._shape)

    @property
    def _shape(self) -> tuple:
        return self.n_layers, self.n_heads, self.mlps, self.channels

    def __repr__(self) -> str:
        return (f"CircuitGraph({self.n_layers} layers x {self.n_heads} heads, "
                f"{'with' if self.mlps else 'no'} MLPs: {len(self.nodes)} nodes, "
                f"{len(self.edges)} edges)")


@dataclass(frozen=True)
class Circuit:
    """A subgraph: some edges of a :class:`CircuitGraph` (and the nodes they touch).

    Build one from heads (:meth:`from_heads`: the IOI paper's convention, every edge
    between kept nodes, with embeddings, MLPs and logits always kept) or from edges.
    """

    graph: CircuitGraph
    edges: frozenset[Edge]

    def __post_init__(self):
        check_type("graph", self.graph, CircuitGraph, "e.g. CircuitGraph.from_model(model)")
        wrong = [e for e in self.edges if not isinstance(e, Edge)]
        if wrong:
            raise TypeError(f"a Circuit is a set of Edge values, got {wrong[:3]}; to build one "
                            f"from heads use Circuit.from_heads(graph, heads)")
        unknown = [e for e in self.edges if e not in self.graph.edge_index]
        if unknown:
            raise ValueError(f"edges not in the graph: {[e.name for e in unknown[:5]]}")

    @classmethod
    def from_edges(cls, graph: CircuitGraph, edges: Iterable[Edge]) -> Circuit:
        return cls(graph, frozenset(edges))

    @classmethod
    def from_heads(cls, graph: CircuitGraph, heads: Iterable[tuple[int, int]]) -> Circuit:
        """Every edge whose ends are kept: the given heads, and all non-head nodes."""
        kept = {Node(layer, "head", head) for layer, head in heads}
        unknown = kept - set(graph.nodes)
        if unknown:
            raise ValueError(f"heads not in the graph: {sorted(n.name for n in unknown)}")
        keep = kept | {n for n in graph.nodes if n.kind != "head"}
        return cls(graph, frozenset(e for e in graph.edges
                                    if e.sender in keep and e.receiver in keep))

    @classmethod
    def from_mask(cls, graph: CircuitGraph, mask: Tensor) -> Circuit:
        """The edges where ``mask`` (a ``[edge]`` boolean tensor in graph order) is True."""
        mask = torch.as_tensor(mask)
        if mask.shape != (len(graph.edges),) or mask.dtype != torch.bool:
            raise ValueError(f"a mask is a boolean tensor with one entry per edge "
                             f"({len(graph.edges)}), got dtype {mask.dtype}, shape "
                             f"{tuple(mask.shape)}")
        return cls(graph, frozenset(graph.edges[i] for i in mask.nonzero().flatten().tolist()))

    @property
    def mask(self) -> Tensor:
        """A ``[edge]`` boolean tensor, True for the circuit's edges (graph order)."""
        mask = torch.zeros(len(self.graph.edges), dtype=torch.bool)
        mask[[self.graph.edge_index[e] for e in self.edges]] = True
        return mask

    @property
    def nodes(self) -> list[Node]:
        """The nodes the circuit's edges touch, in flow order."""
        return sorted({n for e in self.edges for n in (e.sender, e.receiver)})

    @property
    def heads(self) -> list[Head]:
        """The heads among :attr:`nodes`."""
        return [n.as_head for n in self.nodes if n.kind == "head"]

    def __len__(self) -> int:
        return len(self.edges)

    def __contains__(self, item) -> bool:
        return item in self.edges or item in set(self.nodes)

    def __repr__(self) -> str:
        return (f"Circuit({len(self.edges)} of {len(self.graph.edges)} edges, heads "
                f"{[h.label for h in self.heads]})")
