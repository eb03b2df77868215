"""``python -m mi_helpers run``: execute every notebook in order and report.

Each notebook in ``notebooks/`` runs top to bottom in a fresh kernel; the executed
copy and an HTML rendering go to ``build/``, and ``build/index.html`` links every
executed notebook with its status and time (:mod:`.index_page`). ``--model NAME``
injects ``MODEL = NAME`` after the notebook's ``parameters`` cell (as papermill does),
``--param NAME=VALUE`` any other parameter (a Python literal); ``--only 00,05`` picks
notebooks by their number. A failing notebook is saved with its error, the cells after it
are cleared and marked as not run, and the run goes on; the exit status is non-zero if
any failed. A hub model asked for offline fails once, before any notebook starts.

``python -m mi_helpers build-exercises`` writes the exercise build of the notebooks to
``build/exercises/`` (:mod:`mi_helpers.exercises.build`).
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from nbconvert import HTMLExporter

from ..exercises.build import build_exercises, format_summary
from .index_page import write_index

__all__ = ["RunResult", "select_notebooks", "inject_parameters", "run_notebook", "format_table",
           "check_model_available", "main"]

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = ROOT / "notebooks"
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
HUB_HOST = "huggingface.co"
NOT_RUN = ("**Not run.** Execution stopped at the error above, so the cells below were not "
           "executed in this copy (their outputs are cleared).")


@dataclass
class RunResult:
    notebook: str
    status: str
    seconds: float
    errors: list[str] = field(default_factory=list)  # "Name: message" of each failed cell


def select_notebooks(only: str | None, notebook_dir: Path = NOTEBOOK_DIR) -> list[Path]:
    """Notebooks in order, or those whose two-digit prefix is listed in ``only``."""
    paths = sorted(notebook_dir.glob("[0-9][0-9]_*.ipynb"))
    if only is None:
        return paths
    wanted = {p.strip().zfill(2) for p in only.split(",") if p.strip()}
    if not wanted:
        raise SystemExit(f"--only {only!r} selects no notebook; give numbers such as 00,05")
    chosen = [p for p in paths if p.name[:2] in wanted]
    missing = wanted - {p.name[:2] for p in chosen}
    if missing:
        raise SystemExit(f"no notebook numbered {sorted(missing)}; have "
                         f"{[p.name for p in paths]}")
    return chosen


def inject_parameters(nb: nbformat.NotebookNode, params: dict[str, object]) -> None:
    """Insert ``NAME = value`` lines right after the cell tagged ``parameters``."""
    for i, cell in enumerate(nb.cells):
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            code = "\n".join(f"{name} = {value!r}" for name, value in params.items())
            injected = nbformat.v4.new_code_cell(code)
            injected.metadata["tags"] = ["injected-parameters"]
            nb.cells.insert(i + 1, injected)
            return
    raise ValueError("notebook has no cell tagged 'parameters'")


def _first_error(nb: nbformat.NotebookNode) -> tuple[int, list[str]]:
    """The index of the first cell with an error (-1 if none) and every error's message."""
    first, errors = -1, []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                first = i if first < 0 else first
                errors.append(f"{out.ename}: {_plain(out.evalue)}")
    return first, errors


def _record_crash(nb: nbformat.NotebookNode, exc: Exception, timeout: int) -> None:
    """Put a timeout or a dead kernel into the cell that was running, as an error output."""
    started = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
               and "iopub.execute_input" in c.get("metadata", {}).get("execution", {})]
    running = [i for i in started
               if "shell.execute_reply" not in nb.cells[i].metadata["execution"]]
    where = (running or started or [i for i, c in enumerate(nb.cells) if c.cell_type == "code"])
    message = (f"the cell ran longer than {timeout} s (raise --timeout, or run on a quieter "
               f"machine)" if isinstance(exc, CellTimeoutError) else
               f"the kernel died ({_plain(str(exc)).splitlines()[0] if str(exc) else 'no message'})")
    error = nbformat.v4.new_output("error", ename=type(exc).__name__, evalue=message, traceback=[])
    for cell in nb.cells:  # on a timeout nbclient interrupts the kernel: replace that error
        interrupts = [o for o in cell.get("outputs", []) if o.get("ename") == "KeyboardInterrupt"]
        if interrupts:
            cell.outputs = [o for o in cell.outputs if o not in interrupts] + [error]
            return
    nb.cells[where[-1] if running else where[0]].outputs.append(error)


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", str(text)).strip()


def _mark_not_run(nb: nbformat.NotebookNode, failed: int) -> None:
    """Clear every code cell after ``failed`` and say so in a markdown cell after it."""
    for cell in nb.cells[failed + 1:]:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.cells.insert(failed + 1, nbformat.v4.new_markdown_cell(NOT_RUN))


def kernel_threads(params: dict[str, object] | None) -> str:
    """CPU threads for a notebook's kernel when ``OMP_NUM_THREADS`` is not set: one on the
    zoo's small models, whose many tiny operations torch's thread pool only slows down (on
    2 busy cores, SAE training ran 15 times slower with 2 threads than with 1), torch's own
    default (every core) for a hub model."""
    model = str((params or {}).get("MODEL", "zoo"))
    return "1" if model.startswith("zoo") else str(os.cpu_count() or 1)


