"""Activation patching: which activations carry the information that decides the answer?

Run the model on a **clean** prompt ("When Mary and John went to the store, John gave a
drink to" → " Mary") and on a **corrupted** prompt that differs in one key detail
("... Mary gave a drink to" → " John"), and score each run with a *metric*, a function
from logits to a scalar (e.g. the logit difference ``logit(Mary) - logit(John)``). Then
run the model again with **one** activation swapped for its value from another run:

* **denoising** (``mode="denoise"``, the default): run *corrupted*, patch in one *clean*
  activation. A large recovery of the clean metric means this activation is
  *sufficient* to carry the difference.
* **noising** (``mode="noise"``): run *clean*, patch in one *corrupted* activation. A
  large drop means the activation is *necessary*.

Both report the **normalised score** ``(patched - corrupted) / (clean - corrupted)``
(:class:`~mi_helpers.core.results.SweepResult`): 0 is the corrupted run's metric and 1
the clean run's. Denoising looks for scores near 1; noising, for scores near 0.

The patched value need not come from another prompt: *ablations* replace an activation
with zeros, its mean or another prompt's value (:mod:`.ablation`), and *causal tracing*
corrupts the prompt with embedding noise (:mod:`.tracing`). All three use the one
routine here, :func:`patch_sweep`.

Patch targets are sites (:data:`~mi_helpers.core.hooks.SITES`) swept per layer;
``per_position=True`` also sweeps positions. Head sites are always swept per head:

==============================================  ==================  ========================
target                                          whole layer         ``per_position=True``
==============================================  ==================  ========================
``resid_pre`` ``resid_post``                    ``[layer]``         ``[layer, pos]``
``attn_out`` ``mlp_out``                        ``[layer]``         ``[layer, pos]``
``z`` ``q`` ``k`` ``v``                         ``[layer, head]``   ``[layer, pos, head]``
``pattern``                                     ``[layer, head]``   ``[layer, dest_pos, head]``
==============================================  ==================  ========================

How it runs: a :class:`PatchTarget` is a site and a *setter*, a few-line function that
copies the source into an activation at one index (``set_pos``, ``set_head``, ...).
Several patches share a forward pass (:func:`default_patches_per_pass`): the batch is
repeated and copy ``i`` gets patch ``i``. Only the hooks a sweep needs are cached.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..core.activations import FwdHook, run_cached
from ..core.checks import as_tokens, check_same_shape, checked_indices
from ..core.hooks import READ_ONLY, check_writable_hooks, hook_name
from ..core.results import SweepResult

__all__ = ["Metric", "PatchTarget", "TARGETS", "patch_target", "patch_sweep",
           "activation_patching", "run_with_patches", "metric_value", "default_patches_per_pass",
           "set_all", "set_pos", "set_head", "set_pos_head", "set_pattern_head",
           "set_pattern_dest_head"]

#: A metric: logits ``[batch, pos, d_vocab]`` -> a scalar tensor.
Metric = Callable[[Float[Tensor, "batch pos d_vocab"]], Float[Tensor, ""]]
Setter = Callable[[Tensor, Tensor, tuple[int, ...]], None]

# (not resid_mid: in transformer-lens 4.3's bridges an edit there never reaches the residual
# stream; see mi_helpers.core.hooks.READ_ONLY)
TARGETS = ("resid_pre", "resid_post", "attn_out", "mlp_out", "z", "q", "k", "v",
           "pattern")
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
        site: a per-layer site of :data:`~mi_helpers.core.hooks.SITES`, e.g. ``"z"``.
        axes: the axes swept after ``layer``, in the order of the setter's ``index``.
        dims: for each of ``axes``, the activation dimension it indexes (its size is the
            number of values swept).
        setter: writes the source into the activation at one index (see ``set_*``).
    """

    site: str
    axes: tuple[str, ...]
    dims: tuple[int, ...]
    setter: Setter

    def __post_init__(self):
        hook_name(self.site, 0)  # an unknown or model-wide site fails here, listing the sites
        if len(self.axes) != len(self.dims):
            raise ValueError(f"give one activation dimension per swept axis: axes {self.axes}, "
                             f"dims {self.dims}")

    def hook(self, layer: int) -> str:
        """This target's hook name at ``layer``."""
        return hook_name(self.site, layer)


