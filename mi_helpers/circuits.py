"""Circuits as sets of heads: run only the circuit, and evaluate it (Wang et al., 2022).

A **circuit** here is a set of attention heads, each optionally restricted to some
positions (e.g. a name-mover head only at the last token). MLPs, embeddings and layer
norms are always kept, as in the IOI paper. To *run only the circuit*, every head
outside it is **mean-ablated**: its output ``z`` is replaced by its mean over a
reference distribution (for IOI, the "ABC" prompts, which keep the sentence shape but
carry no IOI information), taken separately for each template so that each position's
mean is over the same word slot (:func:`template_means`).

With ``F(S)`` the metric (e.g. mean logit difference) when only the heads in ``S`` run:

* **faithfulness**: ``F(C) / F(M)`` for circuit ``C`` inside the model ``M``; the IOI
  paper's circuit recovers 87% of gpt2-small's logit difference.
* **completeness**: for subsets ``K`` of ``C``, compare ``F(C \\ K)`` with ``F(M \\ K)``;
  a complete circuit loses as much as the whole model does when ``K`` is removed from
  both, so the points lie on the diagonal. Random ``K`` and a greedy ``K`` that seeks the
  largest gap (:func:`completeness`).
* **minimality**: every head ``v`` should matter for some subset ``K``:
  ``|F(C \\ (K + v)) - F(C \\ K)|`` is large for the best ``K`` (:func:`minimality`).

Heads' roles can be read from their weights too: **composition scores** (Elhage et
al., 2021) measure how much a later head's query, key or value reads what an earlier
head writes (:func:`composition_scores`); the behavioural head scores (induction,
previous-token, duplicate-token) are in :mod:`mi_helpers.head_scores`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import torch
from jaxtyping import Float, Int
from torch import Tensor

from .head_scores import head_scores  # noqa: F401  (re-exported: per-head scores)
from .patching import Metric, cached_run, metric_value
from .path_patching import Z_HOOK, Head, check_heads


def head_label(head: Head) -> str:
    """``(layer, head)`` as ``"L{layer}H{head}"``, e.g. ``"L9H6"``."""
    return f"L{head[0]}H{head[1]}"


def template_means(acts: Float[Tensor, "batch pos ..."], groups: Int[Tensor, "batch"]
                   ) -> Float[Tensor, "batch pos ..."]:
    """Row ``i`` becomes the mean of ``acts`` over the rows in ``i``'s group, per position."""
    groups = groups.to(acts.device)
    if len(groups) != len(acts):
        raise ValueError(f"groups has {len(groups)} entries but the activations have a batch of "
                         f"{len(acts)}")
    out = torch.empty_like(acts)
    for g in groups.unique():
        rows = groups == g
        out[rows] = acts[rows].mean(dim=0, keepdim=True)
    return out


def head_means(model, reference: Int[Tensor, "batch pos"], groups: Int[Tensor, "batch"] | None = None
               ) -> dict[str, Float[Tensor, "batch pos head d_head"]]:
    """Every layer's ``hook_z`` averaged over ``reference`` within each group (template).

    Args:
        reference: tokens of the reference distribution, aligned with the prompts the
            means will replace (row ``i`` has the template of prompt ``i``).
        groups: ``[batch]`` group of each row (default: one group).
    """
    names = [Z_HOOK.format(layer=layer) for layer in range(model.cfg.n_layers)]
    _, cache = cached_run(model, reference, names)
    if groups is None:
        groups = torch.zeros(len(reference), dtype=torch.long)
    return {name: template_means(cache[name], groups) for name in names}


