"""Attribution patching: every node's or edge's patching effect from gradients.

Patching one activation from a corrupted run to its clean value changes the metric
``M`` by about ``(a_clean - a_corrupted) . dM/da``, the gradient taken in the corrupted
run: a first-order Taylor estimate (**attribution patching**, Nanda 2023). One forward
and one backward pass estimate it for every node at once.

For an **edge** ``s -> r`` the activation is the sender's contribution to the
receiver's input, so its estimate is ``(out_s,clean - out_s,corrupted) . dM/d(input_r)``
summed over positions (**edge attribution patching**, EAP, Syed et al. 2023): the same
two passes score every edge. Sign: positive when restoring the clean edge raises the
metric (the denoising direction), as in transformer-lens 4.3's ``attribution_patch``.

A first-order estimate fails where the metric is far from linear between the two
runs, e.g. a saturated softmax or an MLP nonlinearity. **EAP-IG** (Hanna et al. 2024)
averages the gradient over ``ig_steps`` points on a path from the corrupted run to the
clean one (integrated gradients, a left Riemann sum from the corrupted end, so
``ig_steps=1`` *is* EAP):

* ``variant="inputs"``: the path interpolates the input embeddings;
* ``variant="activations"``: the path interpolates the outputs of one group of
  senders at a time (the embeddings, one layer's heads, one MLP), the rest of the run
  recomputed from there; an edge's gradient comes from its sender's own path, so a
  group's edge scores sum to its integrated-gradient node effect. (hannamw/EAP-IG
  averages the receiver gradients over every group's path instead.)

Results are :class:`~mi_helpers.core.results.SweepResult` values over the circuit
graph (axes ``("edge",)``, or ``("node",)`` over the senders): ``values`` is the
*estimated metric after the patch*, ``corrupted + estimate``, and ``method`` ends with
``(denoise)``; :func:`~.edge_circuits.edge_effects` returns the estimates themselves.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Int
from torch import Tensor

from ..core.checks import as_tokens, check_positive
from ..core.metrics import metric_positions
from ..core.results import SweepResult
from .edge_memory import DEFAULT_MEMORY_BUDGET, copies_per_pass
from .edge_model import CHANNELS, EdgeModel, Stage
from .edge_patching import build_edge_model
from .patching import Metric, metric_value

__all__ = ["edge_attribution", "node_attribution", "VARIANTS"]

VARIANTS = ("inputs", "activations")


def edge_attribution(model, clean: Sequence[str] | Int[Tensor, "batch pos"],
                     corrupted: Sequence[str] | Int[Tensor, "batch pos"], metric: Metric, *,
                     ig_steps: int = 1, variant: str = "inputs",
                     steps_per_pass: int | None = None,
                     memory_budget: int = DEFAULT_MEMORY_BUDGET) -> SweepResult:
    """EAP (``ig_steps=1``) or EAP-IG scores of every edge of the model's circuit graph.

    Args:
        model: a TransformerLens model in compatibility mode.
        clean, corrupted: prompts or ``[batch, pos]`` tokens of the same shape.
        metric: logits ``[batch, pos, d_vocab]`` -> a differentiable scalar, e.g. a mean
            logit difference or KL divergence (not an accuracy).
        ig_steps: points on the integrated-gradients path (1 = EAP).
        variant: ``"inputs"`` or ``"activations"`` (see the module docstring).
        steps_per_pass: path points per forward/backward pass (default: as many as fit).
        memory_budget: bytes a pass may use, estimated before any work.

    Returns:
        A :class:`SweepResult` with axes ``("edge",)``: ``values = corrupted + estimate``.

    Raises:
        ValueError: a bad ``ig_steps`` or ``variant``, prompts of different lengths, no
            corrupted prompts, a metric that is not differentiable.
        MemoryError: one pass would exceed ``memory_budget`` (the message gives the estimate).
    """
    check_positive("ig_steps", ig_steps, integer=True)
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, not {variant!r}")
    _check_corrupted(corrupted)
    tokens = as_tokens(model, clean)
    per_pass = copies_per_pass(model, tokens, "gradient", steps_per_pass, memory_budget,
                               "edge attribution")
    em, _ = build_edge_model(model, tokens, corrupted)
    alphas = torch.arange(ig_steps, dtype=em.clean.embed.dtype) / ig_steps
    with em.reading_positions(metric_positions(metric, tokens)):  # unembed only where read
        if variant == "inputs" or ig_steps == 1:  # with one step both paths are the corrupted run
            scores = _input_path_scores(em, metric, alphas, per_pass)
        else:
            scores = _activation_path_scores(em, metric, alphas, per_pass)
    name = "EAP" if ig_steps == 1 else f"EAP-IG ({variant}, {ig_steps} steps)"
    return _result(em, metric, scores, ("edge",), {"edge": em.graph.edges}, name)


def node_attribution(model, clean: Sequence[str] | Int[Tensor, "batch pos"],
                     corrupted: Sequence[str] | Int[Tensor, "batch pos"], metric: Metric, *,
                     memory_budget: int = DEFAULT_MEMORY_BUDGET) -> SweepResult:
    """Attribution patching of every sender node (embeddings, each head, each MLP).

    ``(out_clean - out_corrupted) . dM/d(out)`` with the gradient in the corrupted run,
    summed over positions: the first-order estimate of patching the node's whole output.
    It equals the sum of the node's outgoing EAP edge scores (tested).

    Returns:
        A :class:`SweepResult` with axes ``("node",)`` over ``graph.senders``.
    """
    _check_corrupted(corrupted)
    tokens = as_tokens(model, clean)
    copies_per_pass(model, tokens, "gradient", 1, memory_budget, "node attribution")
    em, _ = build_edge_model(model, tokens, corrupted)
    probes: dict[Stage, Tensor] = {}

    def send(stage: Stage, out: Tensor) -> Tensor:
        probes[stage] = torch.zeros_like(out, requires_grad=True)
        return out + probes[stage]

    embed_probe = torch.zeros_like(em.corrupted.embed, requires_grad=True)
    with torch.enable_grad(), em.reading_positions(metric_positions(metric, tokens)):
        logits = em.forward(em.corrupted.embed + embed_probe, send=send)
        grads = _grad(_checked_metric(metric, logits), [embed_probe, *probes.values()])
    grad = torch.cat([grads[0][:, :, None]] + [g if g.ndim == 4 else g[:, :, None]
                                                for g in grads[1:]], 2)  # batch pos sender d
    delta = em.clean.senders - em.corrupted.senders
    scores = torch.einsum("bpsd,bpsd->s", delta, grad)
    return _result(em, metric, scores, ("node",), {"node": em.graph.senders},
                   "attribution patching")


def _check_corrupted(corrupted) -> None:
    if corrupted is None:
        raise ValueError("attribution estimates patching from a corrupted run, so it needs "
                         "corrupted prompts (zero ablation, corrupted=None, has no run to take "
                         "gradients in)")


def _result(em: EdgeModel, metric: Metric, scores: Tensor, axes, coords, name: str) -> SweepResult:
    clean = metric_value(metric, em.clean.logits).item()
    corrupted = metric_value(metric, em.corrupted.logits).item()
    values = corrupted + scores.detach().to(torch.float64)
    return SweepResult(values, axes, coords, clean=clean, corrupted=corrupted,
                       method=f"{name} (denoise)")


def _checked_metric(metric: Metric, logits: Tensor) -> Tensor:
    """``metric(logits)``, checked to be a scalar that gradients can flow through."""
    value = metric(logits)
    name = getattr(metric, "__qualname__", None) or type(metric).__name__
    if not isinstance(value, Tensor) or value.ndim != 0:
        raise ValueError(f"the metric {name} must return a scalar tensor, got "
                         f"{getattr(value, 'shape', type(value).__name__)}")
    if not value.requires_grad:
        raise ValueError(f"the metric {name} is not differentiable: its value does not depend "
                         f"on the logits through operations with gradients (argmax, "
                         f"comparisons, .item() and accuracies have none); attribution needs a "
                         f"smooth metric such as a logit difference or a KL divergence")
    return value


def _grad(value: Tensor, inputs: list[Tensor]) -> list[Tensor]:
    grads = torch.autograd.grad(value, inputs, allow_unused=True)
    return [torch.zeros_like(x) if g is None else g for x, g in zip(inputs, grads)]


def _receiver_grads(em: EdgeModel, x: Tensor, metric: Metric, *, start: int = 0,
                    send=None) -> dict[Stage, Tensor]:
    """``dM/d(input)`` of every receiver from stage ``start`` on, in a run from ``x``.

    ``x`` holds copies of the batch; the metric of each copy is summed. Head inputs come
    back as ``[copy_batch, pos, 3, head, d_model]``, the others as ``[copy_batch, pos, d_model]``.
    """
    probes: dict[Stage, Tensor] = {}

    def receive(stage: Stage, resid: Tensor, _senders) -> Tensor:
        if stage.kind == "attn":
            resid = resid[:, :, None, None].expand(-1, -1, len(CHANNELS), em.cfg.n_heads, -1)
        probes[stage] = torch.zeros_like(resid, requires_grad=True)
        return resid + probes[stage]

    with torch.enable_grad():
        logits = em.forward(x, start=start, receive=receive, send=send)
        total = sum(_checked_metric(metric, part) for part in logits.split(em.batch))
        grads = _grad(total, list(probes.values()))
    return dict(zip(probes, grads))


def _edge_scores(em: EdgeModel, grads: dict[Stage, Tensor], scores: Tensor,
                 senders: slice | None = None) -> None:
    """Add ``delta_s . grad_r`` (summed over copies, prompts, positions) into ``scores``.

    Only senders in ``senders`` (default: all) are scored.
    """
    delta = em.clean.senders - em.corrupted.senders  # batch pos sender d_model
    for stage, grad in grads.items():
        n = em.n_senders(stage)
        grad = grad.unflatten(0, (-1, em.batch)).sum(0)
        if stage.kind == "attn":
            block = torch.einsum("bpsd,bpkhd->hks", delta[:, :, :n], grad)
        else:
            block = torch.einsum("bpsd,bpd->s", delta[:, :, :n], grad)[None, None]
        keep = torch.zeros(n, dtype=torch.bool)
        keep[senders if senders is not None else slice(None)] = True
        view = scores[em.edge_block(stage)].view(block.shape)
        view[..., keep] += block[..., keep].detach()


def _input_path_scores(em: EdgeModel, metric: Metric, alphas: Tensor, per_pass: int) -> Tensor:
    """EAP-IG on the input path (EAP when ``alphas == [0]``)."""
    scores = torch.zeros(len(em.graph.edges), dtype=em.clean.embed.dtype)
    start, end = em.corrupted.embed, em.clean.embed
    for chunk in alphas.split(per_pass):
        x = torch.cat([start + a * (end - start) for a in chunk])
        _edge_scores(em, _receiver_grads(em, x, metric), scores)
    return scores / len(alphas)


def _activation_path_scores(em: EdgeModel, metric: Metric, alphas: Tensor,
                            per_pass: int) -> Tensor:
    """EAP-IG on each sender group's own output path: embeddings, each attention, each MLP."""
    scores = torch.zeros(len(em.graph.edges), dtype=em.clean.embed.dtype)
    start, end = em.corrupted.embed, em.clean.embed
    for chunk in alphas.split(per_pass):  # the embeddings' path is the input path
        x = torch.cat([start + a * (end - start) for a in chunk])
        _edge_scores(em, _receiver_grads(em, x, metric), scores, slice(0, 1))
    for index, group in enumerate(em.stages[:-1]):
        slots = em.sender_slots(group)
        delta = (em.clean.senders - em.corrupted.senders)[:, :, slots]
        for chunk in alphas.split(per_pass):
            shift = torch.cat([a * delta for a in chunk])  # copy_batch pos sender d

            def send(stage: Stage, out: Tensor, shift=shift, group=group) -> Tensor:
                if stage != group:
                    return out
                return out + (shift if out.ndim == 4 else shift[:, :, 0])

            x = em.entering(em.corrupted, index).repeat(len(chunk), 1, 1)
            grads = _receiver_grads(em, x, metric, start=index, send=send)
            _edge_scores(em, grads, scores, slots)
    return scores / len(alphas)
