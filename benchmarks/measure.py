"""How the suite measures: ours and a reference take turns, ratios per repeat, medians.

On a machine shared with other jobs, seconds are noisy but a slow moment slows both
sides of one repeat alike, so each repeat gives a ratio ``reference time / our time``
(> 1: ours is faster) and a benchmark reports the median ratio with its range over the
repeats. :func:`machine` records what the numbers were measured on.
"""

from __future__ import annotations

import cProfile
import io
import os
import platform
import pstats
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

__all__ = ["Row", "alternate", "ratios", "timed", "profile_summary", "machine", "load_average"]

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Row:
    """One line of the results table.

    ``ratio`` is the median over repeats of ``reference / ours`` (times, or bytes for
    memory), ``low``/``high`` its range; ``target`` is the ratio the issue asks for (None:
    no target), ``unit`` what ``ours`` and ``reference`` are measured in.
    """

    group: str
    benchmark: str
    model: str
    setting: str
    ours: float
    reference_name: str
    reference: float
    ratio: float
    low: float
    high: float
    target: float | None = None
    unit: str = "s"
    max_diff: float | None = None
    note: str = ""
    profile: str = field(default="", repr=False)

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.ratio >= self.target

    def as_dict(self) -> dict:
        return {**asdict(self), "met": self.met}


def timed(fn: Callable) -> tuple[float, object]:
    """Seconds one call of ``fn`` takes, and what it returned."""
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def alternate(fns: dict[str, Callable], repeats: int, warmup: bool = True
              ) -> tuple[dict[str, list[float]], dict[str, object]]:
    """Call each function once per repeat, taking turns; seconds per call and the last
    outputs. A warm-up call of each comes first (not timed) when ``warmup``."""
    outputs = {name: fn() for name, fn in fns.items()} if warmup else {}
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            seconds, outputs[name] = timed(fn)
            times[name].append(seconds)
    return times, outputs


def ratios(reference: list[float], ours: list[float]) -> tuple[float, float, float]:
    """Median, min and max over repeats of ``reference[i] / ours[i]``."""
    per_repeat = [r / o for r, o in zip(reference, ours)]
    return statistics.median(per_repeat), min(per_repeat), max(per_repeat)


def profile_summary(fn: Callable, n: int = 12, phases: dict[str, str] | None = None) -> str:
    """Where one call of ``fn`` spends its time (cProfile).

    The first line gives the share of the call spent in each of ``phases`` (label ->
    ``"file.py:function"``, cumulative time) if given, else the three functions with the
    most own time; then the ``n`` functions with the most own time.
    """
    profiler = cProfile.Profile()
    profiler.enable()
    fn()
    profiler.disable()
    stats = pstats.Stats(profiler, stream=io.StringIO()).sort_stats("tottime")
    total = sum(entry[2] for entry in stats.stats.values())  # own time of every function
    if phases:
        cumulative = {f"{Path(f).name}:{name}": entry[3]
                      for (f, _, name), entry in stats.stats.items()}
        shares = ", ".join(f"{label} {cumulative.get(key, 0.0) / total:.0%}"
                           for label, key in phases.items())
    else:
        top = sorted(stats.stats.items(), key=lambda item: -item[1][2])[:3]
        shares = ", ".join(f"{_short(func)} {entry[2] / total:.0%}" for func, entry in top)
    out = io.StringIO()
    stats.stream = out
    stats.print_stats(n)
    lines = out.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("ncalls"))
    return "\n".join([f"time: {shares} (of {total * 1000:.0f} ms)"]
                     + [line.replace(str(ROOT) + "/", "") for line in lines[start:]
                        if line.strip()])


def _short(func: tuple[str, int, str]) -> str:
    """``file:function`` (a built-in: its name) for a cProfile key."""
    filename, _, name = func
    if filename == "~":
        return name.replace("<built-in method ", "").rstrip(">")
    return f"{Path(filename).stem}.{name}"


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> dict:
    """The CPU, threads, load and library versions the numbers were measured with."""
    from importlib.metadata import version

    return {"cpu": _cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "(unset)"),
            "python": platform.python_version(), "torch": torch.__version__,
            "transformer_lens": version("transformer-lens"),
            "transformers": version("transformers"), "commit": _git_commit(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "load_average_start": load_average()}
