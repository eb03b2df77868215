"""How much one pass of a sweep may hold, decided before any work.

Every sweep stacks *copies* of the prompt batch along the batch axis, each copy patched
differently (or at another point of an integrated-gradients path): activation patching,
ablations and path patching (:mod:`.patching`, :mod:`.path_patching`), exact edge
patching, circuit evaluation, ACDC and EAP-IG. :func:`estimate_bytes` estimates what
one copy needs; :func:`copies_per_pass` fits as many copies as ``memory_budget`` allows
and refuses, with the estimate, when even one copy does not fit. The budget is a cap;
the pass size also depends on the device (:func:`fast_pass_bytes`): on a CPU, passes
no larger than its caches hold run fastest; on a GPU, anything that fits in half its
free memory.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..core.checks import check_positive

__all__ = ["DEFAULT_MEMORY_BUDGET", "CPU_PASS_BYTES", "KINDS", "estimate_bytes", "fast_pass_bytes",
           "copies_per_pass"]

DEFAULT_MEMORY_BUDGET = 2**31  # bytes one forward pass (or forward + backward) may use
CPU_PASS_BYTES = 2**26  # a CPU runs these passes fastest at about this size (caches)
FLOAT_BYTES = 4
#: The kinds of pass :func:`estimate_bytes` knows.
KINDS = ("replay", "hooks", "sweep", "masked", "gradient")


def estimate_bytes(model, batch: int, n_pos: int, kind: str) -> int:
    """About how many bytes one copy of ``batch`` prompts needs in a pass of ``kind``.

    ``"replay"`` (a forward pass replayed from the weights, :mod:`.replay`), ``"hooks"``
    (a forward pass of the model itself with hooks, which keeps about twice as much),
    ``"sweep"`` (one edge per copy), ``"masked"`` (any edges per copy) or
    ``"gradient"`` (a forward and backward pass keeping every receiver's input).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind of pass {kind!r}; choose one of {KINDS}")
    cfg = model.cfg
    n_layers, n_heads, d_model, d_head = cfg.n_layers, cfg.n_heads, cfg.d_model, cfg.d_head
    d_mlp = 0 if getattr(cfg, "attn_only", False) else (cfg.d_mlp or 4 * d_model)
    n_senders = 1 + n_layers * (n_heads + (0 if d_mlp == 0 else 1))
    forward = (8 * d_model + 6 * n_heads * d_head + 3 * n_heads * n_pos + 2 * d_mlp
               + 2 * cfg.d_vocab)
    per_token = {
        "replay": forward,
        "hooks": 2 * forward,
        "sweep": forward + n_senders * d_model,
        "masked": forward + 3 * n_senders * d_model + 9 * n_heads * d_model,
        "gradient": (n_layers * (12 * n_heads * d_model + 9 * n_heads * d_head
                                 + 3 * n_heads * n_pos + 3 * d_mlp + 8 * d_model)
                     + 3 * cfg.d_vocab + n_senders * d_model),
    }[kind]
    return batch * n_pos * per_token * FLOAT_BYTES


def copies_per_pass(model, tokens: Tensor, kind: str, requested: int | None,
                    memory_budget: int, what: str, *, one_always_fits: bool = False) -> int:
    """How many copies of the batch one pass runs: ``requested``, else as many as fit in
    :func:`fast_pass_bytes` (``memory_budget``, or less where smaller passes run faster).

    ``one_always_fits``: a pass of one copy is the model's own forward pass (activation
    and path patching), so it is never refused.

    Raises:
        MemoryError: one copy (or the requested copies) would exceed ``memory_budget``;
            the message gives the estimate.
    """
    batch, n_pos = tokens.shape
    need = estimate_bytes(model, batch, n_pos, kind)
    check_positive("memory_budget", memory_budget)
    if requested is not None:
        check_positive("patches per pass", requested, integer=True)
    copies = 1 if requested is None else requested
    if need * copies > memory_budget and not (one_always_fits and copies == 1):
        more = "" if requested is None else ", fewer patches per pass"
        raise MemoryError(
            f"{what} needs about {need * copies / 2**30:.2f} GiB per pass ({copies} "
            f"cop{'y' if copies == 1 else 'ies'} of {batch} prompts x {n_pos} positions on a "
            f"{model.cfg.n_layers}-layer, {model.cfg.n_heads}-head, d_model={model.cfg.d_model} "
            f"model), more than memory_budget={memory_budget / 2**30:.2f} GiB; use fewer or "
            f"shorter prompts{more} or a larger memory_budget")
    if requested is not None:
        return requested
    return max(1, int(fast_pass_bytes(model.cfg.device, memory_budget) // need))


def fast_pass_bytes(device: str | torch.device, memory_budget: int) -> int:
    """How many bytes a pass on ``device`` should hold: at most ``memory_budget``, and on a
    CPU at most ``CPU_PASS_BYTES`` (bigger passes spill out of its caches and run no
    faster per copy), on a CUDA GPU at most half its free memory."""
    device = torch.device(device)
    if device.type == "cpu":
        return min(memory_budget, CPU_PASS_BYTES)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return min(memory_budget, free // 2)
    return memory_budget
