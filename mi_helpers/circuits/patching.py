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
Independent patches share a pass: the batch is repeated and copy ``i`` gets patch ``i``,
as many copies as fit in ``memory_budget`` (:func:`default_patches_per_pass`). By default
(``replay=True``) the patched passes are *replayed* from the model's weights, each
starting at the patched layer from the cached run (:mod:`.replay`); a model or hook the
replay does not support runs through the model's own hooks instead, with the same
results (tested). Only the hooks a sweep needs are cached.
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
from ..core.metrics import PositionMetric, metric_positions
from ..core.results import SweepResult
from .edge_memory import DEFAULT_MEMORY_BUDGET, copies_per_pass
from .replay import Replay, ReplayState, replayer

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
                patches_per_pass: int | None = None, memory_budget: int = DEFAULT_MEMORY_BUDGET,
                replay: bool = True) -> tuple[Tensor, dict[str, list[int]]]:
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
        patches_per_pass: patches per forward pass (default: as many as fit, see
            :func:`default_patches_per_pass`).
        memory_budget: bytes one pass may use.
        replay: replay the patched passes from the cached run (:mod:`.replay`) where the
            model and ``fwd_hooks`` allow it; ``False`` runs every pass through the
            model's hooks. The results agree either way.

    Returns:
        The metric after each patch, shaped like the grid, and the grid's ``coords``.
    """
    target = patch_target(target, per_position)
    names = sweep_names(model, target, layers)
    _check_source(model, source, names, len(tokens))
    coords = _sweep_coords(model, target, source, layers, heads, positions)
    rp = replayer(model, fwd_hooks, target.site, replay)
    state = None if rp is None else rp.start(tokens, fwd_hooks)[0]
    values = _sweep(model, tokens, source, metric, target, coords, fwd_hooks,
                    patches_per_pass, memory_budget, rp, state)
    return values, coords


def _sweep(model, tokens, source, metric, target, coords, fwd_hooks, patches_per_pass,
           memory_budget, rp: Replay | None, state: ReplayState | None) -> Tensor:
    """The metric after each patch of the grid ``coords``: replayed from ``state`` with
    ``rp``, or (``rp`` None) through the model's hooks."""
    indices = list(itertools.product(*coords.values()))
    per_pass = default_patches_per_pass(model, tokens, patches_per_pass, memory_budget,
                                        "hooks" if rp is None else "replay")
    values, read = [], metric_positions(metric, tokens)
    # a replayed pass starts at its layer, so its copies keep to one layer
    groups = ([list(g) for _, g in itertools.groupby(indices, key=lambda index: index[0])]
              if rp is not None else [indices])
    for group in groups:
        for start in range(0, len(group), per_pass):
            chunk = group[start:start + per_pass]
            if rp is None:
                logits = _run_patched(model, tokens, source, target, chunk, fwd_hooks)
            else:
                with rp.reading_positions(read):
                    logits = _replay_patched(rp, state, source, target, chunk)
            values += [metric_value(metric, part) for part in logits.split(len(tokens))]
    return torch.stack(values).reshape([len(v) for v in coords.values()])


def _check_source(model, source: Mapping[str, Tensor], names: Sequence[str], batch: int) -> None:
    """Raise unless ``source`` holds each hook in ``names`` with a batch of ``batch`` or 1."""
    for name in check_writable_hooks(model, names):
        if name not in source:
            raise KeyError(f"the source has no activation for {name!r}; cache it first, e.g. "
                           f"run_cached(model, tokens, sweep_names(model, target))")
        if source[name].shape[0] not in (1, batch):
            raise ValueError(f"source[{name!r}] has a batch of {source[name].shape[0]} but the "
                             f"patched run has {batch} prompts; use as many prompts (or 1)")


def default_patches_per_pass(model, tokens: Int[Tensor, "batch pos"],
                             patches_per_pass: int | None = None,
                             memory_budget: int = DEFAULT_MEMORY_BUDGET,
                             kind: str = "hooks") -> int:
    """How many patches share one forward pass: ``patches_per_pass`` if given, else as
    many copies of ``tokens`` as fit in a pass of ``kind`` (``"hooks"`` or ``"replay"``)
    on the model's device (:func:`~.edge_memory.copies_per_pass`); at least one.

    Raises:
        MemoryError: the requested patches per pass would exceed ``memory_budget``.
    """
    return copies_per_pass(model, tokens, kind, patches_per_pass, memory_budget,
                           "a patching sweep", one_always_fits=True)


