"""How an exercise is checked: the learner's function against a reference, case by case.

A check calls the learner's function and the reference on the same **fresh inputs**
(drawn by the check from its own seed, never the notebook's data), one named
:class:`Case` at a time, edge cases included. At the first case where the two
disagree it raises :class:`ExerciseFailed` (an ``AssertionError``) with a message in
the learner's terms: which case, what was expected (shape with axis names, or the
value at the worst index) and what came back, whether the answer matches a known
:class:`Mistake` ("this is what you get if you took the softmax over dest_pos"), and a
hint. When every case agrees it prints one line, ``✓ name: n cases pass``.

Inputs are cloned for each call, so a function that writes into its inputs cannot
change what the reference sees.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

__all__ = ["ExerciseFailed", "Case", "Mistake", "check_function", "describe_difference",
           "generator"]


class ExerciseFailed(AssertionError):
    """The learner's function disagrees with the reference; the message says how."""


@dataclass(frozen=True)
class Case:
    """One set of inputs, named so that a failure says which (e.g. ``"one token"``)."""

    name: str
    args: tuple
    kwargs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Mistake:
    """A plausible wrong answer: ``fn`` computes it from the case's inputs, ``says`` names it."""

    says: str
    fn: Callable


def generator(seed: int) -> torch.Generator:
    """A seeded CPU generator: a check's fresh inputs are the same on every run."""
    return torch.Generator().manual_seed(seed)


def check_function(fn: Callable, reference: Callable, cases: Sequence[Case], *, axes=None,
                   hint: str = "", mistakes: Sequence[Mistake] = (), atol: float = 1e-4,
                   rtol: float = 1e-4, name: str | None = None) -> None:
    """Compare ``fn`` with ``reference`` on every case; raise at the first disagreement.

    Args:
        fn: the learner's function.
        reference: a correct implementation with the same signature.
        cases: the inputs to try, edge cases included.
        axes: axis names of the output, e.g. ``"batch head"`` (a tuple of them for a
            tuple output), used to describe shapes and indices.
        hint: what to think about when the values are wrong.
        mistakes: known wrong answers to recognise.
        atol, rtol: tolerances for float outputs.
        name: what to call ``fn`` in messages (default: its ``__name__``).

    Raises:
        ExerciseFailed: with the case, the expected and returned values, and a hint.
    """
    name = name or getattr(fn, "__name__", "your function")
    if not callable(fn):
        raise ExerciseFailed(f"pass the function itself, e.g. check(my_function), not "
                             f"{type(fn).__name__} {fn!r}")
    for case in cases:
        expected = reference(*_cloned(case.args), **_cloned(case.kwargs))
        got = _call(fn, name, case, none_expected=expected is None)
        problem = describe_difference(expected, got, axes, atol, rtol)
        if problem is None:
            continue
        lines = [f"{name} is wrong on case {case.name!r}:", f"  {problem}"]
        lines += [f"  This is exactly what you get if {m.says}." for m in mistakes
                  if _matches(m, case, got, atol, rtol)][:1]
        if hint:
            lines.append(f"  Hint: {hint}")
        raise ExerciseFailed("\n".join(lines))
    print(f"✓ {name} passes {len(cases)} cases: {'; '.join(c.name for c in cases)}")


def _call(fn: Callable, name: str, case: Case, none_expected: bool = False):
    """Run the learner's function, turning its exceptions into a readable failure."""
    try:
        got = fn(*_cloned(case.args), **_cloned(case.kwargs))
    except NotImplementedError as err:
        raise ExerciseFailed(f"{name} is still the stub (it raised NotImplementedError: {err}); "
                             f"replace the `raise` with your code") from None
    except Exception as err:  # any error is the learner's to see
        raise ExerciseFailed(f"{name} raised {type(err).__name__} on case {case.name!r}: "
                             f"{err}") from err
    if got is None and not none_expected:
        raise ExerciseFailed(f"{name} returned None on case {case.name!r}: did you forget "
                             f"`return`?")
    return got


def _matches(mistake: Mistake, case: Case, got, atol: float, rtol: float) -> bool:
    try:
        wrong = mistake.fn(*_cloned(case.args), **_cloned(case.kwargs))
    except Exception:  # noqa: BLE001 - a mistake that cannot run on this case does not match
        return False
    return describe_difference(wrong, got, None, atol, rtol) is None


