"""The exercise build: every notebook with exercises, with stubs in place of solutions.

``python -m mi_helpers build-exercises`` writes ``build/exercises/NN_name.ipynb`` for
each notebook in ``notebooks/`` that has exercise regions (found automatically, see
:mod:`.regions`): outputs cleared, each exercise cell replaced by its stub, a note on
top saying how to use it. The hints and check cells stay. The committed notebooks are
the solution build.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nbformat

from .regions import Exercise, exercises_in

__all__ = ["BuiltNotebook", "build_exercise_notebook", "build_exercises", "format_summary"]

NOTE = ("> **Exercise version.** Each exercise cell holds a stub: replace the "
        "`raise NotImplementedError` with your code, then run the check cell under it; it "
        "tests your function on fresh inputs and says what is wrong. Hints are folded "
        "under each exercise. The solutions are in the notebook of the same name in "
        "`notebooks/`.")


@dataclass(frozen=True)
class BuiltNotebook:
    """One written exercise notebook and the exercises in it."""

    path: Path
    exercises: list[Exercise]


def build_exercise_notebook(path: str | Path) -> tuple[nbformat.NotebookNode, list[Exercise]]:
    """The exercise version of one notebook (in memory) and its exercises."""
    exercises = exercises_in(path)
    nb = nbformat.read(path, as_version=4)
    for exercise in exercises:
        nb.cells[exercise.cell].source = exercise.stub
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    note = nbformat.v4.new_markdown_cell(NOTE)
    note.metadata["tags"] = ["exercise-note"]
    nb.cells.insert(1, note)
    return nb, exercises


def build_exercises(notebook_dir: str | Path, out_dir: str | Path) -> list[BuiltNotebook]:
    """Write the exercise version of every notebook in ``notebook_dir`` that has exercises."""
    out_dir = Path(out_dir)
    built = []
    for path in sorted(Path(notebook_dir).glob("[0-9][0-9]_*.ipynb")):
        nb, exercises = build_exercise_notebook(path)
        if not exercises:
            continue
        out_dir.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, out_dir / path.name)
        built.append(BuiltNotebook(out_dir / path.name, exercises))
    return built


def format_summary(built: list[BuiltNotebook]) -> str:
    """A plain-text table: notebook, exercises, their difficulties and total minutes."""
    width = max([len("notebook")] + [len(b.path.name) for b in built])
    lines = [f"{'notebook':<{width}}  exercises  difficulty  minutes", "-" * (width + 33)]
    for b in built:
        stars = " ".join(str(e.difficulty) for e in b.exercises)
        minutes = sum(e.minutes for e in b.exercises)
        lines.append(f"{b.path.name:<{width}}  {len(b.exercises):>9}  {stars:<10}  {minutes:>7}")
    total = sum(e.minutes for b in built for e in b.exercises)
    lines.append(f"{'total':<{width}}  {sum(len(b.exercises) for b in built):>9}  {'':<10}  {total:>7}")
    return "\n".join(lines)
