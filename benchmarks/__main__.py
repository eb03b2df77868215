"""``python -m benchmarks``: the performance suite, each job against its reference.

Groups (``--only``): ``patching`` (head, residual and path patching against
``transformer_lens.patching`` and a naive loop, on the zoo and a gpt2-small-shaped random
model), ``edges`` (EAP and EAP-IG against exact edge patching), ``sae`` (a training
step against its matrix products; our trainer against SAELens'), ``memory`` (a cache
with and without a names filter) and ``curriculum`` (every notebook, timed).

``--small`` runs CI's sizes (a few minutes on 2 cores, one notebook as the curriculum's
sample) and prints the table. The full run also writes ``benchmarks/results.md`` (with
the machine, versions, load and, for each missed target, a profile of where the time
goes), ``benchmarks/results.json``, and the README's headline block; ``--readme``
rewrites those two from ``results.json`` alone. ``--only`` keeps the other groups' rows
from the last ``results.json``. Timings are never asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")  # transformer_lens.patching shows progress bars

import torch  # noqa: E402

from .measure import ROOT, Row, load_average, machine  # noqa: E402
from .report import readme_block, results_markdown, table  # noqa: E402

GROUPS = ("patching", "edges", "sae", "memory", "curriculum")
SIZES = {
    "small": {"repeats": 3, "zoo-4l": 16, "zoo-2l": 16, "gpt2": (2, 8), "gpt2_repeats": 2,
              "by_pos": ["zoo-2l"], "resid": ["zoo-4l"], "path": 8, "edges": 8, "ig_steps": 5,
              "edge_repeats": 2, "sae": (4096, 128, 1024), "sae_steps": 5, "sae_repeats": 2,
              "notebooks": "05"},
    "full": {"repeats": 5, "zoo-4l": 40, "zoo-2l": 32, "gpt2": (4, 12), "gpt2_repeats": 3,
             "by_pos": ["zoo-2l", "zoo-4l"], "resid": ["zoo-4l"], "path": 16, "edges": 32,
             "ig_steps": 10, "edge_repeats": 3, "sae": (4096, 512, 4096), "sae_steps": 6,
             "sae_repeats": 3, "notebooks": None},
}
HEAD_TARGETS = {"zoo-4l": 3.0, "zoo-2l": 3.0, "gpt2": 1.0}


def patching_rows(size: dict) -> list[Row]:
    from .bench_circuits import (gpt2_small_shaped, head_patching, path_patching_rows,
                                 residual_patching, zoo_task)

    tasks = {name: zoo_task(name, size[name]) for name in ("zoo-4l", "zoo-2l")}
    tasks["gpt2"] = gpt2_small_shaped(*size["gpt2"])
    repeats = {"zoo-4l": size["repeats"], "zoo-2l": size["repeats"], "gpt2": size["gpt2_repeats"]}
    rows = [head_patching(tasks[name], False, repeats[name], HEAD_TARGETS[name])
            for name in ("zoo-4l", "zoo-2l", "gpt2")]
    rows += [head_patching(tasks[name], True, size["repeats"], HEAD_TARGETS[name])
             for name in size["by_pos"]]
    rows += [residual_patching(tasks[name], repeats[name]) for name in size["resid"]]
    ioi = zoo_task("zoo-4l", size["path"], tasks["zoo-4l"].model)
    rows.append(path_patching_rows(ioi, "logits", "senders to the logits", size["repeats"]))
    rows.append(path_patching_rows(ioi, [(3, 0, "q"), (3, 4, "q")],
                                   "senders to two L3 queries at the end", size["repeats"],
                                   ioi.end))
    return rows


def edge_group(size: dict) -> list[Row]:
    from .bench_circuits import edge_rows, zoo_task

    return edge_rows(zoo_task("zoo-4l", size["edges"]), size["edge_repeats"], size["ig_steps"])


def sae_rows(size: dict) -> list[Row]:
    from .bench_sae import SAELENS_PYTHON, matmul_row, saelens_row

    batch, d_in, d_sae = size["sae"]
    rows = [matmul_row(arch, batch, d_in, d_sae, size["repeats"]) for arch in ("relu", "topk")]
    for arch in ("relu", "topk"):
        row = saelens_row(arch, batch, d_in, d_sae, size["sae_steps"], size["sae_repeats"])
        if row is None:
            print(f"SAELens comparison skipped: no SAELens environment at {SAELENS_PYTHON} "
                  f"(make saelens-env, or set SAELENS_PYTHON)", flush=True)
            break
        rows.append(row)
    return rows


def memory_rows(size: dict) -> list[Row]:
    from .bench_circuits import cache_memory, zoo_task

    return [cache_memory(zoo_task("zoo-4l", size["zoo-4l"]))]


def curriculum_rows(size: dict) -> list[Row]:
    """Every notebook (or the small run's sample) executed in a fresh kernel, timed."""
    from mi_helpers.tools.runner import run_notebook, select_notebooks

    paths = select_notebooks(size["notebooks"])
    with tempfile.TemporaryDirectory() as out:
        results = [run_notebook(path, Path(out), None, timeout=600) for path in paths]
    total = sum(r.seconds for r in results)
    failed = [r.notebook for r in results if r.status != "ok"]
    sample = size["notebooks"] is not None
    detail = ", ".join(f"{r.notebook[:2]} {r.seconds:.0f} s" for r in results)
    return [Row("curriculum", "the notebooks, each in a fresh kernel" + (" (sample)" * sample),
                "zoo", f"{len(paths)} notebook(s): {detail}", total, "budget: 6 minutes", 360.0,
                360.0 / total, 360.0 / total, 360.0 / total, None if sample else 1.0,
                note=f"FAILED: {failed}" if failed else "")]


RUNNERS = {"patching": patching_rows, "edges": edge_group, "sae": sae_rows,
           "memory": memory_rows, "curriculum": curriculum_rows}


def _merged(results: dict, groups: list[str]) -> dict:
    """``results`` with the rows of groups not run this time kept from the last
    ``results.json`` (so ``--only`` updates part of the table); their seconds and date too."""
    path = ROOT / "benchmarks" / "results.json"
    if not path.exists():
        return results
    old = json.loads(path.read_text())
    kept = [row for row in old["rows"] if row["group"] not in groups]
    order = {group: i for i, group in enumerate(GROUPS)}
    results["rows"] = sorted(results["rows"] + kept, key=lambda row: order[row["group"]])
    info, before = results["machine"], old["machine"]
    info["seconds"] = {g: (info["seconds"] if g in groups else before["seconds"]).get(g)
                       for g in GROUPS if g in info["seconds"] or g in before["seconds"]}
    if kept:
        info["earlier"] = {"groups": sorted({row["group"] for row in kept}),
                           "date": before.get("date"), "commit": before.get("commit"),
                           "load_average_start": before.get("load_average_start")}
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="CI's sizes; print only")
    parser.add_argument("--only", default=",".join(GROUPS), help=f"groups, from {GROUPS}")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--readme", action="store_true",
                        help="rewrite results.md and the README block from results.json, stop")
    args = parser.parse_args(argv)
    if args.readme:
        results = json.loads((ROOT / "benchmarks" / "results.json").read_text())
        (ROOT / "benchmarks" / "results.md").write_text(results_markdown(results))
        readme_block(results)
        return 0
    groups = [g.strip() for g in args.only.split(",") if g.strip()]
    unknown = set(groups) - set(GROUPS)
    if unknown:
        parser.error(f"unknown groups {sorted(unknown)}; choose from {GROUPS}")
    torch.set_num_threads(args.threads)
    mode = "small" if args.small else "full"
    info = machine()
    print(f"benchmarks ({mode}): {info['cpu']}, {info['cores']} cores, {args.threads} torch "
          f"thread(s), load {info['load_average_start']}", flush=True)
    rows, seconds = [], {}
    for group in groups:
        start = time.perf_counter()
        rows += RUNNERS[group](SIZES[mode])
        seconds[group] = time.perf_counter() - start
        print(f"  {group}: {seconds[group]:.0f} s", flush=True)
    info["load_average_end"], info["seconds"] = load_average(), seconds
    info["command"] = "python -m benchmarks " + " ".join(sys.argv[1:] if argv is None else argv)
    print(table(rows))
    if not args.small:
        results = _merged({"machine": info, "mode": mode, "rows": [r.as_dict() for r in rows]},
                          groups)
        (ROOT / "benchmarks" / "results.json").write_text(json.dumps(results, indent=1) + "\n")
        (ROOT / "benchmarks" / "results.md").write_text(results_markdown(results))
        readme_block(results)
        print("wrote benchmarks/results.md, benchmarks/results.json and the README block")
    return 0


if __name__ == "__main__":
    sys.exit(main())
