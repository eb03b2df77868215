"""Exact edge interventions on a model without LayerNorm (such as a Tracr model).

An edge ``sender -> receiver.channel`` of the circuit graph
(:class:`~mi_helpers.core.graph.CircuitGraph`) is the sender's output as one input
channel of the receiver reads it. Without LayerNorm every input is linear in the
residual stream, e.g. a head's query is ``resid @ W_Q + b_Q``, so *removing* an edge
is exact: add ``(replacement - output) @ W_Q`` to that head's query, where ``output``
is what the sender wrote in this very run and ``replacement`` is

* zeros (**zero ablation**), or
* the sender's output on another input (**resample ablation**: the corrupted run).

Every other reader still sees the sender's real output, so one edge changes and nothing
else does. Removing every edge with corrupted outputs reproduces the corrupted run
exactly (tested). Many copies of the batch share one forward pass, each with its own
set of removed edges.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from functools import partial

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..circuits.patching import Metric, metric_value
from ..core.activations import run_cached
from ..core.checks import check_same_shape, check_tokens
from ..core.graph import CircuitGraph, Edge, Node
from ..core.hooks import hook_name
from ..core.results import SweepResult

__all__ = ["sender_outputs", "run_without_edges", "edge_patching", "edge_differences",
           "receiver_hook", "input_weight"]

DEFAULT_EDGES_PER_PASS = 64


def _check_linear(model) -> None:
    if getattr(model.cfg, "normalization_type", None) is not None:
        raise ValueError(f"exact edge interventions need a model without LayerNorm (e.g. a Tracr "
                         f"model); this one has normalization_type="
                         f"{model.cfg.normalization_type!r}")


def _outputs(model, acts: dict[str, Tensor], node: Node) -> Float[Tensor, "batch pos d_model"]:
    """What ``node`` wrote into the residual stream, from the hooks' activations."""
    if node.kind == "embed":
        return acts["hook_embed"] + acts["hook_pos_embed"]
    if node.kind == "mlp":
        return acts[hook_name("mlp_out", node.layer)]
    z = acts[hook_name("z", node.layer)][:, :, node.head]
    return z @ model.W_O[node.layer, node.head]


def _sender_hooks(model) -> list[str]:
    layers = range(model.cfg.n_layers)
    return (["hook_embed", "hook_pos_embed"] + [hook_name("z", layer) for layer in layers]
            + [hook_name("mlp_out", layer) for layer in layers])


def sender_outputs(model, graph: CircuitGraph, tokens: Int[Tensor, "batch pos"]
                   ) -> dict[Node, Float[Tensor, "batch pos d_model"]]:
    """Every sender's output on ``tokens`` (the replacement for resample ablation)."""
    _, acts = run_cached(model, tokens, _sender_hooks(model))
    return {node: _outputs(model, acts, node) for node in graph.nodes if node.kind != "logits"}


def receiver_hook(receiver: Node, channel: str) -> str:
    """The hook whose activation is linear in what ``receiver``'s ``channel`` reads."""
    if receiver.kind == "logits":
        return "hook_unembed"
    if receiver.kind == "mlp":
        return hook_name("mlp_pre", receiver.layer)
    return hook_name(channel, receiver.layer)


def input_weight(model, receiver: Node, channel: str) -> Float[Tensor, "d_model d_out"]:
    """The weight from the residual stream to :func:`receiver_hook`'s activation."""
    if receiver.kind == "logits":
        return model.W_U
    if receiver.kind == "mlp":
        return model.W_in[receiver.layer]
    return {"q": model.W_Q, "k": model.W_K, "v": model.W_V}[channel][receiver.layer, receiver.head]


def _capture(act: Tensor, hook, *, store: dict) -> None:
    store[hook.name] = act


def _remove(act: Tensor, hook, *, model, store: dict, replacement: dict, receiver: Node,
            channel: str, masks: dict[Node, Tensor]) -> Tensor:
    """Add ``(replacement - output) @ W`` for each removed edge, in the copies that remove it."""
    delta = 0
    for sender, mask in masks.items():
        output = _outputs(model, store, sender)
        copies = output.unflatten(0, (len(mask), -1))  # copy batch pos d_model
        new = replacement.get(sender)
        change = (-copies if new is None else new.to(output) - copies)
        delta = delta + (mask.view(-1, 1, 1, 1).to(output) * change).flatten(0, 1)
    delta = delta @ input_weight(model, receiver, channel)
    act = act.clone()
    if receiver.kind == "head":
        act[:, :, receiver.head] += delta
    else:
        act += delta
    return act


