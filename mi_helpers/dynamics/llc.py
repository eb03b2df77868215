"""The local learning coefficient (LLC), estimated by SGLD.

Near a minimum ``w*`` of the loss ``L``, the volume of weights whose loss is within
``eps`` of ``L(w*)`` shrinks like ``eps ** lambda``. ``lambda``, the *learning
coefficient*, counts effective parameters: ``d / 2`` for a minimum where all ``d``
directions are quadratic, less where the loss is flat in some directions (a direction
with loss ``w ** 4`` counts ``1 / 4``). Developmental interpretability (Lau et al. 2023;
Hoogland et al. 2024) estimates it at checkpoints and finds that it moves at phase
changes such as the formation of induction heads.

The estimator samples weights near ``w*`` from the tempered, localised posterior
``exp(-n beta L(w) - gamma / 2 |w - w*|^2)`` with stochastic-gradient Langevin dynamics,

    w <- w - (step_size / 2) (n beta grad L(w) + gamma (w - w*)) + N(0, step_size),

and returns ``n beta (mean L(w) - L(w*))`` with ``beta = 1 / log n`` (the WBIC
temperature). ``gamma`` keeps the chain near ``w*``; ``step_size`` must be small enough
that the chain does not diverge (check the loss trace). The estimate depends on these
settings: compare checkpoints with the same settings, not the numbers across papers.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from ..core.checks import check_positive

__all__ = ["LLCEstimate", "estimate_llc"]

#: ``loss_fn(model, batch) -> scalar`` mean loss of the model on a batch.
LossFn = Callable[[torch.nn.Module, object], Tensor]


@dataclass
class LLCEstimate:
    """An LLC estimate and what it was computed from.

    Attributes:
        llc: ``n_beta * (mean sampled loss - loss at w*)``, averaged over chains.
        llc_per_chain: the same per chain (their spread shows the estimate's noise).
        init_loss: the loss at ``w*`` (mean over the batches used).
        losses: ``[chain, step]`` loss of every sampled step (burn-in included).
        n_beta: ``n * beta`` used.
    """

    llc: float
    llc_per_chain: list[float]
    init_loss: float
    losses: Float[Tensor, "chain step"]
    n_beta: float


def estimate_llc(model: torch.nn.Module, loss_fn: LossFn, batches: Callable[[], Iterator], n: int,
                 *, steps: int = 200, burn_in: int = 50, step_size: float = 1e-4,
                 gamma: float = 100.0, n_beta: float | None = None, n_chains: int = 2,
                 seed: int = 0) -> LLCEstimate:
    """Estimate the LLC of ``model``'s current weights by SGLD (the model is not changed).

    Args:
        model: the trained model at ``w*`` (a copy is sampled).
        loss_fn: mean loss of a model on one batch.
        batches: returns a fresh iterator of batches (called once per chain, cycled).
        n: the number of training examples the loss stands for.
        steps: SGLD steps per chain (including ``burn_in``).
        burn_in: first steps left out of the mean.
        step_size: SGLD step size (the noise variance per step).
        gamma: strength of the pull back to ``w*``.
        n_beta: ``n * beta``; default ``n / log n``.
        n_chains: independent chains.
        seed: seeds the noise.

    Returns:
        An :class:`LLCEstimate`.

    Raises:
        FloatingPointError: a chain diverged (lower ``step_size`` or raise ``gamma``).
    """
    for name, value in (("steps", steps), ("n_chains", n_chains), ("n", n)):
        check_positive(name, value, integer=True)
    check_positive("burn_in", burn_in, integer=True, allow_zero=True)
    if burn_in >= steps:
        raise ValueError(f"burn_in={burn_in} leaves no steps of {steps} to average")
    check_positive("step_size", step_size)
    check_positive("gamma", gamma, allow_zero=True)
    n_beta = n / math.log(n) if n_beta is None else check_positive("n_beta", n_beta)
    gen = torch.Generator().manual_seed(seed)
    losses, inits = [], []
    for _ in range(n_chains):
        chain_losses, init = _sgld_chain(model, loss_fn, batches, steps, step_size, gamma,
                                         n_beta, gen)
        losses.append(chain_losses)
        inits.append(init)
    losses = torch.stack(losses)
    init_loss = sum(inits) / len(inits)
    per_chain = [n_beta * (chain[burn_in:].mean().item() - init)
                 for chain, init in zip(losses, inits)]
    return LLCEstimate(sum(per_chain) / n_chains, per_chain, init_loss, losses, n_beta)


def _sgld_chain(model, loss_fn, batches, steps, step_size, gamma, n_beta, gen
                ) -> tuple[Float[Tensor, "step"], float]:
    """One chain from ``w*``: the loss at each step, and the mean loss at ``w*`` on the
    same batches (so that batch noise cancels in the difference)."""
    sampler = copy.deepcopy(model).train(model.training)
    params = [p for p in sampler.parameters() if p.requires_grad]
    anchor = [p.detach().clone() for p in params]
    stream, chain, at_init = _cycle(batches), [], []
    for _ in range(steps):
        batch = next(stream)
        with torch.no_grad():
            at_init.append(loss_fn(model, batch).item())
        loss = loss_fn(sampler, batch)
        grads = torch.autograd.grad(loss, params)
        if not torch.isfinite(loss):
            raise FloatingPointError("an SGLD chain diverged: lower step_size or raise gamma")
        with torch.no_grad():
            for p, g, w0 in zip(params, grads, anchor):
                drift = n_beta * g + gamma * (p - w0)
                noise = torch.randn(p.shape, generator=gen).to(p)
                p.add_(-0.5 * step_size * drift + math.sqrt(step_size) * noise)
        chain.append(loss.item())
    return torch.tensor(chain), sum(at_init) / len(at_init)


def _cycle(batches: Callable[[], Iterator]) -> Iterator:
    """Batches from ``batches()`` forever, starting over when an iterator runs out."""
    while True:
        empty = True
        for batch in batches():
            empty = False
            yield batch
        if empty:
            raise ValueError("batches() returned no batch")
