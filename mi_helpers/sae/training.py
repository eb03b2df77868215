"""Training an SAE: a shuffled stream of activations, and the loop that fits the SAE to it.

**Data.** :class:`ActivationBuffer` runs a TransformerLens model over a token tensor,
keeps the activations at one hook (dropping the BOS position by default: its huge,
constant residual would waste latents), fills a buffer of ``buffer_size`` rows, shuffles
it with a seeded generator and serves batches until it must refill. Consecutive tokens
are strongly correlated, which is why the buffer shuffles. It also serves a precomputed
tensor (:meth:`ActivationBuffer.from_tensor`).

**Loop.** :func:`train_sae` takes any iterator of ``[batch d_in]`` batches and runs Adam:

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
* a non-finite loss stops training with :class:`NonFiniteLossError`, naming the step,
  after putting back the parameters that gave the last finite loss.

It runs on the activations' device; ``autocast=True`` uses bfloat16 autocast (CUDA only).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from ..cache import check_hook_names, run_with_hooks_cached
from .base import SAE


# ---- data ---------------------------------------------------------------------------------

class ActivationBuffer:
    """Endless shuffled batches of activations ``[batch_size d_in]``.

    Build one with :meth:`from_model` or :meth:`from_tensor`; iterate it (or call
    ``next``) for batches. ``chunks`` is any iterator of ``[batch d_in]`` activation blocks.

    Args:
        chunks: an endless iterator of activation blocks, shape ``[batch d_in]``.
        batch_size: rows per batch.
        buffer_size: rows gathered (then shuffled) before batches are served.
        seed: seeds the shuffling.
    """

    def __init__(self, chunks: Iterator[Float[Tensor, "batch d_in"]], batch_size: int,
                 buffer_size: int, seed: int = 0):
        if batch_size < 1 or buffer_size < batch_size:
            raise ValueError(f"need 1 <= batch_size <= buffer_size, got batch_size="
                             f"{batch_size}, buffer_size={buffer_size}")
        self.batch_size, self.buffer_size = batch_size, buffer_size
        self._chunks = chunks
        self._generator = torch.Generator().manual_seed(seed)
        self._buffer: Tensor | None = None
        self._next_row = 0
        self.rows_served = 0

    @classmethod
    def from_model(cls, model, tokens: Int[Tensor, "batch pos"], hook_name: str,
                   batch_size: int = 1024, buffer_size: int = 2**15, model_batch_size: int = 32,
                   exclude_bos: bool = True, seed: int = 0,
                   device: str | torch.device | None = None) -> ActivationBuffer:
        """Activations at ``hook_name`` of ``model`` on ``tokens``, cycling over the rows.

        Args:
            model: a TransformerLens model.
            tokens: token ids, e.g. from :func:`mi_helpers.text.token_chunks`.
            hook_name: e.g. ``"blocks.0.hook_resid_post"``; axes after ``pos`` (such as
                ``head d_head``) are flattened.
            batch_size: rows per batch.
            buffer_size: rows gathered and shuffled at a time.
            model_batch_size: token rows per forward pass.
            exclude_bos: drop position 0 (BOS in the zoo's ``token_chunks``).
            seed: seeds the shuffling.
            device: where batches go (default: the model's device).

        Raises:
            KeyError: the model has no such hook (the message lists close names).
        """
        check_hook_names(model, [hook_name])
        chunks = _model_chunks(model, tokens, hook_name, model_batch_size, exclude_bos, device)
        return cls(chunks, batch_size, buffer_size, seed)

    @classmethod
    def from_tensor(cls, acts: Float[Tensor, "... d_in"], batch_size: int = 1024,
                    buffer_size: int | None = None, seed: int = 0) -> ActivationBuffer:
        """Batches from precomputed activations (leading axes are flattened), reshuffled
        each time the buffer refills; ``buffer_size`` defaults to all of them."""
        flat = acts.reshape(-1, acts.shape[-1])
        buffer_size = len(flat) if buffer_size is None else buffer_size
        if len(flat) < batch_size:
            raise ValueError(f"{len(flat)} activations are fewer than one batch ({batch_size})")
        return cls(_tensor_chunks(flat, buffer_size), batch_size, buffer_size, seed)

    def __iter__(self) -> ActivationBuffer:
        return self

    def __next__(self) -> Float[Tensor, "batch d_in"]:
        if self._buffer is None or self._next_row + self.batch_size > len(self._buffer):
            self._refill()
        batch = self._buffer[self._next_row:self._next_row + self.batch_size]
        self._next_row += self.batch_size
        self.rows_served += self.batch_size
        return batch

    def _refill(self) -> None:
        """Keep the unserved rows, add new ones up to ``buffer_size``, shuffle."""
        parts = [] if self._buffer is None else [self._buffer[self._next_row:]]
        n_rows = sum(len(p) for p in parts)
        while n_rows < self.buffer_size:
            parts.append(next(self._chunks))
            n_rows += len(parts[-1])
        rows = torch.cat(parts)
        order = torch.randperm(len(rows), generator=self._generator)
        self._buffer = rows[order.to(rows.device)]
        self._next_row = 0


def _model_chunks(model, tokens, hook_name, model_batch_size, exclude_bos, device
                  ) -> Iterator[Tensor]:
    """Activations of successive token rows, forever (wrapping around at the end)."""
    model_device = next(model.parameters()).device
    device = model_device if device is None else torch.device(device)
    start = 0
    while True:
        rows = tokens[start:start + model_batch_size].to(model_device)
        _, cache = run_with_hooks_cached(model, rows, [hook_name])
        act = cache[hook_name]  # batch pos ...
        if exclude_bos:
            act = act[:, 1:]
        yield act.reshape(act.shape[0] * act.shape[1], -1).to(device)
        start = start + model_batch_size if start + model_batch_size < len(tokens) else 0


def _tensor_chunks(flat: Tensor, size: int) -> Iterator[Tensor]:
    """Successive blocks of ``size`` rows of ``flat``, forever."""
    start = 0
    while True:
        block = flat[start:start + size]
        yield block
        start = start + size if start + size < len(flat) else 0


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

class NonFiniteLossError(FloatingPointError):
    """Training hit a NaN or infinite loss; the SAE holds the last good parameters.

    Attributes:
        step: the step whose loss was not finite.
        good_step: the step whose parameters were restored (``-1``: before training).
        history: what was logged until then.
    """

    def __init__(self, message: str, step: int, good_step: int, history: TrainHistory):
        super().__init__(message)
        self.step, self.good_step, self.history = step, good_step, history


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


def lr_factor(step: int, steps: int, warmup_steps: int, decay_steps: int) -> float:
    """Linear warm-up to 1 over ``warmup_steps``, linear decay to 0 over the last
    ``decay_steps``."""
    factor = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    if decay_steps > 0 and step >= steps - decay_steps:
        factor *= (steps - step) / decay_steps
    return factor


def train_sae(sae: SAE, batches: Iterable[Float[Tensor, "batch d_in"]], steps: int,
              lr: float = 3e-4, *, lr_warmup_steps: int = 0, lr_decay_steps: int | None = None,
              l1_warmup_steps: int | None = None, b_dec_init: str | None = "geometric_median",
              resample_every: int | None = None, dead_after: int = 1000, log_every: int = 100,
              autocast: bool = False, progress: bool = True, seed: int = 0) -> TrainHistory:
    """Fit ``sae`` to ``steps`` batches with Adam (see the module docstring).

    Args:
        sae: the SAE to train (moved to the first batch's device).
        batches: an iterator of activation batches, e.g. an :class:`ActivationBuffer`.
        steps: optimizer steps (one batch each).
        lr: peak learning rate.
        lr_warmup_steps: linear learning-rate warm-up.
        lr_decay_steps: linear decay to 0 over the last steps (default: the last 20%).
        l1_warmup_steps: linear warm-up of the sparsity coefficient, L1 or L0 (default:
            the first 5%).
        b_dec_init: ``"geometric_median"``, ``"mean"`` (of the first batch) or ``None``.
        resample_every: resample dead latents every this many steps (``None``: never;
            never during the final decay).
        dead_after: steps without firing after which a latent counts as dead.
        log_every: log (and update the progress bar) every this many steps.
        autocast: bfloat16 autocast for the forward pass (CUDA only).
        progress: show a tqdm bar.
        seed: seeds the resampling.

    Returns:
        A :class:`TrainHistory`.

    Raises:
        NonFiniteLossError: a loss was NaN or infinite; the SAE then holds the
            parameters that gave the last finite loss.
        ValueError: ``batches`` ran out, or ``autocast`` without CUDA.
    """
    batches = iter(batches)
    first = _next_batch(batches, 0)
    sae.to(first.device)
    decay = steps // 5 if lr_decay_steps is None else lr_decay_steps
    warm = steps // 20 if l1_warmup_steps is None else l1_warmup_steps
    state = _LoopState(sae, lr, seed, dead_after, _autocast_context(autocast, first.device))
    if b_dec_init is not None:
        init_b_dec(sae, first, b_dec_init)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        state.optimizer, lambda s: lr_factor(s, steps, lr_warmup_steps, decay))
    history = TrainHistory()
    bar = tqdm(range(steps), desc=f"train {sae.architecture} SAE", disable=not progress)
    for step in bar:
        x = first if step == 0 else _next_batch(batches, step)
        out = _train_step(state, x, min(1.0, (step + 1) / warm) if warm > 0 else 1.0, step,
                          history)
        scheduler.step()
        if resample_every and step % resample_every == resample_every - 1 \
                and step < steps - decay:
            _resample(state, x, step, history)
        if step % log_every == 0 or step == steps - 1:
            _log(state, out, step, history, bar)
    return history


class _LoopState:
    """What the loop carries between steps: optimizer, snapshot, dead-latent counters."""

    def __init__(self, sae: SAE, lr: float, seed: int, dead_after: int,
                 autocast_context: Callable):
        self.sae, self.dead_after = sae, dead_after
        params = list(sae.parameters())
        fused = params[0].device.type in ("cpu", "cuda")
        self.optimizer = torch.optim.Adam(params, lr=lr, fused=fused)
        self.snapshot = [p.detach().clone() for p in params]
        self.good_step = -1
        self.steps_since_fired = torch.zeros(sae.cfg.d_sae, dtype=torch.long,
                                             device=params[0].device)
        self.generator = torch.Generator().manual_seed(seed)
        self.autocast = autocast_context


def _train_step(state: _LoopState, x: Tensor, sparsity_scale: float, step: int,
                history: TrainHistory):
    """One Adam step; stops (restoring the snapshot) when the loss is not finite."""
    sae = state.sae
    with state.autocast():
        out = sae(x, sparsity_scale)
    loss = out.loss
    if not torch.isfinite(loss):
        _restore_and_raise(state, out, step, history)
    with torch.no_grad():
        for saved, param in zip(state.snapshot, sae.parameters()):
            saved.copy_(param)
    state.good_step = step
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if sae.unit_norm_decoder:
        sae.remove_parallel_decoder_grad()
    state.optimizer.step()
    sae.after_step()
    with torch.no_grad():  # latents are >= 0: a max is the cheapest "did it fire"
        fired = out.latents.amax(0) > 0
        state.steps_since_fired.add_(1).masked_fill_(fired, 0)
    return out


def _restore_and_raise(state: _LoopState, out, step: int, history: TrainHistory):
    with torch.no_grad():
        for saved, param in zip(state.snapshot, state.sae.parameters()):
            param.copy_(saved)
    terms = ", ".join(f"{name}={value.item():.4g}" for name, value in out.losses.items())
    where = ("the parameters from before training" if state.good_step < 0 else
             f"the parameters of step {state.good_step}, the last finite loss")
    raise NonFiniteLossError(
        f"the loss is not finite at step {step} ({terms}); training stopped and the SAE "
        f"holds {where}. Check the batch for NaN/inf values, or lower the learning rate.",
        step, state.good_step, history)


def _resample(state: _LoopState, x: Tensor, step: int, history: TrainHistory) -> None:
    dead = torch.nonzero(state.steps_since_fired >= state.dead_after).flatten()
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
        (state.steps_since_fired >= state.dead_after).float().mean().item())
    bar.set_postfix(loss=f"{history.loss[-1]:.4g}", l0=f"{history.l0[-1]:.3g}")


def _next_batch(batches: Iterator[Tensor], step: int) -> Tensor:
    try:
        return next(batches)
    except StopIteration:
        raise ValueError(f"the batches ran out after {step} steps; give an endless "
                         f"iterator (e.g. an ActivationBuffer) or fewer steps") from None


def _autocast_context(enabled: bool, device: torch.device) -> Callable:
    if not enabled:
        return contextlib.nullcontext
    if device.type != "cuda":
        raise ValueError(f"autocast=True needs CUDA activations (bfloat16 autocast), but "
                         f"the batches are on {device}; use autocast=False")
    return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
