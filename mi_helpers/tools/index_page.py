"""``build/index.html``: every executed notebook, linked as HTML, with its status and time.

``python -m mi_helpers run`` records each notebook it runs in ``build/runs.json`` (merged
with earlier runs, so ``--only 05`` updates one row and keeps the others) and rewrites
the index from that record. The page is plain HTML and CSS, no script, so it opens from
disk, on a course web page or in a CI artifact alike. Notebooks with an exercise build
(``build/exercises/``) get a link to it.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Iterable
from pathlib import Path

__all__ = ["record_runs", "render_index", "write_index"]

RECORD = "runs.json"
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 0.35em 0.8em; border-bottom: 1px solid #ddd;
         white-space: nowrap; }
td.status { white-space: normal; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #176f2c; font-weight: 600; }
.failed { color: #b00020; font-weight: 600; }
tfoot td { font-weight: 600; border-bottom: none; }
"""


def record_runs(out_dir: str | Path, results: Iterable, model: str | None) -> dict[str, dict]:
    """Merge ``results`` (:class:`~mi_helpers.tools.runner.RunResult`) into ``runs.json``."""
    path = Path(out_dir) / RECORD
    runs = json.loads(path.read_text()) if path.is_file() else {}
    stamp = time.strftime("%Y-%m-%d %H:%M")
    for r in results:
        runs[r.notebook] = {"status": r.status, "seconds": round(r.seconds, 1),
                            "model": model or "notebook's default", "finished": stamp}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(sorted(runs.items())), indent=1))
    return runs


def _row(notebook: str, run: dict, exercises: set[str]) -> str:
    name = html.escape(notebook)
    page = html.escape(Path(notebook).with_suffix(".html").name)
    ok = run["status"] == "ok"
    status = '<span class="ok">ok</span>' if ok else \
        f'<span class="failed">{html.escape(run["status"])}</span>'
    exercise = f'<a href="exercises/{name}">exercises</a>' if notebook in exercises else ""
    return (f'<tr><td><a href="{page}">{html.escape(Path(notebook).stem)}</a></td>'
            f'<td class="status">{status}</td><td class="num">{run["seconds"]:.1f}</td>'
            f'<td>{html.escape(run["model"])}</td><td>{html.escape(run["finished"])}</td>'
            f"<td>{exercise}</td></tr>")


def render_index(runs: dict[str, dict], exercises: Iterable[str] = (),
                 title: str = "MI Roadmap: executed notebooks") -> str:
    """The index page for ``runs`` (as :func:`record_runs` returns them)."""
    exercises = set(exercises)
    rows = "\n".join(_row(name, run, exercises) for name, run in sorted(runs.items()))
    n_ok = sum(run["status"] == "ok" for run in runs.values())
    total = sum(run["seconds"] for run in runs.values())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{STYLE}</style></head>
<body><h1>{html.escape(title)}</h1>
<p>Each notebook links to its executed copy as HTML. Rerun with
<code>python -m mi_helpers run</code>; build the exercise versions with
<code>python -m mi_helpers build-exercises</code>.</p>
<table id="notebooks"><thead><tr><th>notebook</th><th>status</th><th>seconds</th>
<th>model</th><th>run at</th><th></th></tr></thead>
<tbody>
{rows}
</tbody>
<tfoot><tr><td>{len(runs)} notebooks</td><td>{n_ok} ok</td><td class="num">{total:.1f}</td>
<td></td><td></td><td></td></tr></tfoot></table>
</body></html>
"""


def write_index(out_dir: str | Path, results: Iterable, model: str | None) -> Path:
    """Record ``results`` and rewrite ``out_dir/index.html``; return its path."""
    out_dir = Path(out_dir)
    runs = record_runs(out_dir, results, model)
    exercises = [p.name for p in (out_dir / "exercises").glob("*.ipynb")]
    path = out_dir / "index.html"
    path.write_text(render_index(runs, exercises), encoding="utf-8")
    return path
