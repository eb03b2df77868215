"""What automatic interpretation works on: contexts with a unit's activations, and
explanations of a unit."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

__all__ = ["ActivationContext", "Explanation", "Explainer", "Simulator", "ExplainerError",
           "check_contexts", "NEVER_FIRED"]

NEVER_FIRED = "the unit never fired on the dataset? Collect contexts where it is positive"


class ExplainerError(RuntimeError):
    """An explainer could not produce an explanation (endpoint down, HTTP error, bad reply)."""


@dataclass
class ActivationContext:
    """One context and a unit's activation at each of its tokens.

    Attributes:
        tokens: the context's token strings, in order (``pos``), e.g. ``[" Mary", " went"]``.
        activations: the unit's activation at each token (``pos``); a list, or a 1-D tensor
            that is converted to a list of floats.
        texts: optional, each token as the tokenizer writes it in context, spacing included
            (:func:`mi_helpers.datasets.prompts.token_texts`), for display; ``None``: the
            tokens themselves.
    """

    tokens: list[str]
    activations: list[float]
    texts: list[str] | None = None

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
        if self.texts is not None:
            self.texts = list(self.texts)
            if len(self.texts) != len(self.tokens) or not all(isinstance(t, str)
                                                              for t in self.texts):
                raise ValueError(f"texts must hold one string per token ({len(self.tokens)})")

    @property
    def text(self) -> str:
        """The context as text, spaced as the tokenizer writes it."""
        return "".join(self.texts if self.texts is not None else self.tokens)

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
