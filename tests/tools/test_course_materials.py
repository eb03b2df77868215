"""For instructors: the syllabus links every notebook of the curriculum, and each notebook
opens with learning objectives and prerequisites and ends with further reading."""

import re
from pathlib import Path

import nbformat
import pytest

from mi_helpers.tools.runner import NOTEBOOK_DIR, ROOT

SYLLABUS = ROOT / "docs" / "syllabus.md"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))


def test_the_syllabus_links_every_notebook():
    text = SYLLABUS.read_text()
    links = re.findall(r"\]\(\.\./notebooks/(\d\d)_(\w+)\.ipynb\)", text)
    numbers = {number for number, _ in links}
    assert numbers == {f"{n:02d}" for n in range(14)}, "weeks should cover notebooks 00-13"
    for path in NOTEBOOKS:  # every existing notebook, under its real name
        assert (path.name[:2], path.stem[3:]) in links, f"{path.name} is not linked"
    assert len(re.findall(r"^\| \d+ \|", text, re.MULTILINE)) == 10, "ten weeks"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_notebook_has_objectives_and_further_reading(path: Path):
    cells = nbformat.read(path, as_version=4).cells
    opening = "\n".join(c.source for c in cells[:3] if c.cell_type == "markdown")
    assert "**Learning objectives.**" in opening and "**Prerequisites:**" in opening
    last = [c for c in cells if c.cell_type == "markdown"][-1].source
    assert last.startswith("## Further reading") and "](http" in last
