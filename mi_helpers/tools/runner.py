"""``python -m mi_helpers run``: execute every notebook in order and report.

Each notebook in ``notebooks/`` runs top to bottom in a fresh kernel; the executed
copy and an HTML rendering go to ``build/``, and ``build/index.html`` links every
executed notebook with its status and time (:mod:`.index_page`). ``--model NAME``
injects ``MODEL = NAME`` after the notebook's ``parameters`` cell (as papermill does);
``--only 00,05`` picks notebooks by their number. A failing notebook is saved with its error and the run
goes on; the exit status is non-zero if any failed.

``python -m mi_helpers build-exercises`` writes the exercise build of the notebooks to
``build/exercises/`` (:mod:`mi_helpers.exercises.build`).
"""

from __future__ import annotations

import argparse
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbconvert import HTMLExporter

from ..exercises.build import build_exercises, format_summary
from .index_page import write_index

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = ROOT / "notebooks"


@dataclass
class RunResult:
    notebook: str
    status: str
    seconds: float
    errors: list[str] = field(default_factory=list)  # "Name: message" of each failed cell


def select_notebooks(only: str | None, notebook_dir: Path = NOTEBOOK_DIR) -> list[Path]:
    """Notebooks in order, or those whose two-digit prefix is listed in ``only``."""
    paths = sorted(notebook_dir.glob("[0-9][0-9]_*.ipynb"))
    if not only:
        return paths
    wanted = {p.strip().zfill(2) for p in only.split(",") if p.strip()}
    chosen = [p for p in paths if p.name[:2] in wanted]
    missing = wanted - {p.name[:2] for p in chosen}
    if missing:
        raise SystemExit(f"no notebook numbered {sorted(missing)}; have "
                         f"{[p.name for p in paths]}")
    return chosen


def inject_model(nb: nbformat.NotebookNode, model: str) -> None:
    """Insert ``MODEL = model`` right after the cell tagged ``parameters``."""
    for i, cell in enumerate(nb.cells):
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            injected = nbformat.v4.new_code_cell(f"MODEL = {model!r}")
            injected.metadata["tags"] = ["injected-parameters"]
            nb.cells.insert(i + 1, injected)
            return
    raise ValueError("notebook has no cell tagged 'parameters'")


KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def run_notebook(path: Path, out_dir: Path, model: str | None, timeout: int,
                 write_back: bool = False, keep_going: bool = False) -> RunResult:
    """Execute one notebook; write ``out_dir/<name>.ipynb`` and ``.html`` either way.

    With ``write_back`` (and no ``model``), a notebook that ran cleanly is also saved
    over its source with its new outputs: how the committed outputs are made. With
    ``keep_going``, cells after a failing cell still run and every failure is listed in
    ``errors`` (how the tests run a notebook's code on a model its claims do not fit).
    """
    nb = nbformat.read(path, as_version=4)
    nb.metadata["kernelspec"] = KERNELSPEC
    if model:
        inject_model(nb, model)
    start, status = time.perf_counter(), "ok"
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=keep_going,
                            resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
    except CellExecutionError as err:
        last_line = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip().splitlines()[-1]
        status = "FAILED: " + last_line[:120]
    seconds = time.perf_counter() - start
    errors = [f"{o.ename}: {o.evalue}" for c in nb.cells if c.cell_type == "code"
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    if errors and status == "ok":
        status = "FAILED: " + errors[0][:120]
    out_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out_dir / path.name)
    html, _ = HTMLExporter().from_notebook_node(nb)
    (out_dir / path.with_suffix(".html").name).write_text(html, encoding="utf-8")
    if write_back and not model and status == "ok":
        nbformat.write(nb, path)
    return RunResult(path.name, status, seconds, errors)


def format_table(results: list[RunResult]) -> str:
    """A plain-text table: notebook, status, seconds."""
    width = max([len("notebook")] + [len(r.notebook) for r in results])
    lines = [f"{'notebook':<{width}}  {'status':<8}  seconds", "-" * (width + 19)]
    lines += [f"{r.notebook:<{width}}  {r.status:<8}  {r.seconds:7.1f}" for r in results]
    lines.append(f"{'total':<{width}}  {'':<8}  {sum(r.seconds for r in results):7.1f}")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mi_helpers",
                                     description="MI Roadmap command line.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute the notebooks in order")
    run.add_argument("--model", default=None, help="model for every notebook (default: each "
                     "notebook's own zoo model)")
    run.add_argument("--only", default=None, help="comma-separated notebook numbers, e.g. 00,05")
    run.add_argument("--out", default=str(ROOT / "build"), help="output folder")
    run.add_argument("--timeout", type=int, default=600, help="seconds allowed per cell")
    run.add_argument("--write-back", action="store_true",
                     help="save each cleanly executed notebook over its source (for committing)")
    build = sub.add_parser("build-exercises", help="write the exercise version of every "
                           "notebook that has exercises (stubs, hints and checks; no solutions)")
    build.add_argument("--out", default=str(ROOT / "build" / "exercises"), help="output folder")
    return parser


def run_command(args: argparse.Namespace) -> int:
    """``run``: execute the chosen notebooks, print the table, rewrite ``index.html``."""
    results = []
    for path in select_notebooks(args.only):
        print(f"running {path.name} ...", flush=True)
        results.append(run_notebook(path, Path(args.out), args.model, args.timeout,
                                    write_back=args.write_back))
    print(format_table(results))
    print(f"index of every executed notebook: {write_index(args.out, results, args.model)}")
    return 0 if all(r.status == "ok" for r in results) else 1


def build_exercises_command(args: argparse.Namespace) -> int:
    """``build-exercises``: write the exercise notebooks and print what they hold."""
    built = build_exercises(NOTEBOOK_DIR, args.out)
    print(format_summary(built))
    print(f"written to {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = {"run": run_command, "build-exercises": build_exercises_command}[args.command]
    return command(args)
