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
* a **causal check** (:func:`causal_effect`): remove the probe direction from the
  activation (:func:`ablate_direction`) or push along it (:func:`steer_direction`), and
  see whether a behavioural metric moves more than for a random direction.

A **k-sparse probe** (Gurnee et al., 2023, "Finding Neurons in a Haystack") first ranks
dimensions by how well each one alone separates the classes — ``|mean_1 − mean_0|`` over
the pooled standard deviation — and fits a probe on the top ``k`` only; ``k = 1`` asks
whether a single neuron carries the feature.

Features are standardised with the training split's mean and std before fitting (full
batch L-BFGS, L2 penalty), and the weights are mapped back, so ``Probe.direction`` lives
in activation space. The data are split train / validation / test, stratified: fit on
train, choose the decision threshold on validation (best F1), report on test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from .cache import check_hook_names, run_with_hooks_cached
from .lens import RESID_HOOK, check_pos

METRICS = ("f1", "precision", "recall", "accuracy")


@dataclass(repr=False)
class Probe:
    """A fitted linear probe: ``score = x @ direction + bias``; positive if ``>= threshold``.

    Attributes:
        direction: weights in activation space (zero outside ``dims`` for a sparse probe).
        bias: the intercept.
        threshold: decision threshold on the score (0 is probability 0.5).
        dims: the dimensions a k-sparse probe uses; ``None`` for a dense probe.
    """

    direction: Float[Tensor, "d_model"]
    bias: float
    threshold: float = 0.0
    dims: Int[Tensor, "k"] | None = None

    def score(self, acts: Float[Tensor, "batch d_model"]) -> Float[Tensor, "batch"]:
        """The logit of the positive class."""
        return acts @ self.direction + self.bias

    def predict(self, acts: Float[Tensor, "batch d_model"]) -> Bool[Tensor, "batch"]:
        """True where the probe says "positive"."""
        return self.score(acts) >= self.threshold

    def __repr__(self) -> str:
        kind = "dense" if self.dims is None else f"{len(self.dims)}-sparse"
        return (f"Probe({kind}, d_model={len(self.direction)}, "
                f"threshold={self.threshold:.3g})")


def check_labels(labels: Int[Tensor, "batch"], n_examples: int) -> Int[Tensor, "batch"]:
    """Return ``labels`` as 0/1 integers, or raise if they do not fit ``n_examples``.

    Raises:
        ValueError: the counts differ, a label is not 0 or 1, or only one class is present.
    """
    labels = torch.as_tensor(labels).long()
    if labels.ndim != 1 or len(labels) != n_examples:
        raise ValueError(f"got {n_examples} examples but labels of shape "
                         f"{tuple(labels.shape)}; give one 0/1 label per example")
    if not torch.isin(labels, torch.tensor([0, 1], device=labels.device)).all():
        raise ValueError(f"labels must be 0 or 1, got the values {labels.unique().tolist()}")
    if labels.unique().numel() < 2:
        raise ValueError(f"every label is {labels[0].item()}: a probe needs examples of both "
                         f"classes")
    return labels


def _positions(pos: int | Int[Tensor, "batch"], n_batch: int, n_pos: int
               ) -> Int[Tensor, "batch"]:
    """One non-negative position per example, checked against the prompt length."""
    pos = torch.as_tensor(pos).long().cpu()
    if pos.ndim == 0:
        return torch.full((n_batch,), check_pos(int(pos), n_pos))
    if pos.shape != (n_batch,):
        raise ValueError(f"pos has shape {tuple(pos.shape)}; give an int or one position "
                         f"per example ({n_batch})")
    bad = (pos < -n_pos) | (pos >= n_pos)
    if bad.any():
        check_pos(int(pos[bad][0]), n_pos)  # raises with the prompt length
    return pos % n_pos


