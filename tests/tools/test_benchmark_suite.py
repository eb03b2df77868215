"""The benchmark suite's bookkeeping (``python -m benchmarks``): turns, ratios, the
verdicts and the merged results file. No timing is asserted: the times here are made up."""

import json

import pytest

from benchmarks import __main__ as suite
from benchmarks.measure import Row, alternate, ratios
from benchmarks.report import readme_block, results_markdown, table


def row(group="patching", ratio=2.0, target=3.0, **kw):
    return Row(group, kw.pop("benchmark", "head patching"), "zoo-2l", "8 prompts", 0.1, "TL",
               0.2, ratio, ratio - 0.5, ratio + 0.5, target, **kw)


def test_alternate_takes_turns_after_a_warm_up():
    calls = []
    times, out = alternate({"a": lambda: calls.append("a") or 1,
                            "b": lambda: calls.append("b") or 2}, repeats=2)
    assert calls == ["a", "b", "a", "b", "a", "b"]
    assert len(times["a"]) == len(times["b"]) == 2 and out == {"a": 1, "b": 2}


def test_ratios_are_per_repeat_then_the_median():
    # the medians of each side would give 4 / 2 = 2; per repeat: 1, 3, 4 -> median 3
    assert ratios([2.0, 6.0, 4.0], [2.0, 2.0, 1.0]) == (3.0, 1.0, 4.0)


def test_verdicts_say_by_how_much():
    assert row(ratio=3.0).met and row(ratio=2.0).met is False and row(target=None).met is None
    text = table([row(ratio=2.4), row(ratio=4.0)])
    assert "MISSED (80% of it)" in text and ">= 3: met" in text


def test_results_and_readme_name_the_load_and_the_missed_targets(tmp_path, monkeypatch):
    machine = {"cpu": "cpu", "cores": 2, "torch_threads": 1, "OMP_NUM_THREADS": "1",
               "python": "3", "torch": "2", "transformer_lens": "4", "transformers": "5",
               "commit": "abc", "date": "today", "load_average_start": [4.0, 4.0, 4.0],
               "load_average_end": [3.0, 3.0, 3.0], "seconds": {"patching": 1.0},
               "command": "python -m benchmarks"}
    missed = row(ratio=1.5, profile="time: linear 60%, gelu 10%, cat 5% (of 10 ms)")
    results = {"machine": machine, "rows": [missed.as_dict()]}
    text = results_markdown(results)
    assert "Measured under load" in text and "load average 4.0 on 2 cores" in text
    assert "Where the time goes" in text and "linear 60%" in text
    assert "curriculum's wall time was not measured" in text
    readme = tmp_path / "README.md"
    readme.write_text("a\n<!-- patching-benchmark:start -->\nold\n<!-- patching-benchmark:end -->\nb\n")
    monkeypatch.setattr("benchmarks.report.ROOT", tmp_path)
    readme_block(results)
    new = readme.read_text()
    assert "old" not in new and "50% of the target 3; time: linear 60%" in new
    assert new.startswith("a\n") and new.endswith("b\n")


def test_only_keeps_the_other_groups_rows(tmp_path, monkeypatch):
    (tmp_path / "benchmarks").mkdir()
    before = {"machine": {"date": "then", "commit": "old", "load_average_start": [1, 1, 1],
                          "seconds": {"patching": 5.0, "sae": 7.0}},
              "rows": [row().as_dict(), row("sae", benchmark="sae step").as_dict()]}
    (tmp_path / "benchmarks" / "results.json").write_text(json.dumps(before))
    monkeypatch.setattr(suite, "ROOT", tmp_path)
    now = {"machine": {"seconds": {"sae": 3.0}},
           "rows": [row("sae", ratio=9.0, benchmark="sae step").as_dict()]}
    merged = suite._merged(now, ["sae"])
    assert [(r["group"], r["ratio"]) for r in merged["rows"]] == [("patching", 2.0),
                                                                  ("sae", 9.0)]
    assert merged["machine"]["seconds"] == {"patching": 5.0, "sae": 3.0}
    assert merged["machine"]["earlier"]["groups"] == ["patching"]


def test_unknown_groups_are_refused():
    with pytest.raises(SystemExit):
        suite.main(["--small", "--only", "everything"])


def test_the_curriculum_row_sums_the_notebooks(monkeypatch):
    from mi_helpers.tools import runner

    times = {"05_a.ipynb": 100.0, "06_b.ipynb": 200.0}
    monkeypatch.setattr(runner, "select_notebooks", lambda only: [runner.Path(n) for n in times])
    monkeypatch.setattr(runner, "run_notebook", lambda path, *a, **k: runner.RunResult(
        path.name, "ok" if path.name.startswith("05") else "FAILED: x", times[path.name], []))
    (r,) = suite.curriculum_rows({"notebooks": None})
    assert r.ours == 300.0 and r.ratio == pytest.approx(1.2) and r.met
    assert "05 100 s, 06 200 s" in r.setting and "06_b.ipynb" in r.note
