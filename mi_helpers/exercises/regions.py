"""Exercise regions in the notebooks: the marker convention, and a parser that checks it.

An exercise is three consecutive cells of a notebook (written in its py:percent source):

1. a **markdown** cell that opens with a heading and a ratings line, and holds one or
   more collapsed hints::

       ### Exercise 07.1: an induction score from a cache
       **Difficulty** 2/5 · **Importance** 4/5 · **Time** about 10 min
       ...the task...
       <details><summary>Hint 1</summary> ... </details>

2. a **code** cell that defines the function, runs on its own (it imports what it uses)
   and holds the solution between markers, followed by the stub as ``# STUB`` lines::

       def induction_score(pattern, rep_len):
           # BEGIN SOLUTION
           ...
           # END SOLUTION
           # STUB raise NotImplementedError("your code here")

3. a **code** cell calling the check, after the import of it::

       from mi_helpers.exercises import check_induction_score

       check_induction_score(induction_score)

   (a few checks also take the notebook's ``model``).

The committed notebook is the solution build; :func:`stub_source` makes the exercise
build's cell (solution removed, ``# STUB`` lines uncommented).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

__all__ = ["Exercise", "ExerciseFormatError", "exercises_in", "stub_source",
           "BEGIN_SOLUTION", "END_SOLUTION", "STUB"]

BEGIN_SOLUTION, END_SOLUTION, STUB = "# BEGIN SOLUTION", "# END SOLUTION", "# STUB "
_HEADING = re.compile(r"^#{2,4} Exercise (\d\d\.\d+): (.+)$", re.MULTILINE)
_RATINGS = re.compile(r"\*\*Difficulty\*\* ([1-5])/5 · \*\*Importance\*\* ([1-5])/5 · "
                      r"\*\*Time\*\* about (\d+) min")
_HINT = re.compile(r"<details><summary>(Hint \d+)</summary>(.*?)</details>", re.DOTALL)
_CHECK = re.compile(r"^(check_\w+)\((\w+)((?:, \w+)*)\)$")
_IMPORT = re.compile(r"^(from \S+ import .+|import .+)$")
_DEF = re.compile(r"^def (\w+)\(", re.MULTILINE)


class ExerciseFormatError(ValueError):
    """An exercise region does not follow the marker convention."""


@dataclass(frozen=True)
class Exercise:
    """One exercise of a notebook, parsed from its three cells."""

    notebook: str  # file name, e.g. "07_induction_circuits.ipynb"
    number: str  # "07.1"
    title: str
    difficulty: int  # 1..5
    importance: int  # 1..5
    minutes: int
    hints: tuple[str, ...]
    function: str  # the function the learner writes
    check: str  # the check's name in mi_helpers.exercises
    check_args: tuple[str, ...]  # notebook names the check also takes, e.g. ("model",)
    cell: int  # index of the code cell in the notebook
    source: str  # that cell as committed (the solution)

    @property
    def stub(self) -> str:
        """The cell of the exercise build."""
        return stub_source(self.source)


def stub_source(source: str) -> str:
    """``source`` without its solution, with the ``# STUB`` lines made code."""
    out, inside = [], False
    for line in source.splitlines():
        marker = line.strip()
        if marker == BEGIN_SOLUTION:
            inside = True
        elif marker == END_SOLUTION:
            inside = False
        elif not inside:
            indent = line[: len(line) - len(line.lstrip())]
            out.append(indent + marker[len(STUB):] if marker.startswith(STUB) else line)
    return "\n".join(out)


def exercises_in(path: str | Path) -> list[Exercise]:
    """Every exercise of a notebook (``.ipynb``), checked against the convention.

    Raises:
        ExerciseFormatError: naming the notebook, the cell and what is missing.
    """
    path = Path(path)
    cells = nbformat.read(path, as_version=4).cells
    found = []
    for i, cell in enumerate(cells):
        if cell.cell_type == "code" and BEGIN_SOLUTION in cell.source:
            found.append(_parse(path.name, cells, i))
    numbers = [e.number for e in found]
    if len(set(numbers)) != len(numbers):
        raise ExerciseFormatError(f"{path.name}: exercise numbers repeat: {numbers}")
    return found


def _check_call(source: str) -> re.Match | None:
    """The check call ending a check cell whose other lines are imports, else None."""
    lines = [line for line in source.strip().splitlines() if line.strip()]
    if not lines or not all(_IMPORT.match(line) for line in lines[:-1]):
        return None
    return _CHECK.match(lines[-1])


def _parse(notebook: str, cells, i: int) -> Exercise:
    where = f"{notebook}, cell {i}"

    def fail(message: str):
        raise ExerciseFormatError(f"{where}: {message} (see mi_helpers.exercises.regions)")

    source = cells[i].source
    if source.count(BEGIN_SOLUTION) != 1 or source.count(END_SOLUTION) != 1:
        fail(f"needs exactly one '{BEGIN_SOLUTION}' and one '{END_SOLUTION}'")
    if not any(line.strip().startswith(STUB) for line in source.splitlines()):
        fail(f"has no stub: add '{STUB}...' lines after '{END_SOLUTION}'")
    text = cells[i - 1].source if i > 0 and cells[i - 1].cell_type == "markdown" else ""
    heading, ratings = _HEADING.search(text), _RATINGS.search(text)
    if not heading or not ratings:
        fail("the cell before must be markdown with '### Exercise NN.k: title' and "
             "'**Difficulty** d/5 · **Importance** i/5 · **Time** about m min'")
    hints = tuple(body.strip() for _, body in _HINT.findall(text))
    if not hints:
        fail("the exercise's markdown has no '<details><summary>Hint 1</summary>' hint")
    after = cells[i + 1] if i + 1 < len(cells) else None
    call = _check_call(after.source) if after and after.cell_type == "code" else None
    if not call:
        fail("the next cell must be a code cell holding imports and 'check_<skill>(function)'")
    function = call.group(2)
    if function not in _DEF.findall(source):
        fail(f"the check calls {function!r}, which this cell does not define")
    number = heading.group(1)
    if not notebook.startswith(number.split(".")[0]):
        fail(f"exercise {number} is numbered for another notebook")
    return Exercise(notebook, number, heading.group(2).strip(), int(ratings.group(1)),
                    int(ratings.group(2)), int(ratings.group(3)), hints, function,
                    call.group(1), tuple(a.strip() for a in call.group(3).split(",") if a.strip()),
                    i, source)