class CircuitEvaluator:
    """Scores a metric with only some heads running (the rest mean-ablated).

    Args:
        model: a TransformerLens model (or bridge in compatibility mode).
        tokens: ``[batch, pos]`` prompts showing the behaviour.
        metric: logits -> scalar, e.g. ``dataset.metric``.
        means: ``hook_z`` name -> ``[batch, pos, head, d_head]`` ablation values
            (:func:`head_means`).
        positions: optional ``(layer, head)`` -> ``[batch]`` or ``[batch, k]`` positions:
            a circuit head restricted to these positions (elsewhere it is ablated).
    """

    def __init__(self, model, tokens: Int[Tensor, "batch pos"], metric: Metric,
                 means: Mapping[str, Tensor], positions: Mapping[Head, Tensor] | None = None):
        self.model, self.tokens, self.metric, self.means = model, tokens, metric, means
        self.positions = {h: torch.as_tensor(p).reshape(len(tokens), -1)
                          for h, p in (positions or {}).items()}
        check_heads(model, list(self.positions), "positioned head")
        self.all_heads = [(layer, head) for layer in range(model.cfg.n_layers)
                          for head in range(model.cfg.n_heads)]
        self.full = self.score(self.all_heads)
        self.empty = self.score([])

    def keep_masks(self, kept: Collection[Head]) -> dict[str, Tensor]:
        """Per layer, ``[batch, pos, head]`` True where a head's own output is kept."""
        batch, n_pos = self.tokens.shape
        masks = {}
        rows = torch.arange(batch)
        for layer in range(self.model.cfg.n_layers):
            mask = torch.zeros(batch, n_pos, self.model.cfg.n_heads, dtype=torch.bool)
            for (lay, head) in kept:
                if lay != layer:
                    continue
                if (lay, head) in self.positions:
                    for column in self.positions[lay, head].T:
                        mask[rows, column.cpu(), head] = True
                else:
                    mask[:, :, head] = True
            masks[Z_HOOK.format(layer=layer)] = mask.to(self.tokens.device)
        return masks

    def run(self, kept: Collection[Head]) -> Float[Tensor, "batch pos d_vocab"]:
        """Logits with every head outside ``kept`` mean-ablated."""
        kept = set(check_heads(self.model, list(kept), "circuit head"))
        hooks = [(name, partial(_keep_or_mean, keep=mask, mean=self.means[name]))
                 for name, mask in self.keep_masks(kept).items() if not mask.all()]
        with torch.no_grad():
            return self.model.run_with_hooks(self.tokens, fwd_hooks=hooks)

    def score(self, kept: Collection[Head]) -> float:
        """``F(kept)``: the metric with only the heads in ``kept`` running."""
        return metric_value(self.metric, self.run(kept)).item()

    def without(self, heads: Collection[Head], removed: Collection[Head]) -> float:
        """``F(heads \\ removed)``."""
        removed = set(removed)
        return self.score([h for h in heads if h not in removed])


def _keep_or_mean(z: Tensor, hook, *, keep: Tensor, mean: Tensor) -> Tensor:
    """``z`` where ``keep`` ``[batch, pos, head]`` is True, the mean elsewhere."""
    return torch.where(keep.unsqueeze(-1), z, mean.to(z.dtype))


@dataclass
class Faithfulness:
    """``full`` = F(M), ``circuit`` = F(C), ``empty`` = F(no heads); ``ratio`` = F(C)/F(M)."""

    full: float
    circuit: float
    empty: float

    @property
    def ratio(self) -> float:
        """``F(C) / F(M)`` (NaN when ``F(M)`` is 0)."""
        return self.circuit / self.full if self.full else float("nan")

    @property
    def normalised(self) -> float:
        """``(F(C) - F(empty)) / (F(M) - F(empty))``: the share of the heads' effect kept (NaN
        when removing every head changes nothing)."""
        gap = self.full - self.empty
        return (self.circuit - self.empty) / gap if gap else float("nan")


def faithfulness(evaluator: CircuitEvaluator, circuit: Collection[Head]) -> Faithfulness:
    """How much of the model's metric the circuit alone reproduces."""
    return Faithfulness(evaluator.full, evaluator.score(circuit), evaluator.empty)


