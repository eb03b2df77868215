"""Mutation testing of the numerical helpers: do the unit tests catch realistic bugs?

Each *mutant* is the package with one small, plausible bug planted in one module: a
flipped sign, ``+`` for ``-``, ``<`` for ``<=``, an index or axis off by one, a dropped
normalisation or centring, ``mean`` for ``sum``, ``max`` for ``min``, swapped arguments
(reversed KL), a deleted update step, ``True`` for ``False`` (``keepdim``, ``largest``),
a dropped ``relu`` / ``abs`` / transpose, ``range(n)`` for ``range(n + 1)``. The
module's mirrored unit tests then run against it (``pytest -x``, with a time limit): a
failing or timed-out run **kills** the mutant; a passing run lets it **survive**.

Mutants are generated from the syntax tree (only inside function bodies; never in
input validation, i.e. guards whose body is a ``raise`` and ``x = check_x(x)`` lines,
nor in error messages, f-strings, ``__repr__`` or progress-bar arguments), so each is a
real, runnable variant of the code. Survivors that cannot change any result (e.g. the
two arguments of a symmetric function swapped) are judged **equivalent** by reading the
code and listed in ``EQUIVALENT`` (``benchmarks/mutation_targets.py``, with each module's
mirrored tests in ``MODULES``) with the reason; the score is
``killed / (killed + survived)`` over the non-equivalent mutants.

Speed: the parent process imports torch and transformer-lens once and forks a child per
mutant; the child imports the mutated package from a scratch copy and runs pytest in
process. Run it niced, on one thread::

    OMP_NUM_THREADS=1 nice python benchmarks/mutation_score.py --write-readme
    python benchmarks/mutation_score.py --show survived      # the last run's survivors
    python benchmarks/mutation_score.py --list          # the mutants, without running them
    python benchmarks/mutation_score.py --merge --module mi_helpers/features/lens.py \
        --write-readme                                  # re-run one module, keep the rest
    python benchmarks/mutation_score.py --show survived --write-readme   # after judging

The table goes between the README's ``mutation-score`` markers; every run also writes
``build/mutation/results.json`` (one row per mutant) for inspection.
"""

from __future__ import annotations

import argparse
import ast
import gc
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

from mutation_targets import EQUIVALENT, MODULES  # the file next to this script

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# ---- mutation operators -------------------------------------------------------------------

BINOP_SWAPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
               ast.FloorDiv: ast.Mult, ast.Pow: ast.Mult}
DROP_RIGHT = (ast.Sub, ast.Div, ast.Mult)  # a - b -> a (no centring), a / b -> a, a * b -> a
COMPARE_SWAPS = {ast.Lt: [ast.LtE, ast.Gt], ast.LtE: [ast.Lt, ast.GtE],
                 ast.Gt: [ast.GtE, ast.Lt], ast.GtE: [ast.Gt, ast.LtE],
                 ast.Eq: [ast.NotEq], ast.NotEq: [ast.Eq], ast.In: [ast.NotIn],
                 ast.NotIn: [ast.In]}
NAME_SWAPS = {"mean": "sum", "sum": "mean", "max": "min", "min": "max", "argmax": "argmin",
              "argmin": "argmax", "amax": "amin", "amin": "amax", "softmax": "log_softmax",
              "log_softmax": "softmax", "any": "all", "all": "any", "clamp_min": "clamp_max",
              "cumsum": "cumprod", "norm": "sum"}
IDENTITY_CALLS = {"relu", "abs", "abs_", "sqrt", "exp", "log", "clamp_min", "transpose", "t",
                  "flatten", "unsqueeze", "squeeze", "roll", "clone"}
