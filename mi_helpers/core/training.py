"""Training never fails silently: one guard for every training loop in the package.

SAEs, the tuned lens and the zoo's models are trained by gradient descent, and a bad
learning rate or bad data does not crash a loop: it returns NaN weights, a diverged loss
or a collapsed model that prints numbers like any other. :class:`TrainingGuard` watches
the loss at every step and stops training with a message that names the step and the
likely fix, after putting back the parameters of the last good step:

* :class:`NonFiniteLossError`: the loss is NaN or infinite;
* :class:`DivergedError`: the loss rose above ``divergence_factor`` times its first value;
* :class:`CollapsedError`: the loop reports a collapse (e.g. no SAE latent fires).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["TrainingError", "NonFiniteLossError", "DivergedError", "CollapsedError",
           "TrainingGuard", "frozen"]


class TrainingError(FloatingPointError):
    """Training failed and stopped; the trained object holds the last good parameters.

    Attributes:
        step: the step at which training stopped.
        good_step: the step whose parameters were restored (``-1``: before training).
        history: what the loop had logged until then (or ``None``).
        result: the trained object holding the restored parameters, when the training
            function created it (e.g. the tuned lens), else ``None``.
    """

    def __init__(self, message: str, step: int, good_step: int, history=None, result=None):
        super().__init__(message)
        self.step, self.good_step, self.history, self.result = step, good_step, history, result


class NonFiniteLossError(TrainingError):
    """The loss became NaN or infinite."""


class DivergedError(TrainingError):
    """The loss rose far above its value at the first step (the optimiser diverged)."""


class CollapsedError(TrainingError):
    """The model collapsed (e.g. no SAE latent fired for many steps)."""


class TrainingGuard:
    """Checks each step's loss; on failure restores the last good parameters and raises.

    Args:
        params: the parameters being trained.
        what: what is trained, for messages (e.g. "the tuned lens").
        divergence_factor: a loss above this multiple of the first step's is divergence.
        result: the object being trained, handed to the error (``TrainingError.result``).

    Use: ``guard.check(loss, step)`` after the forward pass (raises on failure), then
    ``guard.keep(step)`` once the step's parameters are known good (before the update).
    """

    def __init__(self, params: Iterable[nn.Parameter], what: str, divergence_factor: float = 1e3,
                 result=None):
        if not divergence_factor > 1:
            raise ValueError(f"divergence_factor must be > 1, got {divergence_factor!r}")
        self.params = list(params)
        self.what, self.divergence_factor = what, divergence_factor
        self.snapshot = [p.detach().clone() for p in self.params]
        self.good_step, self.first_loss, self.history, self.result = -1, None, None, result

    def check(self, loss: torch.Tensor | float, step: int, detail: str = "") -> None:
        """Raise :class:`NonFiniteLossError` or :class:`DivergedError` if this loss is bad."""
        value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
        if value != value or value in (float("inf"), float("-inf")):
            self.fail(NonFiniteLossError, f"the loss is not finite at step {step}{detail}",
                      "Check the data for NaN/inf values, or lower the learning rate.", step)
        if self.first_loss is None:
            self.first_loss = max(abs(value), 1e-12)
        if value > self.divergence_factor * self.first_loss:
            self.fail(DivergedError, f"the loss diverged at step {step}: {value:.4g} is more than "
                      f"{self.divergence_factor:g}x the first step's {self.first_loss:.4g}{detail}",
                      "Lower the learning rate (lr).", step)

    def keep(self, step: int) -> None:
        """Remember the current parameters as the last good ones."""
        with torch.no_grad():
            for saved, param in zip(self.snapshot, self.params):
                saved.copy_(param)
        self.good_step = step

    def fail(self, error: type[TrainingError], what: str, fix: str, step: int):
        """Restore the last good parameters and raise ``error`` with a full message."""
        with torch.no_grad():
            for saved, param in zip(self.snapshot, self.params):
                param.copy_(saved)
        where = ("the parameters from before training" if self.good_step < 0 else
                 f"the parameters of step {self.good_step}, the last good step")
        raise error(f"{what}; training stopped and {self.what} holds {where}. {fix}", step,
                    self.good_step, self.history, self.result)


@contextmanager
def frozen(model: nn.Module) -> Iterator[None]:
    """Turn off gradients for ``model``'s parameters (e.g. while training a lens or a
    subspace on top of it), restoring each parameter's flag afterwards."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.requires_grad_(False)
    try:
        yield
    finally:
        for param, flag in flags:
            param.requires_grad_(flag)
