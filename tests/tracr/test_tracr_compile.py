"""Re-compiling a program with the optional extra gives exactly the committed files."""

import json

import pytest
import torch

pytest.importorskip("tracr.compiler", reason="Tracr (and JAX) are not installed: "
                    "pip install -e .[tracr] to test compilation")

from mi_helpers.tracr import TRACR_DIR, load_tracr
from mi_helpers.tracr.compile import write_program
from mi_helpers.tracr.files import read_weights
from mi_helpers.tracr.programs import PROGRAMS


def test_compiling_hist_reproduces_the_committed_files(tmp_path):
    spec = write_program(PROGRAMS["hist"], tmp_path)
    committed = json.loads((TRACR_DIR / "hist.json").read_text())
    spec.pop("compiled_with"), committed.pop("compiled_with")
    assert json.loads(json.dumps(spec)) == committed
    ours, theirs = read_weights(tmp_path / "hist.safetensors"), read_weights(
        TRACR_DIR / "hist.safetensors")
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    fresh, saved = load_tracr("hist", tmp_path), load_tracr("hist")
    inputs = saved.inputs(5)
    assert fresh.run(inputs) == saved.run(inputs) == saved.reference(inputs)
