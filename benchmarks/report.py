"""The suite's outputs, all made from the same rows: the printed table,
``benchmarks/results.md`` and the README's headline block (``perf-benchmark`` markers),
so no number is ever typed in by hand."""

from __future__ import annotations

from .measure import ROOT, Row

__all__ = ["table", "results_markdown", "readme_block"]

MARKER = "patching-benchmark"


def _ratio(row: dict) -> str:
    spread = f" ({row['low']:.2f}-{row['high']:.2f})" if row["low"] != row["high"] else ""
    return f"{row['ratio']:.2f}{spread}"


def _target(row: dict) -> str:
    if row["target"] is None:
        return "-"
    verdict = "met" if row["met"] else f"MISSED ({row['ratio'] / row['target']:.0%} of it)"
    return f">= {row['target']:g}: {verdict}"


def _amount(value: float, unit: str) -> str:
    return f"{value:.3f} s" if unit == "s" else f"{value:.2f} {unit}"


def table(rows: list[Row]) -> str:
    """A plain-text table of the rows (what ``--small`` prints)."""
    lines = [f"{'benchmark':<48} {'model':<27} {'ours':>10} {'reference':>10}  "
             f"{'ratio (range)':<18} target"]
    for row in rows:
        d = row.as_dict()
        lines.append(f"{row.benchmark[:48]:<48} {row.model[:27]:<27} "
                     f"{_amount(row.ours, row.unit):>10} {_amount(row.reference, row.unit):>10}"
                     f"  {_ratio(d):<18} {_target(d)}")
    lines.append("ratio: the reference's time (or bytes) over ours, median over repeats; "
                 "> 1 means ours is faster (smaller)")
    return "\n".join(lines)


def _markdown_rows(rows: list[dict], columns: list[str]) -> list[str]:
    header = {"benchmark": "benchmark", "model": "model", "setting": "setting",
              "ours": "ours", "reference": "reference", "ratio": "ratio (range)",
              "target": "target", "diff": "max abs diff", "note": "note"}
    lines = ["| " + " | ".join(header[c] for c in columns) + " |",
             "|" + "---|" * len(columns)]
    for row in rows:
        cells = {"benchmark": row["benchmark"], "model": row["model"], "setting": row["setting"],
                 "ours": _amount(row["ours"], row["unit"]),
                 "reference": f"{_amount(row['reference'], row['unit'])} "
                              f"({row['reference_name']})",
                 "ratio": _ratio(row), "target": _target(row),
                 "diff": "-" if row["max_diff"] is None else f"{row['max_diff']:.1e}",
                 "note": row["note"]}
        lines.append("| " + " | ".join(cells[c] for c in columns) + " |")
    return lines


def results_markdown(results: dict) -> str:
    """``benchmarks/results.md``: the machine, every row, and a profile per missed target."""
    m, rows = results["machine"], results["rows"]
    out = ["# Benchmark results", "",
           f"Measured by `{m['command'].strip()}` on {m['date']} (commit {m['commit']}).", "",
           f"- machine: {m['cpu']}, {m['cores']} cores; torch threads {m['torch_threads']}, "
           f"OMP_NUM_THREADS {m['OMP_NUM_THREADS']}",
           f"- load average (1, 5, 15 min): {m['load_average_start']} at the start, "
           f"{m['load_average_end']} at the end (the machine is shared; each ratio compares "
           f"runs that took turns)",
           f"- versions: Python {m['python']}, torch {m['torch']}, transformer-lens "
           f"{m['transformer_lens']}, transformers {m['transformers']}",
           "- seconds per group: " + ", ".join(f"{g} {s:.0f}" for g, s in m["seconds"].items()),
           *_earlier(m), "", _load_note(m), "",
           "**ratio** is the reference's time (or bytes) over ours, the median over "
           "repeats with its range: above 1, ours is faster (smaller).", ""]
    out += _markdown_rows(rows, ["benchmark", "model", "setting", "ours", "reference", "ratio",
                                 "target", "diff", "note"])
    if any(r["group"] == "sae" for r in rows) and not any("SAELens" in r["benchmark"]
                                                           for r in rows):
        out += ["", "SAELens' trainer was not compared in this run: no SAELens environment "
                "(`make saelens-env`, or `SAELENS_PYTHON=...`)."]
    if not any(r["group"] == "curriculum" for r in rows):
        out += ["", "The curriculum's wall time was not measured in this run "
                "(`python -m benchmarks --only curriculum`)."]
    missed = [r for r in rows if r["met"] is False]
    if missed:
        out += ["", "## Where the time goes (targets missed)", ""]
        for row in missed:
            out += [f"### {row['benchmark']}, {row['model']}", "",
                    f"{_target(row)}: ratio {row['ratio']:.2f}. cProfile of one call of ours "
                    f"(own time, the top functions):", "", "```", row["profile"], "```", ""]
    return "\n".join(out) + "\n"


def _earlier(m: dict) -> list[str]:
    if "earlier" not in m:
        return []
    e = m["earlier"]
    return [f"- rows of {', '.join(e['groups'])} are from an earlier run: {e['date']} (commit "
            f"{e['commit']}, load average {e['load_average_start']} at its start)"]


def _earlier_short(m: dict) -> str:
    e = m.get("earlier")
    return "" if not e else f" ({', '.join(e['groups'])}: {e['date']})"


def _load_note(m: dict) -> str:
    """What the load means for the numbers (the machine is shared)."""
    load, cores = m["load_average_start"][0], m["cores"] or 1
    if load < 0.5 * cores:
        return "The machine was quiet during the run."
    return (f"**Measured under load** (load average {load} on {cores} cores at the start, "
            f"{m['load_average_end'][0]} at the end: other jobs, e.g. notebooks executing, "
            f"shared the CPU). Seconds are inflated and noisy; each ratio compares runs that "
            f"took turns back to back, so a busy moment slows both sides of it alike: the "
            f"ratios are what to read.")


def readme_block(results: dict) -> None:
    """Rewrite the README's block between the ``patching-benchmark`` markers."""
    from mi_helpers.tools.markers import replace_between_markers

    m, rows = results["machine"], results["rows"]
    headline = [r for r in rows if r["target"] is not None or r["group"] == "patching"]
    lines = _markdown_rows(headline, ["benchmark", "model", "ours", "reference", "ratio",
                                      "target"])
    missed = [f"- {r['benchmark']}, {r['model']}: ratio {r['ratio']:.2f}, "
              f"{r['ratio'] / r['target']:.0%} of the target {r['target']:g}; "
              f"{r['profile'].splitlines()[0] if r['profile'] else ''}"
              for r in rows if r["met"] is False]
    load = m["load_average_start"][0]
    busy = ("under load: read the ratios, not the seconds" if load >= 0.5 * (m["cores"] or 1)
            else "quiet")
    body = "\n".join(lines) + (
        f"\n\n{m['cpu']}, {m['torch_threads']} torch thread(s), load average {load} on "
        f"{m['cores']} cores at the start ({busy}); {m['date']}{_earlier_short(m)}. "
        f"Generated by `{m['command'].strip()}` from `benchmarks/results.json`; the full table, the versions and a profile for each missed target are in "
        f"`benchmarks/results.md`.")
    if missed:
        body += "\n\nMissed targets (by how much; where our time goes):\n\n" + "\n".join(missed)
    readme = ROOT / "README.md"
    readme.write_text(replace_between_markers(readme.read_text(), MARKER, body))
