"""Activation patching: which activations carry the information that decides the answer?

Run the model on a **clean** prompt ("When Mary and John went to the store, John gave a
drink to" → " Mary") and on a **corrupted** prompt that differs in one key detail
("... Mary gave a drink to" → " John"), and score each run with a *metric*, a function
from logits to a scalar (e.g. the logit difference ``logit(Mary) - logit(John)``). Then
run the model again with **one** activation swapped for its value from another run:

* **denoising** (the default): run *corrupted*, patch in one *clean* activation. A large
  recovery of the clean metric means this activation is *sufficient* to carry the
  difference.
* **noising**: run *clean*, patch in one *corrupted* activation. A large drop means the
  activation is *necessary*.

Both report the **normalised score** ``(patched - corrupted) / (clean - corrupted)``:
0 is the corrupted run's metric and 1 the clean run's. Denoising looks for scores near
1; noising, for scores near 0 (an activation whose patch leaves the score at 1 did not
matter).

The patched value need not come from the other prompt. *Ablations* replace an activation
with zeros, with its **mean** over a reference dataset, or with its value on **other
prompts** (resampling, e.g. a permutation of the batch): see :func:`ablation_patching`.
**Causal tracing** (Meng et al., 2022) corrupts the clean prompt itself, adding Gaussian
noise of std ``k`` x the embedding std to ``hook_embed`` at the subject's positions, then
restores clean activations one at a time: see :func:`causal_tracing`.

Patch targets (``TARGET_HOOKS``) are swept per layer; ``per_position=True`` also sweeps
positions. Head targets are always swept per head. The result's axes:

==============================================  ==================  ========================
target (hook)                                   whole layer         ``per_position=True``
==============================================  ==================  ========================
``resid_pre`` ``resid_mid`` ``resid_post``      ``[layer]``         ``[layer, pos]``
``attn_out`` ``mlp_out``                        ``[layer]``         ``[layer, pos]``
``z`` ``q`` ``k`` ``v`` (``attn.hook_z``, ...)  ``[layer, head]``   ``[layer, pos, head]``
``pattern`` (``attn.hook_pattern``)             ``[layer, head]``   ``[layer, dest_pos, head]``
==============================================  ==================  ========================

How it runs: :func:`patch_sweep` is the one routine. A :class:`PatchTarget` is a hook
name and a *setter*, a few-line function that copies the source into an activation at
one index (``set_pos``, ``set_head``, ...). Several patches share a forward pass
(:func:`default_patches_per_pass`: about a thousand tokens per thread on a CPU, whose
caches favour small passes, many more on an accelerator): the batch is repeated and copy
``i`` gets patch ``i``. Only the hooks a sweep needs are cached, and no gradients are kept.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

import torch
from jaxtyping import Float, Int
from torch import Tensor

from .cache import check_hook_names, run_with_hooks_cached

Metric = Callable[[Float[Tensor, "batch pos d_vocab"]], Float[Tensor, ""]]
Setter = Callable[[Tensor, Tensor, tuple[int, ...]], None]
FwdHook = tuple[str, Callable]

TARGET_HOOKS = {
    "resid_pre": "blocks.{layer}.hook_resid_pre",
    "resid_mid": "blocks.{layer}.hook_resid_mid",
    "resid_post": "blocks.{layer}.hook_resid_post",
    "attn_out": "blocks.{layer}.hook_attn_out",
    "mlp_out": "blocks.{layer}.hook_mlp_out",
    "z": "blocks.{layer}.attn.hook_z",
    "q": "blocks.{layer}.attn.hook_q",
    "k": "blocks.{layer}.attn.hook_k",
    "v": "blocks.{layer}.attn.hook_v",
    "pattern": "blocks.{layer}.attn.hook_pattern",
}
# Default size of one patched forward pass, in tokens (prompts x patches x positions): a
# CPU is fastest on passes that fit its caches (about a thousand tokens per thread), an
# accelerator on big ones.
CPU_TOKENS_PER_THREAD = 1024
ACCELERATOR_TOKENS_PER_PASS = 2**16
MAX_LOGITS_PER_PASS = 2**26  # and at most this many logits (256 MB in float32)


# ---- setters: write ``source`` into ``act`` at one index, in place -----------------------
# ``act`` is one copy's activation (leading axis ``batch``); ``source`` has the same
# shape, or a batch of 1 (a mean), and broadcasts over the batch.

def set_all(act: Tensor, source: Tensor, index: tuple[int, ...]) -> None:
    """The whole activation, any axis order; ``index`` is ``()``."""
    act[:] = source


def set_pos(act: Tensor, source: Tensor, index: tuple[int, ...]) -> None:
    """Axes ``[batch, pos, ...]`` (residual, attn_out, mlp_out); ``index`` is ``(pos,)``."""
    (pos,) = index
    act[:, pos] = source[:, pos]


def set_head(act: Tensor, source: Tensor, index: tuple[int, ...]) -> None:
    """Axes ``[batch, pos, head, d_head]`` (z, q, k, v); ``index`` is ``(head,)``."""
    (head,) = index
    act[:, :, head] = source[:, :, head]


def set_pos_head(act: Tensor, source: Tensor, index: tuple[int, ...]) -> None:
    """Axes ``[batch, pos, head, d_head]`` (z, q, k, v); ``index`` is ``(pos, head)``."""
    pos, head = index
    act[:, pos, head] = source[:, pos, head]


def set_pattern_head(act: Tensor, source: Tensor, index: tuple[int, ...]) -> None:
    """Axes ``[batch, head, dest_pos, src_pos]``; ``index`` is ``(head,)``."""
    (head,) = index
    act[:, head] = source[:, head]


def set_pattern_dest_head(act: Tensor, source: Tensor, index: tuple[int, ...]) -> None:
    """Axes ``[batch, head, dest_pos, src_pos]``; ``index`` is ``(dest_pos, head)``."""
    dest, head = index
    act[:, head, dest] = source[:, head, dest]


@dataclass(frozen=True)
class PatchTarget:
    """What one sweep patches.

    Attributes:
        hook: hook name with a ``{layer}`` field, e.g. ``"blocks.{layer}.attn.hook_z"``.
        axes: the axes swept after ``layer``, in the order of the setter's ``index``.
        dims: for each of ``axes``, the activation dimension it indexes (its size is the
            number of values swept).
        setter: writes the source into the activation at one index (see ``set_*``).
    """

    hook: str
    axes: tuple[str, ...]
    dims: tuple[int, ...]
    setter: Setter


_LAYOUTS = {  # (kind of activation, per_position) -> (axes, dims, setter)
    ("vector", False): ((), (), set_all),
    ("vector", True): (("pos",), (1,), set_pos),
    ("head", False): (("head",), (2,), set_head),
    ("head", True): (("pos", "head"), (1, 2), set_pos_head),
    ("pattern", False): (("head",), (1,), set_pattern_head),
    ("pattern", True): (("dest_pos", "head"), (2, 1), set_pattern_dest_head),
}


def patch_target(name: str, per_position: bool = False) -> PatchTarget:
    """The :class:`PatchTarget` for a name in ``TARGET_HOOKS``.

    Raises:
        ValueError: the name is not a known target (the message lists them).
    """
    if name not in TARGET_HOOKS:
        raise ValueError(f"unknown patch target {name!r}; choose one of {sorted(TARGET_HOOKS)} "
                         f"or build a PatchTarget(hook, axes, dims, setter) yourself")
    kind = "pattern" if name == "pattern" else "head" if name in "zqkv" else "vector"
    return PatchTarget(TARGET_HOOKS[name], *_LAYOUTS[kind, per_position])


@dataclass
class PatchingResult:
    """The metric after each patch, with the two runs that anchor the score.

    Attributes:
        values: the metric after each patch, one axis per entry of ``axes``.
        axes: axis names, e.g. ``("layer", "pos", "head")``.
        coords: for each axis, the layer / position / head each row stands for.
        clean: the metric on the clean run (score 1).
        corrupted: the metric on the corrupted run (score 0).
    """

    values: Tensor
    axes: tuple[str, ...]
    coords: dict[str, list[int]] = field(repr=False)
    clean: float
    corrupted: float

    @property
    def score(self) -> Tensor:
        """``(values - corrupted) / (clean - corrupted)``: 0 = corrupted, 1 = clean."""
        return normalised_score(self.values, self.clean, self.corrupted)


def normalised_score(patched: Tensor, clean: float, corrupted: float) -> Tensor:
    """``(patched - corrupted) / (clean - corrupted)``: 0 = corrupted metric, 1 = clean.

    Raises:
        ValueError: the clean and corrupted metrics are equal, so the score is undefined.
    """
    if abs(clean - corrupted) < 1e-12:
        raise ValueError(f"the clean and corrupted metrics are equal ({clean:.6g}), so the "
                         f"normalised score is undefined; choose prompts (or a metric) that "
                         f"tell the two runs apart")
    return (patched - corrupted) / (clean - corrupted)


# ---- the generic routine ----------------------------------------------------------------

def patch_sweep(model, tokens: Int[Tensor, "batch pos"], source: Mapping[str, Tensor],
                metric: Metric, target: str | PatchTarget, *, per_position: bool = False,
                layers: Sequence[int] | None = None, heads: Sequence[int] | None = None,
                positions: Sequence[int] | None = None, fwd_hooks: Sequence[FwdHook] = (),
                patches_per_pass: int | None = None) -> tuple[Tensor, dict[str, list[int]]]:
    """Run ``tokens`` once per index of ``target``, patched from ``source``; metric each run.

    Args:
        model: a TransformerLens model (or bridge in compatibility mode).
        tokens: the run to patch into (corrupted when denoising, clean when noising).
        source: hook name -> patched-in activation, batch equal to ``tokens``' or 1.
        metric: logits ``[batch, pos, d_vocab]`` -> scalar tensor.
        target: a name in ``TARGET_HOOKS`` or a :class:`PatchTarget`.
        per_position: also sweep positions (ignored for a ``PatchTarget``).
        layers, heads, positions: sweep only these (default: all; negatives count back).
        fwd_hooks: hooks applied to every run, e.g. a corruption; they must broadcast over
            a batch made of repeated copies of ``tokens`` (as :func:`embedding_noise_hook`'s do).
        patches_per_pass: patches per forward pass (default: :func:`default_patches_per_pass`).

    Returns:
        The metric after each patch, shaped like the grid, and the grid's ``coords``.
    """
    if isinstance(target, str):
        target = patch_target(target, per_position)
    check_source(model, source, sweep_names(model, target, layers), len(tokens))
    coords = sweep_coords(model, target, source, layers, heads, positions)
    indices = list(itertools.product(*coords.values()))
    per_pass = patches_per_pass or default_patches_per_pass(model, tokens)
    values = []
    for start in range(0, len(indices), per_pass):
        chunk = indices[start:start + per_pass]
        logits = _run_patched(model, tokens, source, target, chunk, fwd_hooks)
        values += [metric_value(metric, part) for part in logits.split(len(tokens))]
    return torch.stack(values).reshape([len(v) for v in coords.values()]), coords


def check_source(model, source: Mapping[str, Tensor], names: Sequence[str], batch: int) -> None:
    """Raise unless ``source`` holds each hook in ``names`` with a batch of ``batch`` or 1.

    Raises:
        KeyError: a name is not a hook of the model, or is missing from ``source``.
        ValueError: a source activation has the wrong batch size.
    """
    for name in check_hook_names(model, names):
        if name not in source:
            raise KeyError(f"the source has no activation for {name!r}; cache it first, e.g. "
                           f"cached_run(model, tokens, sweep_names(model, target))")
        if source[name].shape[0] not in (1, batch):
            raise ValueError(f"source[{name!r}] has a batch of {source[name].shape[0]} but the "
                             f"patched run has {batch} prompts; use as many prompts (or 1)")


def default_patches_per_pass(model, tokens: Int[Tensor, "batch pos"]) -> int:
    """How many patches share one forward pass by default.

    ``CPU_TOKENS_PER_THREAD`` tokens per torch thread on a CPU (bigger passes spill out of
    its caches and run slower per token), ``ACCELERATOR_TOKENS_PER_PASS`` on an
    accelerator, and never more than ``MAX_LOGITS_PER_PASS`` logits; at least one.
    """
    budget = ACCELERATOR_TOKENS_PER_PASS
    if torch.device(model.cfg.device).type == "cpu":
        budget = CPU_TOKENS_PER_THREAD * torch.get_num_threads()
    by_logits = MAX_LOGITS_PER_PASS // (tokens.numel() * model.cfg.d_vocab)
    return max(1, min(budget // tokens.numel(), by_logits))


def _run_patched(model, tokens, source, target, chunk, fwd_hooks) -> Tensor:
    """One forward pass over ``len(chunk)`` copies of the batch; copy ``i`` gets ``chunk[i]``."""
    jobs = defaultdict(list)
    for copy, (layer, *index) in enumerate(chunk):
        jobs[target.hook.format(layer=layer)].append((copy, tuple(index)))
    hooks = [(name, partial(_patch_hook, source=source[name], jobs=todo, setter=target.setter,
                            batch=len(tokens))) for name, todo in jobs.items()]
    with torch.no_grad():
        return model.run_with_hooks(tokens.repeat(len(chunk), 1), fwd_hooks=[*fwd_hooks, *hooks])


def _patch_hook(act: Tensor, hook, *, source: Tensor, jobs: list, setter: Setter,
                batch: int) -> Tensor:
    """Apply ``setter`` to each copy named in ``jobs`` (``act`` is copies x batch rows)."""
    act = act.clone()
    copies = act.unflatten(0, (-1, batch))  # copy batch ...
    for copy, index in jobs:
        setter(copies[copy], source, index)
    return act


def sweep_coords(model, target: PatchTarget, source: Mapping[str, Tensor],
                 layers: Sequence[int] | None = None, heads: Sequence[int] | None = None,
                 positions: Sequence[int] | None = None) -> dict[str, list[int]]:
    """The values swept on each axis: ``{"layer": [...], "pos": [...], ...}``.

    Raises:
        IndexError: a layer, head or position is out of range (the message gives the range).
        ValueError: ``heads``/``positions`` given for a target without that axis.
    """
    swept = ("layer", *target.axes)
    if heads is not None and "head" not in swept:
        raise ValueError(f"heads= does not apply: this target sweeps {swept}")
    if positions is not None and not {"pos", "dest_pos"} & set(swept):
        raise ValueError(f"positions= does not apply: this target sweeps {swept}; "
                         f"pass per_position=True to sweep positions")
    coords = {"layer": checked_indices("layer", layers, model.cfg.n_layers)}
    example = source[target.hook.format(layer=coords["layer"][0])]
    wanted = {"head": heads, "pos": positions, "dest_pos": positions}
    for axis, dim in zip(target.axes, target.dims):
        coords[axis] = checked_indices(axis, wanted[axis], example.shape[dim])
    return coords


def checked_indices(axis: str, requested: Sequence[int] | None, size: int) -> list[int]:
    """``requested`` with negatives counted from the end, or ``range(size)`` when ``None``.

    Raises:
        IndexError: an index is outside ``[-size, size)``.
    """
    if requested is None:
        return list(range(size))
    out = []
    for i in requested:
        if not -size <= int(i) < size:
            raise IndexError(f"{axis} index {int(i)} is out of range: there are {size} "
                             f"{axis} values here (0..{size - 1}, or negatives from the end)")
        out.append(int(i) % size)
    if not out:
        raise ValueError(f"no {axis} to sweep: pass at least one index, or None for all")
    return out


def metric_value(metric: Metric, logits: Float[Tensor, "batch pos d_vocab"]) -> Float[Tensor, ""]:
    """``metric(logits)`` as a detached float scalar.

    Raises:
        ValueError: the metric returned more than one number.
    """
    value = torch.as_tensor(metric(logits))
    if value.ndim != 0:
        raise ValueError(f"the metric must return a scalar, but it returned shape "
                         f"{tuple(value.shape)}; reduce it over the batch, e.g. end it "
                         f"with `.mean()`")
    return value.detach().float()


# ---- runs and sources -------------------------------------------------------------------

def as_tokens(model, prompts: str | Sequence[str] | Tensor) -> Int[Tensor, "batch pos"]:
    """Token ids on the model's device, from a tensor, a prompt or a list of prompts."""
    if isinstance(prompts, Tensor):
        tokens = prompts if prompts.ndim == 2 else prompts.unsqueeze(0)
        return tokens.to(model.cfg.device)
    return model.to_tokens(prompts)


def cached_run(model, tokens: Int[Tensor, "batch pos"], names: Sequence[str],
               fwd_hooks: Sequence[FwdHook] = ()
               ) -> tuple[Float[Tensor, "batch pos d_vocab"], dict[str, Tensor]]:
    """Run once (no gradients) with ``fwd_hooks`` applied, caching only ``names``.

    Raises:
        KeyError: a name is not a hook of this model (the message suggests close ones).
    """
    logits, cache = run_with_hooks_cached(model, tokens, names, fwd_hooks)
    return logits, dict(cache.items())


def check_same_shape(clean: Tensor, corrupted: Tensor) -> None:
    """Raise ``ValueError`` unless two token batches have the same ``[batch, pos]`` shape."""
    if clean.shape != corrupted.shape:
        raise ValueError(
            f"clean tokens have shape {list(clean.shape)} but corrupted tokens have "
            f"{list(corrupted.shape)} [batch, pos]; patching swaps activations position by "
            f"position, so use prompts with the same number of tokens (and as many prompts)")


def sweep_names(model, target: PatchTarget, layers: Sequence[int] | None = None) -> list[str]:
    """The hook names a sweep patches: the target's hook at each swept layer."""
    layers = checked_indices("layer", layers, model.cfg.n_layers)
    return [target.hook.format(layer=layer) for layer in layers]


def zero_source(acts: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Zero ablation: zeros shaped like each activation, batch of 1 (broadcasts)."""
    return {name: torch.zeros_like(act[:1]) for name, act in acts.items()}


def mean_source(acts: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Mean ablation: each activation averaged over a reference batch, per position."""
    return {name: act.mean(dim=0, keepdim=True) for name, act in acts.items()}


def resample_source(acts: Mapping[str, Tensor], permutation: Int[Tensor, "batch"]
                    ) -> dict[str, Tensor]:
    """Resample ablation: row ``i`` takes the activation of reference prompt ``permutation[i]``."""
    return {name: act[permutation] for name, act in acts.items()}


def derangement(n: int, seed: int = 0) -> Int[Tensor, "batch"]:
    """A random permutation of ``range(n)`` that moves every element (``n >= 2``)."""
    if n < 2:
        raise ValueError("resampling from other prompts needs at least 2 prompts in the batch; "
                         "pass reference= prompts or a permutation=")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    perm = torch.empty(n, dtype=torch.long)
    perm[order] = order.roll(-1)  # each prompt takes the next one in a random cycle
    return perm


# ---- the three ways to use it -----------------------------------------------------------

def activation_patching(model, clean: str | Sequence[str] | Int[Tensor, "batch pos"],
                        corrupted: str | Sequence[str] | Int[Tensor, "batch pos"] | None,
                        metric: Metric, target: str | PatchTarget = "resid_pre", *,
                        direction: str = "denoise", per_position: bool = False,
                        layers: Sequence[int] | None = None, heads: Sequence[int] | None = None,
                        positions: Sequence[int] | None = None,
                        corruption_hooks: Sequence[FwdHook] = (),
                        patches_per_pass: int | None = None) -> PatchingResult:
    """Patch every layer (x position x head) of ``target`` between a clean and a corrupted run.

    Args:
        model: a TransformerLens model (or bridge in compatibility mode).
        clean, corrupted: prompts or ``[batch, pos]`` tokens of the same shape;
            ``corrupted=None`` reuses the clean tokens (corrupt with ``corruption_hooks``).
        metric: logits ``[batch, pos, d_vocab]`` -> scalar tensor, e.g. a mean logit difference.
        target: a name in ``TARGET_HOOKS`` (see the module table) or a :class:`PatchTarget`.
        direction: ``"denoise"`` (run corrupted, patch in clean) or ``"noise"`` (the reverse).
        per_position: also sweep positions.
        layers, heads, positions: sweep only these (default: all).
        corruption_hooks: forward hooks that make the corrupted run, e.g.
            :func:`embedding_noise_hook`; applied to every corrupted run.
        patches_per_pass: patches per forward pass (default: :func:`default_patches_per_pass`).

    Returns:
        A :class:`PatchingResult`; ``.score`` is 0 at the corrupted and 1 at the clean metric.
    """
    if direction not in ("denoise", "noise"):
        raise ValueError(f"direction must be 'denoise' or 'noise', not {direction!r}")
    clean_tokens = as_tokens(model, clean)
    corrupted_tokens = clean_tokens if corrupted is None else as_tokens(model, corrupted)
    check_same_shape(clean_tokens, corrupted_tokens)
    spec = patch_target(target, per_position) if isinstance(target, str) else target
    names = sweep_names(model, spec, layers)
    clean_logits, clean_cache = cached_run(model, clean_tokens, names)
    corrupted_logits, corrupted_cache = cached_run(model, corrupted_tokens, names, corruption_hooks)
    anchors = {"clean": metric_value(metric, clean_logits).item(),
               "corrupted": metric_value(metric, corrupted_logits).item()}
    if direction == "denoise":
        run = {"tokens": corrupted_tokens, "source": clean_cache, "fwd_hooks": corruption_hooks}
    else:
        run = {"tokens": clean_tokens, "source": corrupted_cache}
    values, coords = patch_sweep(model, metric=metric, target=spec, layers=layers, heads=heads,
                                 positions=positions, patches_per_pass=patches_per_pass, **run)
    return PatchingResult(values, tuple(coords), coords, **anchors)


def ablation_patching(model, tokens: str | Sequence[str] | Int[Tensor, "batch pos"],
                      metric: Metric, target: str | PatchTarget = "attn_out", *,
                      ablation: str = "zero",
                      reference: str | Sequence[str] | Int[Tensor, "batch pos"] | None = None,
                      permutation: Sequence[int] | Tensor | None = None, seed: int = 0,
                      per_position: bool = False, layers: Sequence[int] | None = None,
                      heads: Sequence[int] | None = None, positions: Sequence[int] | None = None,
                      patches_per_pass: int | None = None) -> PatchingResult:
    """Ablate one activation at a time (zero, mean or resample) and score the run.

    Args:
        model, metric, target, per_position, layers, heads, positions, patches_per_pass:
            as in :func:`activation_patching`.
        tokens: the prompts to run (the "clean" run).
        ablation: ``"zero"``, ``"mean"`` (over ``reference``, per position) or
            ``"resample"`` (prompt ``i`` gets reference prompt ``permutation[i]``'s value).
        reference: prompts for the mean / resample, with as many tokens as ``tokens``
            (default: ``tokens`` themselves).
        permutation: for ``"resample"``; default a seeded random derangement of the batch.
        seed: seeds the default permutation.

    Returns:
        A :class:`PatchingResult` whose ``clean`` is the unablated metric and whose
        ``corrupted`` is the metric with the target ablated at every swept layer at once.
    """
    tokens = as_tokens(model, tokens)
    spec = patch_target(target, per_position) if isinstance(target, str) else target
    names = sweep_names(model, spec, layers)
    logits, cache = cached_run(model, tokens, names)
    source = _ablation_source(model, tokens, cache, ablation, reference, permutation, seed)
    everything = run_with_patches(model, tokens, source, names)
    values, coords = patch_sweep(model, tokens, source, metric, spec, layers=layers, heads=heads,
                                 positions=positions, patches_per_pass=patches_per_pass)
    return PatchingResult(values, tuple(coords), coords, clean=metric_value(metric, logits).item(),
                          corrupted=metric_value(metric, everything).item())


def _ablation_source(model, tokens, acts, ablation, reference, permutation, seed):
    """The ablated values of ``acts`` (this run's activations at the swept hooks)."""
    if ablation not in ("zero", "mean", "resample"):
        raise ValueError(f"ablation must be 'zero', 'mean' or 'resample', not {ablation!r}")
    if ablation == "zero":
        return zero_source(acts)
    if reference is not None:
        reference = as_tokens(model, reference)
        if reference.shape[1] != tokens.shape[1]:
            raise ValueError(f"reference prompts have {reference.shape[1]} tokens but the "
                             f"patched prompts have {tokens.shape[1]}; use prompts of equal length")
        acts = cached_run(model, reference, list(acts))[1]
    if ablation == "mean":
        return mean_source(acts)
    n_ref = len(next(iter(acts.values())))
    perm = derangement(n_ref, seed) if permutation is None else torch.as_tensor(permutation)
    if perm.shape != (len(tokens),) or not ((0 <= perm) & (perm < n_ref)).all():
        raise ValueError(f"permutation must hold {len(tokens)} indices (one per prompt) "
                         f"into the {n_ref} reference prompts, got {perm.tolist()}")
    return resample_source(acts, perm.to(tokens.device))


def run_with_patches(model, tokens: Int[Tensor, "batch pos"], source: Mapping[str, Tensor],
                     names: Sequence[str], fwd_hooks: Sequence[FwdHook] = ()
                     ) -> Float[Tensor, "batch pos d_vocab"]:
    """Run with every hook in ``names`` wholly replaced by ``source`` (no gradients)."""
    hooks = [(name, partial(_patch_hook, source=source[name], jobs=[(0, ())], setter=set_all,
                            batch=len(tokens))) for name in check_hook_names(model, names)]
    with torch.no_grad():
        return model.run_with_hooks(tokens, fwd_hooks=[*fwd_hooks, *hooks])


def embedding_noise_hook(model, tokens: Int[Tensor, "batch pos"], positions: Sequence[int],
                         k: float = 3.0, seed: int = 0) -> FwdHook:
    """A ``hook_embed`` hook adding fixed Gaussian noise at ``positions`` (causal tracing).

    The noise has std ``k`` times the std of the token-embedding matrix ``W_E`` (Meng et
    al. use ``k = 3``); it is drawn once, so every run sees the same corruption, and each
    prompt in the batch gets its own draw.

    Returns:
        ``("hook_embed", hook_fn)``, for ``corruption_hooks=`` or ``model.run_with_hooks``.
    """
    positions = checked_indices("pos", positions, tokens.shape[1])
    std = k * model.W_E.detach().float().std().item()
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(len(tokens), len(positions), model.cfg.d_model, generator=gen) * std
    return "hook_embed", partial(_add_noise, noise=noise.to(model.cfg.device), positions=positions)


def _add_noise(act: Tensor, hook, *, noise: Tensor, positions: list[int]) -> Tensor:
    """Add ``noise`` ``[batch, len(positions), d_model]`` to every copy of the batch."""
    act = act.clone()
    copies = act.unflatten(0, (-1, noise.shape[0]))  # copy batch pos d_model
    copies[:, :, positions] += noise.to(act.dtype)
    return act


def causal_tracing(model, prompts: str | Sequence[str] | Int[Tensor, "batch pos"],
                   metric: Metric, noise_positions: Sequence[int],
                   target: str | PatchTarget = "resid_pre", *, k: float = 3.0, seed: int = 0,
                   per_position: bool = True, **kwargs) -> PatchingResult:
    """Corrupt ``noise_positions`` with embedding noise, then restore clean activations.

    Args:
        model, metric, target, per_position: as in :func:`activation_patching`.
        prompts: the clean prompts (e.g. "The Eiffel Tower is in").
        noise_positions: positions to corrupt (e.g. the subject's tokens).
        k, seed: noise scale (times the embedding std) and seed.
        **kwargs: passed on to :func:`activation_patching` (``layers``, ``positions``, ...).

    Returns:
        A :class:`PatchingResult` (clean = no noise, corrupted = noise, nothing restored).
    """
    tokens = as_tokens(model, prompts)
    noise = embedding_noise_hook(model, tokens, noise_positions, k, seed)
    return activation_patching(model, tokens, None, metric, target, direction="denoise",
                               per_position=per_position, corruption_hooks=[noise], **kwargs)
