"""Automatic interpretation: explain what a unit fires on, then score the explanation.

Bills et al. (2023, "Language models can explain neurons in language models") turn a
unit (a neuron or an SAE latent) into a sentence and check the sentence in two steps:

1. **Explain.** Show an explainer the unit's *top-activating contexts* (token strings
   with the unit's activation at each token, :class:`ActivationContext`) and ask for a
   short explanation (:class:`Explanation`). :class:`TokenExplainer` does this offline
   by counting which tokens are over-represented where the unit fires;
   :class:`ChatExplainer` asks any OpenAI-compatible chat model.
2. **Score by simulation.** A *simulator* sees only the explanation and a context's
   tokens, and predicts the activation at every token (:class:`TokenSimulator`: 1 on
   the tokens the explanation names, else 0). The **simulation score** is the Pearson
   correlation between predicted and true activations over all tokens of top *and*
   random contexts (:func:`simulation_score`): 1 means the explanation predicts the
   unit perfectly (up to scale), 0 means it predicts nothing. Random contexts matter:
   on top contexts alone, "fires on everything" would look good.

A second check, the **detection score** (:func:`detection_score`), asks a coarser
question: from the explanation alone, can we tell contexts where the unit fires from
contexts where it does not? It is the balanced accuracy of "the simulator predicts some
activation in this context" against the truth, so 0.5 is chance whatever the class sizes.

Read both against a baseline: a wrong explanation scores about 0 on simulation and 0.5
on detection. A high score says the explanation is *predictive*, not that it is the
mechanism: a unit that fires on " Mary" because of the previous token is still well
explained by 'fires on " Mary"' if the two always co-occur in the data.

A token list is one context's tokens in order (the ``pos`` axis); activations are the
unit's value at each of them.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import re
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch

NEVER_FIRED = "the unit never fired on the dataset? Collect contexts where it is positive"
SMOOTHING = 0.5  # pseudo-count added to every count before taking log-odds
CONSISTENT = 0.8  # a previous token is "consistent" if it precedes this share of firings


class ExplainerError(RuntimeError):
    """An explainer could not produce an explanation (endpoint down, HTTP error, bad reply)."""


@dataclass
class ActivationContext:
    """One context and a unit's activation at each of its tokens.

    Attributes:
        tokens: the context's token strings, in order (``pos``), e.g. ``[" Mary", " went"]``.
        activations: the unit's activation at each token (``pos``); a list, or a 1-D tensor
            that is converted to a list of floats.
    """

    tokens: list[str]
    activations: list[float]

    def __post_init__(self) -> None:
        self.tokens = list(self.tokens)
        if hasattr(self.activations, "tolist"):  # a tensor or an array
            self.activations = self.activations.tolist()
        self.activations = [float(a) for a in self.activations]
        if not self.tokens:
            raise ValueError("an ActivationContext needs at least one token")
        if len(self.tokens) != len(self.activations):
            raise ValueError(f"{len(self.tokens)} tokens but {len(self.activations)} "
                             f"activations: give one activation per token")
        if not all(isinstance(t, str) for t in self.tokens):
            raise ValueError("tokens must be strings (decode ids first, e.g. "
                             "model.to_str_tokens)")
        if not all(math.isfinite(a) for a in self.activations):
            raise ValueError("activations contain NaN or infinity")

    @property
    def max_activation(self) -> float:
        """The unit's largest activation in this context."""
        return max(self.activations)


@dataclass
class Explanation:
    """A short explanation of a unit.

    Attributes:
        text: human-readable, e.g. ``'fires on " Mary", " John", " Anna"'``.
        tokens: the token strings the explanation names, for :class:`TokenSimulator`;
            may be empty (LLM explanations), then the simulator uses tokens quoted in ``text``.
        source: ``"tokens"`` (:class:`TokenExplainer`) or ``"chat:<model>"``.
        previous: bigrams: a named token -> the token that must precede it for the unit
            to fire (``{" York": " New"}``); empty when position does not matter.
    """

    text: str
    tokens: list[str]
    source: str
    previous: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class Explainer(Protocol):
    """Anything that turns top-activating contexts into an :class:`Explanation`."""

    def explain(self, contexts: Sequence[ActivationContext]) -> Explanation: ...


@runtime_checkable
class Simulator(Protocol):
    """Anything that predicts one activation per token from an :class:`Explanation`."""

    def predict(self, explanation: Explanation, tokens: Sequence[str]) -> list[float]: ...


def check_contexts(contexts: Sequence[ActivationContext], what: str = "contexts",
                   hint: str = NEVER_FIRED) -> list[ActivationContext]:
    """Return ``contexts`` as a list, or raise if it is empty or holds something else.

    Raises:
        ValueError: no contexts (the message names ``what`` and adds ``hint``).
        TypeError: an element is not an :class:`ActivationContext`.
    """
    contexts = list(contexts)
    if not contexts:
        raise ValueError(f"no {what} given: {hint}")
    for context in contexts:
        if not isinstance(context, ActivationContext):
            raise TypeError(f"{what} must be ActivationContext objects, got "
                            f"{type(context).__name__}")
    return contexts


def _quote(token: str) -> str:
    """A token as a double-quoted string, with spaces visible and escapes for newlines."""
    return json.dumps(token, ensure_ascii=False)


# ---------------------------------------------------------------------------- explain


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


