"""Circuits as sets of heads: run only the circuit, and evaluate it (Wang et al., 2022).

A **circuit** here is a set of attention heads (a
:class:`~mi_helpers.core.graph.Circuit` or a list of heads), each optionally restricted
to some positions (e.g. a name-mover head only at the last token). MLPs, embeddings and
layer norms are always kept, as in the IOI paper. To *run only the circuit*, every head
outside it is **mean-ablated**: its output ``z`` is replaced by its mean over a
reference distribution (for IOI, the "ABC" prompts, which keep the sentence shape but
carry no IOI information), taken separately for each template so that each position's
mean is over the same word slot (:func:`~mi_helpers.circuits.ablation.head_means`).

With ``F(S)`` the metric (e.g. mean logit difference) when only the heads in ``S`` run:

* **faithfulness**: ``F(C) / F(M)`` for circuit ``C`` inside the model ``M``; the IOI
  paper's circuit recovers 87% of gpt2-small's logit difference.
* **completeness**: for subsets ``K`` of ``C``, compare ``F(C \\ K)`` with ``F(M \\ K)``;
  a complete circuit loses as much as the whole model does when ``K`` is removed from
  both, so the points lie on the diagonal. Random ``K`` and a greedy ``K`` that seeks the
  largest gap (:func:`completeness`).
* **minimality**: every head ``v`` should matter for some subset ``K``:
  ``|F(C \\ (K + v)) - F(C \\ K)|`` is large for the best ``K`` (:func:`minimality`).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..core.activations import run_cached
from ..core.checks import check_circuit, check_positive, check_tokens, check_type
from ..core.graph import Circuit
from ..core.heads import Head, all_heads, check_heads
from ..core.hooks import hook_name
from ..core.metrics import logits_at_positions, metric_positions
from ..core.residual import unembed
from .patching import Metric, metric_value

__all__ = ["CircuitEvaluator", "Faithfulness", "faithfulness", "CompletenessPoint",
           "completeness", "minimality", "random_head_sets"]

#: Up to this many possible sets, :func:`random_head_sets` lists them all and samples.
MAX_LISTED_SETS = 100_000

Heads = Collection[tuple[int, int]] | Circuit


def _heads(model, circuit: Heads, what: str = "circuit head") -> list[Head]:
    """The heads of a :class:`Circuit` or of a list of ``(layer, head)`` pairs, checked."""
    if isinstance(circuit, Circuit):
        check_circuit(circuit, model=model)
    heads = circuit.heads if isinstance(circuit, Circuit) else list(circuit)
    return check_heads(model, heads, what)


def _check_evaluator(evaluator) -> None:
    check_type("evaluator", evaluator, CircuitEvaluator,
               "build one with CircuitEvaluator(model, tokens, metric, means)")


class CircuitEvaluator:
    """Scores a metric with only some heads running (the rest mean-ablated).

    Args:
        model: a TransformerLens model (or bridge in compatibility mode).
        tokens: ``[batch, pos]`` prompts showing the behaviour.
        metric: logits -> scalar, e.g. ``dataset.metric``.
        means: ``hook_z`` name -> ``[batch, pos, head, d_head]`` ablation values
            (:func:`~mi_helpers.circuits.ablation.head_means`).
        positions: optional ``(layer, head)`` -> ``[batch]`` or ``[batch, k]`` positions:
            a circuit head restricted to these positions (elsewhere it is ablated).
    """

    def __init__(self, model, tokens: Int[Tensor, "batch pos"], metric: Metric,
                 means: Mapping[str, Tensor], positions: Mapping[Head, Tensor] | None = None):
        tokens = check_tokens(model, tokens)
        self.model, self.tokens, self.metric, self.means = model, tokens, metric, means
        heads = check_heads(model, list(positions or {}), "positioned head")
        self.positions = {h: torch.as_tensor(p).reshape(len(tokens), -1)
                          for h, p in zip(heads, (positions or {}).values())}
        self.all_heads = all_heads(model)
        #: ``[batch]`` positions the metric reads (a PositionMetric), or None.
        self.read_positions = metric_positions(metric, tokens)
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
            masks[hook_name("z", layer)] = mask.to(self.tokens.device)
        return masks

    def run(self, kept: Heads) -> Float[Tensor, "batch pos d_vocab"]:
        """Logits with every head outside ``kept`` (heads or a Circuit) mean-ablated.

        With a :class:`~mi_helpers.core.metrics.PositionMetric` only the positions it reads
        are unembedded (the other logits are NaN): on gpt2 the 50,257-token unembedding of
        every position is a third of the pass.
        """
        kept = set(_heads(self.model, kept))
        hooks = [(name, partial(_keep_or_mean, keep=mask, mean=self.means[name]))
                 for name, mask in self.keep_masks(kept).items() if not mask.all()]
        if self.read_positions is None:
            with torch.no_grad():
                return self.model.run_with_hooks(self.tokens, fwd_hooks=hooks)
        final = hook_name("resid_post", self.model.cfg.n_layers - 1)
        _, cache = run_cached(self.model, self.tokens, [final], hooks, stop_early=True)
        with torch.no_grad():
            return logits_at_positions(cache[final], self.read_positions,
                                       partial(unembed, self.model))

    def score(self, kept: Heads) -> float:
        """``F(kept)``: the metric with only the heads in ``kept`` running."""
        return metric_value(self.metric, self.run(kept)).item()

    def without(self, heads: Collection[Head], removed: Collection[Head]) -> float:
        """``F(heads \\ removed)``."""
        removed = set(removed)
        return self.score([h for h in heads if h not in removed])


def _keep_or_mean(z: Tensor, hook, *, keep: Tensor, mean: Tensor) -> Tensor:
    """``z`` where ``keep`` ``[batch, pos, head]`` is True, the mean elsewhere."""
    return torch.where(keep.unsqueeze(-1), z, mean.to(z.device, z.dtype))


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


def faithfulness(evaluator: CircuitEvaluator, circuit: Heads) -> Faithfulness:
    """How much of the model's metric the circuit alone reproduces."""
    _check_evaluator(evaluator)
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


