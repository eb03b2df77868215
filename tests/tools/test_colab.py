"""Every notebook's Colab set-up cell and badge come from the one repository address in
pyproject.toml, and the cell can run twice."""

import pathlib
import subprocess
import sys
import types

import nbformat
import pytest

from mi_helpers.tools import colab

ROOT = pathlib.Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_setup_cell_and_badge_come_from_pyproject(path):
    url = colab.repository_url()
    nb = nbformat.read(path, as_version=4)
    setups = [c.source for c in nb.cells if c.cell_type == "code"
              and c.source.startswith(colab.SETUP_MARKER)]
    assert setups == [colab.setup_cell(url)], "run `python -m mi_helpers.tools.colab`"
    assert colab.colab_badge(url, path.name) in nb.cells[0].source


def _run_setup(monkeypatch, clone_fails=False, cloned=False):
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd[:2] if cmd[0] == "git" else cmd[1:4])
        failed = clone_fails and cmd[0] == "git"
        return types.SimpleNamespace(returncode=int(failed), stderr="fatal: not found")

    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setattr(pathlib.Path, "is_file", lambda self: cloned)
    exec(colab.setup_cell("https://example.org/repo"), {})
    return calls


def test_setup_cell_clones_once_and_says_what_to_set(monkeypatch):
    assert _run_setup(monkeypatch) == [["git", "clone"], ["-m", "pip", "install"]]
    assert _run_setup(monkeypatch, cloned=True) == [["-m", "pip", "install"]]  # a second run
    with pytest.raises(RuntimeError, match="Set REPO to the project's repository"):
        _run_setup(monkeypatch, clone_fails=True)


def test_setup_cell_does_nothing_off_colab(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("ran a command"))
    exec(colab.setup_cell("https://example.org/repo"), {})
