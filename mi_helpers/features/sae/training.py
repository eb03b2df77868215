"""Training an SAE: the loop that fits an SAE to a stream of activation batches.

:func:`train_sae` takes any iterator of ``[batch d_in]`` batches (e.g. an
:class:`~mi_helpers.features.sae.buffer.ActivationBuffer`) and runs Adam with the
settings of an :class:`SAETrainConfig`:

* ``b_dec`` starts at the geometric median of the first batch (a few Weiszfeld steps)
  or its mean, so the SAE begins by reconstructing the "average" activation;
* the learning rate warms up linearly, then decays linearly to 0 over the last steps;
  the sparsity coefficient (L1 or L0) warms up from 0 (early dense latents can spread out
  before the penalty bites, which leaves fewer dead latents);
* for methods that need it (``sae.unit_norm_decoder``) the gradient along each decoder
  row is removed before the step and the rows are renormalised after it;
* latents that have not fired for ``dead_after`` steps are *dead*; with
  ``resample_every`` they are re-initialised towards inputs the SAE reconstructs badly
  (Bricken et al., 2023), with their Adam state reset;
* training never fails silently: a non-finite loss (:class:`NonFiniteLossError`), a
  loss far above its starting value (:class:`DivergedError`) or no latent firing for
  many steps (:class:`CollapsedError`) stops it with a message naming the step and a
  likely fix, after putting back the last good parameters.

It runs on the activations' device; ``autocast=True`` uses bfloat16 autocast (CUDA only).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields, replace

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from ...core.training import (CollapsedError, DivergedError, NonFiniteLossError, TrainingError,
                              TrainingGuard)
from .base import SAE

__all__ = ["SAETrainConfig", "train_sae", "TrainHistory", "TrainingError", "NonFiniteLossError",
           "DivergedError", "CollapsedError", "geometric_median", "init_b_dec",
           "resample_dead_latents", "lr_factor"]


# ---- initialisation -----------------------------------------------------------------------

def geometric_median(points: Float[Tensor, "batch d_in"], n_iter: int = 5
                     ) -> Float[Tensor, "d_in"]:
    """The point minimising the summed distance to ``points`` (Weiszfeld's iterations,
    starting from the mean). Unlike the mean, it is robust to a few huge activations."""
    median = points.mean(0)
    for _ in range(n_iter):
        weights = 1.0 / (points - median).norm(dim=1).clamp_min(1e-8)
        median = weights @ points / weights.sum()
    return median


@torch.no_grad()
def init_b_dec(sae: SAE, x: Float[Tensor, "batch d_in"], method: str = "geometric_median"
               ) -> None:
    """Set ``sae.b_dec`` to the geometric median or the mean of a sample ``x``."""
    if method not in ("geometric_median", "mean"):
        raise ValueError(f"b_dec_init must be 'geometric_median', 'mean' or None, got "
                         f"{method!r}")
    sae.check_input(x)
    x = x.float()
    sae.b_dec.copy_(geometric_median(x) if method == "geometric_median" else x.mean(0))


# ---- dead latents -------------------------------------------------------------------------

@torch.no_grad()
def resample_dead_latents(sae: SAE, x: Float[Tensor, "batch d_in"], dead: Int[Tensor, "n"],
                          optimizer: torch.optim.Optimizer | None = None,
                          generator: torch.Generator | None = None) -> None:
    """Point dead latents at inputs the SAE reconstructs badly (Bricken et al., 2023).

    Inputs are drawn with probability proportional to their squared error squared; each
    dead latent's decoder row becomes the (normalised) residual ``x - x_hat`` of one of
    them, scaled like the live rows, and its encoder column the same direction at 0.2 x
    the live columns' mean norm. Its biases are reset, and so is its Adam state.
    """
    if len(dead) == 0:
        return
    error = (x - sae.reconstruct(x)).float()
    weights = error.pow(2).sum(-1).pow(2)
    if not weights.sum() > 0:
        return
    rows = torch.multinomial(weights.cpu(), len(dead), replacement=True, generator=generator)
    directions = error[rows.to(x.device)]
    directions = directions / directions.norm(dim=1, keepdim=True).clamp_min(1e-12)
    alive = torch.ones(sae.cfg.d_sae, dtype=torch.bool, device=dead.device)
    alive[dead] = False
    enc_norm = sae.W_enc[:, alive].norm(dim=0).mean() if alive.any() else 1.0
    dec_norm = 1.0 if sae.unit_norm_decoder or not alive.any() else sae.W_dec[alive].norm(
        dim=1).mean()
    sae.reinit_latents(dead, directions * dec_norm, directions.T * (0.2 * enc_norm))
    if optimizer is not None:
        _reset_adam_state(sae, optimizer, dead)


def _reset_adam_state(sae: SAE, optimizer: torch.optim.Optimizer, latents: Tensor) -> None:
    """Zero Adam's moment estimates for the given latents' slices of each parameter."""
    for name, axis in sae.latent_axes().items():
        state = optimizer.state.get(getattr(sae, name), {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in state:
                state[key].index_fill_(axis, latents, 0.0)


# ---- the loop -----------------------------------------------------------------------------

@dataclass
class TrainHistory:
    """Values logged every ``log_every`` steps (on that step's batch)."""

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    mse: list[float] = field(default_factory=list)
    l0: list[float] = field(default_factory=list)
    dead_fraction: list[float] = field(default_factory=list)
    resampled: list[tuple[int, int]] = field(default_factory=list)  # (step, n latents)

    def __repr__(self) -> str:
        if not self.step:
            return "TrainHistory(empty)"
        return (f"TrainHistory({len(self.step)} logs, last step {self.step[-1]}: loss "
                f"{self.loss[-1]:.4g}, mse {self.mse[-1]:.4g}, L0 {self.l0[-1]:.3g}, dead "
                f"{self.dead_fraction[-1]:.3f})")


@dataclass(frozen=True)
class SAETrainConfig:
    """How :func:`train_sae` trains; validates itself.

    Attributes:
        steps: optimizer steps (one batch each).
        lr: peak learning rate (Adam).
        lr_warmup_steps: linear learning-rate warm-up.
        lr_decay_steps: linear decay to 0 over the last steps (``None``: the last 20%).
        sparsity_warmup_steps: linear warm-up of the sparsity coefficient, L1 or L0
            (``None``: the first 5%).
        b_dec_init: ``"geometric_median"``, ``"mean"`` (of the first batch) or ``None``.
        resample_every: resample dead latents every this many steps (``None``: never;
            never during the final decay).
        dead_after: steps without firing after which a latent counts as dead.
        log_every: log (and update the progress bar) every this many steps.
        divergence_factor: stop when the loss exceeds this multiple of the first step's.
        collapse_steps: stop when no latent fires for this many steps in a row.
        autocast: bfloat16 autocast for the forward pass (CUDA only).
        progress: show a tqdm bar.
        seed: seeds the resampling.
    """

    steps: int = 1000
    lr: float = 3e-4
    lr_warmup_steps: int = 0
    lr_decay_steps: int | None = None
    sparsity_warmup_steps: int | None = None
    b_dec_init: str | None = "geometric_median"
    resample_every: int | None = None
    dead_after: int = 1000
    log_every: int = 100
    divergence_factor: float = 1e3
    collapse_steps: int = 50
    autocast: bool = False
    progress: bool = True
    seed: int = 0

    def __post_init__(self):
        for name in ("steps", "dead_after", "log_every", "collapse_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not (isinstance(self.lr, (int, float)) and 0 < self.lr < float("inf")):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if not self.divergence_factor > 1:
            raise ValueError(f"divergence_factor must be > 1, got {self.divergence_factor!r}")
        if self.b_dec_init not in ("geometric_median", "mean", None):
            raise ValueError(f"b_dec_init must be 'geometric_median', 'mean' or None, got "
                             f"{self.b_dec_init!r}")


def lr_factor(step: int, steps: int, warmup_steps: int, decay_steps: int) -> float:
    """Linear warm-up to 1 over ``warmup_steps``, linear decay to 0 over the last
    ``decay_steps``."""
    factor = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    if decay_steps > 0 and step >= steps - decay_steps:
        factor *= (steps - step) / decay_steps
    return factor


def train_sae(sae: SAE, batches: Iterable[Float[Tensor, "batch d_in"]],
              config: SAETrainConfig | None = None, **overrides) -> TrainHistory:
    """Fit ``sae`` to ``config.steps`` batches with Adam (see the module docstring).

    Args:
        sae: the SAE to train (moved to the first batch's device).
        batches: an iterator of activation batches, e.g. an ``ActivationBuffer``.
        config: the training settings (default :class:`SAETrainConfig`).
        **overrides: fields of :class:`SAETrainConfig` to change, e.g. ``steps=400, lr=3e-3``.

    Returns:
        A :class:`TrainHistory`.

    Raises:
        TrainingError: the loss became non-finite (``NonFiniteLossError``), diverged
            (``DivergedError``), or every latent stopped firing (``CollapsedError``); the
            SAE then holds the last good parameters.
        ValueError: ``batches`` ran out, a bad setting, or ``autocast`` without CUDA.
    """
    unknown = set(overrides) - {f.name for f in fields(SAETrainConfig)}
    if unknown:
        raise TypeError(f"unknown training settings {sorted(unknown)}; see SAETrainConfig")
    config = replace(config or SAETrainConfig(), **overrides)
    batches = iter(batches)
    first = _next_batch(batches, 0)
    sae.to(first.device)
    steps = config.steps
    decay = steps // 5 if config.lr_decay_steps is None else config.lr_decay_steps
    warm = steps // 20 if config.sparsity_warmup_steps is None else config.sparsity_warmup_steps
    state = _LoopState(sae, config, _autocast_context(config.autocast, first.device))
    if config.b_dec_init is not None:
        init_b_dec(sae, first, config.b_dec_init)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        state.optimizer, lambda s: lr_factor(s, steps, config.lr_warmup_steps, decay))
    history = TrainHistory()
    bar = tqdm(range(steps), desc=f"train {sae.architecture} SAE", disable=not config.progress)
    for step in bar:
        x = first if step == 0 else _next_batch(batches, step)
        out = _train_step(state, x, min(1.0, (step + 1) / warm) if warm > 0 else 1.0, step,
                          history)
        scheduler.step()
        every = config.resample_every
        if every and step % every == every - 1 and step < steps - decay:
            _resample(state, x, step, history)
        if step % config.log_every == 0 or step == steps - 1:
            _log(state, out, step, history, bar)
    return history


class _LoopState:
    """What the loop carries between steps: optimizer, guard, counters."""

    def __init__(self, sae: SAE, config: SAETrainConfig, autocast_context: Callable):
        self.sae, self.config = sae, config
        params = list(sae.parameters())
        fused = params[0].device.type in ("cpu", "cuda")
        self.optimizer = torch.optim.Adam(params, lr=config.lr, fused=fused)
        self.guard = TrainingGuard(params, "the SAE", config.divergence_factor)
        self.silent_steps = 0  # consecutive steps on which no latent fired
        self.steps_since_fired = torch.zeros(sae.cfg.d_sae, dtype=torch.long,
                                             device=params[0].device)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.autocast = autocast_context


def _train_step(state: _LoopState, x: Tensor, sparsity_scale: float, step: int,
                history: TrainHistory):
    """One Adam step; stops (restoring the last good parameters) when training has failed."""
    sae = state.sae
    with state.autocast():
        out = sae(x, sparsity_scale)
    loss = out.loss
    with torch.no_grad():  # latents are >= 0: a max is the cheapest "did it fire"
        fired = out.latents.amax(0) > 0
    _check_progress(state, out, bool(fired.any()), step, history)
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if sae.unit_norm_decoder:
        sae.remove_parallel_decoder_grad()
    state.optimizer.step()
    sae.after_step()
    state.steps_since_fired.add_(1).masked_fill_(fired, 0)
    return out


def _check_progress(state: _LoopState, out, any_fired: bool, step: int,
                    history: TrainHistory) -> None:
    """Raise if training has failed; else keep these parameters as the last good ones."""
    guard = state.guard
    guard.history = history
    terms = " (" + ", ".join(f"{name}={value.item():.4g}" for name, value in out.losses.items()) + ")"
    guard.check(out.loss, step, terms)
    state.silent_steps = 0 if any_fired else state.silent_steps + 1
    if state.silent_steps >= state.config.collapse_steps:
        guard.fail(CollapsedError, f"no latent fired on any input for {state.silent_steps} "
                   f"steps (up to step {step}): every latent is dead{terms}",
                   "Lower the learning rate or the sparsity coefficient, or use resample_every.",
                   step)
    if any_fired:
        guard.keep(step)


def _resample(state: _LoopState, x: Tensor, step: int, history: TrainHistory) -> None:
    dead = torch.nonzero(state.steps_since_fired >= state.config.dead_after).flatten()
    if len(dead):
        resample_dead_latents(state.sae, x, dead, state.optimizer, state.generator)
        state.steps_since_fired[dead] = 0
        history.resampled.append((step, len(dead)))


def _log(state: _LoopState, out, step: int, history: TrainHistory, bar) -> None:
    history.step.append(step)
    history.loss.append(out.loss.item())
    history.mse.append(out.losses["mse"].item())
    history.l0.append((out.latents != 0).sum(-1).float().mean().item())
    history.dead_fraction.append(
        (state.steps_since_fired >= state.config.dead_after).float().mean().item())
    bar.set_postfix(loss=f"{history.loss[-1]:.4g}", l0=f"{history.l0[-1]:.3g}")


def _next_batch(batches: Iterator[Tensor], step: int) -> Tensor:
    try:
        batch = next(batches)
    except StopIteration:
        raise ValueError(f"the batches ran out after {step} steps; give an endless "
                         f"iterator (e.g. an ActivationBuffer) or fewer steps") from None
    if not isinstance(batch, Tensor) or batch.ndim != 2 or not batch.dtype.is_floating_point:
        raise ValueError(f"each batch must be a float tensor [batch, d_in], got "
                         f"{getattr(batch, 'shape', type(batch).__name__)}")
    return batch


def _autocast_context(enabled: bool, device: torch.device) -> Callable:
    if not enabled:
        return contextlib.nullcontext
    if device.type != "cuda":
        raise ValueError(f"autocast=True needs CUDA activations (bfloat16 autocast), but "
                         f"the batches are on {device}; use autocast=False")
    return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
