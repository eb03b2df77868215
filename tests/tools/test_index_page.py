"""build/index.html: recorded across runs, linking every executed notebook; rendered in
headless Chromium when it is installed."""

import re
import shutil
import subprocess

import pytest

from mi_helpers.tools import runner
from mi_helpers.tools.index_page import record_runs, render_index, write_index


def _result(name, status="ok", seconds=1.0):
    return runner.RunResult(name, status, seconds)


def test_runs_are_merged_and_the_page_links_each_notebook(tmp_path):
    record_runs(tmp_path, [_result("00_primer.ipynb"), _result("05_patching.ipynb", "FAILED: x")],
                None)
    (tmp_path / "exercises").mkdir()
    (tmp_path / "exercises" / "05_patching.ipynb").write_text("{}")
    path = write_index(tmp_path, [_result("05_patching.ipynb", seconds=2.5)], "gpt2")
    page = path.read_text()
    assert re.search(r'<a href="00_primer.html">00_primer</a>.*class="ok".*notebook&#x27;s default', page)
    assert re.search(r'05_patching.html.*class="ok".*2\.5.*gpt2.*href="exercises/05_patching.ipynb"',
                     page)  # the second run replaced the failed one
    assert "FAILED" not in page and "<script" not in page and "2 notebooks" in page


def test_failures_are_shown_and_escaped():
    page = render_index({"01_a.ipynb": {"status": "FAILED: AssertionError: x < y", "seconds": 3.0,
                                        "model": "default", "finished": "now"}})
    assert 'class="failed">FAILED: AssertionError: x &lt; y<' in page and "0 ok" in page


def test_the_cli_writes_the_index(tmp_path, monkeypatch):
    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir()
    import nbformat
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print('hi')")]
    nbformat.write(nb, nb_dir / "00_hi.ipynb")
    monkeypatch.setattr(runner, "NOTEBOOK_DIR", nb_dir)
    monkeypatch.setattr(runner, "select_notebooks",
                        lambda only, notebook_dir=nb_dir: sorted(nb_dir.glob("*.ipynb")))
    assert runner.main(["run", "--out", str(tmp_path / "build")]) == 0
    page = (tmp_path / "build" / "index.html").read_text()
    assert '<a href="00_hi.html">00_hi</a>' in page and (tmp_path / "build" / "00_hi.html").is_file()
    assert runner.main(["build-exercises", "--out", str(tmp_path / "ex")]) == 0  # no exercises: none


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="needs Debian's chromium (apt-get install -y chromium)")
def test_index_renders_in_headless_chromium(tmp_path):
    results = [_result("00_primer.ipynb", seconds=12.3),
               _result("06_ioi_circuit.ipynb", "FAILED: AssertionError: expected a few heads", 20.0)]
    for r in results:
        (tmp_path / r.notebook.replace(".ipynb", ".html")).write_text(f"<h1>{r.notebook}</h1>")
    path = write_index(tmp_path, results, None)
    flags = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
    dom = subprocess.run(flags + ["--dump-dom", path.as_uri()], capture_output=True, text=True,
                         timeout=120, check=False).stdout
    rows = re.findall(r"<tr><td><a href=\"([^\"]+)\">", dom)
    assert rows == ["00_primer.html", "06_ioi_circuit.html"]
    assert all((tmp_path / href).is_file() for href in rows)  # every link resolves
    assert 'class="failed"' in dom and "1 ok" in dom
    shot = tmp_path / "shot.png"
    subprocess.run(flags + [f"--screenshot={shot}", "--window-size=1000,400", path.as_uri()],
                   capture_output=True, timeout=120, check=False)
    assert shot.is_file() and shot.stat().st_size > 5000  # a rendered page, not a blank one
