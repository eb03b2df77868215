import os

import nbformat
import pytest

from mi_helpers.tools import runner


def _notebook(path, code):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('MODEL = "zoo-2l"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(code)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_select_notebooks(tmp_path):
    for name in ("00_a.ipynb", "01_b.ipynb", "05_c.ipynb"):
        (tmp_path / name).write_text("{}")
    assert [p.name for p in runner.select_notebooks("0,5", tmp_path)] == ["00_a.ipynb", "05_c.ipynb"]
    with pytest.raises(SystemExit, match="07"):
        runner.select_notebooks("07", tmp_path)


def test_run_injects_parameters_and_reports_failures(tmp_path):
    _notebook(tmp_path / "00_ok.ipynb", "assert MODEL == 'other' and OTHERS == [1, 2]")
    _notebook(tmp_path / "01_bad.ipynb", "print('before')")
    nb = nbformat.read(tmp_path / "01_bad.ipynb", as_version=4)
    failing = nbformat.v4.new_code_cell(
        "try:\n    raise KeyError('inner')\nexcept KeyError as e:\n"
        "    raise RuntimeError('boom: the real message') from e")
    after = nbformat.v4.new_code_cell("print('after')")
    after.outputs = [nbformat.v4.new_output("stream", name="stdout", text="stale committed output")]
    nb.cells += [failing, after]
    nbformat.write(nb, tmp_path / "01_bad.ipynb")
    out = tmp_path / "build"
    ok = runner.run_notebook(tmp_path / "00_ok.ipynb", out, {"MODEL": "other", "OTHERS": [1, 2]},
                             timeout=60)
    bad = runner.run_notebook(tmp_path / "01_bad.ipynb", out, {"MODEL": "zoo-9l"}, timeout=60)
    assert ok.status == "ok"
    assert bad.status == "FAILED (zoo-9l): RuntimeError: boom: the real message"
    assert (out / "00_ok.html").is_file()
    saved = nbformat.read(out / "01_bad.ipynb", as_version=4)
    stale = [c for c in saved.cells if c.cell_type == "code" and "after" in c.source]
    assert stale[0].outputs == [] and stale[0].execution_count is None
    assert any(c.cell_type == "markdown" and "Not run" in c.source for c in saved.cells)
    table = runner.format_table([ok, bad])
    assert "00_ok.ipynb" in table and "boom: the real message" in table


def test_a_cell_that_runs_too_long_fails_its_notebook_and_is_named(tmp_path):
    """A timeout is not an error output of a cell: the runner writes one, says FAILED, clears
    the cells after it and does not crash (the next notebook still runs)."""
    _notebook(tmp_path / "00_slow.ipynb", "print('before')")
    nb = nbformat.read(tmp_path / "00_slow.ipynb", as_version=4)
    after = nbformat.v4.new_code_cell("print('after')")
    after.outputs = [nbformat.v4.new_output("stream", name="stdout", text="stale committed output")]
    nb.cells += [nbformat.v4.new_code_cell("import time\ntime.sleep(30)"), after]
    nbformat.write(nb, tmp_path / "00_slow.ipynb")
    slow = runner.run_notebook(tmp_path / "00_slow.ipynb", tmp_path / "build", None, timeout=3)
    assert slow.status.startswith("FAILED: CellTimeoutError: the cell ran longer than 3 s")
    saved = nbformat.read(tmp_path / "build" / "00_slow.ipynb", as_version=4)
    assert "time.sleep" in saved.cells[[i for i, c in enumerate(saved.cells)
                                        if any(o.get("output_type") == "error"
                                               for o in c.get("outputs", []))][0]].source
    stale = [c for c in saved.cells if c.cell_type == "code" and "after" in c.source]
    assert stale[0].outputs == [] and stale[0].execution_count is None


def test_inject_needs_a_parameters_cell():
    with pytest.raises(ValueError, match="parameters"):
        runner.inject_parameters(nbformat.v4.new_notebook(), {"MODEL": "gpt2"})


def test_empty_selection_and_offline_hub_model_fail_before_running(tmp_path, monkeypatch):
    with pytest.raises(SystemExit, match="selects no notebook"):
        runner.select_notebooks(",", tmp_path)
    monkeypatch.setattr(runner, "HUB_HOST", "hub.invalid")
    with pytest.raises(SystemExit, match="needs the network"):
        runner.main(["run", "--model", "no-such-org/no-such-model", "--only", "00"])
    runner.check_model_available("zoo-2l")  # a zoo name needs nothing
    runner.check_model_available(str(tmp_path))  # nor does a local folder


@pytest.mark.parametrize("notebook, reached", [
    ("00_primer.ipynb", "best induction head:"),
    ("01_logit_lens.ipynb", "KL raw"),
    ("02_probing.ipynb", "after projecting out random directions"),
    ("03_sparse_autoencoders.ipynb", "the committed SAEs are for zoo-2l"),
    ("04_feature_dashboards.ipynb", "SAE latents - neurons"),
    ("05_activation_patching.ipynb", "cosine similarity of the tracing"),
    ("06_ioi_circuit.ipynb", "the reference check is skipped"),
    ("07_induction_circuits.ipynb", "into the values"),
    ("08_automated_discovery.ipynb", "timings are measured for zoo-4l by the benchmark script"),
    ("09_universality.ipynb", "random latents > 0.9"),
    ("10_subspaces_and_steering.ipynb", "steering at a cost of at most"),
    ("12_your_experiment.ipynb", "layer-0 attention restores"),
])
def test_notebooks_run_on_a_gpt2_architecture_model(gpt2_model_dir, gpt2_others, tmp_path,
                                                    notebook, reached):
    """The hub code path (``MODEL = "gpt2"`` on Colab), on a locally built random GPT-2
    with GPT-2's real tokenizer: every cell's code runs to the end, and no claim stops
    "Run all" (a model without measured expectations gets "no expectation", printed)."""
    params = {"MODEL": str(gpt2_model_dir)}
    if notebook.startswith("09"):
        params.update(gpt2_others)
    result = runner.run_notebook(runner.NOTEBOOK_DIR / notebook, tmp_path, params,
                                 timeout=300, keep_going=True)
    assert not result.errors, result.errors
    nb = nbformat.read(tmp_path / notebook, as_version=4)
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                      for o in c.get("outputs", []))
    assert reached in printed
    last = [c for c in nb.cells if c.cell_type == "code"][-1]
    assert last.get("execution_count"), "the last code cell should have run"


