"""Committed notebooks stay light, parameterised and honest about what nbval compares."""

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
MARKER = re.compile(r"^\s*#\s*NBVAL_\w+")
EXACT = {"NBVAL_IGNORE_OUTPUT", "NBVAL_CHECK_OUTPUT", "NBVAL_RAISES_EXCEPTION", "NBVAL_SKIP"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_light_and_parameterised(path):
    assert path.stat().st_size < 300 * 1024, f"{path.name} is {path.stat().st_size // 1024} KB"
    cells = json.loads(path.read_text())["cells"]
    tags = [t for c in cells for t in c.get("metadata", {}).get("tags", [])]
    assert "parameters" in tags, "a cell tagged 'parameters' (MODEL = ...) is needed"
    for cell in cells:
        for line in "".join(cell["source"]).splitlines():
            if MARKER.match(line):  # nbval only honours the marker alone on its line
                assert line.strip().lstrip("#").strip() in EXACT, f"{path.name}: {line!r}"