def completeness(evaluator: CircuitEvaluator, circuit: Heads, n_random: int = 10,
                 greedy_steps: int = 3, seed: int = 0) -> list[CompletenessPoint]:
    """Compare removing ``K`` from the circuit and from the whole model.

    Args:
        n_random: random subsets, each head of the circuit in ``K`` with probability 1/2.
        greedy_steps: grow one ``K`` a head at a time, each time adding the head that
            makes the gap ``|F(C \\ K) - F(M \\ K)|`` largest (the IOI paper's greedy search).

    Returns:
        Points for ``K`` empty, the random subsets and each greedy step.
    """
    _check_evaluator(evaluator)
    check_positive("n_random", n_random, integer=True, allow_zero=True)
    check_positive("greedy_steps", greedy_steps, integer=True, allow_zero=True)
    circuit = sorted(set(_heads(evaluator.model, circuit)))
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


def minimality(evaluator: CircuitEvaluator, circuit: Heads, n_random: int = 5,
               seed: int = 0) -> dict[Head, float]:
    """For each head ``v``: the largest ``|F(C \\ (K + v)) - F(C \\ K)|`` over the tried ``K``.

    ``K`` ranges over the empty set and ``n_random`` random subsets of ``C`` without ``v``
    (each head in with probability 1/2). A head whose best value is near 0 could be
    dropped from the circuit.
    """
    _check_evaluator(evaluator)
    check_positive("n_random", n_random, integer=True, allow_zero=True)
    circuit = sorted(set(_heads(evaluator.model, circuit)))
    rng = random.Random(seed)
    out = {}
    for v in circuit:
        others = [h for h in circuit if h != v]
        subsets = [[]] + [[h for h in others if rng.random() < 0.5] for _ in range(n_random)]
        out[v] = max(abs(evaluator.without(circuit, k + [v]) - evaluator.without(circuit, k))
                     for k in subsets)
    return out


def random_head_sets(heads: Sequence[Head], size: int, n: int, seed: int = 0
                     ) -> list[tuple[Head, ...]]:
    """``n`` distinct sets of ``size`` heads drawn at random (seeded; fewer when fewer
    exist): a baseline for a circuit of ``size`` heads.

    Up to :data:`MAX_LISTED_SETS` possible sets they are listed and sampled; beyond, each
    set is drawn directly (gpt2's 144 heads have about 10**13 sets of 8, which no list
    holds). Each set keeps the order of ``heads``.

    Raises:
        ValueError: ``size`` not in ``1..len(heads)``, or ``n`` below 1.
    """
    heads = list(heads)
    check_positive("n", n, integer=True)
    if not isinstance(size, int) or not 1 <= size <= len(heads):
        raise ValueError(f"size must be an integer from 1 to {len(heads)} (the heads given), "
                         f"got {size!r}")
    rng = random.Random(seed)
    total = math.comb(len(heads), size)
    if total <= MAX_LISTED_SETS:
        return rng.sample(list(itertools.combinations(heads, size)), min(total, n))
    order = {head: i for i, head in enumerate(heads)}
    drawn: dict[tuple[Head, ...], None] = {}
    while len(drawn) < n:
        drawn[tuple(sorted(rng.sample(heads, size), key=order.__getitem__))] = None
    return list(drawn)
