"""A recorder: measure a model every few steps while it trains.

A falling loss says that the model learned *something*, not what. To watch a mechanism
form, measure it during training: :class:`Recorder` calls a set of *probes* (functions
of the model) every ``every`` steps and keeps one record per call, e.g.
``{"step": 500, "loss": 4.6, "induction@10": [[...], [...]]}``. A probe returns a
number, a tensor (kept as nested lists) or a dict of them (one key each).

The record is plain JSON (:meth:`Recorder.save`, :meth:`Recorder.load`), so a long run
can be committed and plotted later, and :meth:`Recorder.series` turns one quantity
back into a tensor over steps.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..core.checks import check_positive

__all__ = ["Probe", "Recorder"]

#: A measurement of the model: a number, a tensor, or a dict of named numbers / tensors.
Probe = Callable[[torch.nn.Module], "float | Tensor | dict[str, float | Tensor]"]


class Recorder:
    """Call ``probes`` on the model every ``every`` steps and keep what they return.

    Args:
        probes: ``{name: probe}``; a probe returning a dict adds one entry per key
            (named by the key) instead of one named ``name``.
        every: steps between records (step 0, the initial model, is recorded too).
        digits: decimals kept in the record (keeps committed records small).
    """

    def __init__(self, probes: Mapping[str, Probe], every: int, digits: int = 4):
        check_positive("every", every, integer=True)
        if not probes:
            raise ValueError("give the recorder at least one probe")
        self.probes, self.every, self.digits = dict(probes), every, digits
        self.records: list[dict] = []
        self.metadata: dict = {}  # saved with the records, e.g. the run's config

    def due(self, step: int) -> bool:
        """Whether ``step`` is a recording step."""
        return step % self.every == 0

    @torch.no_grad()
    def record(self, step: int, model: torch.nn.Module, **values) -> dict:
        """Measure ``model`` now (in eval mode) and append the record.

        Args:
            step: optimiser steps taken so far.
            model: the model being trained; its train/eval mode is restored afterwards.
            values: numbers the trainer already has, e.g. ``loss=...`` of the last batch.
        """
        if self.records and step <= self.records[-1]["step"]:
            raise ValueError(f"step {step} was recorded already (last record: step "
                             f"{self.records[-1]['step']})")
        was_training = model.training
        model.eval()
        try:
            entry = {"step": step, **{k: self._plain(v) for k, v in values.items()}}
            for name, probe in self.probes.items():
                result = probe(model)
                items = result.items() if isinstance(result, Mapping) else [(name, result)]
                entry.update({k: self._plain(v) for k, v in items})
        finally:
            model.train(was_training)
        self.records.append(entry)
        return entry

    def maybe_record(self, step: int, model: torch.nn.Module, **values) -> dict | None:
        """:meth:`record` if ``step`` is due, else nothing."""
        return self.record(step, model, **values) if self.due(step) else None

    @property
    def steps(self) -> Int[Tensor, "record"]:
        """The recorded steps."""
        return torch.tensor([r["step"] for r in self.records])

    def series(self, name: str) -> Float[Tensor, "record ..."]:
        """One recorded quantity at every record, stacked along a new first axis."""
        missing = [r["step"] for r in self.records if name not in r]
        if not self.records or missing:
            known = sorted(self.records[0]) if self.records else []
            raise KeyError(f"{name!r} is not recorded at every step (missing at steps "
                           f"{missing[:5]}); recorded names: {known}")
        return torch.tensor([r[name] for r in self.records], dtype=torch.float32)

    def _plain(self, value):
        """A number or nested list rounded to ``digits`` decimals (JSON-ready)."""
        if isinstance(value, Tensor):
            value = value.detach().double().cpu()
            return round(value.item(), self.digits) if value.ndim == 0 else \
                value.round(decimals=self.digits).tolist()
        if isinstance(value, (int, float)):
            return round(float(value), self.digits)
        raise TypeError(f"a probe returned {type(value).__name__}; return a number, a tensor "
                        f"or a dict of them")

    def state(self) -> dict:
        """The recorder's settings and records (JSON-ready)."""
        return {"every": self.every, "digits": self.digits, "records": self.records}

    def save(self, path: str | Path, **metadata) -> None:
        """Write the records (and any ``metadata``, e.g. the run's config) as JSON."""
        Path(path).write_text(json.dumps({**self.metadata, **metadata, **self.state()}) + "\n")

    @classmethod
    def load(cls, path: str | Path, probes: Mapping[str, Probe] | None = None) -> Recorder:
        """A recorder holding the records saved at ``path`` (probes only to go on recording)."""
        saved = json.loads(Path(path).read_text())
        recorder = cls(probes or {"(none)": _no_probe}, saved["every"], saved["digits"])
        recorder.records = saved["records"]
        recorder.metadata = {k: v for k, v in saved.items()
                             if k not in ("every", "digits", "records")}
        return recorder


def _no_probe(model):
    raise RuntimeError("this recorder was loaded without probes; pass probes= to record more")
