"""Generated sections of the README: text between ``<!-- name:start -->`` and
``<!-- name:end -->`` markers is rewritten by the scripts that measure it."""

from __future__ import annotations

__all__ = ["replace_between_markers"]


def replace_between_markers(text: str, marker: str, body: str) -> str:
    """Replace what lies between ``<!-- marker:start -->`` and ``<!-- marker:end -->``."""
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    if text.count(start) != 1 or text.count(end) != 1:
        raise ValueError(f"expected exactly one {start} and one {end} in the text")
    head, rest = text.split(start)
    _, tail = rest.split(end)
    return f"{head}{start}\n{body}\n{end}{tail}"