def _run_patched(model, tokens, source, target, chunk, fwd_hooks) -> Tensor:
    """One forward pass over ``len(chunk)`` copies of the batch; copy ``i`` gets ``chunk[i]``."""
    jobs = defaultdict(list)
    for copy, (layer, *index) in enumerate(chunk):
        jobs[target.hook(layer)].append((copy, tuple(index)))
    hooks = [(name, partial(_patch_hook, source=source[name], jobs=todo, setter=target.setter,
                            batch=len(tokens))) for name, todo in jobs.items()]
    with torch.no_grad():
        return model.run_with_hooks(tokens.repeat(len(chunk), 1), fwd_hooks=[*fwd_hooks, *hooks])


def _replay_patched(rp: Replay, state: ReplayState, source, target, chunk) -> Tensor:
    """The replayed pass over ``len(chunk)`` copies, all patched at one layer."""
    layer = chunk[0][0]
    base = rp.activation(state, target.site, layer)
    acts = base.repeat(len(chunk), *[1] * (base.ndim - 1))
    copies = acts.unflatten(0, (len(chunk), len(base)))
    patch = source[target.hook(layer)].to(acts.device, acts.dtype)
    for copy, (_, *index) in enumerate(chunk):
        target.setter(copies[copy], patch, tuple(index))
    return rp.logits_after(state, target.site, layer, acts)


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
        ValueError: the metric returned more than one number, or not a finite one, or a
            :class:`~mi_helpers.core.metrics.PositionMetric` read NaN logits outside its
            positions.
    """
    value = torch.as_tensor(metric(logits))
    if isinstance(metric, PositionMetric) and not torch.isfinite(value).all() \
            and logits.isnan().any():
        raise ValueError("the metric read logits outside its declared positions (a sweep that "
                         "unembeds only there leaves the rest NaN): give PositionMetric the "
                         "positions it reads, or pass a plain function")
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
                        patches_per_pass: int | None = None,
                        memory_budget: int = DEFAULT_MEMORY_BUDGET,
                        replay: bool = True) -> SweepResult:
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
        patches_per_pass: patches per forward pass (default: as many as fit in
            ``memory_budget``, see :func:`default_patches_per_pass`).
        memory_budget: bytes one pass may use.
        replay: replay patched passes from the cached run where possible (see
            :func:`patch_sweep`); ``False`` runs them through the model's hooks.

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
    denoise = mode == "denoise"
    rp = replayer(model, corruption_hooks if denoise else (), spec.site, replay)
    runs = {"clean": (clean_tokens, ()), "corrupted": (corrupted_tokens, corruption_hooks)}
    patched, unpatched = ("corrupted", "clean") if denoise else ("clean", "corrupted")
    tokens, hooks = runs[patched]
    out = {patched: _cached_run(model, rp, tokens, (), hooks)}  # first: it checks the replay
    out[unpatched] = _source_run(model, rp, *runs[unpatched], spec, names)
    anchors = {name: metric_value(metric, out[name][0]).item() for name in runs}
    source, state = out[unpatched][1], out[patched][2]
    _check_source(model, source, names, len(tokens))
    coords = _sweep_coords(model, spec, source, layers, heads, positions)
    values = _sweep(model, tokens, source, metric, spec, coords, hooks, patches_per_pass,
                    memory_budget, rp, state)
    return SweepResult(values, tuple(coords), coords, method=f"activation patching ({mode})",
                       **anchors)


def _source_run(model, rp: Replay | None, tokens: Tensor, fwd_hooks: Sequence[FwdHook],
                target: PatchTarget, names: Sequence[str]
                ) -> tuple[Tensor, dict[str, Tensor], None]:
    """The logits and activations at ``names`` of the run patches are taken from: replayed
    from the weights where the run just checked vouches for it, else the model's own."""
    state = None if rp is None or fwd_hooks else rp.run_from_weights(tokens)
    if state is None:
        return *run_cached(model, tokens, names, fwd_hooks), None
    layers = {target.hook(layer): layer for layer in range(model.cfg.n_layers)}
    return state.logits, {name: rp.activation(state, target.site, layers[name])
                          for name in names}, None


def _cached_run(model, rp: Replay | None, tokens: Tensor, names: Sequence[str],
                fwd_hooks: Sequence[FwdHook] = ()
                ) -> tuple[Tensor, dict[str, Tensor], ReplayState | None]:
    """The logits and activations at ``names`` of one run, and its replay state if ``rp``."""
    if rp is None:
        return *run_cached(model, tokens, names, fwd_hooks), None
    if not names:
        state, logits = rp.start(tokens, fwd_hooks)
        return logits, {}, state
    state, logits, cache = rp.run(tokens, fwd_hooks, names)
    return logits, cache, state
