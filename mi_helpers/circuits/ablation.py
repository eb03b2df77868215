"""Ablation: what happens when a component's output is replaced by an uninformative value?

Activation patching (:mod:`.patching`) takes the replacement from a corrupted prompt.
An ablation takes it from elsewhere:

* **zero** ablation: zeros. Simple, but it moves the activation far outside anything the
  model saw in training, so its "effects" are exaggerated;
* **mean** ablation: the activation's mean over a reference dataset, per position (for
  IOI, over the "ABC" prompts, template by template: :func:`head_means`);
* **resample** ablation: the activation on a *different* prompt of the dataset
  (prompt ``i`` gets prompt ``permutation[i]``'s value; by default a derangement).

:func:`ablation_patching` sweeps one ablation over every layer (x position x head);
:func:`head_ablation_hooks` ablates chosen heads for any later run, e.g. to measure a
loss with them removed.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from functools import partial

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..core.activations import FwdHook, run_cached
from ..core.checks import as_tokens
from ..core.heads import check_heads
from ..core.hooks import hook_name, layer_hooks
from ..core.results import SweepResult
from .edge_memory import DEFAULT_MEMORY_BUDGET
from .patching import (Metric, PatchTarget, metric_value, patch_sweep, patch_target,
                       run_with_patches, sweep_names)

__all__ = ["ablation_patching", "zero_source", "mean_source", "resample_source", "derangement",
           "template_means", "head_means", "head_ablation_hooks"]

ABLATIONS = ("zero", "mean", "resample")


def zero_source(acts: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Zero ablation: zeros shaped like each activation, batch of 1 (broadcasts)."""
    return {name: torch.zeros_like(act[:1]) for name, act in acts.items()}


