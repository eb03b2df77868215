"""The Colab path: one set-up cell and one "Open in Colab" badge per notebook, both built
from the repository address written once, in ``pyproject.toml`` (``[project.urls]
Repository``).

``python -m mi_helpers.tools.colab`` rewrites every notebook source's set-up cell and badge
from that address (then ``jupytext --sync`` the notebooks); ``tests/tools/test_colab.py``
fails when a notebook's cell or badge disagrees with it.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

__all__ = ["repository_url", "setup_cell", "colab_badge", "sync_sources", "SETUP_MARKER"]

ROOT = Path(__file__).resolve().parents[2]
SETUP_MARKER = "# Colab set-up"
BADGE_PATTERN = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)")


def repository_url(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """The repository address from ``pyproject.toml``'s ``[project.urls] Repository``."""
    urls = tomllib.loads(pyproject.read_text())["project"].get("urls", {})
    if "Repository" not in urls:
        raise KeyError(f"{pyproject} has no [project.urls] Repository; add the project's address")
    return urls["Repository"].rstrip("/")


def setup_cell(url: str) -> str:
    """The set-up cell's code: clone and install on Colab (once; safe to re-run), else nothing."""
    return f'''{SETUP_MARKER} (the same cell in every notebook; safe to run again): on Colab, clone
# the project and install its helpers. Elsewhere this cell does nothing.
import sys

if "google.colab" in sys.modules:
    import subprocess
    from pathlib import Path

    REPO = "{url}"  # from pyproject.toml [project.urls]
    HERE = Path("/content/mi-roadmap")
    if not (HERE / "pyproject.toml").is_file():
        done = subprocess.run(["git", "clone", "--depth=1", REPO, str(HERE)],
                              capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"could not clone {{REPO}}: {{done.stderr.strip()[-300:]}}\\nSet "
                               f"REPO to the project's repository (or a fork of it).")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", str(HERE)], check=True)
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))'''


def colab_badge(url: str, notebook: str) -> str:
    """The "Open in Colab" badge for ``notebooks/<notebook>`` on the default branch."""
    path = url.removeprefix("https://github.com/")
    return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"(https://colab.research.google.com/github/{path}/blob/main/notebooks/{notebook})")


def _cells(text: str) -> list[str]:
    """A py:percent file split before each ``# %%`` line (the first part is the header)."""
    return re.split(r"(?m)^(?=# %%)", text)


def sync_source(path: Path, url: str) -> bool:
    """Rewrite one py:percent source's set-up cell and title badge; True if it changed."""
    text = path.read_text()
    cells = _cells(text)
    notebook = path.with_suffix(".ipynb").name
    for i, cell in enumerate(cells):
        head, _, body = cell.partition("\n")
        if body.startswith(SETUP_MARKER):
            cells[i] = f"{head}\n{setup_cell(url)}\n\n"
    title = next(i for i, c in enumerate(cells) if c.startswith("# %% [markdown]"))
    badge = colab_badge(url, notebook)
    if BADGE_PATTERN.search(cells[title]):
        cells[title] = BADGE_PATTERN.sub(badge.replace("\\", "\\\\"), cells[title], count=1)
    else:
        lines = cells[title].split("\n")
        lines.insert(2, f"#\n# {badge}")  # after the "# # NN · title" line
        cells[title] = "\n".join(lines)
    new = "".join(cells)
    if new != text:
        path.write_text(new)
    return new != text


def sync_sources(source_dir: Path = ROOT / "notebooks" / "src") -> list[Path]:
    """Rewrite every notebook source from the repository address; the changed paths."""
    url = repository_url()
    return [p for p in sorted(source_dir.glob("[0-9][0-9]_*.py")) if sync_source(p, url)]


if __name__ == "__main__":
    changed = sync_sources()
    print("\n".join(str(p) for p in changed) or "every notebook source is up to date")
    sys.exit(0)