@contextmanager
def _environment(values: dict[str, str]):
    """Set environment variables (inherited by the kernels started inside), then restore."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            os.environ.pop(name) if value is None else os.environ.update({name: value})


def run_notebook(path: Path, out_dir: Path, params: dict[str, object] | None, timeout: int,
                 write_back: bool = False, keep_going: bool = False) -> RunResult:
    """Execute one notebook; write ``out_dir/<name>.ipynb`` and ``.html`` either way.

    Args:
        path: the notebook.
        out_dir: where the executed copy and its HTML go.
        params: parameters injected after the ``parameters`` cell (e.g. ``{"MODEL": "gpt2"}``).
        timeout: seconds allowed per cell.
        write_back: with no ``params``, save a cleanly executed notebook over its source
            (how the committed outputs are made).
        keep_going: run the cells after a failing cell too, listing every failure in
            ``errors`` (how the tests run a notebook's code on a model its claims do not fit).
    """
    nb = nbformat.read(path, as_version=4)
    nb.metadata["kernelspec"] = KERNELSPEC
    if params:
        inject_parameters(nb, params)
    start = time.perf_counter()
    committing = write_back and not params
    env = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", kernel_threads(params))}
    if committing:  # committed notebooks stay light: circuitsvis from the CDN, not inlined
        env["MI_VIZ"] = "cdn"
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=keep_going,
                            resources={"metadata": {"path": str(path.parent)}})
    with _environment(env):
        try:
            client.execute()
        except CellExecutionError:
            pass  # the error is in the failing cell's outputs
        except (CellTimeoutError, DeadKernelError) as exc:  # no error output: write one
            _record_crash(nb, exc, timeout)
    seconds = time.perf_counter() - start
    _coalesce_streams(nb)
    failed, errors = _first_error(nb)
    model = (params or {}).get("MODEL")
    status = "ok" if not errors else (f"FAILED{f' ({model})' if model else ''}: "
                                      + errors[0].splitlines()[0][:160])
    if errors and not keep_going:
        _mark_not_run(nb, failed)
    out_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out_dir / path.name)
    html, _ = HTMLExporter().from_notebook_node(nb)
    (out_dir / path.with_suffix(".html").name).write_text(html, encoding="utf-8")
    if committing and status == "ok":
        nbformat.write(nb, path)
    return RunResult(path.name, status, seconds, errors)


def _coalesce_streams(nb) -> None:
    """Merge each cell's consecutive outputs to the same stream into one, as a notebook
    shows them: how the kernel chunked its printing differs from run to run."""
    for cell in nb.cells:
        merged = []
        for out in cell.get("outputs", []):
            if (merged and out.get("output_type") == "stream"
                    and merged[-1].get("output_type") == "stream"
                    and merged[-1].get("name") == out.get("name")):
                merged[-1]["text"] += out["text"]
            else:
                merged.append(out)
        if "outputs" in cell:
            cell.outputs = merged


def format_table(results: list[RunResult]) -> str:
    """A plain-text table: notebook, status, seconds."""
    width = max([len("notebook")] + [len(r.notebook) for r in results])
    lines = [f"{'notebook':<{width}}  {'seconds':>7}  status", "-" * (width + 19)]
    lines += [f"{r.notebook:<{width}}  {r.seconds:7.1f}  {r.status}" for r in results]
    lines.append(f"{'total':<{width}}  {sum(r.seconds for r in results):7.1f}")
    return "\n".join(lines)


def check_model_available(name: str) -> None:
    """Fail once, before any notebook runs, when a hub model cannot be had here.

    A zoo name or a local folder is always available; a hub name needs the network (or
    the model in the local Hugging Face cache).

    Raises:
        SystemExit: the model needs the network and the hub cannot be reached.
    """
    from ..core.models import zoo_names

    if name in zoo_names() or Path(name).is_dir():
        return
    try:
        from huggingface_hub import try_to_load_from_cache

        if isinstance(try_to_load_from_cache(name, "config.json"), str):
            return
    except Exception:  # noqa: BLE001 - an odd name is checked by the network test below
        pass
    try:
        socket.create_connection((HUB_HOST, 443), timeout=3).close()
    except OSError:
        raise SystemExit(f"--model {name!r} is not a zoo model ({', '.join(zoo_names())}) and "
                         f"needs the network to download it (e.g. on Colab), but {HUB_HOST} "
                         f"cannot be reached from here") from None


def _literal(text: str) -> tuple[str, object]:
    """``NAME=VALUE`` with VALUE a Python literal (a bare word is a string)."""
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier():
        raise SystemExit(f"--param wants NAME=VALUE, got {text!r}")
    try:
        return name, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return name, value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mi_helpers",
                                     description="MI Roadmap command line.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute the notebooks in order")
    run.add_argument("--model", default=None, help="model for every notebook (default: each "
                     "notebook's own zoo model)")
    run.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                     help="another notebook parameter, e.g. OTHERS=['a','b'] (repeatable)")
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
    paths = select_notebooks(args.only)
    params = dict(_literal(p) for p in args.param)
    if args.model:
        check_model_available(args.model)
        params["MODEL"] = args.model
    results = []
    for path in paths:
        print(f"running {path.name} ...", flush=True)
        results.append(run_notebook(path, Path(args.out), params, args.timeout,
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