@dataclass
class CompletenessPoint:
    """One removed set ``K``: ``F(C \\ K)`` and ``F(M \\ K)``; ``gap`` is their |difference|."""

    removed: tuple[Head, ...]
    circuit: float
    full: float
    kind: str  # "random", "greedy" or "empty"

    @property
    def gap(self) -> float:
        return abs(self.circuit - self.full)


def completeness(evaluator: CircuitEvaluator, circuit: Collection[Head], n_random: int = 10,
                 greedy_steps: int = 3, seed: int = 0) -> list[CompletenessPoint]:
    """Compare removing ``K`` from the circuit and from the whole model.

    Args:
        n_random: random subsets, each head of the circuit in ``K`` with probability 1/2.
        greedy_steps: grow one ``K`` a head at a time, each time adding the head that
            makes the gap ``|F(C \\ K) - F(M \\ K)|`` largest (the IOI paper's greedy search).

    Returns:
        Points for ``K`` empty, the random subsets and each greedy step.
    """
    circuit = sorted(set(check_heads(evaluator.model, list(circuit), "circuit head")))
    everything = evaluator.all_heads

    def point(removed, kind):
        return CompletenessPoint(tuple(removed), evaluator.without(circuit, removed),
                                 evaluator.without(everything, removed), kind)

    rng = random.Random(seed)
    points = [point((), "empty")]
    points += [point([h for h in circuit if rng.random() < 0.5], "random") for _ in range(n_random)]
    removed: list[Head] = []
    for _ in range(min(greedy_steps, len(circuit))):
        best = max((point(removed + [h], "greedy") for h in circuit if h not in removed),
                   key=lambda p: p.gap)
        removed = list(best.removed)
        points.append(best)
    return points


def minimality(evaluator: CircuitEvaluator, circuit: Collection[Head], n_random: int = 5,
               seed: int = 0) -> dict[Head, float]:
    """For each head ``v``: the largest ``|F(C \\ (K + v)) - F(C \\ K)|`` over the tried ``K``.

    ``K`` ranges over the empty set and ``n_random`` random subsets of ``C`` without ``v``
    (each head in with probability 1/2). A head whose best value is near 0 could be
    dropped from the circuit.
    """
    circuit = sorted(set(check_heads(evaluator.model, list(circuit), "circuit head")))
    rng = random.Random(seed)
    out = {}
    for v in circuit:
        others = [h for h in circuit if h != v]
        subsets = [[]] + [[h for h in others if rng.random() < 0.5] for _ in range(n_random)]
        out[v] = max(abs(evaluator.without(circuit, k + [v]) - evaluator.without(circuit, k))
                     for k in subsets)
    return out


# ---- composition scores (from the weights) ----------------------------------------------

def _ov(model) -> Float[Tensor, "layer head d_model d_model"]:
    """``W_V @ W_O`` per head: what a head writes, as a map from the residual it reads."""
    return model.W_V.detach() @ model.W_O.detach()


def _qk(model) -> Float[Tensor, "layer head d_model d_model"]:
    """``W_Q @ W_K^T`` per head: the bilinear form of its attention scores."""
    return model.W_Q.detach() @ model.W_K.detach().transpose(-1, -2)


def composition_scores(model, kind: str = "K") -> Float[Tensor, "layer head layer head"]:
    """How strongly each later head reads (through ``kind``) what each earlier head writes.

    For an earlier head's ``W_OV`` and a later head's matrix ``M`` (``W_QK`` for Q,
    ``W_QK^T`` for K, ``W_OV`` for V), the score is ``|W_OV M|_F / (|W_OV|_F |M|_F)``
    (Elhage et al., 2021): 0 if the later head ignores the earlier one's output subspace.
    Layer norms and, for rotary models, the position rotation between the two heads are
    ignored, so compare scores with :func:`composition_baseline`, not with 0.

    Returns:
        ``[layer, head, layer, head]``: ``out[l1, h1, l2, h2]`` for ``l1 < l2``, NaN elsewhere.
    """
    if kind not in ("Q", "K", "V"):
        raise ValueError(f"kind must be 'Q', 'K' or 'V', not {kind!r}")
    ov = _ov(model)
    reader = {"Q": _qk(model), "K": _qk(model).transpose(-1, -2), "V": ov}[kind]
    return _scores(ov, reader)


