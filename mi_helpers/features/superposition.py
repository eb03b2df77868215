"""The toy model of superposition (Elhage et al., 2022): more features than dimensions.

``n_features`` features, each active with probability ``1 - sparsity`` (then uniform in
[0, 1]), are compressed into ``d_hidden < n_features`` dimensions and read back out::

    h  = W x                         [d_hidden]     W: [d_hidden, n_features]
    x' = ReLU(W^T h + b)             [n_features]

trained to minimise the importance-weighted error ``sum_i I_i (x_i - x'_i)^2`` with
importances decaying geometrically (``I_i = decay^i``). When features are dense the model
keeps the ``d_hidden`` most important ones, orthogonally, and drops the rest. When they
are sparse, interference between features rarely matters and it packs more features than
dimensions into near-orthogonal directions (5 features in 2 dimensions form a pentagon):
**superposition**. The columns of ``W`` are the true feature directions in the hidden
space, so an SAE trained on ``h`` can be scored against them
(:func:`mi_helpers.features.sae.mmcs`).

Several models (*instances*) train at once, one per sparsity, as in the paper.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..core.checks import check_positive, check_type
from ..core.training import TrainingGuard

__all__ = ["ToyModel", "train_toy_model", "feature_geometry"]


class ToyModel(nn.Module):
    """One toy model per sparsity: ``W [instance, d_hidden, n_features]``, ``b [instance, n_features]``.

    Args:
        n_features: features per input.
        d_hidden: width of the bottleneck (``< n_features`` for superposition).
        sparsities: one model per probability that a feature is *off*.
        decay: feature ``i`` has importance ``decay ** i``.
        seed: seeds the weights and the data.
    """

    def __init__(self, n_features: int, d_hidden: int, sparsities: Sequence[float],
                 decay: float = 0.9, seed: int = 0):
        super().__init__()
        check_positive("n_features", n_features, integer=True)
        check_positive("d_hidden", d_hidden, integer=True)
        if not sparsities or not all(0 <= s < 1 for s in sparsities):
            raise ValueError(f"sparsities must be probabilities in [0, 1), got {list(sparsities)}")
        if not 0 < decay <= 1:
            raise ValueError(f"decay must be in (0, 1], got {decay}")
        self.sparsities = torch.tensor(list(sparsities), dtype=torch.float32)
        self.importance = decay ** torch.arange(n_features, dtype=torch.float32)
        self.generator = torch.Generator().manual_seed(seed)
        n = len(sparsities)
        w = torch.empty(n, d_hidden, n_features)
        nn.init.xavier_normal_(w, generator=self.generator)
        self.W = nn.Parameter(w)
        self.b = nn.Parameter(torch.zeros(n, n_features))

    def sample(self, batch: int) -> Float[Tensor, "instance batch feature"]:
        """Inputs: each feature on with probability ``1 - sparsity``, then uniform in [0, 1]."""
        shape = (len(self.sparsities), batch, self.W.shape[-1])
        on = torch.rand(shape, generator=self.generator) >= self.sparsities[:, None, None]
        return on * torch.rand(shape, generator=self.generator)

    def hidden(self, x: Float[Tensor, "instance batch feature"]
               ) -> Float[Tensor, "instance batch d_hidden"]:
        """``h = W x`` for every instance."""
        return torch.einsum("ibf,ihf->ibh", x, self.W)

    def forward(self, x: Float[Tensor, "instance batch feature"]
                ) -> Float[Tensor, "instance batch feature"]:
        """``ReLU(W^T W x + b)``."""
        return torch.relu(torch.einsum("ibh,ihf->ibf", self.hidden(x), self.W) + self.b[:, None])

    def loss(self, x: Float[Tensor, "instance batch feature"]) -> Float[Tensor, "instance"]:
        """Importance-weighted squared error per instance (mean over the batch)."""
        return (self.importance * (x - self(x)).pow(2)).sum(-1).mean(-1)


def train_toy_model(model: ToyModel, steps: int = 5000, batch: int = 1024, lr: float = 1e-3,
                    progress: bool = False) -> list[float]:
    """Adam on every instance at once (summed losses); returns the mean loss per step.

    Raises:
        TrainingError: the loss became non-finite or diverged.
    """
    check_type("model", model, ToyModel, "e.g. ToyModel(n_features=5, d_hidden=2, "
               "sparsities=[0.9])")
    check_positive("steps", steps, integer=True)
    check_positive("batch", batch, integer=True)
    check_positive("lr", lr)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    guard = TrainingGuard(model.parameters(), "the toy model", result=model)
    losses = []
    for step in tqdm(range(steps), desc="toy model", disable=not progress):
        loss = model.loss(model.sample(batch)).sum()
        guard.check(loss, step)
        guard.keep(step)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item() / len(model.sparsities))
    return losses


@dataclass
class FeatureGeometry:
    """How each instance stores its features.

    Attributes:
        norms: ``[instance, feature]`` length of each feature's direction (0: dropped).
        represented: ``[instance]`` features with norm above 0.5.
        dimensions_per_feature: ``[instance]`` ``d_hidden / ||W||_F^2``, the paper's measure:
            1 when each stored feature has a dimension of its own, below 1 in superposition.
        max_interference: ``[instance]`` the largest ``|cos|`` between two represented features.
    """

    norms: Tensor
    represented: Tensor
    dimensions_per_feature: Tensor
    max_interference: Tensor


def feature_geometry(model: ToyModel) -> FeatureGeometry:
    """Norms, counts and interference of the features each instance learned."""
    check_type("model", model, ToyModel, "the toy model trained by train_toy_model")
    w = model.W.detach()  # instance d_hidden feature
    norms = w.norm(dim=1)
    unit = w / norms[:, None].clamp_min(1e-12)
    cosines = torch.einsum("ihf,ihg->ifg", unit, unit).abs()
    kept = norms > 0.5
    pairs = kept[:, :, None] & kept[:, None, :] & ~torch.eye(w.shape[-1], dtype=torch.bool)
    interference = torch.where(pairs, cosines, torch.zeros(())).flatten(1).max(-1).values
    return FeatureGeometry(norms, kept.sum(-1), w.shape[1] / w.pow(2).sum((1, 2)), interference)