def _cloned(value):
    """Tensors cloned, containers rebuilt, everything else (models, functions) shared."""
    if isinstance(value, Tensor):
        return value.clone()
    if isinstance(value, tuple):
        return tuple(_cloned(v) for v in value)
    if isinstance(value, list):
        return [_cloned(v) for v in value]
    if isinstance(value, dict):
        return {k: _cloned(v) for k, v in value.items()}
    return value


def describe_difference(expected, got, axes=None, atol: float = 1e-4, rtol: float = 1e-4
                        ) -> str | None:
    """``None`` if ``got`` matches ``expected``, else one sentence saying how it differs.

    An expected ``None`` (e.g. "the curve never crosses") is matched only by ``None``.
    """
    if expected is None:
        return None if got is None else f"expected None, got {_kind(got)}"
    if got is None:
        return f"expected {_kind(expected)}, got None"
    if isinstance(expected, tuple):
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            return (f"expected a tuple of {len(expected)} values, got "
                    f"{_kind(got)}")
        names = axes if isinstance(axes, tuple) else (None,) * len(expected)
        for i, (e, g) in enumerate(zip(expected, got)):
            problem = describe_difference(e, g, names[i], atol, rtol)
            if problem:
                return f"output {i}: {problem}"
        return None
    if isinstance(expected, Tensor):
        return _tensor_difference(expected, got, axes, atol, rtol)
    return _scalar_difference(float(expected), got, atol, rtol)


def _kind(value) -> str:
    if isinstance(value, Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} values"
    return f"{type(value).__name__} {value!r}"[:80]


def _scalar_difference(expected: float, got, atol: float, rtol: float) -> str | None:
    if isinstance(got, Tensor) and got.numel() == 1:
        got = got.item()
    if not isinstance(got, (int, float)):
        return f"expected a number ({expected:.4g}), got {_kind(got)}"
    if math.isnan(got):
        return f"expected {expected:.4g}, got NaN (a division by zero?)"
    if abs(got - expected) > atol + rtol * abs(expected):
        return f"expected {expected:.4g}, got {got:.4g}"
    return None


def _shape_text(shape, axes) -> str:
    text = str(tuple(shape))
    return f"{text} [{axes}]" if isinstance(axes, str) and axes else text


def _tensor_difference(expected: Tensor, got, axes, atol: float, rtol: float) -> str | None:
    if not isinstance(got, Tensor):
        return f"expected a tensor of shape {_shape_text(expected.shape, axes)}, got {_kind(got)}"
    if got.shape != expected.shape:
        swapped = sorted(got.shape) == sorted(expected.shape) and got.ndim > 1
        return (f"expected shape {_shape_text(expected.shape, axes)}, got {tuple(got.shape)}"
                + (" (the same sizes in another order: are two axes swapped?)" if swapped else ""))
    expected, got = expected.detach().double().cpu(), got.detach().double().cpu()
    if got.isnan().any() and not expected.isnan().any():
        where = _index_text(got.isnan().nonzero()[0].tolist(), axes)
        return f"your result has NaN at {where} where a number was expected (a division by zero?)"
    close = torch.isclose(got, expected, atol=atol, rtol=rtol, equal_nan=True)
    if close.all():
        return None
    gap = (got - expected).abs().nan_to_num(float("inf")).masked_fill(close, 0)
    index = list(_divmod_index(int(gap.argmax()), expected.shape))
    return (f"at {_index_text(index, axes)} expected {expected[tuple(index)].item():.4g}, got "
            f"{got[tuple(index)].item():.4g} ({int((~close).sum())} of {close.numel()} values "
            f"differ)")


def _divmod_index(flat: int, shape) -> tuple[int, ...]:
    """The multi-index of entry ``flat`` of a row-major tensor of this shape."""
    index = []
    for size in reversed(tuple(shape)):
        flat, i = divmod(flat, size)
        index.append(i)
    return tuple(reversed(index))


def _index_text(index: list[int], axes) -> str:
    if isinstance(axes, str) and len(axes.split()) == len(index):
        return "[" + ", ".join(f"{a} {i}" for a, i in zip(axes.split(), index)) + "]"
    return f"index {index}" if index else "the single value"
