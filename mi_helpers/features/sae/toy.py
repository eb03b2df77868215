"""Ground truth for SAEs: sparse features in superposition, and how well an SAE finds them.

As in *Toy Models of Superposition* (Elhage et al., 2022) and Sharkey et al. (2022),
"Taking features out of superposition with sparse autoencoders": ``n_features`` known
unit directions live in ``d < n_features`` dimensions, so they cannot be orthogonal.
Each input switches on a few of them (each with probability ``p_fire``) with random
magnitudes::

    x = sum_i  fire_i * magnitude_i * direction_i                  [batch d_in]

(axes: ``feature`` = one of the ``n_features`` true features, ``d_in`` = ``d``, the
width of the activations an SAE will read).

An SAE trained on ``x`` should learn one decoder row per true direction. The **mean max
cosine similarity** (:func:`mmcs`) scores that: for each true direction, the best cosine
with any learned row, averaged over true directions (1 = every feature found).

Correlation: features come in consecutive groups of ``group_size``; within a group, the
firing events are driven by a Gaussian copula with pairwise correlation ``correlation``
(``0`` = independent), so correlated features tend to fire together while each still
fires with probability ``p_fire``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

__all__ = ["ToyFeatures", "mmcs"]


@dataclass
class ToyFeatures:
    """A seeded source of sparse, superposed feature activations.

    Attributes:
        n_features: number of true features.
        d: dimension of the space they live in (``d < n_features``: superposition).
        p_fire: probability that a feature is on in an input.
        correlation: Gaussian-copula correlation of firing within a group, in ``[0, 1)``.
        group_size: features per correlated group.
        magnitude: ``(low, high)``; an active feature's coefficient is uniform in it.
        seed: seeds the directions and, unless :meth:`sample` is given a generator, the
            samples.
    """

    n_features: int = 128
    d: int = 32
    p_fire: float = 0.03
    correlation: float = 0.0
    group_size: int = 4
    magnitude: tuple[float, float] = (0.5, 1.5)
    seed: int = 0

    def __post_init__(self):
        if not 0 < self.p_fire < 1:
            raise ValueError(f"p_fire must be in (0, 1), got {self.p_fire}")
        if not 0 <= self.correlation < 1:
            raise ValueError(f"correlation must be in [0, 1), got {self.correlation}")
        if self.group_size < 1 or self.n_features < 1 or self.d < 1:
            raise ValueError("n_features, d and group_size must be positive")
        low, high = self.magnitude
        if not 0 <= low <= high:
            raise ValueError(f"magnitude must be (low, high) with 0 <= low <= high, got "
                             f"{self.magnitude}")
        gen = torch.Generator().manual_seed(self.seed)
        directions = torch.randn(self.n_features, self.d, generator=gen)
        self.directions: Float[Tensor, "feature d_in"] = directions / directions.norm(
            dim=1, keepdim=True)
        self._generator = gen
        # P(z > cut) = p_fire for z ~ N(0, 1).
        self._cut = math.sqrt(2) * torch.erfinv(torch.tensor(1 - 2 * self.p_fire)).item()

    def sample_coefficients(self, batch: int, generator: torch.Generator | None = None
                            ) -> Float[Tensor, "batch feature"]:
        """Each feature's coefficient per input: 0 when off, a magnitude when on."""
        gen = self._generator if generator is None else generator
        noise = torch.randn(batch, self.n_features, generator=gen)
        if self.correlation > 0:
            n_groups = -(-self.n_features // self.group_size)
            shared = torch.randn(batch, n_groups, generator=gen)
            shared = shared.repeat_interleave(self.group_size, dim=1)[:, :self.n_features]
            rho = self.correlation
            noise = math.sqrt(rho) * shared + math.sqrt(1 - rho) * noise
        low, high = self.magnitude
        sizes = low + (high - low) * torch.rand(batch, self.n_features, generator=gen)
        return torch.where(noise > self._cut, sizes, torch.zeros(()))

    def sample(self, batch: int, generator: torch.Generator | None = None
               ) -> tuple[Float[Tensor, "batch d_in"], Float[Tensor, "batch feature"]]:
        """A batch of activations and the coefficients that made them."""
        coefficients = self.sample_coefficients(batch, generator)
        return coefficients @ self.directions, coefficients

    def batches(self, batch: int):
        """An endless iterator of activation batches ``[batch d_in]`` (for ``train_sae``)."""
        while True:
            yield self.sample(batch)[0]


def mmcs(learned_dirs: Float[Tensor, "d_sae d_in"], true_dirs: Float[Tensor, "feature d_in"]
         ) -> Float[Tensor, ""]:
    """Mean over true directions of the max cosine similarity with any learned direction.

    Args:
        learned_dirs: one learned direction per row, e.g. an SAE's ``W_dec``.
        true_dirs: the ground-truth directions, one per row.

    Returns:
        A scalar in ``[-1, 1]``; 1 when every true direction has an exact learned match.
    """
    if learned_dirs.shape[-1] != true_dirs.shape[-1]:
        raise ValueError(f"learned directions have width {learned_dirs.shape[-1]} but the "
                         f"true ones {true_dirs.shape[-1]}")
    learned = learned_dirs / learned_dirs.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    true = true_dirs / true_dirs.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return (true @ learned.T).max(dim=1).values.mean()
