"""The marker parser, the exercise build and the messages a check gives."""

import nbformat
import pytest
import torch

from mi_helpers.exercises import (
    Case,
    ExerciseFailed,
    ExerciseFormatError,
    Mistake,
    build_exercises,
    check_function,
    exercises_in,
    stub_source,
)
from mi_helpers.exercises.build import format_summary
from mi_helpers.exercises.checking import describe_difference

HEADER = ("### Exercise 03.1: double it\n**Difficulty** 1/5 · **Importance** 2/5 · **Time** "
          "about 5 min\n\nDouble x.\n\n<details><summary>Hint 1</summary>\n\nx * 2\n</details>")
CODE = ("import torch\n\n\ndef double(x):\n    \"\"\"2x.\"\"\"\n    # BEGIN SOLUTION\n    return 2 * x\n"
        "    # END SOLUTION\n    # STUB raise NotImplementedError(\"double it\")\n")
CHECK = "from mi_helpers.exercises import check_double\n\ncheck_double(double)"


def _write(path, header=HEADER, code=CODE, check=CHECK):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(code)
    cell.outputs = [nbformat.v4.new_output("stream", text="the solution ran\n")]
    nb.cells = [nbformat.v4.new_markdown_cell("# 03 · title"), nbformat.v4.new_markdown_cell(header),
                cell, nbformat.v4.new_code_cell(check)]
    nbformat.write(nb, path)
    return path


def test_parse_and_stub(tmp_path):
    (exercise,) = exercises_in(_write(tmp_path / "03_demo.ipynb"))
    assert (exercise.number, exercise.title, exercise.difficulty, exercise.importance,
            exercise.minutes) == ("03.1", "double it", 1, 2, 5)
    assert exercise.hints == ("x * 2",) and exercise.function == "double"
    assert (exercise.check, exercise.check_args, exercise.cell) == ("check_double", (), 2)
    assert exercise.stub.splitlines()[-1] == '    raise NotImplementedError("double it")'
    assert "return 2 * x" not in exercise.stub and '"""2x."""' in exercise.stub


def test_stub_source_keeps_everything_outside_the_markers():
    source = "a = 1\n# BEGIN SOLUTION\nb = 2\n# END SOLUTION\n# STUB b = None\nc = 3"
    assert stub_source(source) == "a = 1\nb = None\nc = 3"


@pytest.mark.parametrize("change, message", [
    ({"header": HEADER.replace("**Time** about 5 min", "")}, "Difficulty"),
    ({"header": HEADER.split("<details>")[0]}, "no '<details><summary>Hint 1"),
    ({"code": CODE.replace("    # STUB raise NotImplementedError(\"double it\")\n", "")}, "no stub"),
    ({"code": CODE.replace("    # END SOLUTION\n", "")}, "exactly one"),
    ({"check": "check_double(double)\nprint(1)"}, "next cell must be"),
    ({"check": "check_double(triple)"}, "does not define"),
    ({"header": HEADER.replace("03.1", "04.1")}, "numbered for another notebook"),
])
def test_malformed_regions_are_named(tmp_path, change, message):
    with pytest.raises(ExerciseFormatError, match=message) as info:
        exercises_in(_write(tmp_path / "03_demo.ipynb", **change))
    assert "03_demo.ipynb, cell 2" in str(info.value)


def test_build_writes_only_notebooks_with_exercises(tmp_path):
    src = tmp_path / "notebooks"
    src.mkdir()
    _write(src / "03_demo.ipynb")
    nbformat.write(nbformat.v4.new_notebook(), src / "04_none.ipynb")
    built = build_exercises(src, tmp_path / "out")
    assert [b.path.name for b in built] == ["03_demo.ipynb"]
    nb = nbformat.read(built[0].path, as_version=4)
    assert "Exercise version" in nb.cells[1].source
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "return 2 * x" not in code[0].source and "raise NotImplementedError" in code[0].source
    assert all(not c.outputs and c.execution_count is None for c in code)
    assert "03_demo.ipynb" in format_summary(built) and "5" in format_summary(built).splitlines()[-1]


def _double(x):
    return 2 * x


def test_messages_say_what_is_wrong(capsys):
    cases = [Case("a vector", (torch.arange(3.0),)), Case("a matrix", (torch.ones(2, 3),))]

    def transposed(x):
        return 2 * x.mT if x.ndim == 2 else 2 * x

    def forgot_return(x):
        2 * x

    def crashes(x):
        raise RuntimeError("boom")

    check_function(_double, _double, cases)
    assert capsys.readouterr().out == "✓ _double passes 2 cases: a vector; a matrix\n"
    with pytest.raises(ExerciseFailed, match=r"expected shape \(2, 3\) \[batch d\], got \(3, 2\) "
                       r"\(the same sizes in another order"):
        check_function(transposed, _double, cases, axes="batch d")
    with pytest.raises(ExerciseFailed, match="forget `return`"):
        check_function(forgot_return, _double, cases)
    with pytest.raises(ExerciseFailed, match="raised RuntimeError on case 'a vector': boom"):
        check_function(crashes, _double, cases)
    triple = Mistake("you tripled it", lambda x: 3 * x)
    with pytest.raises(ExerciseFailed, match="(?s)at \\[d 2\\] expected 4, got 6 \\(2 of 3 values differ\\).*"
                       "exactly what you get if you tripled it.*Hint: two"):
        check_function(lambda x: 3 * x, _double, cases[:1], axes="d", mistakes=[triple],
                       hint="two")


def test_describe_difference():
    assert describe_difference(1.0, torch.tensor(1.00001)) is None
    assert "NaN" in describe_difference(0.0, float("nan"))
    assert "NaN at [i 1]" in describe_difference(torch.zeros(2), torch.tensor([0.0, float("nan")]), "i")
    assert "tuple of 2" in describe_difference((torch.zeros(1), 1.0), torch.zeros(1))
    assert describe_difference((torch.zeros(1), 1.0), [torch.zeros(1), 1.0]) is None
    assert "a number" in describe_difference(1.0, "one")
    assert "expected a tensor" in describe_difference(torch.zeros(2), [0.0, 0.0])
    assert describe_difference(None, None) is None  # e.g. "the curve never crosses"
    assert describe_difference(None, 3) == "expected None, got int 3"
    assert describe_difference(3, None) == "expected int 3, got None"


def test_a_reference_may_return_none(capsys):
    def first_positive(x):
        hits = (x > 0).nonzero()
        return int(hits[0, 0]) if len(hits) else None

    cases = [Case("one positive", (torch.tensor([-1.0, 2.0]),)),
             Case("none positive", (torch.tensor([-1.0, -2.0]),))]
    check_function(first_positive, first_positive, cases)
    assert capsys.readouterr().out.startswith("✓ first_positive passes 2 cases")
    with pytest.raises(ExerciseFailed, match="'none positive':\n  expected None, got int 0"):
        check_function(lambda x: 0, first_positive, cases[1:], name="always_zero")
    with pytest.raises(ExerciseFailed, match="returned None on case 'one positive': did you forget"):
        check_function(lambda x: None, first_positive, cases, name="forgot")