MODULE_NAMES = {"torch", "F", "nn", "math", "np"}
SWAP_ARGS = {"kl_divergence": (0, 1), "kl_from_log_probs": (0, 1), "normalised_score": (1, 2),
             "logit_difference": (1, 2), "fvu": (0, 1), "squared_error": (0, 1),
             "pearson": (0, 1), "cosine_similarity": (0, 1), "lstsq": (0, 1), "where": (1, 2),
             "_scores": (0, 1), "correlation_matrix": (0, 1), "binary_metrics": (0, 1),
             "binary_cross_entropy_with_logits": (0, 1), "einsum": (1, 2), "mse_loss": (0, 1),
             "gather": (0, 1), "cat": (0, 0), "addmm": (1, 2), "matmul": (0, 1),
             "residual_map": (0, 1), "map_quality": (0, 1), "latent_centroids": (0, 1),
             "detection_score": (1, 2), "simulation_score": (0, 1), "unravel_index": (0, 1),
             "template_means": (0, 1), "_in_window": (0, 1), "offset_score": (1, 2)}
SKIP_KEYWORDS = {"desc", "disable", "progress", "leave", "indent", "flush", "stacklevel",
                 "match", "dtype", "device", "generator", "total", "strict", "method", None}
SKIP_FUNCTIONS = {"__repr__", "__str__", "extra_repr", "label", "name"}
SKIP_CALLS = {"print", "isinstance", "getattr", "hasattr", "setattr", "tqdm",
              "ValueError", "IndexError", "KeyError", "TypeError", "RuntimeError", "check_positive",
              "check_heads", "check_tokens", "check_hook_names", "check_layer", "check_pos",
              "check_labels", "check_contexts", "check_same_shape", "check_positions",
              "_check_acts", "_check_kind", "_check_receivers", "warn", "mkdir", "write_text",
              "json", "dumps", "format", "join", "manual_seed", "Generator"}


@dataclass
class Mutant:
    module: str
    function: str
    operator: str
    before: str
    after: str
    line: int
    index: int = 0  # among mutants of the same function, operator and text
    status: str = ""  # killed, survived, timeout, equivalent, error
    seconds: float = 0.0
    source: str = ""

    @property
    def id(self) -> str:
        short = self.module.removeprefix("mi_helpers/").removesuffix(".py")
        return f"{short}:{self.function}:{self.operator}:{self.before} -> {self.after}#{self.index}"


def _text(node: ast.AST) -> str:
    return ast.unparse(node).replace("\n", " ")[:80]


def _is_check(call: ast.Call) -> bool:
    """Whether a call validates input: ``check_x(...)``, also inside ``check_x(...).to(...)``."""
    calls = [n for n in ast.walk(call) if isinstance(n, ast.Call)]
    return any(_call_name(c) in SKIP_CALLS
               or _call_name(c).startswith(("check_", "_check", "checked_")) for c in calls)


def _call_name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


