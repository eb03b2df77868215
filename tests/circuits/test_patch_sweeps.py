"""Sweep bookkeeping by hand: how many patches share a pass, which heads and positions a
sweep covers, and template means over more than two groups."""

from types import SimpleNamespace

import pytest
import torch

from mi_helpers.circuits import patching
from mi_helpers.circuits.ablation import ablation_patching, template_means
from mi_helpers.circuits.patching import default_patches_per_pass
from mi_helpers.circuits.tracing import embedding_noise_hook


def fake(device, d_vocab):
    return SimpleNamespace(cfg=SimpleNamespace(device=device, d_vocab=d_vocab))


def test_patches_per_pass_follows_its_budget(monkeypatch):
    tokens = torch.zeros(2, 8, dtype=torch.long)  # 16 tokens
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    assert default_patches_per_pass(fake("cpu", 100), tokens) == 1024 * 3 // 16
    assert default_patches_per_pass(fake("cuda:0", 100), tokens) == 2**16 // 16
    assert default_patches_per_pass(fake("cuda", 50_000), tokens) == 2**26 // (16 * 50_000)
    monkeypatch.setattr(patching, "MAX_LOGITS_PER_PASS", 2**18)  # not one pass's logits
    assert default_patches_per_pass(fake("cpu", 50_000), tokens) == 1  # at least one


def test_ablation_sweeps_only_the_requested_heads_and_positions(tiny_model):
    def metric(logits):
        return logits[:, -1, :20].mean()

    prompts = ["Mary likes the cat", "John likes the dog"]
    full = ablation_patching(tiny_model, prompts, metric, "z", per_position=True)
    some = ablation_patching(tiny_model, prompts, metric, "z", per_position=True, layers=[1],
                             heads=[3, 1], positions=[-1, 2], patches_per_pass=3)
    assert some.coords == {"layer": [1], "pos": [4, 2], "head": [3, 1]}
    assert torch.allclose(some.values[0], full.values[1][[4, 2]][:, [3, 1]], atol=1e-6)


def test_template_means_with_three_groups():
    acts = torch.arange(18.0).reshape(6, 3)
    out = template_means(acts, [2, 0, 1, 0, 2, 2])  # a list is fine
    assert torch.equal(out[1], (acts[1] + acts[3]) / 2) and torch.equal(out[3], out[1])
    assert torch.equal(out[2], acts[2])
    assert torch.equal(out[0], (acts[0] + acts[4] + acts[5]) / 3)


def test_noise_at_one_position_given_as_an_int(tiny_model):
    tokens = tiny_model.to_tokens(["Mary likes the cat"])
    _, hook = embedding_noise_hook(tiny_model, tokens, 2, seed=1)
    noisy = hook(torch.zeros(1, tokens.shape[1], tiny_model.cfg.d_model), hook=None)
    assert noisy[0, 2].abs().min() > 0 and noisy[0, [0, 1, 3, 4]].abs().max() == 0
    with pytest.raises(IndexError, match="pos index 9"):
        embedding_noise_hook(tiny_model, tokens, [9])
