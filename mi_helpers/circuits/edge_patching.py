"""Exact edge patching: the oracle that attribution methods approximate.

**Patching one edge** ``sender -> receiver`` replaces the sender's contribution to that
one receiver input by its value from another run, and reruns everything downstream;
every other reader of the sender still sees its own run's value
(:mod:`.edge_model`). With a clean and a corrupted batch of prompts:

* ``mode="noise"`` (the default, the usual definition of an edge's effect, as in ACDC
  and EAP-IG's evaluations): run *clean*, give the receiver the sender's *corrupted*
  output. An edge the behaviour needs makes the metric fall.
* ``mode="denoise"``: run *corrupted*, give the receiver the sender's *clean* output.
  One clean edge inside a corrupted run usually does little, because a circuit's
  edges act together.
* ``corrupted=None`` (noising only): **zero ablation**, the receiver reads zeros in
  place of the sender's output. On a model without LayerNorm (a Tracr model) this
  removes the edge exactly, with no corrupted input to choose.

That costs one forward pass per edge, from the receiver's layer on. Here many edges
share a pass (copy ``i`` of the batch patches edge ``i``), as many as fit in
``memory_budget``; the result does not depend on ``patches_per_pass`` (tested).

:func:`circuit_metrics` patches *every* edge outside each of several circuits at once:
the metric of a circuit run on its own, with the corrupted run feeding the rest.
:func:`edge_differences` says which edges a clean/corrupted comparison cannot see at
all: those along which the two runs send the same thing.

Results are :class:`~mi_helpers.core.results.SweepResult` values with axes
``("edge",)`` and coordinates ``graph.edges``: ``values`` is the metric after each
patch, ``method`` ends with the mode (:func:`~.edge_circuits.edge_effects` turns them
into effects with the same sign for every method).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from ..core.checks import as_tokens, check_circuit, check_same_shape
from ..core.graph import Circuit, CircuitGraph, Edge
from ..core.metrics import metric_positions
from ..core.results import SweepResult
from .edge_memory import DEFAULT_MEMORY_BUDGET, copies_per_pass
from .edge_model import CHANNELS, EdgeModel, RunState
from .patching import Metric, metric_value

__all__ = ["edge_patching", "circuit_metrics", "build_edge_model", "metric_per_copy",
           "edge_differences"]


def build_edge_model(model, clean, corrupted) -> tuple[EdgeModel, Tensor]:
    """Checked tokens and the :class:`EdgeModel` of a clean/corrupted pair
    (``corrupted=None``: zero ablation).

    Raises:
        ValueError: prompts of different lengths (or numbers), an unsupported model.
    """
    clean_tokens = as_tokens(model, clean)
    corrupted_tokens = None
    if corrupted is not None:
        corrupted_tokens = as_tokens(model, corrupted)
        check_same_shape(clean_tokens, corrupted_tokens)
    return EdgeModel(model, clean_tokens, corrupted_tokens), clean_tokens


def metric_per_copy(metric: Metric, logits: Tensor, batch: int) -> list[float]:
    """The metric of each copy of the batch stacked in ``logits``."""
    return [metric_value(metric, part).item() for part in logits.split(batch)]


def edge_patching(model, clean: Sequence[str] | Int[Tensor, "batch pos"],
                  corrupted: Sequence[str] | Int[Tensor, "batch pos"] | None, metric: Metric, *,
                  mode: str = "noise", edges: Sequence[Edge] | None = None,
                  patches_per_pass: int | None = None,
                  memory_budget: int = DEFAULT_MEMORY_BUDGET,
                  progress: bool = False) -> SweepResult:
    """Patch each edge of the model's circuit graph on its own; the metric after each.

    Args:
        model: a TransformerLens model in compatibility mode.
        clean, corrupted: prompts or ``[batch, pos]`` tokens of the same shape;
            ``corrupted=None``: zero ablation (``mode="noise"`` only).
        metric: logits ``[batch, pos, d_vocab]`` -> scalar, e.g. ``dataset.metric``.
        mode: ``"noise"`` (clean run, one corrupted edge) or ``"denoise"`` (the reverse).
        edges: the edges to patch (default: all); the others' values are NaN.
        patches_per_pass: edges per forward pass (default: as many as fit).
        memory_budget: bytes a pass may use (estimated before any work).
        progress: show a tqdm bar.

    Returns:
        A :class:`SweepResult` with axes ``("edge",)`` (float64 values); ``corrupted``
        is the metric with every edge patched (the corrupted run, or every edge zeroed).

    Raises:
        ValueError: a bad mode, prompts of different lengths, an edge not in the graph,
            zero ablation with ``mode="denoise"``.
        MemoryError: one pass would exceed ``memory_budget`` (the message gives the estimate).
    """
    if mode not in ("noise", "denoise"):
        raise ValueError(f"mode must be 'noise' or 'denoise', not {mode!r}")
    if corrupted is None and mode == "denoise":
        raise ValueError("zero ablation (corrupted=None) only noises: there is no corrupted "
                         "run to denoise; give corrupted prompts or use mode='noise'")
    tokens = as_tokens(model, clean)
    per_pass = copies_per_pass(model, tokens, "sweep", patches_per_pass, memory_budget,
                               "exact edge patching")
    em, tokens = build_edge_model(model, tokens, corrupted)
    graph = em.graph
    wanted = range(len(graph.edges)) if edges is None else [_edge_index(graph, e) for e in edges]
    base, other = ((em.clean, em.replacement) if mode == "noise"
                   else (em.corrupted, em.clean.senders))
    values = torch.full((len(graph.edges),), float("nan"), dtype=torch.float64)
    chunks = [chunk for stage in em.stages for chunk in _chunks(em, stage, wanted, per_pass)]
    with em.reading_positions(metric_positions(metric, tokens)):  # unembed only where read
        for stage, chunk in tqdm(chunks, desc="edge patching", disable=not progress):
            logits = _sweep(em, stage, chunk, base, other)
            values[chunk] = torch.tensor(metric_per_copy(metric, logits, em.batch),
                                         dtype=torch.float64)
    anchors = {"clean": metric_value(metric, em.clean.logits).item(),
               "corrupted": metric_value(metric, em.corrupted_logits).item()}
    kind = ", zero ablation" if em.corrupted is None else ""
    return SweepResult(values, ("edge",), {"edge": graph.edges},
                       method=f"exact edge patching{kind} ({mode})", **anchors)


def _shape(graph) -> tuple:
    return graph.n_layers, graph.n_heads, graph.mlps, graph.channels


def _edge_index(graph, edge: Edge) -> int:
    if edge not in graph.edge_index:
        raise ValueError(f"edge {edge} is not in the graph {graph}")
    return graph.edge_index[edge]


def _chunks(em: EdgeModel, stage, wanted, per_pass: int):
    """``(stage, [edge indices])`` for the wanted edges into ``stage``, ``per_pass`` at a time."""
    block = em.edge_block(stage)
    mine = [i for i in wanted if block.start <= i < block.stop]
    return [(stage, mine[i:i + per_pass]) for i in range(0, len(mine), per_pass)]


@torch.no_grad()
def _sweep(em: EdgeModel, stage, chunk: list[int], base: RunState, other: Tensor
           ) -> Float[Tensor, "copy_batch pos d_vocab"]:
    """One pass from ``stage`` on: copy ``i`` feeds edge ``chunk[i]`` the sender's output in
    ``other`` (``[batch, pos, sender, d_model]``: the other run's, or zeros)."""
    block, n_copies = em.edge_block(stage), len(chunk)
    n_senders = em.n_senders(stage)
    local = torch.tensor(chunk) - block.start
    sender = local % n_senders  # edges into a stage are ordered [receiver input, sender]
    delta = (other[:, :, sender] - base.senders[:, :, sender]).movedim(2, 0)  # c b p d
    index = em.stages.index(stage)
    x = em.entering(base, index)
    if stage.kind == "logits":
        return em.unembed((x + delta).flatten(0, 1))
    if stage.kind == "mlp":
        x = x.repeat(n_copies, 1, 1)
        x = x + em.mlp(stage.layer, x + delta.flatten(0, 1))
        return em.forward(x, start=index + 1)
    head, channel = (local // n_senders).div(len(CHANNELS), rounding_mode="floor"), \
        (local // n_senders) % len(CHANNELS)
    normed = em.norm(x + delta, em.ln1[stage.layer])  # c b p d
    weight = em.w["W_qkv"][stage.layer][channel, head]  # c d d_head
    bias = em.w["b_qkv"][stage.layer][channel, head]  # c d_head
    new = torch.einsum("cbpd,cde->cbpe", normed, weight) + bias[:, None, None]
    qkv = base.qkv[stage.layer].repeat(n_copies, 1, 1, 1, 1).unflatten(0, (n_copies, em.batch))
    qkv[torch.arange(n_copies), :, :, channel, head] = new
    out = em.head_outputs(stage.layer, qkv.flatten(0, 1))
    x = x.repeat(n_copies, 1, 1) + out.sum(2) + em.w["b_O"][stage.layer]
    return em.forward(x, start=index + 1)


def circuit_metrics(model, clean: Sequence[str] | Int[Tensor, "batch pos"],
                    corrupted: Sequence[str] | Int[Tensor, "batch pos"], metric: Metric,
                    circuits: Sequence[Circuit], *, patches_per_pass: int | None = None,
                    memory_budget: int = DEFAULT_MEMORY_BUDGET, progress: bool = False,
                    engine: EdgeModel | None = None) -> Float[Tensor, "circuit"]:
    """The metric with only each circuit's edges carrying the clean run (the rest corrupted).

    Every edge outside a circuit is patched with the sender's corrupted output, so the
    empty circuit gives the corrupted run's metric and the full graph the clean one's.

    Args:
        circuits: :class:`~mi_helpers.core.graph.Circuit` objects on the model's graph.
        patches_per_pass: circuits per forward pass (default: as many as fit).
        engine: an :class:`EdgeModel` already built for these prompts (skips a rebuild).

    Returns:
        ``[circuit]`` metric values (float64).

    Raises:
        TypeError: ``circuits`` is one Circuit, not a list. ValueError: a circuit built on
            another model's graph.
    """
    if isinstance(circuits, Circuit):
        raise TypeError("circuits is one Circuit; pass a list of circuits, e.g. [circuit]")
    graph = engine.graph if engine is not None else CircuitGraph.from_model(model)
    for circuit in circuits:
        check_circuit(circuit, graph)
    tokens = as_tokens(model, clean)
    per_pass = copies_per_pass(model, tokens, "masked", patches_per_pass, memory_budget,
                               "circuit evaluation")
    em = engine if engine is not None else build_edge_model(model, tokens, corrupted)[0]
    masks = []
    for circuit in circuits:
        if not isinstance(circuit, Circuit) or _shape(circuit.graph) != _shape(em.graph):
            raise ValueError(f"each circuit must be a Circuit on this model's graph "
                             f"({em.graph}), got {circuit!r}")
        masks.append(~circuit.mask)
    removed = torch.stack(masks).float() if masks else torch.zeros(0, len(em.graph.edges))
    values = []
    starts = range(0, len(removed), per_pass)
    with em.reading_positions(metric_positions(metric, tokens)):  # unembed only where read
        for start in tqdm(starts, desc="circuits", disable=not progress):
            logits = em.patched_logits(removed[start:start + per_pass])
            values += metric_per_copy(metric, logits, em.batch)
    return torch.tensor(values, dtype=torch.float64)


def edge_differences(model, clean: Sequence[str] | Int[Tensor, "batch pos"],
                     corrupted: Sequence[str] | Int[Tensor, "batch pos"]) -> dict[Edge, float]:
    """How much what each edge carries differs between the clean and corrupted runs.

    The largest ``|(out_clean - out_corrupted) @ W|`` over prompts, positions and the
    receiver's input dimensions, where ``W`` is the receiver channel's input weight
    (``W_Q``, ``W_K``, ``W_V`` of a head, ``W_in`` of an MLP, ``W_U``). Where it is 0,
    no method that compares the two runs (patching, path patching, attribution, ACDC)
    can see the edge: clean and corrupted send it the same thing.

    Raises:
        ValueError: a model with LayerNorm (its receivers' inputs are not linear in one
            sender's output), prompts of different shapes.
    """
    if getattr(model.cfg, "normalization_type", None) is not None:
        raise ValueError(f"edge_differences needs a model without normalization (e.g. a Tracr "
                         f"model); with normalization_type={model.cfg.normalization_type!r} a "
                         f"receiver's input is not linear in one sender's output")
    if corrupted is None:
        raise ValueError("edge_differences compares two runs: give corrupted prompts")
    em, _ = build_edge_model(model, clean, corrupted)
    delta = em.clean.senders - em.corrupted.senders  # batch pos sender d_model
    values = torch.zeros(len(em.graph.edges), dtype=torch.float64)
    for stage in em.stages:
        diff = delta[:, :, :em.n_senders(stage)]
        if stage.kind == "attn":  # edges ordered [head, channel, sender]
            read = torch.einsum("bpsd,chde->bpsche", diff, em.w["W_qkv"][stage.layer])
            block = read.abs().amax((0, 1, 5)).permute(2, 1, 0)
        else:
            weight = em.w["W_in"][stage.layer] if stage.kind == "mlp" else em.w["W_U"]
            block = torch.einsum("bpsd,de->bpse", diff, weight).abs().amax((0, 1, 3))
        values[em.edge_block(stage)] = block.flatten().double()
    return dict(zip(em.graph.edges, values.tolist()))