def _scores(ov: Tensor, reader: Tensor) -> Tensor:
    """``|OV_i R_j|_F / (|OV_i|_F |R_j|_F)`` for every earlier/later pair of heads."""
    n_layers, n_heads = ov.shape[:2]
    out = torch.full((n_layers, n_heads, n_layers, n_heads), float("nan"))
    ov_norm = ov.flatten(-2).norm(dim=-1)  # layer head
    reader_norm = reader.flatten(-2).norm(dim=-1)
    for l1 in range(n_layers):
        for l2 in range(l1 + 1, n_layers):
            product = torch.einsum("hab,gbc->hgac", ov[l1], reader[l2])  # head head d d
            out[l1, :, l2] = (product.flatten(-2).norm(dim=-1)
                              / (ov_norm[l1][:, None] * reader_norm[l2][None, :])).cpu()
    return out


def composition_baseline(model, kind: str = "K", n_samples: int = 20, seed: int = 0) -> float:
    """Mean composition score of random Gaussian heads with this model's shapes.

    The scale a real score should clearly beat: random low-rank (``d_head``) maps in
    ``d_model`` dimensions do not score 0, and how far above 0 depends on the two sizes.
    """
    if kind not in ("Q", "K", "V"):
        raise ValueError(f"kind must be 'Q', 'K' or 'V', not {kind!r}")
    gen = torch.Generator().manual_seed(seed)
    d_model, d_head = model.cfg.d_model, model.cfg.d_head

    def rand(*shape):
        return torch.randn(*shape, generator=gen)

    ov = rand(n_samples, d_model, d_head) @ rand(n_samples, d_head, d_model)  # sample d d
    reader = rand(n_samples, d_model, d_head) @ rand(n_samples, d_head, d_model)
    values = (ov @ reader).flatten(-2).norm(dim=-1) / (ov.flatten(-2).norm(dim=-1)
                                                        * reader.flatten(-2).norm(dim=-1))
    return values.mean().item()


# ---- ablating heads ----------------------------------------------------------------------

def head_ablation_hooks(model, heads: Sequence[Head], means: Mapping[str, Tensor] | None = None
                        ) -> list[tuple[str, Callable]]:
    """Forward hooks that zero-ablate (``means=None``) or mean-ablate the given heads' ``z``.

    Args:
        heads: ``(layer, head)`` pairs.
        means: ``hook_z`` name -> values broadcastable to ``[batch, pos, head, d_head]``
            (e.g. from :func:`head_means`); ``None`` for zeros.
    """
    heads = check_heads(model, heads, "ablated head")
    by_layer: dict[int, list[int]] = {}
    for layer, head in heads:
        by_layer.setdefault(layer, []).append(head)
    hooks = []
    for layer, hs in by_layer.items():
        name = Z_HOOK.format(layer=layer)
        hooks.append((name, partial(_ablate, heads=hs,
                                    mean=None if means is None else means[name])))
    return hooks


def _ablate(z: Tensor, hook, *, heads: list[int], mean: Tensor | None) -> Tensor:
    """Replace ``heads`` of ``z`` ``[batch, pos, head, d_head]`` by zeros or the mean."""
    z = z.clone()
    z[:, :, heads] = 0.0 if mean is None else mean[:, :, heads].to(z.dtype).expand_as(z[:, :, heads])
    return z


def per_token_loss(logits: Float[Tensor, "batch pos d_vocab"], tokens: Int[Tensor, "batch pos"]
                   ) -> Float[Tensor, "batch pos"]:
    """Cross-entropy of predicting ``tokens[:, 1:]``; position ``i`` predicts token ``i + 1``."""
    log_probs = logits[:, :-1].log_softmax(-1)
    return -log_probs.gather(-1, tokens[:, 1:, None]).squeeze(-1)
