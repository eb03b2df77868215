"""Checkpoints: a resumed run takes exactly the steps of an uninterrupted one."""

import json
import random
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from mi_helpers.core.models import load_model
from mi_helpers.dynamics import (Recorder, checkpoint_dir, list_checkpoints, load_checkpoint,
                                 save_checkpoint, spec_probes)
from mi_helpers.zoo.specs import ZooSpec
from mi_helpers.zoo.train import train_model

TINY = ZooSpec(name="tiny", purpose="test", n_layer=2, d_model=16, n_head=2, n_ctx=32,
               batch_size=4, warmup=2, steps=7)


def _weights(folder):
    return load_file(str(folder / "model.safetensors"))


def _state(folder):
    return load_file(str(folder / "training_state.safetensors"))


def recorder_steps(recorder):
    return recorder.steps.tolist()


def _recorder():
    return Recorder(spec_probes(TINY, n_heldout=4, rep_lens=(5, 7), n_seqs=2), every=2)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    recorder = _recorder()
    train_model(TINY, root / "final", eval_every=3, progress=False, checkpoint_every=2,
                checkpoints=root / "ck", recorder=recorder)
    return root, recorder


def test_checkpoints_are_saved_every_n_steps(uninterrupted):
    root, _ = uninterrupted
    assert list(list_checkpoints(root / "ck")) == [2, 4, 6, 7]  # and the last step
    assert recorder_steps(uninterrupted[1]) == [0, 2, 4, 6, 7]
    folder = checkpoint_dir(root / "ck", 4)
    state = json.loads((folder / "training_state.json").read_text())
    assert state["step"] == 4 and state["extra"]["steps"] == 7
    assert len(state["extra"]["records"]) == 3  # steps 0, 2, 4
    assert load_model(str(folder), device="cpu").cfg.n_layers == 2  # a model folder too


def test_resume_gives_the_same_next_steps(uninterrupted, tmp_path):
    root, recorder = uninterrupted
    resumed = _recorder()
    train_model(TINY, tmp_path / "final", eval_every=3, progress=False, checkpoint_every=2,
                checkpoints=tmp_path / "ck", resume_from=checkpoint_dir(root / "ck", 2),
                recorder=resumed)
    for step in (4, 6, 7):  # bit for bit: weights, AdamW moments, random state
        ours, theirs = checkpoint_dir(tmp_path / "ck", step), checkpoint_dir(root / "ck", step)
        for a, b in ((_weights(ours), _weights(theirs)), (_state(ours), _state(theirs))):
            assert a.keys() == b.keys()
            assert all(torch.equal(a[k], b[k]) for k in a), step
    assert resumed.records == recorder.records


@pytest.mark.parametrize("forget", ["optimizer", "data order"])
def test_a_partial_resume_takes_other_steps(uninterrupted, tmp_path, forget):
    """The control: a checkpoint missing AdamW's moments or the sampler's random state
    (what saving the weights alone would give) does not reproduce the run."""
    root, _ = uninterrupted
    folder = tmp_path / "step-000002"
    shutil.copytree(checkpoint_dir(root / "ck", 2), folder)
    if forget == "optimizer":
        state = _state(folder)
        save_file({k: v if k.endswith("step") or k == "rng.torch" else torch.zeros_like(v)
                   for k, v in state.items()}, str(folder / "training_state.safetensors"))
    else:
        saved = json.loads((folder / "training_state.json").read_text())
        saved["rng"] = [3, list(random.Random(0).getstate()[1]), None]
        (folder / "training_state.json").write_text(json.dumps(saved))
    train_model(TINY, tmp_path / "final", eval_every=3, progress=False, checkpoint_every=2,
                checkpoints=tmp_path / "ck", resume_from=folder)
    ours = _weights(checkpoint_dir(tmp_path / "ck", 4))
    theirs = _weights(checkpoint_dir(root / "ck", 4))
    assert not all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_resume_with_another_length_is_refused(uninterrupted, tmp_path):
    root, _ = uninterrupted
    with pytest.raises(ValueError, match="7 steps, not 8"):
        train_model(TINY, tmp_path, steps=8, progress=False,
                    resume_from=checkpoint_dir(root / "ck", 2))


def test_plain_module_round_trip(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    rng = random.Random(5)
    for _ in range(3):
        model(torch.randn(8, 3)).pow(2).mean().backward()
        opt.step(), opt.zero_grad()
    rng.random()
    save_checkpoint(tmp_path / "ck", model, opt, 3, rng=rng, extra={"note": "x"})
    expected_next, expected_rng = torch.randn(2), rng.random()

    copy = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    copy_opt, copy_rng = torch.optim.AdamW(copy.parameters(), lr=0.5), random.Random(0)
    saved = load_checkpoint(tmp_path / "ck", copy, copy_opt, rng=copy_rng)
    assert saved == {"step": 3, "extra": {"note": "x"}}
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                 copy.state_dict().values()))
    group = copy_opt.param_groups[0]
    assert group["lr"] == 0.1 and group["betas"] == (0.9, 0.999)
    assert torch.equal(torch.randn(2), expected_next) and copy_rng.random() == expected_rng


def test_bad_checkpoints_fail_loudly(tmp_path):
    model = torch.nn.Linear(3, 4)
    opt = torch.optim.AdamW(model.parameters())
    save_checkpoint(tmp_path / "snap", model, opt, 0, weights_only=True)
    with pytest.raises(FileNotFoundError, match="training_state.safetensors is missing"):
        load_checkpoint(tmp_path / "snap", model, opt)
    save_checkpoint(tmp_path / "full", model, opt, 0)
    other = torch.nn.Linear(3, 5)
    with pytest.raises(RuntimeError, match="size mismatch"):
        load_checkpoint(tmp_path / "full", other, torch.optim.AdamW(other.parameters()))
    renamed = torch.nn.Sequential(torch.nn.Linear(3, 4))
    with pytest.raises(ValueError, match="do not fit this model"):
        load_checkpoint(tmp_path / "full", renamed, torch.optim.AdamW(renamed.parameters()))
    with pytest.raises(ValueError, match="without the data sampler"):
        load_checkpoint(tmp_path / "full", model, opt, rng=random.Random(0))
    with pytest.raises(FileNotFoundError, match="no checkpoint folder"):
        list_checkpoints(tmp_path / "nowhere")