def extract_activations(model, tokens: Int[Tensor, "batch pos"], hooks: list[str],
                        pos: int | Int[Tensor, "batch"] = -1, batch_size: int = 64,
                        progress: bool = True) -> dict[str, Float[Tensor, "batch d_model"]]:
    """One activation vector per example at each hook, caching only those hooks.

    Args:
        model: a TransformerLens model.
        tokens: the examples' token ids (pad on the right; causal attention keeps the
            padding from changing earlier positions).
        hooks: hook names, e.g. ``["blocks.1.hook_resid_post"]``.
        pos: the position to read: one int for all (``-1``: the last), or one per example.
        batch_size: prompts per forward pass.
        progress: show a tqdm bar.

    Returns:
        ``{hook: activations}``; axes after ``pos`` (e.g. ``head d_head``) are flattened.
    """
    hooks = check_hook_names(model, hooks)
    positions = _positions(pos, tokens.shape[0], tokens.shape[1])
    chunks: dict[str, list[Tensor]] = {name: [] for name in hooks}
    for start in tqdm(range(0, len(tokens), batch_size), desc="activations",
                      disable=not progress):
        _, cache = run_with_hooks_cached(model, tokens[start:start + batch_size], hooks)
        where = positions[start:start + batch_size]
        for name in hooks:
            act = cache[name]  # batch pos ...
            rows = torch.arange(len(act), device=act.device)
            chunks[name].append(act[rows, where.to(act.device)].flatten(1).cpu())
    return {name: torch.cat(parts) for name, parts in chunks.items()}


Split = tuple[Int[Tensor, "n_train"], Int[Tensor, "n_val"], Int[Tensor, "n_test"]]


def split_indices(labels: Int[Tensor, "batch"],
                  fractions: tuple[float, float, float] = (0.6, 0.2, 0.2), seed: int = 0
                  ) -> Split:
    """Stratified train / validation / test indices (each class split in ``fractions``)."""
    gen = torch.Generator().manual_seed(seed)
    parts: list[list[Tensor]] = [[], [], []]
    for cls in labels.unique():
        idx = torch.nonzero(labels.cpu() == cls.cpu()).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        n_train = round(fractions[0] * len(idx))
        n_val = round(fractions[1] * len(idx))
        for part, chunk in zip(parts, (idx[:n_train], idx[n_train:n_train + n_val],
                                       idx[n_train + n_val:]), strict=True):
            part.append(chunk)
    return tuple(torch.cat(part).sort().values for part in parts)  # type: ignore[return-value]


def top_k_dims(acts: Float[Tensor, "batch d_model"], labels: Int[Tensor, "batch"],
               k: int) -> Int[Tensor, "k"]:
    """The ``k`` dimensions that best separate the classes alone, best first.

    Each dimension is scored by ``|mean_1 − mean_0| / pooled_std`` (an effect size).
    """
    labels = check_labels(labels, len(acts)).to(acts.device)
    if not 1 <= k <= acts.shape[1]:
        raise ValueError(f"k={k} must be between 1 and the activation width {acts.shape[1]}")
    ones, zeros = acts[labels == 1], acts[labels == 0]
    squares = (ones - ones.mean(0)).pow(2).sum(0) + (zeros - zeros.mean(0)).pow(2).sum(0)
    pooled_std = (squares / max(len(acts) - 2, 1)).sqrt()
    effect = (ones.mean(0) - zeros.mean(0)).abs() / pooled_std.clamp_min(1e-8)
    return effect.topk(k).indices


def _fit_logistic(x: Float[Tensor, "batch d_model"], y: Float[Tensor, "batch"], l2: float,
                  max_iter: int) -> tuple[Float[Tensor, "d_model"], Float[Tensor, ""]]:
    """Full-batch L-BFGS on the mean cross-entropy plus ``l2 / 2 * |w|^2``."""
    w = torch.zeros(x.shape[1], device=x.device, requires_grad=True)
    b = torch.zeros((), device=x.device, requires_grad=True)
    optimiser = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter,
                                  line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimiser.zero_grad()
        loss = F.binary_cross_entropy_with_logits(x @ w + b, y) + 0.5 * l2 * w.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimiser.step(closure)
    return w.detach(), b.detach()


def fit_probe(acts: Float[Tensor, "batch d_model"], labels: Int[Tensor, "batch"],
              k: int | None = None, l2: float = 1e-2, max_iter: int = 200) -> Probe:
    """Fit a logistic-regression probe (dense, or k-sparse when ``k`` is given).

    Args:
        acts: training activations.
        labels: 0/1 labels, one per example, both classes present.
        k: keep only the ``k`` best-separating dimensions (:func:`top_k_dims`).
        l2: L2 penalty on the standardised weights.
        max_iter: L-BFGS iterations.

    Returns:
        The probe, with threshold 0 (probability 0.5); see :func:`tune_threshold`.
    """
    labels = check_labels(labels, len(acts)).to(acts.device)
    acts = acts.float()
    dims = None if k is None else top_k_dims(acts, labels, k)
    x = acts if dims is None else acts[:, dims]
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    w, b = _fit_logistic((x - mean) / std, labels.float(), l2, max_iter)
    weights = w / std  # back to activation space
    bias = (b - (mean * weights).sum()).item()
    if dims is not None:  # zero outside the kept dimensions
        weights = torch.zeros(acts.shape[1], device=acts.device).index_put((dims,), weights)
    return Probe(direction=weights, bias=bias, dims=dims)


