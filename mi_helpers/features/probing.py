"""Linear probes: is a property linearly readable from an activation, and is it used?

A probe is a logistic regression ``P(y = 1 | x) = sigmoid(x @ w + b)`` that predicts a
binary label ``y`` from an activation ``x`` (one per example, at a chosen hook and
position, see :func:`extract_activations`). A high held-out F1 says the label is
*linearly present*; it does not say the model uses it. Two checks guard that reading:

* a **control**: the same probe trained on shuffled labels. Its score is what "no
  information" looks like for this probe and data, and **selectivity** = real − control
  (Hewitt & Liang, 2019). Since the threshold is tuned to maximise F1, a probe that
  knows nothing predicts "all positive" and scores F1 ≈ 2p / (1 + p) for a positive
  rate ``p`` (2/3 when balanced), not 0.5; read accuracy's selectivity as well.
* a **causal check** (:func:`mi_helpers.interventions.causal_effect`): remove the probe
  direction from the activation or push along it, and see whether a behavioural metric
  moves more than for a random direction.

A **sparse probe** (Gurnee et al., 2023, "Finding Neurons in a Haystack") first ranks
dimensions by how well each one alone separates the classes — ``|mean_1 − mean_0|`` over
the pooled standard deviation — and fits a probe on the best ``n_dims`` only
(:func:`best_dims`); ``n_dims = 1`` asks whether a single neuron carries the feature.

Features are standardised with the training split's mean and std before fitting (full
batch L-BFGS, L2 penalty), and the weights are mapped back, so ``Probe.direction`` lives
in activation space. The data are split train / validation / test, stratified: fit on
train, choose the decision threshold on validation (best F1), report on test.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor

from ..core.activations import collect_activations
from ..core.checks import check_activations, check_labels, check_positive, check_type
from ..core.hooks import hook_name
from ..core.training import NonFiniteLossError

__all__ = ["Probe", "fit_probe", "tune_threshold", "train_probe", "probe_with_control",
           "probe_sweep", "probe_rows", "binary_metrics", "split_indices", "group_splits", "best_dims",
           "check_labels",
           "METRICS"]

METRICS = ("f1", "precision", "recall", "accuracy")


@dataclass(repr=False)
class Probe:
    """A fitted linear probe: ``score = x @ direction + bias``; positive if ``>= threshold``.

    Attributes:
        direction: weights in activation space (zero outside ``dims`` for a sparse probe).
        bias: the intercept.
        threshold: decision threshold on the score (0 is probability 0.5).
        dims: the dimensions a sparse probe uses; ``None`` for a dense probe.
    """

    direction: Float[Tensor, "d_model"]
    bias: float
    threshold: float = 0.0
    dims: Int[Tensor, "n_dims"] | None = None

    def score(self, acts: Float[Tensor, "batch d_model"]) -> Float[Tensor, "batch"]:
        """The logit of the positive class."""
        return acts @ self.direction + self.bias

    def predict(self, acts: Float[Tensor, "batch d_model"]) -> Bool[Tensor, "batch"]:
        """True where the probe says "positive"."""
        return self.score(acts) >= self.threshold

    def __repr__(self) -> str:
        kind = "dense" if self.dims is None else f"sparse, {len(self.dims)} dims"
        return (f"Probe({kind}, d_model={len(self.direction)}, "
                f"threshold={self.threshold:.3g})")


Split = tuple[Int[Tensor, "n_train"], Int[Tensor, "n_val"], Int[Tensor, "n_test"]]


def split_indices(labels: Int[Tensor, "batch"],
                  fractions: tuple[float, float, float] = (0.6, 0.2, 0.2), seed: int = 0
                  ) -> Split:
    """Stratified train / validation / test indices (each class split in ``fractions``).

    Raises:
        ValueError: a class has fewer than 3 examples, so some split would lack it.
    """
    gen = torch.Generator().manual_seed(seed)
    parts: list[list[Tensor]] = [[], [], []]
    counts = {int(c): int((labels == c).sum()) for c in labels.unique()}
    if min(counts.values()) < 3:
        raise ValueError(f"class counts {counts}: each class needs at least 3 examples so "
                         f"that the train, validation and test splits all contain it")
    for cls in labels.unique():
        idx = torch.nonzero(labels.cpu() == cls.cpu()).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        n_train = max(1, min(round(fractions[0] * len(idx)), len(idx) - 2))
        n_val = max(1, min(round(fractions[1] * len(idx)), len(idx) - n_train - 1))
        for part, chunk in zip(parts, (idx[:n_train], idx[n_train:n_train + n_val],
                                       idx[n_train + n_val:]), strict=True):
            part.append(chunk)
    return tuple(torch.cat(part).sort().values for part in parts)  # type: ignore[return-value]


def group_splits(groups: list, labels: Int[Tensor, "batch"], held_out: set,
                 val_fraction: float = 0.25, seed: int = 0) -> Split:
    """Train / validation indices from the rows whose group is not in ``held_out``; test
    indices from the rows whose group is: does the probe transfer to unseen groups (e.g.
    words it never saw before the probed position)?

    Raises:
        TypeError: ``held_out`` is a string (give a set of groups). ValueError: labels not
            0/1, ``val_fraction`` outside (0, 1), or the test or the training rows lack
            one of the classes.
    """
    if len(groups) != len(labels):
        raise ValueError(f"{len(groups)} groups but {len(labels)} labels")
    labels = check_labels(labels, len(groups)).cpu()
    if isinstance(held_out, str):
        raise TypeError(f"held_out must be a set of groups, got the string {held_out!r}; "
                        f"wrap it: {{{held_out!r}}}")
    held_out = set(held_out)
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    test = torch.tensor([i for i, g in enumerate(groups) if g in held_out], dtype=torch.long)
    rest = torch.tensor([i for i, g in enumerate(groups) if g not in held_out], dtype=torch.long)
    for name, rows in (("held-out", test), ("remaining", rest)):
        if len(rows) == 0 or labels[rows].unique().numel() < 2:
            raise ValueError(f"the {name} groups must contain both classes")
    inner_train, inner_val, inner_test = split_indices(
        labels[rest], (1 - val_fraction, val_fraction / 2, val_fraction / 2), seed)
    val = torch.cat([inner_val, inner_test])
    return rest[inner_train].sort().values, rest[val].sort().values, test


def best_dims(acts: Float[Tensor, "batch d_model"], labels: Int[Tensor, "batch"],
              n_dims: int) -> Int[Tensor, "n_dims"]:
    """The ``n_dims`` dimensions that best separate the classes alone, best first.

    Each dimension is scored by ``|mean_1 − mean_0| / pooled_std`` (an effect size).
    """
    labels = check_labels(labels, len(acts)).to(acts.device)
    if not isinstance(n_dims, int) or not 1 <= n_dims <= acts.shape[1]:
        raise ValueError(f"n_dims={n_dims!r} must be an int between 1 and the activation "
                         f"width {acts.shape[1]}")
    ones, zeros = acts[labels == 1], acts[labels == 0]
    squares = (ones - ones.mean(0)).pow(2).sum(0) + (zeros - zeros.mean(0)).pow(2).sum(0)
    pooled_std = (squares / max(len(acts) - 2, 1)).sqrt()
    effect = (ones.mean(0) - zeros.mean(0)).abs() / pooled_std.clamp_min(1e-8)
    return effect.topk(n_dims).indices


def _fit_logistic(x: Float[Tensor, "batch d_model"], y: Float[Tensor, "batch"], l2: float,
                  max_iter: int) -> tuple[Float[Tensor, "d_model"], Float[Tensor, ""]]:
    """Full-batch L-BFGS on the mean cross-entropy plus ``l2 / 2 * |w|^2``."""
    w = torch.zeros(x.shape[1], device=x.device, dtype=x.dtype, requires_grad=True)
    b = torch.zeros((), device=x.device, dtype=x.dtype, requires_grad=True)
    optimiser = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter,
                                  line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimiser.zero_grad()
        loss = F.binary_cross_entropy_with_logits(x @ w + b, y) + 0.5 * l2 * w.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        loss = optimiser.step(closure)
    if not (torch.isfinite(loss) and torch.isfinite(w).all() and torch.isfinite(b)):
        raise NonFiniteLossError(f"the probe's fit did not converge: loss {float(loss):.4g}; "
                                 f"check the activations for huge values, or raise l2", 0, -1)
    return w.detach(), b.detach()


def fit_probe(acts: Float[Tensor, "batch d_model"], labels: Int[Tensor, "batch"],
              n_dims: int | None = None, l2: float = 1e-2, max_iter: int = 200) -> Probe:
    """Fit a logistic-regression probe (dense, or sparse when ``n_dims`` is given).

    Args:
        acts: training activations.
        labels: 0/1 labels, one per example, both classes present.
        n_dims: keep only the ``n_dims`` best-separating dimensions (:func:`best_dims`).
        l2: L2 penalty on the standardised weights.
        max_iter: L-BFGS iterations.

    Returns:
        The probe, with threshold 0 (probability 0.5); see :func:`tune_threshold`.
    """
    check_activations(acts)
    labels = check_labels(labels, len(acts)).to(acts.device)
    check_positive("l2", l2, allow_zero=True)
    acts = _floating(acts)
    dims = None if n_dims is None else best_dims(acts, labels, n_dims)
    x = acts if dims is None else acts[:, dims]
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    w, b = _fit_logistic((x - mean) / std, labels.to(x.dtype), l2, max_iter)
    weights = w / std  # back to activation space
    bias = (b - (mean * weights).sum()).item()
    if dims is not None:  # zero outside the kept dimensions
        weights = torch.zeros(acts.shape[1], device=acts.device, dtype=acts.dtype).index_put((dims,), weights)
    return Probe(direction=weights, bias=bias, dims=dims)


def tune_threshold(probe: Probe, acts: Float[Tensor, "batch d_model"],
                   labels: Int[Tensor, "batch"]) -> Probe:
    """A copy of ``probe`` whose threshold maximises F1 on ``acts`` (a validation split).

    Every cut between two distinct sorted scores is tried; the threshold is the midpoint.
    """
    labels = check_labels(labels, len(acts)).to(acts.device)
    scores, order = probe.score(_floating(acts)).sort(descending=True)
    true_pos = labels[order].cumsum(0).float()  # if the top i+1 are called positive
    n_called = torch.arange(1, len(scores) + 1, device=scores.device)
    f1 = 2 * true_pos / (n_called + labels.sum())
    f1[:-1][scores[:-1] == scores[1:]] = -1.0  # never cut inside a tie
    best = int(f1.argmax())
    threshold = (scores[best] + scores[best + 1]) / 2 if best < len(scores) - 1 else -torch.inf
    return replace(probe, threshold=float(threshold))


def binary_metrics(predicted: Bool[Tensor, "batch"], labels: Int[Tensor, "batch"]
                   ) -> dict[str, float]:
    """F1, precision, recall and accuracy of 0/1 predictions (0 where undefined)."""
    predicted, labels = predicted.bool(), labels.bool()
    tp = (predicted & labels).sum().item()
    fp = (predicted & ~labels).sum().item()
    fn = (~predicted & labels).sum().item()
    return {"f1": 2 * tp / max(2 * tp + fp + fn, 1), "precision": tp / max(tp + fp, 1),
            "recall": tp / max(tp + fn, 1),
            "accuracy": (predicted == labels).float().mean().item()}


def train_probe(acts: Float[Tensor, "batch d_model"], labels: Int[Tensor, "batch"],
                splits: Split | None = None, n_dims: int | None = None,
                l2: float = 1e-2, seed: int = 0) -> tuple[Probe, dict[str, float]]:
    """Fit on train, tune the threshold on validation, score on test.

    Args:
        acts: activations of all examples.
        labels: their 0/1 labels.
        splits: train / validation / test indices; default :func:`split_indices`.
        n_dims: fit a sparse probe on this many dimensions; ``None`` for dense.
        l2: L2 penalty.
        seed: seeds the default split.

    Returns:
        The probe and its test metrics (:func:`binary_metrics`).

    Raises:
        ValueError: labels not 0/1 or of another length, or ``splits`` that are not three
            disjoint, non-empty sets of row indices.
    """
    labels = check_labels(labels, len(acts)).to(acts.device)
    train, val, test = split_indices(labels, seed=seed) if splits is None else _check_splits(
        splits, len(acts))
    probe = fit_probe(acts[train], labels[train], n_dims=n_dims, l2=l2)
    probe = tune_threshold(probe, acts[val], labels[val])
    return probe, binary_metrics(probe.predict(_floating(acts[test])), labels[test])


def probe_with_control(acts: Float[Tensor, "batch d_model"], labels: Int[Tensor, "batch"],
                       n_dims: int | None = None, l2: float = 1e-2, seed: int = 0) -> dict:
    """Train a probe, and the same probe on shuffled labels, on the same splits.

    Returns:
        ``{"probe": Probe}`` plus each metric of :func:`binary_metrics`, each as
        ``control_<metric>`` and as ``selectivity_<metric>`` (real − control).
    """
    labels = check_labels(labels, len(acts)).to(acts.device)
    splits = split_indices(labels, seed=seed)
    probe, real = train_probe(acts, labels, splits, n_dims=n_dims, l2=l2)
    gen = torch.Generator().manual_seed(seed + 1)
    shuffled = labels[torch.randperm(len(labels), generator=gen).to(labels.device)]
    _, control = train_probe(acts, shuffled, splits, n_dims=n_dims, l2=l2)
    row: dict = {"probe": probe, **real}
    row.update({f"control_{m}": control[m] for m in METRICS})
    row.update({f"selectivity_{m}": real[m] - control[m] for m in METRICS})
    return row


def probe_sweep(model, tokens: Int[Tensor, "batch pos"], labels: Int[Tensor, "batch"],
                hooks: list[str] | None = None, pos: int | Int[Tensor, "batch"] = -1,
                n_dims: int | None = None, l2: float = 1e-2, seed: int = 0,
                batch_size: int = 64, progress: bool = True) -> list[dict]:
    """A probe and its shuffled-label control at each hook (default: every layer's
    residual stream), from one pass over the data.

    Args:
        model: a TransformerLens model.
        tokens: the examples' token ids (right-padded).
        labels: one 0/1 label per prompt.
        hooks: where to probe; default ``resid_post`` of every layer.
        pos: the position to read: one int for all (``-1``: the last), or one per example.
        n_dims, l2, seed: as in :func:`probe_with_control`.
        batch_size: prompts per forward pass.
        progress: show a tqdm bar.

    Returns:
        One row per hook: ``{"hook": name, **probe_with_control(...)}``.
    """
    labels = check_labels(labels, len(tokens)).cpu()  # fail before the expensive pass
    if hooks is None:
        hooks = [hook_name("resid_post", layer) for layer in range(model.cfg.n_layers)]
    acts = collect_activations(model, tokens, hooks, positions=pos, batch_size=batch_size,
                               progress=progress)
    return probe_rows(acts, labels, n_dims, l2, seed)


def probe_rows(acts: dict[str, Float[Tensor, "batch unit"]], labels: Int[Tensor, "batch"],
               n_dims: int | None = None, l2: float = 1e-2, seed: int = 0) -> list[dict]:
    """:func:`probe_sweep` on activations already collected: probe them several ways
    (e.g. dense and sparse) from one pass over the data.

    Args:
        acts: ``{hook: [batch, unit]}``, e.g. ``collect_activations(..., positions=...)``.
        labels: one 0/1 label per row.
        n_dims, l2, seed: as in :func:`probe_with_control`.

    Returns:
        One row per hook, in the order of ``acts``: ``{"hook": name, **probe_with_control(...)}``.
    """
    check_type("acts", acts, dict, "{hook: activations}, e.g. from collect_activations")
    if not acts:
        raise ValueError("acts is empty: collect at least one hook's activations first")
    return [{"hook": name, **probe_with_control(act, labels, n_dims, l2, seed)}
            for name, act in acts.items()]


def _check_splits(splits: Split, n: int) -> Split:
    """Three disjoint, non-empty ``[n_rows]`` index tensors into ``n`` examples."""
    if not isinstance(splits, (tuple, list)) or len(splits) != 3:
        raise ValueError("splits must be (train, validation, test) row indices, e.g. from "
                         "split_indices(labels) or group_splits(...)")
    parts = [torch.as_tensor(part).cpu() for part in splits]
    for name, part in zip(("train", "validation", "test"), parts):
        if part.ndim != 1 or len(part) == 0 or part.dtype.is_floating_point:
            raise ValueError(f"the {name} split must be a non-empty list of row indices, got "
                             f"dtype {part.dtype}, shape {tuple(part.shape)}")
        if int(part.min()) < -n or int(part.max()) >= n:
            raise IndexError(f"the {name} split has rows up to {int(part.max())}, but there "
                             f"are {n} examples")
    rows = [set((part % n).tolist()) for part in parts]
    if rows[0] & rows[1] or rows[0] & rows[2] or rows[1] & rows[2]:
        raise ValueError("the train, validation and test splits share rows: a probe scored "
                         "on its own training rows looks better than it is")
    return tuple(parts)  # type: ignore[return-value]


def _floating(acts: Tensor) -> Tensor:
    """Activations in float32 or float64 (as they are); half precisions are fitted in float32."""
    return acts if acts.dtype in (torch.float32, torch.float64) else acts.float()
