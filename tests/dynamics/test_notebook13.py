"""Notebook 13 loads committed runs by default; its ``TRAIN_HERE`` path trains them. Run
that path with a few steps: every cell's code must run, only its claims (assertions) may
fail on runs this short."""

import nbformat

from mi_helpers.tools import runner


def test_notebook_13_trains_its_own_runs(tmp_path):
    nb = nbformat.read(runner.NOTEBOOK_DIR / "13_training_dynamics.ipynb", as_version=4)
    where = next(i for i, c in enumerate(nb.cells)
                 if "parameters" in c.get("metadata", {}).get("tags", []))
    nb.cells.insert(where + 1, nbformat.v4.new_code_cell(
        "TRAIN_HERE = True\nINDUCTION_STEPS = 40\nGROKKING_STEPS = 60"))
    nbformat.write(nb, tmp_path / "13_training_dynamics.ipynb")
    result = runner.run_notebook(tmp_path / "13_training_dynamics.ipynb", tmp_path / "out",
                                 None, timeout=300, keep_going=True)
    assert all(e.startswith("AssertionError") for e in result.errors), result.errors
    executed = nbformat.read(tmp_path / "out" / "13_training_dynamics.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code"
                      for o in c.get("outputs", []))
    assert "ablated               L0H0" in printed and "no weight decay: train accuracy" in printed