def tune_threshold(probe: Probe, acts: Float[Tensor, "batch d_model"],
                   labels: Int[Tensor, "batch"]) -> Probe:
    """A copy of ``probe`` whose threshold maximises F1 on ``acts`` (a validation split).

    Every cut between two distinct sorted scores is tried; the threshold is the midpoint.
    """
    labels = check_labels(labels, len(acts)).to(acts.device)
    scores, order = probe.score(acts.float()).sort(descending=True)
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
                splits: Split | None = None, k: int | None = None,
                l2: float = 1e-2, seed: int = 0) -> tuple[Probe, dict[str, float]]:
    """Fit on train, tune the threshold on validation, score on test.

    Args:
        acts: activations of all examples.
        labels: their 0/1 labels.
        splits: train / validation / test indices; default :func:`split_indices`.
        k: fit a k-sparse probe; ``None`` for dense.
        l2: L2 penalty.
        seed: seeds the default split.

    Returns:
        The probe and its test metrics (:func:`binary_metrics`).
    """
    labels = check_labels(labels, len(acts)).to(acts.device)
    train, val, test = split_indices(labels, seed=seed) if splits is None else splits
    probe = fit_probe(acts[train], labels[train], k=k, l2=l2)
    probe = tune_threshold(probe, acts[val], labels[val])
    return probe, binary_metrics(probe.predict(acts[test].float()), labels[test])


def probe_with_control(acts: Float[Tensor, "batch d_model"], labels: Int[Tensor, "batch"],
                       k: int | None = None, l2: float = 1e-2, seed: int = 0) -> dict:
    """Train a probe, and the same probe on shuffled labels, on the same splits.

    Returns:
        ``{"probe": Probe}`` plus each metric of :func:`binary_metrics`, each as
        ``control_<metric>`` and as ``selectivity_<metric>`` (real − control).
    """
    labels = check_labels(labels, len(acts)).to(acts.device)
    splits = split_indices(labels, seed=seed)
    probe, real = train_probe(acts, labels, splits, k=k, l2=l2)
    gen = torch.Generator().manual_seed(seed + 1)
    shuffled = labels[torch.randperm(len(labels), generator=gen).to(labels.device)]
    _, control = train_probe(acts, shuffled, splits, k=k, l2=l2)
    row: dict = {"probe": probe, **real}
    row.update({f"control_{m}": control[m] for m in METRICS})
    row.update({f"selectivity_{m}": real[m] - control[m] for m in METRICS})
    return row


def probe_sweep(model, tokens: Int[Tensor, "batch pos"], labels: Int[Tensor, "batch"],
                hooks: list[str] | None = None, pos: int | Int[Tensor, "batch"] = -1,
                k: int | None = None, l2: float = 1e-2, seed: int = 0,
                batch_size: int = 64, progress: bool = True) -> list[dict]:
    """A probe and its shuffled-label control at each hook (default: every layer's
    residual stream), from one pass over the data.

    Args:
        model, tokens, pos, batch_size, progress: as in :func:`extract_activations`.
        labels: one 0/1 label per prompt.
        hooks: where to probe; default ``blocks.{l}.hook_resid_post`` for every layer.
        k, l2, seed: as in :func:`probe_with_control`.

    Returns:
        One row per hook: ``{"hook": name, **probe_with_control(...)}``.
    """
    labels = check_labels(labels, len(tokens)).cpu()  # fail before the expensive pass
    if hooks is None:
        hooks = [RESID_HOOK.format(layer=layer) for layer in range(model.cfg.n_layers)]
    acts = extract_activations(model, tokens, hooks, pos, batch_size, progress)
    return [{"hook": name, **probe_with_control(acts[name], labels, k, l2, seed)}
            for name in hooks]