class ChatExplainer:
    """Explain a unit with any OpenAI-compatible chat model (a local server or an API).

    The prompt lists the top ``max_contexts`` contexts, each token the unit fired on
    followed by ``<<a>>``, its activation on a 0-10 scale (10: the largest shown), as in
    Bills et al. The request is ``POST {base_url}/chat/completions`` with
    ``temperature: 0``; the reply's ``choices[0].message.content`` is the explanation.

    Args:
        base_url: the API root, e.g. ``"http://127.0.0.1:8000/v1"`` (vLLM, llama.cpp,
            Ollama's ``/v1``) or ``"https://api.openai.com/v1"``.
        model: the model name the server expects.
        api_key_env: environment variable holding an API key, sent as
            ``Authorization: Bearer <key>`` when set (local servers need none).
        timeout: seconds to wait for the server.
        max_contexts: how many contexts (strongest first) go into the prompt.
    """

    SYSTEM = ("We are studying one unit (a neuron or a sparse-autoencoder latent) of a "
              "language model. You will see text excerpts where it activates. Each token "
              "it fires on is followed by <<a>>, its activation from 0 to 10 (10 is the "
              "strongest). Explain in one short sentence what the unit responds to. When "
              "it fires on a few specific tokens, quote them in double quotes. Reply with "
              "the explanation only.")

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY",
                 timeout: float = 30.0, max_contexts: int = 10):
        if not base_url or not model:
            raise ValueError("ChatExplainer needs a base_url and a model name")
        if timeout <= 0 or max_contexts < 1:
            raise ValueError(f"need timeout > 0 and max_contexts >= 1, got {timeout}, "
                             f"{max_contexts}")
        self.base_url, self.model = base_url.rstrip("/"), model
        self.api_key_env, self.timeout, self.max_contexts = api_key_env, timeout, max_contexts

    @property
    def url(self) -> str:
        """The chat-completions endpoint."""
        return f"{self.base_url}/chat/completions"

    def explain(self, contexts: Sequence[ActivationContext]) -> Explanation:
        """Ask the chat model to explain the unit from its top ``contexts``.

        Raises:
            ValueError: no contexts.
            ExplainerError: the endpoint is unreachable, too slow, answers an HTTP error,
                or answers something other than a chat completion.
        """
        prompt = self.prompt(check_contexts(contexts, "top contexts"))
        payload = {"model": self.model, "temperature": 0,
                   "messages": [{"role": "system", "content": self.SYSTEM},
                                {"role": "user", "content": prompt}]}
        text = _reply_content(self._post(payload), self.url)
        return Explanation(text=text, tokens=[], source=f"chat:{self.model}")

    def prompt(self, contexts: list[ActivationContext]) -> str:
        """The user message: the strongest contexts with activations marked ``<<0-10>>``."""
        shown = sorted(contexts, key=lambda c: -c.max_activation)[:self.max_contexts]
        peak = max(c.max_activation for c in shown)
        scale = 10 / peak if peak > 0 else 0.0
        excerpts = []
        for n, context in enumerate(shown, 1):
            marked = "".join(
                tok.replace("\n", "\\n") + (f"<<{round(a * scale)}>>" if round(a * scale) > 0
                                            else "")
                for tok, a in zip(context.tokens, context.activations, strict=True))
            excerpts.append(f"Excerpt {n}:\n{marked}")
        return "\n\n".join(excerpts) + "\n\nWhat does the unit respond to?"

    def _post(self, payload: dict) -> bytes:
        """POST ``payload`` as JSON; the raw body of a 200 reply, else ExplainerError."""
        headers = {"Content-Type": "application/json"}
        if key := os.environ.get(self.api_key_env):
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(self.url, data=json.dumps(payload).encode(),
                                         headers=headers, method="POST")
        url, slow = self.url, f"did not answer within timeout={self.timeout} s"
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.read()
        except urllib.error.HTTPError as err:
            detail = err.read()[:300]
            raise ExplainerError(
                f"{url} answered HTTP {err.code} ({err.reason}): {detail!r}; check the model "
                f"name {self.model!r} and the API key in ${self.api_key_env}") from err
        except urllib.error.URLError as err:
            if isinstance(err.reason, TimeoutError):
                raise ExplainerError(f"{url} {slow}; is the server up?") from err
            raise ExplainerError(
                f"could not reach {url} ({err.reason}); is the server running, and is "
                f"base_url right (usually ending in /v1)?") from err
        except TimeoutError as err:
            raise ExplainerError(f"{url} {slow}; is it overloaded? Raise timeout") from err
        except (OSError, http.client.HTTPException) as err:
            raise ExplainerError(f"the connection to {url} failed: {err!r}") from err


def _reply_content(body: bytes, url: str) -> str:
    """``choices[0].message.content`` of a chat-completion body, else ExplainerError."""
    try:
        reply = json.loads(body)
    except ValueError as err:
        raise ExplainerError(f"{url} answered something that is not JSON: {body[:200]!r}; "
                             f"is base_url an OpenAI-compatible API root?") from err
    try:
        content = reply["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as err:
        raise ExplainerError(f"{url} answered JSON without choices[0].message.content: "
                             f"{body[:200]!r}; is it a chat-completions endpoint?") from err
    if not isinstance(content, str) or not content.strip():
        raise ExplainerError(f"{url} answered an empty explanation: {body[:200]!r}")
    return content.strip()


# --------------------------------------------------------------------------- simulate


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


# ------------------------------------------------------------------------------ score


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
