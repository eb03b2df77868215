"""Measure the foundation's time budgets and write them into README.md.

Runs ``python -m mi_helpers run`` (every notebook, fresh kernels) and the README's test
command ``python -m pytest``, timing each, then replaces the README's budgets section.
Usage: ``python benchmarks/measure_budgets.py``.
"""

from __future__ import annotations

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

BUDGETS = {"pytest": 600, "00_primer.ipynb": 30, "01_logit_lens.ipynb": 60, "02_probing.ipynb": 60,
           "03_sparse_autoencoders.ipynb": 90, "04_feature_dashboards.ipynb": 60,
           "05_activation_patching.ipynb": 60, "09_universality.ipynb": 60,
           "06_ioi_circuit.ipynb": 60, "07_induction_circuits.ipynb": 60,
           "12_your_experiment.ipynb": 60}


def timed(cmd: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return time.perf_counter() - start, done.stdout


def main() -> None:
    _, table = timed([sys.executable, "-m", "mi_helpers", "run"])
    per_notebook = {m.group(1): float(m.group(2)) for m in
                    re.finditer(r"^(\d\d_\S+\.ipynb)\s+ok\s+([\d.]+)$", table, re.M)}
    pytest_s, out = timed([sys.executable, "-m", "pytest", "-q"])
    summary = out.strip().splitlines()[-1]
    rows = ["| what | measured | budget |", "|---|---|---|",
            f"| `python -m pytest` (unit tests + nbval on every notebook) | {pytest_s:.0f} s "
            f"({summary.strip('= ')}) | {BUDGETS['pytest']} s |"]
    for name, seconds in per_notebook.items():
        budget = BUDGETS.get(name)
        rows.append(f"| `{name}` in `python -m mi_helpers run` | {seconds:.1f} s | "
                    f"{f'{budget} s' if budget else '-'} |")
    cpu = f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"
    body = "\n".join(rows) + f"\n\nMeasured by `python benchmarks/measure_budgets.py` ({cpu})."
    readme = ROOT / "README.md"
    readme.write_text(replace_between_markers(readme.read_text(), "budgets", body))
    print(body)


if __name__ == "__main__":
    main()
