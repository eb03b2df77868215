"""An offline explainer: name the tokens over-represented where a unit fires."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from .contexts import NEVER_FIRED, ActivationContext, Explanation, _quote, check_contexts
from .scoring import TokenSimulator

__all__ = ["TokenExplainer"]

SMOOTHING = 0.5  # pseudo-count added to every count before taking log-odds
CONSISTENT = 0.8  # a previous token is "consistent" if it precedes this share of firings


Hit = tuple[ActivationContext, int]  # a context and a position in it


def _over_represented(hits: list[tuple[str, float]], base: Counter, min_count: int
                      ) -> list[tuple[str, float]]:
    """Tokens more frequent among ``hits`` than in ``base``, best first, with their score.

    ``hits`` are ``(token, weight)`` pairs; a token's score is its smoothed log-odds
    ratio (hits vs base) times the summed weight of its hits. Only tokens with at least
    ``min_count`` hits and a positive log-odds ratio are kept.
    """
    counts, weights = Counter(t for t, _ in hits), Counter()
    for token, weight in hits:
        weights[token] += weight
    n_hits, n_base = len(hits), sum(base.values())
    scored = []
    for token, k in counts.items():
        b = base[token]
        log_odds = (math.log((k + SMOOTHING) / (n_hits - k + SMOOTHING))
                    - math.log((b + SMOOTHING) / (n_base - b + SMOOTHING)))
        if k >= min_count and log_odds > 0:
            scored.append((token, log_odds * weights[token]))
    return sorted(scored, key=lambda pair: -pair[1])


class TokenExplainer:
    """Explain a unit by the tokens over-represented where it fires (offline, no model).

    In each given (top) context, the *firing positions* are those whose activation is
    positive and at least ``active_fraction`` of that context's maximum. Each token seen
    at a firing position is ranked by its smoothed log-odds of appearing there rather than
    anywhere (the base rate: ``base_contexts`` if given, else all tokens of the given
    contexts), weighted by its activations (relative to the largest), and the best
    ``max_tokens`` seen at least ``min_count`` times are named.

    With ``context_window >= 1`` the explainer also looks back: a named token whose
    previous token is consistently the same (and which occurs elsewhere without firing)
    becomes a bigram (``Explanation.previous``), and tokens that precede most firings
    within ``context_window`` positions are mentioned in the text.

    Args:
        max_tokens: how many tokens to name at most.
        min_count: how many firing positions a token needs to be named.
        context_window: how many earlier positions to inspect (0: only the firing token).
        base_contexts: contexts giving the base rate of every token (e.g. random text).
        active_fraction: a position fires if its activation is at least this share of
            its context's maximum.
    """

    def __init__(self, max_tokens: int = 5, min_count: int = 2, context_window: int = 0,
                 base_contexts: Sequence[ActivationContext] | None = None,
                 active_fraction: float = 0.5):
        if max_tokens < 1 or min_count < 1 or context_window < 0:
            raise ValueError(f"need max_tokens >= 1, min_count >= 1 and context_window >= 0, "
                             f"got {max_tokens}, {min_count}, {context_window}")
        if not 0 < active_fraction <= 1:
            raise ValueError(f"active_fraction={active_fraction} must be in (0, 1]")
        self.max_tokens, self.min_count = max_tokens, min_count
        self.context_window, self.active_fraction = context_window, active_fraction
        self.base_contexts = (None if base_contexts is None else
                              check_contexts(base_contexts, "base contexts",
                                             "pass None to use the top contexts' tokens"))

    def explain(self, contexts: Sequence[ActivationContext]) -> Explanation:
        """Name the tokens the unit fires on in ``contexts`` (its top contexts)."""
        contexts = check_contexts(contexts, "top contexts")
        peak = max(c.max_activation for c in contexts)
        if peak <= 0:
            raise ValueError(f"the top contexts' largest activation is {peak:.3g} <= 0: "
                             f"{NEVER_FIRED}")
        firing = self._firing(contexts)
        base = Counter(t for c in (self.base_contexts or contexts) for t in c.tokens)
        hits = [(c.tokens[i], c.activations[i] / peak) for c, i in firing]
        ranked = _over_represented(hits, base, self.min_count)[:self.max_tokens]
        weak = not ranked  # nothing repeats: name the single strongest token
        named = [t for t, _ in ranked] or [max(hits, key=lambda h: h[1])[0]]
        previous, context = {}, []
        if self.context_window:
            previous = self._bigrams(named, firing, contexts, peak)
            context = self._context_tokens(firing, base, set(named) | set(previous.values()))
        explanation = Explanation("", named, "tokens", previous)
        explanation.text = self._describe(explanation, firing, context, weak)
        return explanation

    def _firing(self, contexts: list[ActivationContext]) -> list[Hit]:
        """Positions whose activation is positive and near their context's maximum."""
        return [(c, i) for c in contexts for i, a in enumerate(c.activations)
                if a > 0 and a >= self.active_fraction * c.max_activation]

    def _bigrams(self, named: list[str], firing: list[Hit],
                 contexts: list[ActivationContext], peak: float) -> dict[str, str]:
        """``{token: previous}`` for named tokens that fire only after one token."""
        everywhere = contexts + (self.base_contexts or [])
        previous = {}
        for token in named:
            before = Counter(c.tokens[i - 1] if i else None for c, i in firing
                             if c.tokens[i] == token)
            prev, k = before.most_common(1)[0]
            if prev is None or k < self.min_count or k < CONSISTENT * sum(before.values()):
                continue
            quiet_elsewhere = any(  # the bigram says more than the token alone
                tok == token and (i == 0 or c.tokens[i - 1] != prev)
                and c.activations[i] < self.active_fraction * peak
                for c in everywhere for i, tok in enumerate(c.tokens))
            if quiet_elsewhere:
                previous[token] = prev
        return previous

    def _context_tokens(self, firing: list[Hit], base: Counter, exclude: set[str]
                        ) -> list[str]:
        """Tokens within ``context_window`` before most firings (not already named)."""
        window = [(c, i, list(c.tokens[max(0, i - self.context_window):i])) for c, i in firing]
        hits = [(t, c.activations[i]) for c, i, before in window for t in set(before)]
        found = []
        for token, _ in _over_represented(hits, base, self.min_count):
            share = sum(token in before for _, _, before in window) / len(window)
            if token not in exclude and share >= 0.5:
                found.append(token)
        return found[:self.max_tokens]

    def _describe(self, explanation: Explanation, firing: list[Hit], context: list[str],
                  weak: bool) -> str:
        """The readable sentence, with how many firing positions it covers."""
        parts = [f"{_quote(t)} after {_quote(explanation.previous[t])}"
                 if t in explanation.previous else _quote(t) for t in explanation.tokens]
        text = "fires on " + ", ".join(parts)
        if weak:
            text += " (no token repeats among the firings: weak evidence)"
        else:
            simulated = TokenSimulator().predict
            covered = sum(simulated(explanation, c.tokens)[i] > 0 for c, i in firing)
            text += f" ({covered / len(firing):.0%} of the strongest activations)"
        if context:
            text += (f"; usually within {self.context_window} token(s) after "
                     + ", ".join(_quote(t) for t in context))
        return text
