"""The true circuit of a Tracr model, read from which residual dimensions each node uses.

Tracr gives every value of every RASP variable its own residual-stream dimension (plus a
constant ``one`` and the ``tokens:BOS`` flag), and compiles each operation into heads or
MLPs whose weights touch only the dimensions of the variables they read and write. So
the circuit graph's edges are known exactly:

* a node **writes** the dimensions where its output weights are non-zero (``W_O`` of a
  head, ``W_out`` of an MLP, the token and position embeddings);
* a receiver **reads**, per input channel, the dimensions where its input weights are
  non-zero (``W_Q``, ``W_K``, ``W_V`` per head, ``W_in`` of an MLP, ``W_U`` for the logits);
* an edge ``sender -> receiver.channel`` is **connected** when the sender writes a
  dimension that channel reads (and comes before it). Every other edge carries nothing
  the receiver can see: removing it changes no output, on any input.

Connected is not yet causal: a few connected edges carry only something the receiver
ignores. ``Select(tokens, tokens, TRUE)`` (``length``) gives every key the same score
whatever its query and key read, so zeroing that head's query or key changes nothing.
:func:`ablation_changes` finds such **inert** edges by zero-ablating each edge alone on
every input; the **true** edges are the connected edges that are not inert: each of
them changes some output when removed, and no other edge changes any (both tested).

The compiler's own view (which heads and MLPs each operation became) is stored next to
these edges; :mod:`mi_helpers.tracr.compile` checks that the two agree.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..circuits.edge_patching import edge_patching
from ..core.graph import CircuitGraph, Edge, Node

__all__ = ["node_dims", "true_edges", "variable_site", "ablation_changes"]


def _nonzero_rows(matrix: Tensor) -> set[int]:
    """Indices of the rows with a non-zero entry (``matrix`` is ``[d_model, ...]``)."""
    return set((matrix.reshape(matrix.shape[0], -1) != 0).any(-1).nonzero().flatten().tolist())


def node_dims(model) -> tuple[dict[Node, set[int]], dict[tuple[Node, str], set[int]]]:
    """The residual dimensions each node writes, and each receiver channel reads.

    Args:
        model: a bridge in compatibility mode (``W_E``, ``W_Q``, ... as in TransformerLens).

    Returns:
        ``writes``: node -> dimensions; ``reads``: ``(node, channel)`` -> dimensions, with
        channels ``q``, ``k``, ``v`` for heads and ``in`` for MLPs and the logits.
    """
    cfg = model.cfg
    writes = {Node(-1, "embed"): _nonzero_rows(model.W_E.T) | _nonzero_rows(model.W_pos.T)}
    reads = {}
    for layer in range(cfg.n_layers):
        for head in range(cfg.n_heads):
            node = Node(layer, "head", head)
            writes[node] = _nonzero_rows(model.W_O[layer, head].T)
            for channel, weight in (("q", model.W_Q), ("k", model.W_K), ("v", model.W_V)):
                reads[node, channel] = _nonzero_rows(weight[layer, head])
        mlp = Node(layer, "mlp")
        writes[mlp] = _nonzero_rows(model.W_out[layer].T)
        reads[mlp, "in"] = _nonzero_rows(model.W_in[layer])
    reads[Node(cfg.n_layers, "logits"), "in"] = _nonzero_rows(model.W_U)
    return writes, reads


def true_edges(graph: CircuitGraph, writes: dict[Node, set[int]],
               reads: dict[tuple[Node, str], set[int]]) -> list[Edge]:
    """The edges whose sender writes a dimension the receiver's channel reads, in graph order."""
    return [edge for edge in graph.edges
            if writes.get(edge.sender, set()) & reads.get((edge.receiver, edge.channel), set())]


def variable_site(writers: list[Node]) -> tuple[str, int]:
    """Where a variable written by ``writers`` is first complete: ``(site, layer)``.

    After the embeddings: ``resid_pre`` of layer 0; after a head of layer ``l``:
    ``resid_mid`` of ``l``; after the MLP of layer ``l``: ``resid_post`` of ``l``.
    """
    last = max(writers)
    if last.kind == "embed":
        return "resid_pre", 0
    return ("resid_mid" if last.kind == "head" else "resid_post"), last.layer


def ablation_changes(model, edges: Sequence[Edge], patches_per_pass: int | None = None, *,
                     lengths: Sequence[int] | None = None) -> dict[Edge, int]:
    """For each edge: on how many inputs (every input of every length) zero-ablating it
    alone changes the decoded output.

    This is exact edge patching with zero ablation
    (:func:`mi_helpers.circuits.edge_patching` with ``corrupted=None``) whose metric is
    the number of inputs whose decoded output differs from the model's own.

    Args:
        model: a loaded :class:`~mi_helpers.tracr.files.TracrModel`.
        edges: edges of its graph.
        patches_per_pass: edges per forward pass (default: as many as fit).
        lengths: the input lengths to try (default: 1 to ``max_seq_len``).
    """
    changes = dict.fromkeys(edges, 0)
    if not changes:
        return changes
    for length in range(1, model.max_seq_len + 1) if lengths is None else lengths:
        inputs = model.inputs(length)
        expected = model.run(inputs)

        def changed(logits: Tensor, expected=expected) -> Tensor:
            return torch.tensor(float(sum(not _same(a, b, model.numerical)
                                          for a, b in zip(model.decode(logits), expected))))

        result = edge_patching(model.model, model.encode(inputs), None, changed,
                               edges=list(changes), patches_per_pass=patches_per_pass)
        for edge, value in zip(result.coords["edge"], result.values.tolist()):
            if edge in changes:
                changes[edge] += int(value)
    return changes


def _same(a: list, b: list, numerical: bool, tolerance: float = 1e-3) -> bool:
    if numerical:
        return all(abs(x - y) < tolerance for x, y in zip(a, b))
    return a == b