_LAYOUTS = {  # (kind of activation, per_position) -> (axes, dims, setter)
    ("vector", False): ((), (), set_all),
    ("vector", True): (("pos",), (1,), set_pos),
    ("head", False): (("head",), (2,), set_head),
    ("head", True): (("pos", "head"), (1, 2), set_pos_head),
    ("pattern", False): (("head",), (1,), set_pattern_head),
    ("pattern", True): (("dest_pos", "head"), (2, 1), set_pattern_dest_head),
}


def patch_target(target: str | PatchTarget, per_position: bool = False) -> PatchTarget:
    """The :class:`PatchTarget` for a name in :data:`TARGETS` (a ``PatchTarget`` passes through).

    Raises:
        ValueError: the name is not a known target (the message lists them).
    """
    if isinstance(target, PatchTarget):
        return target
    if target in READ_ONLY:
        raise ValueError(f"cannot patch {target!r}: {READ_ONLY[target]}")
    if target not in TARGETS:
        raise ValueError(f"unknown patch target {target!r}; choose one of {list(TARGETS)} "
                         f"or build a PatchTarget(site, axes, dims, setter) yourself")
    kind = "pattern" if target == "pattern" else "head" if target in "zqkv" else "vector"
    return PatchTarget(target, *_LAYOUTS[kind, per_position])


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
        target: a name in :data:`TARGETS` or a :class:`PatchTarget`.
        per_position: also sweep positions (ignored for a ``PatchTarget``).
        layers, heads, positions: sweep only these (default: all; negatives count back).
        fwd_hooks: hooks applied to every run, e.g. a corruption; they must broadcast over
            a batch made of repeated copies of ``tokens``.
        patches_per_pass: patches per forward pass (default: :func:`default_patches_per_pass`).

    Returns:
        The metric after each patch, shaped like the grid, and the grid's ``coords``.
    """
    target = patch_target(target, per_position)
    names = sweep_names(model, target, layers)
    _check_source(model, source, names, len(tokens))
    coords = _sweep_coords(model, target, source, layers, heads, positions)
    indices = list(itertools.product(*coords.values()))
    per_pass = patches_per_pass or default_patches_per_pass(model, tokens)
    values = []
    for start in range(0, len(indices), per_pass):
        chunk = indices[start:start + per_pass]
        logits = _run_patched(model, tokens, source, target, chunk, fwd_hooks)
        values += [metric_value(metric, part) for part in logits.split(len(tokens))]
    return torch.stack(values).reshape([len(v) for v in coords.values()]), coords


def _check_source(model, source: Mapping[str, Tensor], names: Sequence[str], batch: int) -> None:
    """Raise unless ``source`` holds each hook in ``names`` with a batch of ``batch`` or 1."""
    for name in check_writable_hooks(model, names):
        if name not in source:
            raise KeyError(f"the source has no activation for {name!r}; cache it first, e.g. "
                           f"run_cached(model, tokens, sweep_names(model, target))")
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
        jobs[target.hook(layer)].append((copy, tuple(index)))
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
        setter(copies[copy], source.to(act.device, act.dtype), index)
    return act


def _sweep_coords(model, target: PatchTarget, source: Mapping[str, Tensor],
                  layers: Sequence[int] | None, heads: Sequence[int] | None,
                  positions: Sequence[int] | None) -> dict[str, list[int]]:
    """The values swept on each axis: ``{"layer": [...], "pos": [...], ...}``."""
    swept = ("layer", *target.axes)
    if heads is not None and "head" not in swept:
        raise ValueError(f"heads= does not apply: this target sweeps {swept}")
    if positions is not None and not {"pos", "dest_pos"} & set(swept):
        raise ValueError(f"positions= does not apply: this target sweeps {swept}; "
                         f"pass per_position=True to sweep positions")
    coords = {"layer": checked_indices("layer", layers, model.cfg.n_layers)}
    example = source[target.hook(coords["layer"][0])]
    wanted = {"head": heads, "pos": positions, "dest_pos": positions}
    for axis, dim in zip(target.axes, target.dims):
        coords[axis] = checked_indices(axis, wanted[axis], example.shape[dim])
    return coords


def metric_value(metric: Metric, logits: Float[Tensor, "batch pos d_vocab"]) -> Float[Tensor, ""]:
    """``metric(logits)`` as a detached float scalar.

    Raises:
        ValueError: the metric returned more than one number, or not a finite one.
    """
    value = torch.as_tensor(metric(logits))
    if value.ndim != 0:
        raise ValueError(f"the metric must return a scalar, but it returned shape "
                         f"{tuple(value.shape)}; reduce it over the batch, e.g. end it "
                         f"with `.mean()`")
    if not torch.isfinite(value):
        raise ValueError(f"the metric returned {value.item()}; it must be a finite number")
    return value.detach().float().cpu()


def sweep_names(model, target: PatchTarget, layers: Sequence[int] | None = None) -> list[str]:
    """The hook names a sweep patches: the target's hook at each swept layer."""
    layers = checked_indices("layer", layers, model.cfg.n_layers)
    return [target.hook(layer) for layer in layers]


