"""Every notebook on a GPT-2-shaped model: wall time and the kernel's peak memory.

The hub code path (``MODEL = "gpt2"`` on Colab) on a locally built, randomly initialised
GPT-2 of GPT-2 small's shape (12 layers, d_model 768, 12 heads, 50,257-token vocabulary)
with GPT-2's real tokenizer: what a Colab user's CPU-runtime pays, measured here. Every
cell runs (``keep_going``); a claim with no measured expectation for the model prints "no
expectation", so the table counts claims that still failed, and any other error. Notebook 09 compares against two more random
GPT-2 small seeds and a random GPT-2 medium (24 layers, d_model 1024), as on the hub.

Usage::

    python benchmarks/hub_shape.py                 # every notebook with a MODEL parameter
    python benchmarks/hub_shape.py --only 01,05    # a subset
    python benchmarks/hub_shape.py --write-readme  # also the README's hub-shape table

Results go to ``benchmarks/hub_shape.json`` (merged per notebook). Each notebook
runs in its own process so that ``RUSAGE_CHILDREN`` gives its kernel's peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from mi_helpers.tools import runner
from mi_helpers.tools.markers import replace_between_markers

MODELS = ROOT / "build" / "hub-shape"
RESULTS = ROOT / "benchmarks" / "hub_shape.json"
SMALL, MEDIUM = (12, 768, 12), (24, 1024, 16)
COLAB_BYTES = 12e9  # a free Colab runtime's memory, as the issue states it (12 GB)
NO_MODEL_PARAMETER = ("11", "13")  # Tracr-compiled and freshly trained models only


def _test_fixtures():
    """``tests/conftest.py`` (the random GPT-2 builder and the vendored tokenizer)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("test_fixtures", ROOT / "tests" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _build(name: str, shape: tuple[int, int, int], seed: int) -> str:
    """A random GPT-2 of ``shape`` (layers, d_model, heads) with the real tokenizer, cached."""
    out = MODELS / name
    if not (out / "config.json").exists():
        _test_fixtures().save_random_gpt2(out, *shape, seed=seed)
    return str(out)


def run_one(notebook: str, wall_limit: int) -> dict:
    """Run one notebook in this process; its kernel is our child."""
    params = {"MODEL": _build("gpt2-small", SMALL, 0)}
    if notebook.startswith("09"):
        params["OTHERS"] = [_build(f"gpt2-small-seed{s}", SMALL, s) for s in (1, 2)]
        params["OTHER_SIZE"] = _build("gpt2-medium", MEDIUM, 3)
    out = ROOT / "build" / "hub-shape-runs"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True, check=False).stdout.strip()  # the code the kernel imports
    result = runner.run_notebook(runner.NOTEBOOK_DIR / notebook, out, params,
                                 timeout=wall_limit, keep_going=True)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    others = [e.splitlines()[0][:160] for e in result.errors if not e.startswith("AssertionError")]
    return {"seconds": round(result.seconds, 1), "peak_gib": round(peak_kib / 2**20, 2),
            "claims_failed": len(result.errors) - len(others), "errors": others,
            "slowest_cell": slowest_cell(out / notebook, wall_limit), "commit": commit}