class _Finder(ast.NodeVisitor):
    """Collect (node path, operator, replacement-builder) for every mutable site."""

    def __init__(self):
        self.sites: list[tuple[list[int], str, str, str, object, int, str]] = []
        self.function = ""
        self.path: list[int] = []

    # -- walking with node ids (positions in a pre-order list), skipping protected parts --
    def visit(self, node):
        method = "visit_" + type(node).__name__
        return getattr(self, method, self.generic_visit)(node)

    def generic_visit(self, node):
        for field, value in ast.iter_fields(node):
            if field in ("annotation", "returns", "decorator_list", "type_comment"):
                continue
            if isinstance(value, list):
                for item in value:
                    if isinstance(item, ast.AST):
                        self.visit(item)
            elif isinstance(value, ast.AST):
                self.visit(value)

    def visit_FunctionDef(self, node):
        if node.name in SKIP_FUNCTIONS:
            return
        outer, self.function = self.function, (f"{self.function}.{node.name}" if self.function
                                               else node.name)
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]  # the docstring
        params = [a.arg for a in node.args.args]
        if len(params) >= 2 and params[1] == "hook" and body:  # a forward hook: make it a no-op
            first = body[0]
            self.sites.append((first, "hook does nothing", _text(first), f"return {params[0]}",
                               lambda p=params[0]: ast.Return(ast.Name(p, ast.Load())),
                               first.lineno, self.function))
        for statement in body:
            self.visit(statement)
        self.function = outer

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node):
        outer, self.function = self.function, node.name
        for statement in node.body:
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.visit(statement)
        self.function = outer

    def visit_Module(self, node):
        for statement in node.body:
            if isinstance(statement, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
                self.visit(statement)

    def visit_Raise(self, node):
        return

    def visit_Assert(self, node):
        return

    def visit_JoinedStr(self, node):
        return

    def visit_If(self, node):
        guard = all(isinstance(s, ast.Raise) for s in node.body) and not node.orelse
        if not guard:
            self.visit(node.test)
        for statement in node.body + node.orelse:
            self.visit(statement)

    def visit_keyword(self, node):
        if node.arg not in SKIP_KEYWORDS:
            if isinstance(node.value, (ast.Name, ast.Attribute)):  # an argument not passed on
                self.add(node.value, "argument ignored", "None", lambda: ast.Constant(None))
            self.visit(node.value)

    # -- sites ---------------------------------------------------------------------------
    def add(self, node, operator, after, builder):
        if self.function:
            self.sites.append((node, operator, _text(node), after, builder, node.lineno,
                               self.function))

    def visit_BinOp(self, node):
        swap = BINOP_SWAPS.get(type(node.op))
        if swap is not None:
            new = ast.BinOp(node.left, swap(), node.right)
            self.add(node, "swap operator", _text(new), lambda n=new: n)
        if isinstance(node.op, DROP_RIGHT):
            self.add(node, "drop right operand", _text(node.left), lambda n=node.left: n)
        self.generic_visit(node)

    def visit_AugAssign(self, node):
        swap = BINOP_SWAPS.get(type(node.op))
        if swap is not None:
            new = ast.AugAssign(node.target, swap(), node.value)
            self.add(node, "swap operator", _text(new), lambda n=new: n)
        self.add(node, "delete statement", "pass", lambda: ast.Pass())
        self.generic_visit(node)

    def visit_UnaryOp(self, node):
        operand = node.operand
        if isinstance(node.op, ast.USub) and isinstance(operand, ast.Constant) \
                and type(operand.value) is int:  # -1 is one constant: -1 -> 0, -1 -> -2
            for v in (1 - operand.value, -operand.value - 1):
                self.add(node, "off by one", str(v), lambda v=v: ast.Constant(v))
            return
        if isinstance(node.op, (ast.USub, ast.Not)):
            self.add(node, "drop unary", _text(operand), lambda n=operand: n)
        self.generic_visit(node)

    def visit_BoolOp(self, node):
        other = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        new = ast.BoolOp(other, node.values)
        self.add(node, "and/or", _text(new), lambda n=new: n)
        self.generic_visit(node)

    def visit_Compare(self, node):
        if len(node.ops) == 1:
            for swap in COMPARE_SWAPS.get(type(node.ops[0]), []):
                new = ast.Compare(node.left, [swap()], node.comparators)
                self.add(node, "compare", _text(new), lambda n=new: n)
        self.generic_visit(node)

    def visit_Constant(self, node):
        value = node.value
        if isinstance(value, bool):
            new = ast.Constant(not value)
            self.add(node, "flip bool", str(not value), lambda n=new: n)
        elif isinstance(value, int):
            for v in (value + 1, value - 1):
                self.add(node, "off by one", str(v), lambda v=v: ast.Constant(v))
        elif isinstance(value, float) and (value == 0 or abs(value) >= 1e-3):
            v = 1.0 if value == 0 else (0.0 if value == 1 else value * 2)
            self.add(node, "change constant", str(v), lambda v=v: ast.Constant(v))

    def visit_Call(self, node):
        name = _call_name(node)
        if name in SKIP_CALLS:
            return
        func = node.func
        if name in NAME_SWAPS:
            new_name = NAME_SWAPS[name]
            if isinstance(func, ast.Attribute):
                new = ast.Call(ast.Attribute(func.value, new_name, ast.Load()), node.args,
                               node.keywords)
            else:
                new = ast.Call(ast.Name(new_name, ast.Load()), node.args, node.keywords)
            self.add(node, "swap function", _text(new), lambda n=new: n)
        if name in IDENTITY_CALLS and isinstance(func, ast.Attribute):
            is_function = isinstance(func.value, ast.Name) and func.value.id in MODULE_NAMES
            if is_function and node.args:  # torch.relu(x) -> x
                self.add(node, "drop call", _text(node.args[0]), lambda n=node.args[0]: n)
            elif not is_function and name != "sort":  # x.relu() -> x
                self.add(node, "drop call", _text(func.value), lambda n=func.value: n)
        if name in SWAP_ARGS:
            i, j = SWAP_ARGS[name]
            if i != j and len(node.args) > max(i, j):
                args = list(node.args)
                args[i], args[j] = args[j], args[i]
                new = ast.Call(func, args, node.keywords)
                self.add(node, "swap arguments", _text(new), lambda n=new: n)
        if name in ("topk", "kthvalue") and node.args and not isinstance(node.args[0], ast.Constant):
            args = [ast.BinOp(node.args[0], ast.Sub(), ast.Constant(1)), *node.args[1:]]
            new = ast.Call(func, args, node.keywords)
            self.add(node, "k - 1", _text(new), lambda n=new: n)
        if name == "range" and node.args:
            stop = node.args[1] if len(node.args) > 1 else node.args[0]
            if not isinstance(stop, ast.Constant):
                for op, sign in ((ast.Sub, "- 1"), (ast.Add, "+ 1")):
                    args = list(node.args)
                    args[1 if len(node.args) > 1 else 0] = ast.BinOp(stop, op(), ast.Constant(1))
                    new = ast.Call(func, args, node.keywords)
                    self.add(node, "range off by one", _text(new), lambda n=new: n)
        self.generic_visit(node)

    def visit_Slice(self, node):
        for field in ("lower", "upper"):
            bound = getattr(node, field)
            if bound is not None and not isinstance(bound, (ast.Constant, ast.UnaryOp)):
                for op in (ast.Sub, ast.Add):
                    moved = ast.BinOp(bound, op(), ast.Constant(1))
                    self.add(bound, "slice off by one", _text(moved), lambda n=moved: n)
        self.generic_visit(node)

    def visit_Attribute(self, node):
        if node.attr in ("T", "mT"):
            self.add(node, "drop transpose", _text(node.value), lambda n=node.value: n)
        self.generic_visit(node)

    def visit_Assign(self, node):
        if isinstance(node.value, ast.Call) and _is_check(node.value):
            return  # input validation (x = check_x(x)), like the guards: not a numeric site
        if len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            target = node.targets[0].id
            if any(isinstance(n, ast.Name) and n.id == target for n in ast.walk(node.value)):
                self.add(node, "delete statement", "pass", lambda: ast.Pass())
        self.generic_visit(node)

    def visit_Expr(self, node):
        if isinstance(node.value, ast.Call) and _call_name(node.value).endswith("_") \
                and not _call_name(node.value).startswith("_"):
            self.add(node, "delete statement", "pass", lambda: ast.Pass())
        self.generic_visit(node)


class _Replace(ast.NodeTransformer):
    def __init__(self, target, replacement):
        self.target, self.replacement = target, replacement

    def visit(self, node):
        if node is self.target:
            return self.replacement
        return super().visit(node)


def _all_mutants(module: str) -> list[Mutant]:
    """Every mutant of one module: one fresh tree per mutant, sites matched by their order."""
    source = (ROOT / module).read_text()
    n_sites = len(_sites(source))
    out, seen = [], Counter()
    for k in range(n_sites):
        tree = ast.parse(source)
        node, operator, before, after, builder, line, function = _sites_of_tree(tree)[k]
        if before == after:
            continue
        mutated = _Replace(node, builder()).visit(tree)
        text = ast.unparse(ast.fix_missing_locations(mutated))
        try:
            compile(text, module, "exec")
        except SyntaxError:
            continue
        key = (function, operator, before, after)
        out.append(Mutant(module, function, operator, before, after, line, seen[key],
                          source=text))
        seen[key] += 1
    return out


def _sites(source: str):
    return _sites_of_tree(ast.parse(source))


def _sites_of_tree(tree):
    finder = _Finder()
    finder.visit(tree)
    return finder.sites


# ---- running ------------------------------------------------------------------------------

def _write_module(path: Path, source: str) -> None:
    """Write a module's source and drop its compiled copy (never run a stale mutant)."""
    path.write_text(source)
    for cached in (path.parent / "__pycache__").glob(f"{path.stem}.*.pyc"):
        cached.unlink()


def _prepare_scratch() -> Path:
    """A scratch copy of the package (plus links to data/ and tests/) for mutated files."""
    scratch = Path(tempfile.mkdtemp(prefix="mutants-"))
    shutil.copytree(ROOT / "mi_helpers", scratch / "mi_helpers",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (scratch / "data").symlink_to(ROOT / "data")
    return scratch


def _run_child(scratch: Path, tests: list[str], log: Path) -> int:
    """In a forked child: import the scratch package and run pytest; return its exit code."""
    sys.path.insert(0, str(scratch))
    # Bind the package to the scratch copy now: pytest puts the repository root (where the
    # root conftest.py is) first on sys.path, which would import the unmutated package.
    import mi_helpers  # noqa: F401

    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    import pytest

    os.chdir(ROOT)
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # no nbval, anyio, ... plugins
    args = ["-x", "-q", "-p", "no:cacheprovider", "-p", "no:unraisableexception",
            "-p", "no:threadexception", "-o", "addopts=", "--no-header",
            "-W", "ignore::DeprecationWarning", *tests]
    code = pytest.main(args)
    ran = sys.modules["mi_helpers"].__file__
    print("package:", ran)
    sys.stdout.flush()
    if not Path(ran).resolve().is_relative_to(scratch.resolve()):
        return 98  # the tests ran another copy of the package: not a measurement
    return int(code)


def _existing(tests: list[str]) -> list[str]:
    """Drop test files that do not exist (yet); keep options such as ``-k``."""
    out = []
    for arg in tests:
        if arg.endswith(".py") and not (ROOT / arg).is_file():
            continue
        out.append(arg)
    return out


def run_tests(scratch: Path, tests: list[str], timeout: float, log: Path) -> tuple[str, float]:
    """Fork, run the tests against the scratch package, and classify the outcome."""
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # child
        code = 99
        try:
            code = _run_child(scratch, tests, log)
        finally:
            os._exit(code)
    deadline = start + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.perf_counter() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout", time.perf_counter() - start
        time.sleep(0.05)
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code == 0:
        return "survived", seconds
    if code == 1:
        return "killed", seconds
    return f"error({code})", seconds


def _preload(scratch: Path) -> None:
    """Import everything the package and its tests import, once, in the parent, then forget
    the package itself, so that each child starts fast and imports its own mutant."""
    import importlib

    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(scratch))
    for name in ("pandas", "pytest", "transformer_lens", "transformer_lens.model_bridge",
                 "transformer_lens.patching", "transformer_lens.head_detector",
                 "transformers", "safetensors.torch", "matplotlib.pyplot"):
        importlib.import_module(name)
    from transformers import (  # noqa: F401
        GPT2Config,
        GPT2LMHeadModel,
        GPTNeoXConfig,
        GPTNeoXForCausalLM,
    )
    for name in ("mi_helpers", "mi_helpers.core", "mi_helpers.circuits", "mi_helpers.features",
                 "mi_helpers.features.sae", "mi_helpers.features.autointerp",
                 "mi_helpers.features.dashboards", "mi_helpers.interventions",
                 "mi_helpers.universality", "mi_helpers.datasets", "mi_helpers.zoo.tokenizer"):
        importlib.import_module(name)
    sys.path.remove(str(scratch))
    for name in [m for m in sys.modules if m == "mi_helpers" or m.startswith("mi_helpers.")]:
        del sys.modules[name]
    importlib.invalidate_caches()
    gc.collect()
    gc.freeze()  # children's garbage collections skip everything loaded so far


def run(modules: list[str], timeout_factor: float, min_timeout: float, out_dir: Path,
        verbose: bool, kept: list[dict]) -> list[Mutant]:
    """Run every mutant of ``modules``; ``kept`` are earlier rows saved alongside them."""
    scratch = _prepare_scratch()
    _preload(scratch)
    out_dir.mkdir(parents=True, exist_ok=True)
    results: list[Mutant] = []
    try:
        for module in modules:
            tests = _existing(MODULES[module])
            target = scratch / module
            original = target.read_text()
            status, base = run_tests(scratch, tests, 3600, out_dir / "baseline.log")
            if status != "survived":
                raise RuntimeError(f"the tests of {module} fail on the unmutated code; see "
                                   f"{out_dir / 'baseline.log'}")
            timeout = max(min_timeout, timeout_factor * base)
            mutants = _all_mutants(module)
            print(f"{module}: {len(mutants)} mutants, tests take {base:.1f} s "
                  f"(timeout {timeout:.0f} s)", flush=True)
            for i, mutant in enumerate(mutants):
                if mutant.id in EQUIVALENT:
                    mutant.status = "equivalent"
                    results.append(mutant)
                    continue
                _write_module(target, mutant.source)
                try:
                    mutant.status, mutant.seconds = run_tests(scratch, tests, timeout,
                                                              out_dir / "last.log")
                finally:
                    _write_module(target, original)
                if mutant.status == "survived":
                    shutil.copy(out_dir / "last.log", out_dir / "last_survivor.log")
                if verbose or mutant.status == "survived":
                    print(f"  [{i + 1}/{len(mutants)}] {mutant.status:9s} {mutant.seconds:5.1f}s "
                          f"L{mutant.line} {mutant.id}", flush=True)
                results.append(mutant)
            _save(kept, results, out_dir)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return results


def _relabel(rows: list[dict]) -> list[dict]:
    """Survivors of an earlier run that EQUIVALENT now lists count as equivalent."""
    for row in rows:
        if row["status"] == "survived" and row["id"] in EQUIVALENT:
            row["status"] = "equivalent"
    return rows


def _check_equivalents(ids: set[str], modules: list[str]) -> None:
    """Warn about entries of EQUIVALENT that match no mutant of these modules (stale ids)."""
    prefixes = tuple(m.removeprefix("mi_helpers/").removesuffix(".py") + ":" for m in modules)
    stale = [key for key in EQUIVALENT if key.startswith(prefixes) and key not in ids]
    for key in stale:
        print(f"warning: EQUIVALENT names no mutant: {key}", file=sys.stderr)


def _rows(results: list[Mutant]) -> list[dict]:
    return [{k: v for k, v in asdict(m).items() if k != "source"} | {"id": m.id}
            for m in results]


def _save(kept: list[dict], results: list[Mutant], out_dir: Path) -> list[dict]:
    """Write the rows, in the order of MODULES, to ``out_dir/results.json``; return them."""
    order = list(MODULES)
    rows = sorted(kept + _rows(results), key=lambda r: order.index(r["module"]))
    (out_dir / "results.json").write_text(json.dumps(rows, indent=1) + "\n")
    return rows


# ---- reporting ----------------------------------------------------------------------------

def score_table(results: list[dict]) -> tuple[str, dict]:
    """The README table: killed / survived / equivalent and the score, per module."""
    by_module: dict[str, Counter] = defaultdict(Counter)
    for row in results:
        status = row["status"]
        status = "killed" if status in ("killed", "timeout") or status.startswith("error") \
            else status
        by_module[row["module"]][status] += 1
    lines = ["| module | mutants | killed | survived | equivalent | score |",
             "|---|---|---|---|---|---|"]
    total = Counter()
    for module, counts in by_module.items():
        total.update(counts)
        lines.append(_row(f"`{module.removeprefix('mi_helpers/')}`", counts))
    lines.append(_row("**all**", total))
    return "\n".join(lines), total


def _row(label: str, counts: Counter) -> str:
    killed, survived, equivalent = counts["killed"], counts["survived"], counts["equivalent"]
    scored = killed + survived
    score = f"{100 * killed / scored:.1f}%" if scored else "-"
    return (f"| {label} | {killed + survived + equivalent} | {killed} | {survived} | "
            f"{equivalent} | {score} |")


def write_readme(table: str, results: list[dict]) -> None:
    sys.path.insert(0, str(ROOT))  # after the runs: the parent may import the package now
    from mi_helpers.tools.markers import replace_between_markers

    survivors = [r for r in results if r["status"] == "survived"]
    equivalent = [r for r in results if r["status"] == "equivalent"]
    parts = [table, ""]
    if survivors:
        parts += ["Surviving mutants (not equivalent; tests to add):", ""]
        parts += [f"- `{r['id']}`" for r in survivors] + [""]
    if equivalent:
        by_reason: dict[str, list[str]] = defaultdict(list)
        for r in equivalent:
            by_reason[EQUIVALENT[r["id"]]].append(f"`{r['id']}`")
        parts += ["Surviving mutants judged equivalent (no result can change), by reason:", ""]
        parts += [f"- {reason}: {', '.join(ids)}" for reason, ids in by_reason.items()] + [""]
    minutes = sum(r["seconds"] for r in results) / 60
    parts.append(f"Measured by `python benchmarks/mutation_score.py --write-readme` "
                 f"({len(results)} mutants, {minutes:.0f} min of test runs on 1 thread, "
                 f"{platform.machine()}, Python {platform.python_version()}).")
    readme = ROOT / "README.md"
    readme.write_text(replace_between_markers(readme.read_text(), "mutation-score",
                                              "\n".join(parts)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--module", action="append", help="only these modules (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the mutants and stop")
    parser.add_argument("--show", choices=["survived", "all"], help="print mutants of a past run")
    parser.add_argument("--timeout-factor", type=float, default=3.0)
    parser.add_argument("--min-timeout", type=float, default=30.0)
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "mutation")
    parser.add_argument("--write-readme", action="store_true")
    parser.add_argument("--merge", action="store_true",
                        help="keep the last run's rows for the modules not run now")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    modules = args.module or list(MODULES)
    unknown = set(modules) - set(MODULES)
    if unknown:
        parser.error(f"unknown modules {sorted(unknown)}; known: {list(MODULES)}")
    if args.list:
        ids = set()
        for module in modules:
            for mutant in _all_mutants(module):
                ids.add(mutant.id)
                print(f"L{mutant.line:<4d} {mutant.id}")
        _check_equivalents(ids, modules)
        return
    if args.show:
        rows = _relabel(json.loads((args.out / "results.json").read_text()))
        if args.write_readme:  # equivalents judged since the run: no need to run again
            write_readme(score_table(rows)[0], rows)
        for row in rows:
            if args.show == "all" or row["status"] == "survived":
                print(f"{row['status']:9s} L{row['line']:<4d} {row['id']}")
        print(score_table(rows)[0])
        return
    kept = []
    if args.merge and (args.out / "results.json").is_file():  # keep the other modules' rows
        kept = [r for r in json.loads((args.out / "results.json").read_text())
                if r["module"] not in modules and r["module"] in MODULES]
    results = run(modules, args.timeout_factor, args.min_timeout, args.out, args.verbose, kept)
    _check_equivalents({m.id for m in results}, modules)
    rows = _save(kept, results, args.out)
    table, _ = score_table(rows)
    print(table)
    if args.write_readme:
        write_readme(table, rows)


if __name__ == "__main__":
    main()
