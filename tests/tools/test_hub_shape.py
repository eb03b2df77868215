"""``benchmarks/hub_shape.py``'s bookkeeping: the slowest cell read from an executed
notebook's timestamps and the README table (rows in notebook order, missing ones named,
memory over a free Colab runtime flagged). The numbers here are made up."""

import nbformat

from benchmarks import hub_shape


def _cell(start: str, end: str | None):
    cell = nbformat.v4.new_code_cell("pass")
    cell.metadata["execution"] = {"iopub.execute_input": f"2026-11-29T10:00:{start}Z"}
    if end is not None:
        cell.metadata["execution"]["shell.execute_reply"] = f"2026-11-29T10:00:{end}Z"
    return cell


def test_slowest_cell_from_the_timestamps(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# title"), _cell("00.0", "01.5"),
                _cell("01.5", "09.0"), _cell("09.0", "10.0"), _cell("10.0", None)]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    assert hub_shape.slowest_cell(path) == [2, 7.5]
    nb.cells[4].outputs = [nbformat.v4.new_output("error", ename="CellTimeoutError",
                                                  evalue="too long", traceback=[])]
    nbformat.write(nb, path)
    assert hub_shape.slowest_cell(path, limit=600) == [4, 600.0]
    nb.cells = nb.cells[:1]
    nbformat.write(nb, path)
    assert hub_shape.slowest_cell(path) == [None, None]


def test_table_rows_in_order_with_what_is_missing():
    results = {"_machine": "2 CPU cores",
               "02_probing.ipynb": {"seconds": 300.4, "peak_gib": 6.0, "claims_failed": 2,
                                    "errors": [], "slowest_cell": [25, 120.2], "load": 1.0,
                                    "commit": "abc1234"},
               "00_primer.ipynb": {"seconds": 39.0, "peak_gib": 12.5, "claims_failed": 1,
                                   "errors": ["CellTimeoutError: too long"], "load": 0.5,
                                   "slowest_cell": [3, 600.0]}}
    text = hub_shape.readme_table(results)
    lines = text.splitlines()
    assert lines[2].startswith("| `00_primer.ipynb` | 39 | cell 3: over 600 s (stopped) | "
                               "12.5 GiB (over 12 GB) |")
    assert "CellTimeoutError: too long" in lines[2]
    assert lines[3] == ("| `02_probing.ipynb` | 300 | cell 25: 120 s | 6.0 GiB | 1.0 | 2 | "
                        "none | abc1234 |")
    assert "Not measured yet: `01_logit_lens.ipynb`" in text and "2 CPU cores" in text
