"""Where the committed data lives: the model zoo, the SAEs and the other files under ``data/``.

In a source checkout (and an editable install) that is the repository's ``data/`` folder;
a regular ``pip install`` ships the same files inside the package (``mi_helpers/_data``, a
link to ``data/`` in the repository), so the zoo loads from any directory. Set the
environment variable ``MI_ROADMAP_DATA`` (before importing ``mi_helpers``) to use another
copy.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DATA_ENV", "data_dir"]

DATA_ENV = "MI_ROADMAP_DATA"


def data_dir() -> Path:
    """The data folder: ``$MI_ROADMAP_DATA`` if set, else the one shipped with the package.

    Raises:
        FileNotFoundError: ``$MI_ROADMAP_DATA`` names a folder that does not exist.
    """
    chosen = os.environ.get(DATA_ENV)
    if chosen:
        path = Path(chosen).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"${DATA_ENV} is {chosen!r}, which is not a folder; point "
                                    f"it at a copy of the repository's data/ or unset it")
        return path.resolve()
    return (Path(__file__).resolve().parents[1] / "_data").resolve()