def run_with_patches(model, tokens: Int[Tensor, "batch pos"], source: Mapping[str, Tensor],
                     hooks: Sequence[str], fwd_hooks: Sequence[FwdHook] = ()
                     ) -> Float[Tensor, "batch pos d_vocab"]:
    """Run with every hook in ``hooks`` wholly replaced by ``source`` (no gradients)."""
    patches = [(name, partial(_patch_hook, source=source[name], jobs=[(0, ())], setter=set_all,
                              batch=len(tokens))) for name in check_writable_hooks(model, hooks)]
    with torch.no_grad():
        return model.run_with_hooks(tokens, fwd_hooks=[*fwd_hooks, *patches])


# ---- clean vs corrupted -----------------------------------------------------------------

def activation_patching(model, clean: str | Sequence[str] | Int[Tensor, "batch pos"],
                        corrupted: str | Sequence[str] | Int[Tensor, "batch pos"] | None,
                        metric: Metric, target: str | PatchTarget = "resid_pre", *,
                        mode: str = "denoise", per_position: bool = False,
                        layers: Sequence[int] | None = None, heads: Sequence[int] | None = None,
                        positions: Sequence[int] | None = None,
                        corruption_hooks: Sequence[FwdHook] = (),
                        patches_per_pass: int | None = None) -> SweepResult:
    """Patch every layer (x position x head) of ``target`` between a clean and a corrupted run.

    Args:
        model: a TransformerLens model (or bridge in compatibility mode).
        clean, corrupted: prompts or ``[batch, pos]`` tokens of the same shape;
            ``corrupted=None`` reuses the clean tokens (corrupt with ``corruption_hooks``).
        metric: logits ``[batch, pos, d_vocab]`` -> scalar tensor, e.g. a mean logit difference.
        target: a name in :data:`TARGETS` (see the module table) or a :class:`PatchTarget`.
        mode: ``"denoise"`` (run corrupted, patch in clean) or ``"noise"`` (the reverse).
        per_position: also sweep positions.
        layers, heads, positions: sweep only these (default: all).
        corruption_hooks: forward hooks that make the corrupted run, e.g. embedding noise
            (:func:`~mi_helpers.circuits.tracing.embedding_noise_hook`).
        patches_per_pass: patches per forward pass (default: :func:`default_patches_per_pass`).

    Returns:
        A :class:`~mi_helpers.core.results.SweepResult`; ``.score`` is 0 at the corrupted
        and 1 at the clean metric.
    """
    if mode not in ("denoise", "noise"):
        raise ValueError(f"mode must be 'denoise' or 'noise', not {mode!r}")
    clean_tokens = as_tokens(model, clean)
    corrupted_tokens = clean_tokens if corrupted is None else as_tokens(model, corrupted)
    check_same_shape(clean_tokens, corrupted_tokens)
    spec = patch_target(target, per_position)
    names = sweep_names(model, spec, layers)
    clean_logits, clean_cache = run_cached(model, clean_tokens, names)
    corrupted_logits, corrupted_cache = run_cached(model, corrupted_tokens, names, corruption_hooks)
    anchors = {"clean": metric_value(metric, clean_logits).item(),
               "corrupted": metric_value(metric, corrupted_logits).item()}
    if mode == "denoise":
        run = {"tokens": corrupted_tokens, "source": clean_cache, "fwd_hooks": corruption_hooks}
    else:
        run = {"tokens": clean_tokens, "source": corrupted_cache}
    values, coords = patch_sweep(model, metric=metric, target=spec, layers=layers, heads=heads,
                                 positions=positions, patches_per_pass=patches_per_pass, **run)
    return SweepResult(values, tuple(coords), coords, method=f"activation patching ({mode})",
                       **anchors)
