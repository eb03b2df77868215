"""Scoring explanations: simulate the unit from the explanation, then compare."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import torch

from .contexts import ActivationContext, Explanation, Simulator, check_contexts

__all__ = ["TokenSimulator", "quoted_tokens", "pearson", "simulation_score", "detection_score",
           "score_explanation"]


QUOTED = re.compile(r'"((?:[^"\\]|\\.)+)"|(?<!\w)\'([^\'\n]+)\'(?!\w)|`([^`\n]+)`')


def quoted_tokens(text: str) -> list[str]:
    """The strings quoted in ``text`` with double quotes, single quotes or backticks."""
    found = []
    for match in QUOTED.finditer(text):
        double, single, tick = match.groups()
        if double is not None:
            try:
                double = json.loads(f'"{double}"')  # undo escapes such as \\n
            except ValueError:
                pass
        found.append(next(s for s in (double, single, tick) if s is not None))
    return found


def _normalise(token: str) -> str:
    """Strip surrounding whitespace and case; whitespace-only tokens stay as they are."""
    return token.strip().casefold() or token


class TokenSimulator:
    """Predict per-token activations from an :class:`Explanation`, with no model.

    Predicts 1.0 on every token the explanation names (``explanation.tokens``, or the
    strings quoted in ``explanation.text`` when that list is empty) and 0.0 elsewhere.
    Tokens match after stripping surrounding whitespace and ignoring case, so ``" Mary"``
    matches ``"Mary"`` and ``" mary"``. A named token with a required previous token
    (``explanation.previous``) matches only right after it.
    """

    def predict(self, explanation: Explanation, tokens: Sequence[str]) -> list[float]:
        """One prediction per token of ``tokens`` (``pos``)."""
        names = explanation.tokens or quoted_tokens(explanation.text)
        after: dict[str, set[str] | None] = {}  # token -> allowed previous tokens (None: any)
        for name in names:
            key, prev = _normalise(name), explanation.previous.get(name)
            if prev is None or after.get(key, set()) is None:
                after[key] = None
            else:
                after.setdefault(key, set()).add(_normalise(prev))
        keys = [_normalise(t) for t in tokens]
        return [1.0 if key in after and (after[key] is None
                                         or (i > 0 and keys[i - 1] in after[key])) else 0.0
                for i, key in enumerate(keys)]


def _simulate(explanation: Explanation, context: ActivationContext,
              simulator: Simulator) -> list[float]:
    """The simulator's predictions for one context, checked for length."""
    predicted = list(simulator.predict(explanation, context.tokens))
    if len(predicted) != len(context.tokens):
        raise ValueError(f"the simulator returned {len(predicted)} predictions for "
                         f"{len(context.tokens)} tokens")
    return predicted


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson correlation of two equal-length sequences; 0.0 if either is constant."""
    x64 = torch.tensor(x, dtype=torch.float64)
    y64 = torch.tensor(y, dtype=torch.float64)
    if len(x64) != len(y64):
        raise ValueError(f"cannot correlate {len(x64)} values with {len(y64)}")
    if len(x64) < 2 or x64.max() == x64.min() or y64.max() == y64.min():
        return 0.0
    x64, y64 = x64 - x64.mean(), y64 - y64.mean()
    return float((x64 @ y64) / (x64.norm() * y64.norm()))


def simulation_score(explanation: Explanation, contexts: Sequence[ActivationContext],
                     simulator: Simulator | None = None) -> float:
    """How well the explanation predicts the unit, token by token.

    Args:
        explanation: what to score.
        contexts: the contexts to predict: pass top contexts *and* random (or
            activation-quantile) contexts, so that firing and not firing both count.
        simulator: predicts activations from the explanation (:class:`TokenSimulator`).

    Returns:
        The Pearson correlation between simulated and true activations over all tokens
        of all contexts, in [-1, 1]. It is 0.0 (not NaN) when either side is constant,
        e.g. when the explanation names no token that occurs.
    """
    contexts = check_contexts(contexts, "contexts to simulate")
    simulator = simulator or TokenSimulator()
    predicted = [p for c in contexts for p in _simulate(explanation, c, simulator)]
    true = [a for c in contexts for a in c.activations]
    return pearson(predicted, true)


def detection_score(explanation: Explanation, activating: Sequence[ActivationContext],
                    non_activating: Sequence[ActivationContext],
                    simulator: Simulator | None = None) -> float:
    """Can the explanation tell contexts where the unit fires from ones where it does not?

    A context is *predicted active* when its largest simulated activation is above 0.

    Returns:
        Balanced accuracy: the mean of the hit rate on ``activating`` and the correct
        rejection rate on ``non_activating``; 0.5 is chance, 1.0 perfect.
    """
    activating = check_contexts(activating, "activating contexts")
    non_activating = check_contexts(non_activating, "non-activating contexts",
                                    "pass contexts where the unit stays at (about) 0")
    simulator = simulator or TokenSimulator()
    hits = [max(_simulate(explanation, c, simulator)) > 0 for c in activating]
    alarms = [max(_simulate(explanation, c, simulator)) > 0 for c in non_activating]
    return 0.5 * (sum(hits) / len(hits) + 1 - sum(alarms) / len(alarms))


def score_explanation(explanation: Explanation, top_contexts: Sequence[ActivationContext],
                      random_contexts: Sequence[ActivationContext],
                      simulator: Simulator | None = None, inactive_fraction: float = 0.1
                      ) -> dict[str, float]:
    """Simulation and detection scores of an explanation.

    Args:
        explanation: what to score.
        top_contexts: the unit's top-activating contexts.
        random_contexts: contexts sampled at random from the dataset.
        simulator: predicts activations from the explanation (:class:`TokenSimulator`).
        inactive_fraction: a random context counts as non-activating when its largest
            activation is at most this share of the top contexts' largest (and at most 0
            when the unit never exceeds 0).

    Returns:
        ``{"simulation": ..., "detection": ...}``: simulation over top and random contexts
        together; detection with the top contexts as activating and the quiet random
        contexts as non-activating. Detection is NaN when no random context is quiet
        (a unit that fires everywhere), since "does it fire here?" has no negative case.
    """
    top = check_contexts(top_contexts, "top contexts")
    random_ = check_contexts(random_contexts, "random contexts",
                             "pass contexts sampled at random from the dataset")
    threshold = max(0.0, inactive_fraction * max(c.max_activation for c in top))
    quiet = [c for c in random_ if c.max_activation <= threshold]
    simulation = simulation_score(explanation, top + random_, simulator)
    detection = (detection_score(explanation, top, quiet, simulator) if quiet
                 else float("nan"))
    return {"simulation": simulation, "detection": detection}
