"""One result type for every sweep: patching, ablations, path patching, attribution.

A sweep runs a metric once per intervention (per layer, position, head, sender set, …)
and compares each value with two anchor runs: the **clean** run (the behaviour) and the
**corrupted** run (the behaviour removed). :class:`SweepResult` carries the values with
named axes and their coordinates, the two anchors, and the usual normalisations:

* ``score = (value - corrupted) / (clean - corrupted)``: 0 = as corrupted, 1 = as clean;
* ``relative = value / clean - 1``: the IOI paper's "change in logit difference";
* ``drop = -relative``: the share of the clean metric lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .heads import Head, top_heads

__all__ = ["SweepResult", "normalised_score"]


def normalised_score(values: Tensor, clean: float, corrupted: float) -> Tensor:
    """``(values - corrupted) / (clean - corrupted)``: 0 = corrupted metric, 1 = clean.

    Raises:
        ValueError: the clean and corrupted metrics are equal, so the score is undefined.
    """
    if abs(clean - corrupted) < 1e-12:
        raise ValueError(f"the clean and corrupted metrics are equal ({clean:.6g}), so the "
                         f"normalised score is undefined; choose prompts (or a metric) that "
                         f"tell the two runs apart")
    return (values - corrupted) / (clean - corrupted)


@dataclass
class SweepResult:
    """The metric after each intervention of a sweep, with the runs that anchor it.

    Attributes:
        values: the metric after each intervention, one axis per entry of ``axes``
            (NaN where an intervention does not apply, e.g. a head after the receivers).
        axes: axis names, e.g. ``("layer", "pos", "head")`` or ``("sender_set",)``.
        coords: for each axis, what each index stands for (layers, positions, heads,
            sender sets, edges, …).
        clean: the metric of the clean run.
        corrupted: the metric of the corrupted (or fully ablated) run.
        method: what produced it, e.g. ``"activation patching (denoise)"``.
    """

    values: Tensor
    axes: tuple[str, ...]
    coords: dict[str, list] = field(repr=False)
    clean: float
    corrupted: float
    method: str = ""

    def __post_init__(self):
        if self.values.ndim != len(self.axes):
            raise ValueError(f"values have {self.values.ndim} axes but {len(self.axes)} names "
                             f"were given: {self.axes}")

    @property
    def score(self) -> Tensor:
        """``(values - corrupted) / (clean - corrupted)``: 0 = as corrupted, 1 = as clean."""
        return normalised_score(self.values, self.clean, self.corrupted)

    @property
    def relative(self) -> Tensor:
        """``values / clean - 1`` (e.g. -0.3: the metric fell by 30% of its clean value)."""
        if self.clean == 0:
            raise ValueError("the clean metric is 0, so a change relative to it is undefined")
        return self.values / self.clean - 1

    @property
    def drop(self) -> Tensor:
        """``(clean - values) / clean``: the share of the clean metric each intervention loses."""
        return -self.relative

    def head_grid(self, of: str = "values") -> Tensor:
        """``of`` (``"values"``, ``"score"``, ``"relative"`` or ``"drop"``) as ``[layer, head]``.

        Raises:
            ValueError: the sweep's axes are not ``("layer", "head")``.
        """
        if self.axes != ("layer", "head"):
            raise ValueError(f"this sweep's axes are {self.axes}, not ('layer', 'head')")
        return getattr(self, of)

    def top_heads(self, k: int, of: str = "drop") -> list[Head]:
        """The ``k`` heads with the largest ``of`` (default: the largest drop)."""
        return top_heads(self.head_grid(of), k)

    def top(self, k: int, of: str = "values", largest: bool = True) -> list[dict]:
        """The ``k`` largest (or smallest) cells of ``of``, as ``{axis: coordinate, "value": v}``."""
        grid = getattr(self, of)
        flat = grid.flatten()
        finite = flat.isfinite().nonzero().flatten()
        order = finite[flat[finite].argsort(descending=largest)[:k]]
        shape = grid.shape
        cells = []
        for index in order.tolist():
            where = torch.unravel_index(torch.tensor(index), shape)
            cell = {axis: self.coords[axis][int(i)] for axis, i in zip(self.axes, where)}
            cell["value"] = flat[index].item()
            cells.append(cell)
        return cells

    def select(self, **coords) -> Tensor:
        """The values at the given coordinates, e.g. ``result.select(layer=2, head=5)``."""
        index: list[int | slice] = []
        for axis in self.axes:
            if axis in coords:
                index.append(_position(self.coords[axis], coords.pop(axis), axis))
            else:
                index.append(slice(None))
        if coords:
            raise KeyError(f"unknown axes {sorted(coords)}; this sweep has {self.axes}")
        return self.values[tuple(index)]


def _position(values: Sequence, wanted, axis: str) -> int:
    try:
        return list(values).index(wanted)
    except ValueError:
        raise KeyError(f"{axis}={wanted!r} was not swept; swept: {list(values)[:10]}") from None
