"""Measure the foundation's time budgets and write them into README.md.

Runs ``python -m mi_helpers run`` (every notebook, fresh kernels) and the README's test
command ``python -m pytest``, timing each, then replaces the README's budgets section.
Usage: ``python benchmarks/measure_budgets.py``; ``--pytest-log FILE`` takes the test
command's time from the saved output of a run of it (e.g. CI's ``make test`` on a clean
checkout) instead of running it again.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from mi_helpers.tools.markers import replace_between_markers  # noqa: E402

BUDGETS = {"pytest": 2700,  # CI aims at 45 minutes in all
           "00_primer.ipynb": 30, "01_logit_lens.ipynb": 60, "02_probing.ipynb": 60,
           "03_sparse_autoencoders.ipynb": 90, "04_feature_dashboards.ipynb": 60,
           "05_activation_patching.ipynb": 60, "09_universality.ipynb": 60,
           "06_ioi_circuit.ipynb": 60, "07_induction_circuits.ipynb": 60,
           "12_your_experiment.ipynb": 60, "08_automated_discovery.ipynb": 90,
           "10_subspaces_and_steering.ipynb": 90, "11_tracr_ground_truth.ipynb": 60,
           "13_training_dynamics.ipynb": 120}


def timed(cmd: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return time.perf_counter() - start, done.stdout


def pytest_summary(log: str) -> tuple[float, str]:
    """Seconds and summary of the last ``N passed ... in X s`` line of a pytest output."""
    found = re.findall(r"^=*\s*(\S.*?\bpassed\b.*? in ([\d.]+)s\b.*?)\s*=*$", log, re.M)
    if not found:
        sys.exit("no pytest summary line ('N passed ... in X s') in the log")
    summary, seconds = found[-1]
    return float(seconds), summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pytest-log", type=Path, help="a saved output of `python -m pytest`")
    args = parser.parse_args()
    _, table = timed([sys.executable, "-m", "mi_helpers", "run"])
    per_notebook = {m.group(1): float(m.group(2)) for m in
                    re.finditer(r"^(\d\d_\S+\.ipynb)\s+([\d.]+)\s+ok$", table, re.M)}
    if not per_notebook:  # the runner's table changed: say so rather than drop the rows
        sys.exit(f"no 'notebook seconds ok' rows in the runner's table:\n{table}")
    if args.pytest_log:
        pytest_s, summary = pytest_summary(args.pytest_log.read_text())
    else:
        pytest_s, out = timed([sys.executable, "-m", "pytest", "-q"])
        summary = out.strip().splitlines()[-1]
    rows = ["| what | measured | budget |", "|---|---|---|",
            f"| `python -m pytest` (unit tests + nbval on every notebook"
            f"{', in a clean checkout' if args.pytest_log else ''}) | {pytest_s:.0f} s "
            f"({summary.strip('= ')}) | {BUDGETS['pytest']} s |"]
    for name, seconds in per_notebook.items():
        budget = BUDGETS.get(name)
        rows.append(f"| `{name}` in `python -m mi_helpers run` | {seconds:.1f} s | "
                    f"{f'{budget} s' if budget else '-'} |")
    cpu = f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"
    how = " --pytest-log <CI's output>" if args.pytest_log else ""
    body = "\n".join(rows) + (f"\n\nMeasured by `python benchmarks/measure_budgets.py{how}` "
                               f"({cpu}; the load average at the start: {os.getloadavg()[0]:.1f}).")
    readme = ROOT / "README.md"
    readme.write_text(replace_between_markers(readme.read_text(), "budgets", body))
    print(body)


if __name__ == "__main__":
    main()