def slowest_cell(executed: Path, limit: float | None = None) -> list:
    """``[index, seconds]`` of the code cell that ran longest in an executed notebook; a
    cell stopped by the time limit counts as ``limit`` seconds (the table says "over")."""
    import datetime as dt

    import nbformat

    def seconds(meta: dict) -> float:
        start, end = (dt.datetime.fromisoformat(meta[k].replace("Z", "+00:00"))
                      for k in ("iopub.execute_input", "shell.execute_reply"))
        return (end - start).total_seconds()

    cells = nbformat.read(executed, as_version=4).cells
    timed = [(seconds(c.metadata["execution"]), i) for i, c in enumerate(cells)
             if "shell.execute_reply" in c.get("metadata", {}).get("execution", {})]
    stopped = [i for i, c in enumerate(cells) if any(
        o.get("ename") == "CellTimeoutError" for o in c.get("outputs", []))]
    if stopped and limit is not None:
        return [stopped[0], float(limit)]
    if not timed:
        return [None, None]
    longest, index = max(timed)
    return [index, round(longest, 1)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="notebook numbers, comma-separated")
    parser.add_argument("--limit", type=int, default=1200, help="seconds per notebook")
    parser.add_argument("--write-readme", action="store_true")
    parser.add_argument("--readme-only", action="store_true",
                        help="rewrite the README table from the saved results, run nothing")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one, args.limit)))
        return
    notebooks = [] if args.readme_only else _notebooks(args.only)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for name in notebooks:
        print(f"{name} ...", flush=True)
        start, load = time.perf_counter(), os.getloadavg()[0]
        try:
            done = subprocess.run([sys.executable, __file__, "--one", name, "--limit",
                                   str(args.limit)], cwd=ROOT, capture_output=True, text=True, check=False,
                                  timeout=args.limit + 300)
            row = (json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0
                   else {"errors": [done.stderr.strip().splitlines()[-1][:160]]})
        except subprocess.TimeoutExpired:
            row = {"errors": [f"stopped after {time.perf_counter() - start:.0f} s"]}
        results[name] = {**row, "load": round(load, 1)}
        print(f"  {row}", flush=True)
        results["_machine"] = (f"{os.cpu_count()} CPU cores, {platform.machine()}, "
                               f"torch threads {os.environ.get('OMP_NUM_THREADS', 'default')}")
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=1) + "\n")  # after each: nothing lost
    if args.write_readme or args.readme_only:
        readme = ROOT / "README.md"
        readme.write_text(replace_between_markers(readme.read_text(), "hub-shape",
                                                  readme_table(results)))


def readme_table(results: dict) -> str:
    rows = [("| notebook | seconds | slowest cell | kernel peak memory | load average at the "
             "start | claims failed | other errors | commit |"),
            "|---|---|---|---|---|---|---|---|"]
    for name, row in sorted((k, v) for k, v in results.items() if not k.startswith("_")):
        seconds = f"{row['seconds']:.0f}" if "seconds" in row else "-"
        peak = f"{row['peak_gib']:.1f} GiB" if "peak_gib" in row else "-"
        if row.get("peak_gib", 0) * 2**30 > COLAB_BYTES:
            peak += " (over 12 GB)"
        index, longest = row.get("slowest_cell", [None, None])
        slowest = f"cell {index}: {longest:.0f} s" if index is not None else "-"
        if any(e.startswith("CellTimeoutError") for e in row.get("errors", [])):
            slowest = f"cell {index}: over {longest:.0f} s (stopped)"
        errors = "; ".join(row.get("errors", [])) or "none"
        rows.append(f"| `{name}` | {seconds} | {slowest} | {peak} | {row.get('load', '-')} | "
                    f"{row.get('claims_failed', '-')} | {errors} | {row.get('commit', '-')} |")
    missing = [name for name in _notebooks("") if name not in results]
    left = (f" Not measured yet: {', '.join(f'`{n}`' for n in missing)}." if missing else "")
    machine = f" ({results['_machine']})" if "_machine" in results else ""
    return ("\n".join(rows) + f"\n\nMeasured by `python benchmarks/hub_shape.py --write-readme`"
            f"{machine}.{left}")


def _notebooks(only: str) -> list[str]:
    """The notebooks with a ``MODEL`` parameter, or those of ``only`` (numbers, commas)."""
    wanted = {n for n in only.split(",") if n}
    return [p.name for p in sorted(runner.NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
            if p.name[:2] not in NO_MODEL_PARAMETER and (not wanted or p.name[:2] in wanted)]


if __name__ == "__main__":
    main()