def run_without_edges(model, graph: CircuitGraph, tokens: Int[Tensor, "batch pos"],
                      removed: Sequence[Collection[Edge]],
                      replacement: dict[Node, Tensor] | None = None
                      ) -> Float[Tensor, "copies_batch pos d_vocab"]:
    """Run ``len(removed)`` copies of ``tokens``; copy ``i`` without the edges ``removed[i]``.

    Args:
        model: a bridge or HookedTransformer without LayerNorm.
        graph: the model's circuit graph.
        tokens: ``[batch, pos]`` token ids.
        removed: one set of edges per copy (an empty set is the unchanged model).
        replacement: sender -> ``[batch, pos, d_model]`` output to use instead (resample
            ablation, see :func:`sender_outputs`); ``None`` or a missing sender: zeros.

    Returns:
        The logits of all copies, copy by copy (``[copies * batch, pos, d_vocab]``).
    """
    _check_linear(model)
    tokens = check_tokens(model, tokens)
    unknown = [e for edges in removed for e in edges if e not in graph.edge_index]
    if unknown or not removed:
        raise ValueError(f"give one set of graph edges per copy; not in the graph: "
                         f"{[e.name for e in unknown[:5]]}")
    replacement = replacement or {}
    store: dict[str, Tensor] = {}
    hooks = [(name, partial(_capture, store=store)) for name in _sender_hooks(model)]
    by_receiver: dict[tuple[Node, str], dict[Node, Tensor]] = {}
    for copy, edges in enumerate(removed):
        for e in edges:
            masks = by_receiver.setdefault((e.receiver, e.channel), {})
            masks.setdefault(e.sender, torch.zeros(len(removed), dtype=torch.bool))[copy] = True
    for (receiver, channel), masks in by_receiver.items():
        hooks.append((receiver_hook(receiver, channel), partial(
            _remove, model=model, store=store, replacement=replacement, receiver=receiver,
            channel=channel, masks=masks)))
    with torch.no_grad():
        return model.run_with_hooks(tokens.repeat(len(removed), 1), fwd_hooks=hooks)


def edge_patching(model, graph: CircuitGraph, clean: Int[Tensor, "batch pos"],
                  corrupted: Int[Tensor, "batch pos"] | None, metric: Metric,
                  edges: Sequence[Edge] | None = None, *,
                  edges_per_pass: int = DEFAULT_EDGES_PER_PASS) -> SweepResult:
    """Remove each edge alone from the clean run (noising); the metric after each.

    Args:
        clean: ``[batch, pos]`` clean tokens.
        corrupted: tokens of the same shape whose sender outputs replace the removed
            edge's (resample ablation), or ``None`` for zero ablation.
        metric: logits -> scalar.
        edges: the edges to remove one at a time (default: every edge of ``graph``).

    Returns:
        A :class:`~mi_helpers.core.results.SweepResult` with axis ``"edge"``;
        ``corrupted`` is the metric with *every* edge removed (the corrupted run for
        resample ablation). ``1 - score`` is the share of the effect an edge carries.
    """
    edges = list(graph.edges if edges is None else edges)
    clean = check_tokens(model, clean)
    replacement = None
    if corrupted is not None:
        corrupted = check_tokens(model, corrupted)
        check_same_shape(clean, corrupted)
        replacement = sender_outputs(model, graph, corrupted)
    kind = "zero ablation" if corrupted is None else "resample ablation"
    anchors = run_without_edges(model, graph, clean, [(), graph.edges], replacement)
    clean_value, corrupted_value = (metric_value(metric, part).item()
                                    for part in anchors.split(len(clean)))
    values = []
    for start in range(0, len(edges), edges_per_pass):
        chunk = [[e] for e in edges[start:start + edges_per_pass]]
        logits = run_without_edges(model, graph, clean, chunk, replacement)
        values += [metric_value(metric, part) for part in logits.split(len(clean))]
    return SweepResult(torch.stack(values), ("edge",), {"edge": edges}, clean_value,
                       corrupted_value, method=f"edge patching ({kind}, noise)")


def edge_differences(model, graph: CircuitGraph, clean: Int[Tensor, "batch pos"],
                     corrupted: Int[Tensor, "batch pos"]) -> dict[Edge, float]:
    """How much what each edge carries differs between the clean and corrupted runs.

    The largest ``|(output_clean - output_corrupted) @ W|`` over prompts, positions and
    the receiver's input dimensions, where ``W`` is the receiver channel's input weight.
    Where it is 0, no method that compares the two runs (patching, path patching,
    attribution) can see the edge: clean and corrupted send it the same thing.
    """
    _check_linear(model)
    check_same_shape(clean, corrupted)
    ours, theirs = sender_outputs(model, graph, clean), sender_outputs(model, graph, corrupted)
    return {e: ((ours[e.sender] - theirs[e.sender]) @ input_weight(model, e.receiver, e.channel)
                ).abs().max().item() for e in graph.edges}