def _unit(direction: Float[Tensor, "d_model"]) -> Float[Tensor, "d_model"]:
    norm = direction.norm()
    if norm == 0:
        raise ValueError("the direction is all zeros; there is nothing to ablate or steer along")
    return direction / norm


@contextmanager
def _edit_activation(model, hook: str, direction: Float[Tensor, "d_model"],
                     edit: Callable[[Tensor, Tensor], Tensor], pos: int | None
                     ) -> Iterator[None]:
    """Apply ``edit(x, unit)`` to the hook's activation, per position, while inside.

    Axes after ``pos`` are flattened to match ``direction``; the hook is always removed.
    """
    check_hook_names(model, [hook])
    unit = _unit(direction.float())

    def hook_fn(act: Tensor, hook) -> Tensor:
        flat = act.flatten(2)  # batch pos d_model
        if flat.shape[-1] != len(unit):
            raise ValueError(f"the direction has {len(unit)} entries but {hook.name} has "
                             f"{flat.shape[-1]} per position")
        u = unit.to(flat.device, flat.dtype)
        where = slice(None) if pos is None else check_pos(pos, flat.shape[1])
        flat = flat.clone()
        flat[:, where] = edit(flat[:, where], u)
        return flat.reshape(act.shape)

    with model.hooks(fwd_hooks=[(hook, hook_fn)]):  # removes the hook in a finally block
        yield


def _project_out(x: Float[Tensor, "... d_model"], unit: Float[Tensor, "d_model"]
                 ) -> Float[Tensor, "... d_model"]:
    return x - (x @ unit)[..., None] * unit


def ablate_direction(model, hook: str, direction: Float[Tensor, "d_model"],
                     pos: int | None = None) -> AbstractContextManager[None]:
    """Context manager: project ``direction`` out of the activation at ``hook``.

    Args:
        model: a TransformerLens model.
        hook: hook name, e.g. ``"blocks.1.hook_resid_post"``.
        direction: e.g. ``probe.direction`` (only its direction matters).
        pos: edit only this position; ``None`` edits all.
    """
    return _edit_activation(model, hook, direction, _project_out, pos)


def steer_direction(model, hook: str, direction: Float[Tensor, "d_model"], alpha: float,
                    pos: int | None = None) -> AbstractContextManager[None]:
    """Context manager: add ``alpha`` times the unit ``direction`` at ``hook``.

    Arguments as in :func:`ablate_direction`; ``alpha`` is in activation units.
    """
    return _edit_activation(model, hook, direction, lambda x, u: x + alpha * u, pos)


def causal_effect(model, tokens: Int[Tensor, "batch pos"], hook: str,
                  direction: Float[Tensor, "d_model"],
                  metric: Callable[[Float[Tensor, "batch pos d_vocab"]], Float[Tensor, ""]],
                  alpha: float | None = None, pos: int | None = None, n_random: int = 5,
                  seed: int = 0) -> dict[str, float]:
    """How much an intervention along ``direction`` moves ``metric``, against random
    directions of the same norm.

    Args:
        model, tokens: the model and the prompts to run.
        hook, direction, pos: where and along what to intervene.
        metric: maps the logits to a scalar (e.g. a mean logit difference).
        alpha: ``None`` ablates (projects out); a number steers by ``alpha``.
        n_random: how many random directions to average for the baseline.
        seed: seeds the random directions.

    Returns:
        ``clean`` and ``intervened`` metric values, ``effect`` (their difference), and
        the random directions' mean ``random_effect`` and mean ``random_abs_effect``.
        Compare ``|effect|`` with ``random_abs_effect``.
    """
    def run(d: Tensor) -> float:
        context = (ablate_direction(model, hook, d, pos) if alpha is None
                   else steer_direction(model, hook, d, alpha, pos))
        with context, torch.no_grad():
            return float(metric(model(tokens)))

    with torch.no_grad():
        clean = float(metric(model(tokens)))
    intervened = run(direction)
    gen = torch.Generator().manual_seed(seed)
    randoms = [run(torch.randn(len(direction), generator=gen)) - clean for _ in range(n_random)]
    n = max(n_random, 1)
    return {"clean": clean, "intervened": intervened, "effect": intervened - clean,
            "random_effect": sum(randoms) / n,
            "random_abs_effect": sum(abs(r) for r in randoms) / n}
