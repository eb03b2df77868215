"""Path patching: the effect of one head on another *along one path*, everything else frozen.

Activation patching (:mod:`mi_helpers.patching`) asks whether an activation matters; it
cannot say *through which later component* it acts. Path patching (Wang et al., 2022, the
IOI paper; Goldowsky-Dill et al., 2023) asks how much of the answer flows from **sender**
heads to **receivers** (a set of later heads' queries, keys or values, or the logits).
With clean prompts (the behaviour) and corrupted prompts (e.g. IOI's "ABC" prompts):

1. Run clean and corrupted once and cache every head's output ``z``.
2. **Sender run**: run *clean*, with the senders' ``z`` replaced by their *corrupted*
   values and every other head's ``z`` **frozen** to its clean value. MLPs and layer
   norms are recomputed. The only change from clean that reaches the receivers is the
   senders' output, carried by the residual stream directly (and through MLPs). Record
   the receivers' inputs: their ``hook_q``/``hook_k``/``hook_v`` for the receiver heads.
   When the receiver is the logits, this run's metric is the answer.
3. **Receiver run**: run *clean* again, with only the receivers' ``q``/``k``/``v``
   replaced by the values from step 2 (everything downstream recomputes). Its metric is
   the path's effect.

This is the *noising* direction: the score ``(patched - corrupted) / (clean - corrupted)``
is 1 when the path does not matter and drops towards 0 (or below) when it carries the
behaviour; the IOI paper reports ``patched / clean - 1`` (``SweepResult.relative``).

Two identity checks hold exactly (tested): patching **no** sender gives the clean metric,
and patching a sender with its own clean value (corrupted = clean) changes nothing.

Sweeps (:func:`path_patching`) batch many sender sets into one forward pass, as
:func:`mi_helpers.circuits.patching.patch_sweep` does: copy ``i`` of the batch gets
sender ``i``, as many copies as fit in ``memory_budget``. By default the passes are
replayed from the cached clean run (:mod:`.replay`): the sender run starts at the first
sender's layer and computes no attention at all (every head's output is fixed), only
MLPs; the receiver run starts at the first receiver's layer. Results are
:class:`~mi_helpers.core.results.SweepResult` values, like activation patching's.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..core.activations import run_cached
from ..core.checks import as_tokens, check_positions, check_same_shape
from ..core.heads import Head, check_heads
from ..core.hooks import hook_name, layer_hooks
from ..core.metrics import metric_positions
from ..core.results import SweepResult
from .edge_memory import DEFAULT_MEMORY_BUDGET
from .patching import Metric, default_patches_per_pass, metric_value
from .edge_model import Stage
from .replay import Replay, ReplayState, replayer

__all__ = ["path_patching", "Receiver"]

#: A receiver: ``(layer, head, "q" | "k" | "v")``.
Receiver = tuple[int, int, str]
RECEIVER_KINDS = ("q", "k", "v")


def _check_receivers(model, receivers: Sequence[Receiver] | str) -> list[Receiver] | str:
    """Validate receivers: ``"logits"`` or ``(layer, head, "q"|"k"|"v")`` triples."""
    if isinstance(receivers, str):
        if receivers != "logits":
            raise ValueError(f"receivers must be 'logits' or a list of (layer, head, 'q'|'k'|'v'), "
                             f"not {receivers!r}")
        return receivers
    if not receivers:
        raise ValueError("no receivers given: pass 'logits' or (layer, head, 'q'|'k'|'v') triples")
    out = []
    for triple in receivers:
        if len(triple) != 3 or triple[2] not in RECEIVER_KINDS:
            raise ValueError(f"a receiver is (layer, head, 'q'|'k'|'v'), got {triple!r}")
        (head,) = check_heads(model, [tuple(triple[:2])], "receiver")
        out.append((head.layer, head.head, triple[2]))
    return out


def path_patching(model, clean: Sequence[str] | Int[Tensor, "batch pos"],
                  corrupted: Sequence[str] | Int[Tensor, "batch pos"], metric: Metric,
                  receivers: Sequence[Receiver] | str = "logits", *,
                  senders: Sequence[Sequence[Head]] | None = None,
                  receiver_positions: Int[Tensor, "batch"] | None = None,
                  patches_per_pass: int | None = None,
                  memory_budget: int = DEFAULT_MEMORY_BUDGET, replay: bool = True) -> SweepResult:
    """Patch each sender set's corrupted output into the clean run, along the path to ``receivers``.

    Args:
        model: a TransformerLens model (or bridge in compatibility mode).
        clean, corrupted: prompts or ``[batch, pos]`` tokens of the same shape.
        metric: logits ``[batch, pos, d_vocab]`` -> scalar, e.g. ``dataset.metric``.
        receivers: ``"logits"`` (the path through the residual stream, and MLPs, straight
            to the output) or ``(layer, head, "q"|"k"|"v")`` triples.
        senders: sender sets, each a list of ``(layer, head)`` patched together (``[]`` is
            the identity). Default: every single head in a layer before the first receiver,
            returned as a ``[layer, head]`` grid (non-sender cells are NaN).
        receiver_positions: ``[batch]``: patch the receivers only at this position of each
            prompt (e.g. the IOI "end" token); default every position.
        patches_per_pass: sender sets per forward pass (default: as many as fit in
            ``memory_budget``, as for activation patching).
        memory_budget: bytes one pass may use.
        replay: replay the passes from the cached clean run where the model allows it;
            ``False`` runs them through the model's hooks. The results agree either way.

    Returns:
        A :class:`~mi_helpers.core.results.SweepResult`: axes ``("layer", "head")`` for
        the default grid, else ``("sender_set",)`` with the sender sets as coordinates.

    Raises:
        ValueError: tokens of different shapes, a bad receiver, a non-scalar metric.
        IndexError: a layer or head out of range.
    """
    clean_tokens, corrupted_tokens = as_tokens(model, clean), as_tokens(model, corrupted)
    check_same_shape(clean_tokens, corrupted_tokens)
    receivers = _check_receivers(model, receivers)
    first_receiver = model.cfg.n_layers if receivers == "logits" else min(r[0] for r in receivers)
    grid = senders is None
    if grid:
        senders = [[Head(layer, head)] for layer in range(first_receiver)
                   for head in range(model.cfg.n_heads)]
    if not senders:
        raise ValueError("no sender heads: the receivers are in layer 0, so nothing comes "
                         "before them; choose later receivers")
    sender_sets = [tuple(check_heads(model, s, "sender")) for s in senders]
    for s in sender_sets:
        late = [h for h in s if h[0] >= first_receiver]
        if late:
            raise ValueError(f"senders {late} are not before the first receiver layer "
                             f"{first_receiver}; a path runs from earlier to later layers")
    if receiver_positions is not None:
        receiver_positions = check_positions(receiver_positions, *clean_tokens.shape)
    rp = replayer(model, (), "z", replay)
    runs, anchors = _clean_and_corrupted(model, rp, clean_tokens, corrupted_tokens, metric)
    per_pass = default_patches_per_pass(model, clean_tokens, patches_per_pass, memory_budget,
                                        "hooks" if rp is None else "replay")
    values, read = [], metric_positions(metric, clean_tokens)
    for start in range(0, len(sender_sets), per_pass):
        chunk = sender_sets[start:start + per_pass]
        if rp is not None:
            with rp.reading_positions(read):
                logits = _replayed(rp, *runs, chunk, receivers, receiver_positions)
        else:
            logits, receiver_inputs = _sender_run(model, clean_tokens, *runs, chunk, receivers)
            if receivers != "logits":
                logits = _receiver_run(model, clean_tokens, receiver_inputs, receivers,
                                       len(chunk), receiver_positions)
        values += [metric_value(metric, part) for part in logits.split(len(clean_tokens))]
    values = torch.stack(values)
    method = f"path patching to {'the logits' if receivers == 'logits' else 'heads'}"
    if not grid:
        return SweepResult(values, ("sender_set",), {"sender_set": sender_sets}, method=method,
                           **anchors)
    full = torch.full((model.cfg.n_layers, model.cfg.n_heads), float("nan"))
    full[:first_receiver] = values.reshape(first_receiver, model.cfg.n_heads)
    coords = {"layer": list(range(model.cfg.n_layers)), "head": list(range(model.cfg.n_heads))}
    return SweepResult(full, ("layer", "head"), coords, method=method, **anchors)


def _clean_and_corrupted(model, rp: Replay | None, clean_tokens, corrupted_tokens, metric):
    """Both runs (every layer's ``z``, or replay states) and the metric's two anchors."""
    if rp is None:
        z_names = layer_hooks(model, "z")
        (clean_logits, clean), (corrupted_logits, corrupted) = (
            run_cached(model, tokens, z_names) for tokens in (clean_tokens, corrupted_tokens))
    else:
        clean, clean_logits = rp.start(clean_tokens)
        corrupted = rp.run_from_weights(corrupted_tokens)  # a checked run vouches for it
        if corrupted is None:
            corrupted, corrupted_logits, _ = rp.run(corrupted_tokens)
        else:
            corrupted_logits = corrupted.logits
    anchors = {"clean": metric_value(metric, clean_logits).item(),
               "corrupted": metric_value(metric, corrupted_logits).item()}
    return (clean, corrupted), anchors


def _sender_run(model, tokens, clean_z, corrupted_z, chunk, receivers):
    """Step 2: clean run, every head frozen to clean but copy ``i``'s senders corrupted."""
    batch = len(tokens)
    hooks = []
    for layer in range(model.cfg.n_layers):
        name = hook_name("z", layer)
        jobs = [(copy, head) for copy, s in enumerate(chunk) for (lay, head) in s if lay == layer]
        hooks.append((name, partial(_freeze_z, clean=clean_z[name], corrupted=corrupted_z[name],
                                    jobs=jobs, batch=batch)))
    recorded: dict[str, Tensor] = {}
    if receivers != "logits":
        for name in {hook_name(kind, layer) for layer, _, kind in receivers}:
            hooks.append((name, partial(_record, store=recorded)))
    with torch.no_grad():
        logits = model.run_with_hooks(tokens.repeat(len(chunk), 1), fwd_hooks=hooks)
    return logits, recorded


def _freeze_z(z: Float[Tensor, "copies_batch pos head d_head"], hook, *, clean: Tensor,
              corrupted: Tensor, jobs: list[tuple[int, int]], batch: int) -> Tensor:
    """Every copy gets the clean ``z``; copy ``c`` gets the corrupted ``z`` of head ``h``."""
    out = clean.repeat(z.shape[0] // batch, 1, 1, 1).to(z.dtype)
    copies = out.unflatten(0, (-1, batch))  # copy batch pos head d_head
    for copy, head in jobs:
        copies[copy, :, :, head] = corrupted[:, :, head]
    return out


def _record(act: Tensor, hook, *, store: dict) -> None:
    """Keep a copy of this activation under its hook name."""
    store[hook.name] = act.detach().clone()


def _receiver_run(model, tokens, receiver_inputs, receivers, n_copies, positions):
    """Step 3: clean run with the receivers' q/k/v replaced by the sender run's values."""
    hooks = []
    by_hook: dict[str, list[int]] = {}
    for layer, head, kind in receivers:
        by_hook.setdefault(hook_name(kind, layer), []).append(head)
    for name, heads in by_hook.items():
        hooks.append((name, partial(_set_heads, source=receiver_inputs[name], heads=heads,
                                    positions=positions, batch=len(tokens))))
    with torch.no_grad():
        return model.run_with_hooks(tokens.repeat(n_copies, 1), fwd_hooks=hooks)


def _set_heads(act: Float[Tensor, "copies_batch pos head d_head"], hook, *, source: Tensor,
               heads: list[int], positions: Tensor | None, batch: int) -> Tensor:
    """Copy ``source`` into ``act`` for ``heads`` (at each prompt's ``positions`` if given)."""
    act = act.clone()
    if positions is None:
        act[:, :, heads] = source[:, :, heads].to(act.dtype)
        return act
    rows = torch.arange(act.shape[0], device=act.device)
    pos = positions.to(act.device).repeat(act.shape[0] // batch)
    for head in heads:
        act[rows, pos, head] = source[rows, pos, head].to(act.dtype)
    return act


# ---- the same two runs, replayed from the cached clean run ---------------------------------

def _replayed(rp: Replay, clean: ReplayState, corrupted: ReplayState, chunk, receivers,
              positions: Tensor | None) -> Tensor:
    """Logits of copy ``i`` of the clean run with sender set ``chunk[i]``'s path patched."""
    n, batch = len(chunk), len(clean.embed)

    def frozen(stage: Stage) -> Tensor | None:  # every head's z clean, the senders' corrupted
        if stage.kind != "attn":
            return None
        z = clean.z[stage.layer].repeat(n, 1, 1, 1)
        copies = z.unflatten(0, (n, batch))
        for copy, senders in enumerate(chunk):
            for layer, head in senders:
                if layer == stage.layer:
                    copies[copy, :, :, head] = corrupted.z[layer][:, :, head]
        return rp.attn_out(stage.layer, z)

    targets = [rp.cfg.n_layers] if receivers == "logits" else [r[0] for r in receivers]
    first = min([layer for senders in chunk for layer, _ in senders] + targets)
    start = rp.index[Stage("attn", first)] if first < rp.cfg.n_layers else len(rp.stages) - 1
    x = (clean.resid_pre[first] if first < rp.cfg.n_layers else clean.final).repeat(n, 1, 1)
    if receivers == "logits":
        return rp.forward(x, start=start, replace=frozen)
    entering: dict[int, Tensor] = {}

    def record(stage: Stage, resid: Tensor) -> None:
        if stage.kind == "attn" and stage.layer in targets:
            entering[stage.layer] = resid

    rp.forward(x, start=start, stop=rp.index[Stage("attn", max(targets))] + 1, replace=frozen,
               record=record)
    inputs = {layer: rp.qkv(layer, resid) for layer, resid in entering.items()}
    rows = torch.arange(n * batch)
    pos = None if positions is None else positions.to(x.device).repeat(n)

    def edit(stage: Stage, qkv: Tensor) -> Tensor:  # the receivers read the sender run
        for layer, head, kind in receivers:
            if layer == stage.layer:
                channel = RECEIVER_KINDS.index(kind)
                if pos is None:
                    qkv[:, :, channel, head] = inputs[layer][:, :, channel, head]
                else:
                    qkv[rows, pos, channel, head] = inputs[layer][rows, pos, channel, head]
        return qkv

    low = min(targets)
    x = clean.resid_pre[low].repeat(n, 1, 1)
    return rp.forward(x, start=rp.index[Stage("attn", low)], edit_qkv=edit)
