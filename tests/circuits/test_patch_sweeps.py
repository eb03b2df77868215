"""Sweep bookkeeping by hand: how many patches share a pass, which heads and positions a
sweep covers, and template means over more than two groups."""

import pytest
import torch

from mi_helpers.circuits import edge_memory
from mi_helpers.circuits.ablation import ablation_patching, template_means
from mi_helpers.circuits.tracing import embedding_noise_hook


def test_pass_size_depends_on_the_device(monkeypatch):
    budget = 2**30
    assert edge_memory.fast_pass_bytes("cpu", budget) == edge_memory.CPU_PASS_BYTES
    assert edge_memory.fast_pass_bytes("cpu", 1000) == 1000  # the budget caps it
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (2**28, 2**34))
    assert edge_memory.fast_pass_bytes("cuda:0", budget) == 2**27  # half the free memory
    assert edge_memory.fast_pass_bytes("cuda:0", 2**20) == 2**20
    assert edge_memory.fast_pass_bytes("meta", budget) == budget


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


def test_one_head_swept_over_layers_is_patched_at_each_layer(tiny_model):
    """A replayed pass keeps to one layer: with one head swept, the patches at layers 0
    and 1 differ only in their layer and must not share a pass (nor its layer)."""
    from mi_helpers.circuits.patching import activation_patching

    clean = tiny_model.to_tokens(["Mary likes the cat", "John likes the dog"])
    corrupted = tiny_model.to_tokens(["Anna hates the cat", "Paul hates the dog"])

    def metric(logits):
        return logits[:, -1, :20].mean()

    kwargs = {"heads": [1], "patches_per_pass": 4}
    replayed = activation_patching(tiny_model, clean, corrupted, metric, "z", **kwargs)
    hooked = activation_patching(tiny_model, clean, corrupted, metric, "z", replay=False,
                                 **kwargs)
    assert replayed.values.shape == (2, 1)
    assert torch.allclose(replayed.values, hooked.values, atol=1e-5)
    assert (hooked.values[0] - hooked.values[1]).abs().max() > 1e-4  # the layers differ
