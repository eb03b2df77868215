"""Distributed alignment search (DAS): learn the subspace where a causal variable lives.

A **high-level causal model** says how a variable (e.g. "which name is the indirect
object") decides the output. For a *base* and a *source* prompt it predicts the output
of the base with the variable set to its value in the source: the **counterfactual
label** (:class:`CounterfactualPairs`). An interchange intervention on a subspace
(:mod:`.subspaces`) tests that prediction, and the **interchange-intervention accuracy**
(IIA, :func:`iia`) is the fraction of pairs where the intervened model's output is the
counterfactual label.

**DAS** (Geiger et al., 2023) *learns* the subspace: an orthonormal basis ``B``
(``[width, n_dims]``, kept orthonormal by torch's ``orthogonal`` parametrisation) trained
by gradient descent, with the model frozen, to make the intervened model output the
counterfactual labels (cross-entropy over the output classes). :func:`train_das` fits
it on training pairs; measure IIA on held-out pairs.

A high IIA is evidence, not proof: a learned subspace can also create the behaviour it
was trained for (Makelov et al., 2023; Arora et al., 2024). Compare it with fixed bases
(:mod:`.bases`), with a random subspace, and with the same training on a randomly
initialised model (:func:`mi_helpers.universality.random_like`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn
from torch.nn.utils.parametrizations import orthogonal
from tqdm.auto import tqdm

from ..core.checks import check_positive, check_tokens, check_type
from ..core.hooks import check_hook_names
from ..core.training import frozen
from ..datasets.prompts import logits_at
from .subspaces import Bases, interchange, interchange_logits, source_activations

__all__ = ["CounterfactualPairs", "class_scores", "task_accuracy", "iia", "DASResult",
           "train_das"]


@dataclass
class CounterfactualPairs:
    """Base/source prompt pairs labelled by a high-level causal model.

    Attributes:
        base, source: ``[batch, pos]`` token ids (right-padded to one length).
        base_pos, source_pos: ``[batch]`` where the variable is read in the source and
            written in the base (the intervention site's position).
        answer_pos: ``[batch]`` where the base's output is read (its last token).
        answers: ``[batch, class, word]`` token ids of each output class (a class
            is a set of words; ``-1`` pads a shorter set).
        targets: ``[batch]`` the class the causal model predicts for the base with the
            variable taken from the source (the counterfactual label).
        base_labels: ``[batch]`` the class it predicts for the base alone.
        base_values, source_values: ``[batch]`` the variable's value in each prompt (for
            bases fitted on labelled activations, e.g. a difference of means).
        variable: what the variable is, in words.
    """

    base: Int[Tensor, "batch pos"]
    source: Int[Tensor, "batch pos"]
    base_pos: Int[Tensor, "batch"]
    source_pos: Int[Tensor, "batch"]
    answer_pos: Int[Tensor, "batch"]
    answers: Int[Tensor, "batch class word"]
    targets: Int[Tensor, "batch"]
    base_labels: Int[Tensor, "batch"]
    base_values: Int[Tensor, "batch"]
    source_values: Int[Tensor, "batch"]
    variable: str = ""

    def __post_init__(self):
        n = len(self.base)
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Tensor) and len(value) != n:
                raise ValueError(f"{f.name} has {len(value)} rows but there are {n} base "
                                 f"prompts: every field needs one row per pair")
        if self.answers.ndim != 3:
            raise ValueError(f"answers must be [batch, class, word], got shape "
                             f"{tuple(self.answers.shape)}")
        n_classes = self.answers.shape[1]
        for name in ("targets", "base_labels"):
            value = getattr(self, name)
            if ((value < 0) | (value >= n_classes)).any():
                raise ValueError(f"{name} must be class indices in 0..{n_classes - 1}")

    def __len__(self) -> int:
        return len(self.base)

    def subset(self, index: Int[Tensor, "n"] | slice) -> CounterfactualPairs:
        """The pairs at ``index`` (a slice or a tensor of row indices)."""
        return CounterfactualPairs(**{f.name: getattr(self, f.name)[index]
                                      if isinstance(getattr(self, f.name), Tensor)
                                      else getattr(self, f.name) for f in fields(self)})

    def split(self, test_fraction: float = 0.5, seed: int = 0
              ) -> tuple[CounterfactualPairs, CounterfactualPairs]:
        """A random train / test split, stratified on whether the interchange should
        change the output (so both halves have the same share of such pairs)."""
        if not 0 < test_fraction < 1:
            raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
        gen = torch.Generator().manual_seed(seed)
        changes = (self.targets != self.base_labels).cpu()
        train, test = [], []
        for group in (changes, ~changes):
            idx = group.nonzero().flatten()
            idx = idx[torch.randperm(len(idx), generator=gen)]
            n_test = round(test_fraction * len(idx))
            test.append(idx[:n_test])
            train.append(idx[n_test:])
        train, test = torch.cat(train).sort().values, torch.cat(test).sort().values
        if not len(train) or not len(test):
            raise ValueError(f"{len(self)} pairs are too few to split into train and test")
        return self.subset(train), self.subset(test)


def class_scores(logits: Float[Tensor, "batch pos d_vocab"], pairs: CounterfactualPairs
                 ) -> Float[Tensor, "batch class"]:
    """Log-probability of each output class (summed over its words) at ``answer_pos``."""
    log_probs = logits_at(logits, pairs.answer_pos).float().log_softmax(-1)  # batch d_vocab
    answers = pairs.answers.to(log_probs.device)
    picked = log_probs.gather(-1, answers.clamp_min(0).flatten(1)).view(answers.shape)
    return picked.masked_fill(answers < 0, -torch.inf).logsumexp(-1)


def task_accuracy(model, pairs: CounterfactualPairs, batch_size: int = 64) -> float:
    """How often the model, without intervention, outputs the causal model's class for
    the base (``base_labels``): IIA only means something where this is high."""
    check_type("pairs", pairs, CounterfactualPairs, "e.g. ioi_pairs(model, n)")
    check_positive("batch_size", batch_size, integer=True)
    base = check_tokens(model, pairs.base)
    correct = 0
    for start in range(0, len(base), batch_size):
        part = pairs.subset(slice(start, start + batch_size))
        with torch.no_grad():
            scores = class_scores(model(part.base.to(model.cfg.device)), part)
        correct += int((scores.argmax(-1).cpu() == part.base_labels.cpu()).sum())
    return correct / len(pairs)


def iia(model, pairs: CounterfactualPairs, hooks: str | Sequence[str], basis: Bases,
        batch_size: int = 64, match_norm_of: Bases | None = None) -> float:
    """Interchange-intervention accuracy: the fraction of pairs whose intervened output
    class is the counterfactual label ``targets``.

    Args:
        model: a TransformerLens model.
        pairs: the labelled base/source pairs.
        hooks: where to intervene (at ``pairs.base_pos``, reading ``pairs.source_pos``).
        basis: orthonormal ``[width, n_dims]`` (or one per hook).
        batch_size: pairs per forward pass.
        match_norm_of: evaluate the norm-matched placebo of this basis instead.
    """
    check_type("pairs", pairs, CounterfactualPairs, "e.g. ioi_pairs(model, n)")
    logits = interchange_logits(model, pairs.base, pairs.source, hooks, basis,
                                positions=pairs.base_pos, source_positions=pairs.source_pos,
                                match_norm_of=match_norm_of, batch_size=batch_size)
    scores = class_scores(logits, pairs)
    return (scores.argmax(-1).cpu() == pairs.targets.cpu()).float().mean().item()


class _Subspace(nn.Module):
    """A learnable ``[width, n_dims]`` basis kept orthonormal by the parametrisation."""

    def __init__(self, width: int, n_dims: int):
        super().__init__()
        self.proj = orthogonal(nn.Linear(n_dims, width, bias=False))

    @property
    def basis(self) -> Float[Tensor, "d_model n_dims"]:
        return self.proj.weight


@dataclass
class DASResult:
    """A basis learned by :func:`train_das`.

    Attributes:
        basis: orthonormal ``[width, n_dims]`` (detached, on the CPU).
        losses: mean training cross-entropy per epoch.
        hook: where it was trained.
    """

    basis: Float[Tensor, "d_model n_dims"]
    losses: list[float]
    hook: str


def train_das(model, pairs: CounterfactualPairs, hook: str, n_dims: int, epochs: int = 8,
              lr: float = 1e-2, batch_size: int = 64, seed: int = 0, progress: bool = True
              ) -> DASResult:
    """Learn an ``n_dims``-dimensional subspace at ``hook`` whose interchange makes the
    model output the counterfactual labels (DAS).

    Args:
        model: a TransformerLens model (frozen during training, then restored).
        pairs: training pairs; the interchange is at ``pairs.base_pos``.
        hook: one hook name, e.g. ``hook_name("resid_post", 1)``.
        n_dims: the subspace's dimension, at most the activation width.
        epochs: passes over the pairs.
        lr: Adam learning rate.
        batch_size: pairs per optimisation step.
        seed: seeds the initial basis and the order of the pairs.
        progress: show a tqdm bar.

    Returns:
        The learned basis and the loss per epoch.
    """
    (hook,) = check_hook_names(model, [hook])
    check_positive("epochs", epochs, integer=True)
    check_positive("batch_size", batch_size, integer=True)
    check_tokens(model, pairs.base)
    source = source_activations(model, pairs.source, hook, pairs.source_pos)[hook]
    width = source.shape[1]
    if not isinstance(n_dims, int) or not 1 <= n_dims <= width:
        raise ValueError(f"n_dims={n_dims!r} must be an int between 1 and the activation "
                         f"width {width} at {hook}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        subspace = _Subspace(width, n_dims).to(source.device)
    optimiser = torch.optim.Adam(subspace.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    with frozen(model):
        for _ in tqdm(range(epochs), desc=f"DAS n_dims={n_dims}", disable=not progress):
            order, total = torch.randperm(len(pairs), generator=gen), 0.0
            for start in range(0, len(pairs), batch_size):
                idx = order[start:start + batch_size]
                total += _step(model, pairs.subset(idx), hook, subspace, source[idx],
                               optimiser) * len(idx)
            losses.append(total / len(pairs))
    return DASResult(subspace.basis.detach().cpu(), losses, hook)


def _step(model, part: CounterfactualPairs, hook: str, subspace: _Subspace,
          source: Float[Tensor, "batch d_model"], optimiser: torch.optim.Optimizer) -> float:
    """One Adam step on the cross-entropy of the intervened output vs the targets."""
    with interchange(model, hook, lambda: subspace.basis, {hook: source}, part.base_pos):
        scores = class_scores(model(part.base.to(model.cfg.device)), part)
    loss = F.cross_entropy(scores, part.targets.to(scores.device))
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    return loss.item()