def test_kernels_use_one_thread_on_the_zoo_and_every_core_on_a_hub_model(monkeypatch):
    assert runner.kernel_threads(None) == "1"
    assert runner.kernel_threads({"MODEL": "zoo-4l"}) == "1"
    monkeypatch.setattr(runner.os, "cpu_count", lambda: 8)
    assert runner.kernel_threads({"MODEL": "gpt2"}) == "8"
    with runner._environment({"MI_TEST_VARIABLE": "x"}):
        assert os.environ["MI_TEST_VARIABLE"] == "x"
    assert "MI_TEST_VARIABLE" not in os.environ


def test_consecutive_prints_to_one_stream_are_one_output():
    """However the kernel chunked a cell's printing, the saved notebook holds one output per
    run of the same stream (so the committed text does not change from run to run)."""
    cell = nbformat.v4.new_code_cell("print(1)")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="a\n"),
                    nbformat.v4.new_output("stream", name="stdout", text="b"),
                    nbformat.v4.new_output("stream", name="stderr", text="warn\n"),
                    nbformat.v4.new_output("stream", name="stdout", text="c\n"),
                    nbformat.v4.new_output("stream", name="stdout", text="d\n")]
    nb = nbformat.v4.new_notebook()
    nb.cells = [cell, nbformat.v4.new_markdown_cell("text")]
    runner._coalesce_streams(nb)
    assert [(o.name, o.text) for o in nb.cells[0].outputs] == [
        ("stdout", "a\nb"), ("stderr", "warn\n"), ("stdout", "c\nd\n")]
