"""Loading committed Tracr models: every program agrees with RASP on every input, and bad
files fail loudly, naming the file."""

import json
import shutil
import subprocess
import sys
from collections import Counter

import pytest
import torch

from mi_helpers.tracr import TRACR_DIR, load_tracr, tracr_names
from mi_helpers.tracr.files import read_weights

PROGRAMS = ["length", "reverse", "hist", "sort", "frac_prevs", "double_hist", "induction_count"]


def _python_reference(name, xs):
    """What each program should compute, written independently of RASP."""
    n, count = len(xs), Counter(xs)
    return {
        "length": lambda: [n] * n,
        "reverse": lambda: list(reversed(xs)),
        "hist": lambda: [count[x] for x in xs],
        "sort": lambda: sorted(xs),
        "frac_prevs": lambda: [sum(y == 1 for y in xs[:i + 1]) / (i + 1) for i in range(n)],
        "double_hist": lambda: [sum(c == count[x] for c in count.values()) for x in xs],
        "induction_count": lambda: [sum(xs[k - 1] == x for k in range(1, n)) for x in xs],
    }[name]()


@pytest.fixture(scope="module")
def models():
    return {name: load_tracr(name) for name in PROGRAMS}


def test_every_program_is_committed():
    assert tracr_names() == sorted(PROGRAMS)


def test_loading_needs_no_jax():
    """Loading and running a model imports neither JAX nor Tracr (even where installed)."""
    code = ("import sys; from mi_helpers.tracr import load_tracr; m = load_tracr('hist'); "
            "m.run(m.inputs(2)); print(sorted({n.split('.')[0] for n in sys.modules} & "
            "{'jax', 'jaxlib', 'haiku', 'tracr'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", PROGRAMS)
def test_model_equals_rasp_on_every_input(models, name):
    model = models[name]
    for length in range(1, model.max_seq_len + 1):
        inputs = model.inputs(length)
        reference = model.reference(inputs)
        assert reference == [_python_reference(name, list(x)) for x in inputs]
        assert model.run_program(inputs) == reference  # the interpreter runs the stored tables
        ours = model.run(inputs)
        if model.numerical:
            assert torch.allclose(torch.tensor(ours, dtype=torch.float64),
                                  torch.tensor(reference, dtype=torch.float64), atol=1e-4)
        else:
            assert ours == reference


def test_operations_and_variables(models):
    reverse = models["reverse"]
    assert {op: [n.name for n in nodes] for op, nodes in reverse.operations.items()} == {
        "length": ["L0H0", "MLP0"], "opp_index": ["MLP1"], "reverse": ["L2H0"]}
    assert set(reverse.variables) == {"tokens", "indices", "length", "opp_index", "reverse"}
    labels = reverse.spec["ground_truth"]["residual_labels"]
    assert [labels[d] for d in reverse.variables["reverse"]] == ["reverse:1", "reverse:2",
                                                                "reverse:3"]


def test_encode_and_decode_check_their_input(models):
    model = models["hist"]
    with pytest.raises(ValueError, match="not in this program's vocabulary"):
        model.encode([(1, 7)])
    with pytest.raises(ValueError, match="one length"):
        model.encode([(1,), (1, 2)])
    with pytest.raises(ValueError, match="length must be in 1..5"):
        model.inputs(6)


@pytest.fixture
def copy_dir(tmp_path):
    for name in ("hist.json", "hist.safetensors"):
        shutil.copy(TRACR_DIR / name, tmp_path / name)
    return tmp_path


def test_unknown_program(copy_dir):
    with pytest.raises(KeyError, match="no Tracr program 'nope'.*hist"):
        load_tracr("nope", copy_dir)


def test_missing_files_are_named(copy_dir):
    (copy_dir / "hist.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="hist.safetensors"):
        load_tracr("hist", copy_dir)
    (copy_dir / "hist.json").rename(copy_dir / "other.json")
    shutil.copy(TRACR_DIR / "hist.safetensors", copy_dir / "hist.safetensors")
    with pytest.raises(FileNotFoundError, match="hist.json"):
        load_tracr("hist", copy_dir)


def test_truncated_weights_are_named(copy_dir):
    path = copy_dir / "hist.safetensors"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="corrupted or truncated.*hist.safetensors"):
        load_tracr("hist", copy_dir)


def test_bad_json_is_named(copy_dir):
    (copy_dir / "hist.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON.*hist.json"):
        load_tracr("hist", copy_dir)
    (copy_dir / "hist.json").write_text(json.dumps({"name": "hist"}))
    with pytest.raises(ValueError, match="hist.json lacks the keys"):
        load_tracr("hist", copy_dir)


def test_load_is_strict(copy_dir):
    """A missing, renamed or extra key fails (a non-strict load would leave MLPs random)."""
    from safetensors.torch import save_file
    weights = read_weights(copy_dir / "hist.safetensors")
    for change in ("drop", "rename", "extra"):
        broken = dict(weights)
        if change == "drop":
            del broken["blocks.0.mlp.in.weight"]
        elif change == "rename":
            broken["blocks.0.mlp.fc_in.weight"] = broken.pop("blocks.0.mlp.in.weight")
        else:
            broken["blocks.0.mlp.extra"] = torch.zeros(1)
        save_file(broken, str(copy_dir / "hist.safetensors"))
        with pytest.raises(ValueError, match="hist.safetensors do not fit.*strict"):
            load_tracr("hist", copy_dir)