def mean_source(acts: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Mean ablation: each activation averaged over a reference batch, per position."""
    return {name: act.mean(dim=0, keepdim=True) for name, act in acts.items()}


def resample_source(acts: Mapping[str, Tensor], permutation: Int[Tensor, "batch"]
                    ) -> dict[str, Tensor]:
    """Resample ablation: row ``i`` takes the activation of reference prompt ``permutation[i]``."""
    return {name: act[permutation.to(act.device)] for name, act in acts.items()}


def derangement(n: int, seed: int = 0) -> Int[Tensor, "batch"]:
    """A random permutation of ``range(n)`` that moves every element (``n >= 2``)."""
    if n < 2:
        raise ValueError("resampling from other prompts needs at least 2 prompts in the batch; "
                         "pass reference= prompts or a permutation=")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    perm = torch.empty(n, dtype=torch.long)
    perm[order] = order.roll(-1)  # each prompt takes the next one in a random cycle
    return perm


def ablation_patching(model, tokens: str | Sequence[str] | Int[Tensor, "batch pos"],
                      metric: Metric, target: str | PatchTarget = "attn_out", *,
                      ablation: str = "zero",
                      reference: str | Sequence[str] | Int[Tensor, "batch pos"] | None = None,
                      permutation: Sequence[int] | Tensor | None = None, seed: int = 0,
                      per_position: bool = False, layers: Sequence[int] | None = None,
                      heads: Sequence[int] | None = None, positions: Sequence[int] | None = None,
                      patches_per_pass: int | None = None,
                      memory_budget: int = DEFAULT_MEMORY_BUDGET, replay: bool = True
                      ) -> SweepResult:
    """Ablate one activation at a time (zero, mean or resample) and score the run.

    Args:
        model, metric, target, per_position, layers, heads, positions, patches_per_pass,
            memory_budget, replay: as in
            :func:`~mi_helpers.circuits.patching.activation_patching`.
        tokens: the prompts to run (the "clean" run).
        ablation: ``"zero"``, ``"mean"`` (over ``reference``, per position) or
            ``"resample"`` (prompt ``i`` gets reference prompt ``permutation[i]``'s value).
        reference: prompts for the mean / resample, with as many tokens as ``tokens``
            (default: ``tokens`` themselves).
        permutation: for ``"resample"``; default a seeded random derangement of the batch.
        seed: seeds the default permutation.

    Returns:
        A :class:`~mi_helpers.core.results.SweepResult` whose ``clean`` is the unablated
        metric and whose ``corrupted`` is the metric with the target ablated at every
        swept layer at once.
    """
    if ablation not in ABLATIONS:
        raise ValueError(f"ablation must be one of {ABLATIONS}, not {ablation!r}")
    tokens = as_tokens(model, tokens)
    spec = patch_target(target, per_position)
    names = sweep_names(model, spec, layers)
    logits, cache = run_cached(model, tokens, names)
    source = _ablation_source(model, tokens, cache, ablation, reference, permutation, seed)
    everything = run_with_patches(model, tokens, source, names)
    values, coords = patch_sweep(model, tokens, source, metric, spec, layers=layers, heads=heads,
                                 positions=positions, patches_per_pass=patches_per_pass,
                                 memory_budget=memory_budget, replay=replay)
    return SweepResult(values, tuple(coords), coords, clean=metric_value(metric, logits).item(),
                       corrupted=metric_value(metric, everything).item(),
                       method=f"{ablation} ablation")


def _ablation_source(model, tokens, acts, ablation, reference, permutation, seed):
    """The ablated values of ``acts`` (this run's activations at the swept hooks)."""
    if ablation == "zero":
        return zero_source(acts)
    if reference is not None:
        reference = as_tokens(model, reference)
        if reference.shape[1] != tokens.shape[1]:
            raise ValueError(f"reference prompts have {reference.shape[1]} tokens but the "
                             f"patched prompts have {tokens.shape[1]}; use prompts of equal length")
        acts = run_cached(model, reference, list(acts), stop_early=True)[1]
    if ablation == "mean":
        return mean_source(acts)
    n_ref = len(next(iter(acts.values())))
    perm = derangement(n_ref, seed) if permutation is None else torch.as_tensor(permutation)
    if perm.shape != (len(tokens),) or not ((0 <= perm) & (perm < n_ref)).all():
        raise ValueError(f"permutation must hold {len(tokens)} indices (one per prompt) "
                         f"into the {n_ref} reference prompts, got {perm.tolist()}")
    return resample_source(acts, perm)


# ---- ablating chosen heads in any run -----------------------------------------------------

def template_means(acts: Float[Tensor, "batch pos ..."], groups: Int[Tensor, "batch"]
                   ) -> Float[Tensor, "batch pos ..."]:
    """Row ``i`` becomes the mean of ``acts`` over the rows in ``i``'s group, per position."""
    groups = torch.as_tensor(groups).to(acts.device)
    if groups.shape != (len(acts),):
        raise ValueError(f"groups must hold one group per row ({len(acts)}), got shape "
                         f"{tuple(groups.shape)}")
    out = torch.empty_like(acts)
    for g in groups.unique():
        rows = groups == g
        out[rows] = acts[rows].mean(dim=0, keepdim=True)
    return out


def head_means(model, reference: Int[Tensor, "batch pos"], groups: Int[Tensor, "batch"] | None = None
               ) -> dict[str, Float[Tensor, "batch pos head d_head"]]:
    """Every layer's ``hook_z`` averaged over ``reference`` within each group (template).

    Args:
        model: a TransformerLens model.
        reference: tokens of the reference distribution, aligned with the prompts the
            means will replace (row ``i`` has the template of prompt ``i``).
        groups: ``[batch]`` group of each row (default: one group).
    """
    names = layer_hooks(model, "z")
    _, cache = run_cached(model, reference, names, stop_early=True)
    if groups is None:
        groups = torch.zeros(len(reference), dtype=torch.long)
    return {name: template_means(cache[name], groups) for name in names}


def head_ablation_hooks(model, heads: Collection[tuple[int, int]],
                        means: Mapping[str, Tensor] | None = None) -> list[FwdHook]:
    """Forward hooks that zero-ablate (``means=None``) or mean-ablate the given heads' ``z``.

    Args:
        model: a TransformerLens model.
        heads: ``(layer, head)`` pairs or :class:`~mi_helpers.core.heads.Head` values.
        means: ``hook_z`` name -> values broadcastable to ``[batch, pos, head, d_head]``
            (e.g. from :func:`head_means`); ``None`` for zeros.
    """
    by_layer: dict[int, list[int]] = {}
    for head in check_heads(model, heads, "ablated head"):
        by_layer.setdefault(head.layer, []).append(head.head)
    hooks = []
    for layer, hs in by_layer.items():
        name = hook_name("z", layer)
        hooks.append((name, partial(_ablate, heads=hs, mean=None if means is None else means[name])))
    return hooks


def _ablate(z: Tensor, hook, *, heads: list[int], mean: Tensor | None) -> Tensor:
    """Replace ``heads`` of ``z`` ``[batch, pos, head, d_head]`` by zeros or the mean."""
    z = z.clone()
    if mean is None:
        z[:, :, heads] = 0.0
    else:
        z[:, :, heads] = mean[:, :, heads].to(z.device, z.dtype).expand_as(z[:, :, heads])
    return z

