"""Every callable the notebooks import from ``mi_helpers`` has a bad-input test.

A name counts as covered when some ``with pytest.raises(...)`` block under ``tests/`` calls
it, or when it starts a key of ``tests/test_bad_input.py``'s ``CASES`` table. Names that
take no input that can be wrong are exempt, each with its reason.
"""

import ast
import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

EXEMPT = {
    "TrainingError": "an exception class: raised by the package, never given user input",
}


def _called_in_raises(tree: ast.AST) -> set[str]:
    """Names of everything called inside a ``with pytest.raises(...)`` block."""
    names = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.With):
            continue
        if not any(isinstance(item.context_expr, ast.Call)
                   and getattr(item.context_expr.func, "attr", "") == "raises"
                   for item in node.items):
            continue
        for call in (n for stmt in node.body for n in ast.walk(stmt) if isinstance(n, ast.Call)):
            name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(
                call.func, "id", None)
            if name:
                names.add(name)
    return names


def covered_names() -> set[str]:
    names = set()
    for path in (ROOT / "tests").rglob("*.py"):
        if "data" in path.relative_to(ROOT / "tests").parts:
            continue
        names |= _called_in_raises(ast.parse(path.read_text()))
    cases = (ROOT / "tests" / "test_bad_input.py").read_text()
    names |= {key.split()[0] for key in re.findall(r'^\s*"([^"]+)":', cases, re.MULTILINE)}
    return names


def notebook_imports() -> dict[str, tuple[str, set[str]]]:
    """``{name: (module, notebooks)}`` for every callable imported from ``mi_helpers``."""
    found: dict[str, tuple[str, set[str]]] = {}
    for path in sorted((ROOT / "notebooks" / "src").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.ImportFrom) and node.module
                    and node.module.startswith("mi_helpers")
                    and not node.module.startswith("mi_helpers.exercises")):
                continue
            for alias in node.names:
                if callable(getattr(importlib.import_module(node.module), alias.name)):
                    found.setdefault(alias.name, (node.module, set()))[1].add(path.name[:2])
    return found


def test_every_imported_callable_has_a_bad_input_test():
    imported, covered = notebook_imports(), covered_names()
    missing = [f"{module}.{name} (notebooks {', '.join(sorted(nbs))})"
               for name, (module, nbs) in sorted(imported.items())
               if name not in covered and name not in EXEMPT]
    assert not missing, ("no bad-input test (a pytest.raises block calling it, or a CASES "
                         "key in tests/test_bad_input.py) for:\n  " + "\n  ".join(missing))


def test_exemptions_are_needed_and_explained():
    imported, covered = notebook_imports(), covered_names()
    stale = sorted(name for name in EXEMPT if name not in imported or name in covered)
    assert not stale, f"exempt names that are covered or no longer imported: {stale}"
    assert all(isinstance(r, str) and len(r) > 20 for r in EXEMPT.values())
