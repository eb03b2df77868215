"""Run a compiled RASP program from its lookup tables, with interventions, without Tracr.

Tracr compiles programs whose every variable takes finitely many values, so each
operation is a finite table, stored in the program's JSON:

* ``map``: ``[[x, f(x)], ...]``; ``sequence_map``: ``[[x, y, f(x, y)], ...]``;
* ``select``: the ``[key, query]`` pairs its predicate accepts;
* ``aggregate``: the mean of the selected values (the value itself when one is
  selected, ``default`` when none); ``selector_width``: how many are selected.

The semantics are RASP's (Weiss et al., 2021), as Tracr's evaluator implements them: a
``None`` input maps to ``None``. :func:`evaluate` returns every variable, and
``overrides`` sets a variable to given values before its readers use it: the
high-level half of an interchange intervention (Geiger et al., 2021).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["evaluate"]


def _key(value):
    """A hashable form of a value (JSON gives lists where Python had tuples)."""
    return tuple(value) if isinstance(value, list) else value


def _mean(values: list, default):
    if not values:
        return default
    if len(values) == 1:
        return values[0]
    if all(isinstance(v, (int, float, bool)) for v in values):
        return sum(values) / len(values)
    raise ValueError(f"RASP aggregates only numbers when several positions are selected, "
                     f"got {values}")


def _lookup(table: dict, args: tuple, op: dict):
    if any(a is None for a in args):
        return None
    try:
        return table[tuple(_key(a) for a in args)]
    except KeyError:
        raise ValueError(f"operation {op['name']!r} has no table entry for {args}: the value "
                         f"is outside what Tracr compiled it for") from None


def _step(op: dict, env: dict, xs: list):
    """The value of one operation: a list over positions (a selector: a matrix)."""
    kind = op["kind"]
    if kind == "tokens":
        return list(xs)
    if kind == "indices":
        return list(range(len(xs)))
    args = [env[name] for name in op["inputs"]]
    if kind in ("map", "sequence_map"):
        table = {tuple(_key(v) for v in row[:-1]): row[-1] for row in op["table"]}
        return [_lookup(table, values, op) for values in zip(*args)]
    if kind == "select":
        accepted = {(_key(k), _key(q)) for k, q in op["table"]}
        keys, queries = args
        return [[k is not None and q is not None and (_key(k), _key(q)) in accepted
                 for k in keys] for q in queries]
    if kind == "aggregate":
        selector, values = args
        return [_mean([v for s, v in zip(row, values) if s], op["default"]) for row in selector]
    if kind == "selector_width":
        return [sum(row) for row in args[0]]
    raise ValueError(f"unknown RASP operation kind {kind!r} in {op['name']!r}")


def evaluate(operations: Sequence[dict], xs: Sequence, overrides: Mapping[str, Sequence] | None
             = None) -> dict[str, list]:
    """Every variable of the program on input ``xs`` (no BOS).

    Args:
        operations: the program's operations in order (``spec["operations"]``).
        xs: the input tokens.
        overrides: variable name -> its values at each position, used instead of
            computing it (its own inputs are still computed).

    Returns:
        Variable (and selector) name -> its value at each position.

    Raises:
        KeyError: an override names no variable. ValueError: an override has the wrong
            length, or a value falls outside an operation's table.
    """
    overrides = dict(overrides or {})
    unknown = set(overrides) - {op["name"] for op in operations}
    if unknown:
        raise KeyError(f"no variables {sorted(unknown)} in this program; it has "
                       f"{[op['name'] for op in operations]}")
    env: dict[str, list] = {}
    for op in operations:
        if op["name"] in overrides:
            values = list(overrides[op["name"]])
            if len(values) != len(xs):
                raise ValueError(f"override of {op['name']!r} has {len(values)} values for "
                                 f"{len(xs)} positions")
            env[op["name"]] = values
        else:
            env[op["name"]] = _step(op, env, list(xs))
    return env
