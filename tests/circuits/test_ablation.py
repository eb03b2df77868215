"""Ablation sources and sweeps, and causal tracing's noise, against plain hooks."""

import pytest
import torch

from mi_helpers.circuits.ablation import (ablation_patching, derangement, head_ablation_hooks,
                                          head_means, mean_source, resample_source, zero_source)
from mi_helpers.circuits.tracing import causal_tracing, embedding_noise_hook

CLEAN = ["Mary likes the cat", "John likes the dog", "Anna sees the cat"]
REFERENCE = ["John likes the dog", "Anna sees a cat", "Mary likes a dog", "John sees the bird"]


def name_logit_diff(model):
    mary, john = (int(model.to_tokens(" " + w, prepend_bos=False)[0, 0]) for w in ("Mary", "John"))
    return lambda logits: (logits[:, -1, mary] - logits[:, -1, john]).mean()


def run_replacing(model, tokens, metric, hook, value):
    with torch.no_grad():
        logits = model.run_with_hooks(tokens, fwd_hooks=[(hook, lambda act, hook: value(act))])
    return metric(logits).item()


def test_sources_by_hand():
    acts = {"h": torch.arange(24.0).reshape(3, 2, 4)}
    assert torch.equal(zero_source(acts)["h"], torch.zeros(1, 2, 4))
    assert torch.equal(mean_source(acts)["h"], acts["h"].mean(0, keepdim=True))
    assert mean_source(acts)["h"][0, 1, 0].item() == (4 + 12 + 20) / 3  # per position
    perm = torch.tensor([2, 0, 1])
    assert torch.equal(resample_source(acts, perm)["h"], acts["h"][[2, 0, 1]])


def test_derangements_move_everything_and_depend_on_the_seed():
    assert derangement(2).tolist() == [1, 0]
    perms = [derangement(6, seed=s) for s in range(5)]
    for perm in perms:
        assert sorted(perm.tolist()) == list(range(6)) and (perm != torch.arange(6)).all()
    assert len({tuple(p.tolist()) for p in perms}) > 1


def test_mean_and_resample_ablation_sweeps_by_hand(tiny_model):
    tokens, reference = tiny_model.to_tokens(CLEAN), tiny_model.to_tokens(REFERENCE)
    metric = name_logit_diff(tiny_model)
    _, ref_cache = tiny_model.run_with_cache(reference)
    mean = ablation_patching(tiny_model, tokens, metric, "mlp_out", ablation="mean",
                             reference=reference)
    hooks = [f"blocks.{layer}.hook_mlp_out" for layer in range(2)]
    for layer, hook in enumerate(hooks):
        ref_mean = ref_cache[hook].mean(0, keepdim=True)
        expected = run_replacing(tiny_model, tokens, metric, hook, ref_mean.expand_as)
        assert mean.values[layer].item() == pytest.approx(expected, abs=1e-5)
    with torch.no_grad():
        everything = metric(tiny_model.run_with_hooks(tokens, fwd_hooks=[
            (h, lambda a, hook: ref_cache[hook.name].mean(0, keepdim=True).expand_as(a))
            for h in hooks])).item()
        clean = metric(tiny_model(tokens)).item()
    assert mean.corrupted == pytest.approx(everything, abs=1e-5)
    assert mean.clean == pytest.approx(clean, abs=1e-5)
    resampled = ablation_patching(tiny_model, tokens, metric, "attn_out", ablation="resample",
                                  reference=reference, permutation=[3, 0, 2], layers=[1])
    hook = "blocks.1.hook_attn_out"
    expected = run_replacing(tiny_model, tokens, metric, hook, lambda a: ref_cache[hook][[3, 0, 2]])
    assert resampled.values.tolist() == pytest.approx([expected], abs=1e-5)


def test_head_means_and_mean_ablation_hooks(tiny_model):
    reference = tiny_model.to_tokens(REFERENCE)
    groups = torch.tensor([0, 1, 0, 1])
    means = head_means(tiny_model, reference, groups)
    _, cache = tiny_model.run_with_cache(reference)
    z = cache["blocks.1.attn.hook_z"]
    assert torch.allclose(means["blocks.1.attn.hook_z"][1], (z[1] + z[3]) / 2, atol=1e-6)
    assert torch.allclose(means["blocks.1.attn.hook_z"][2], (z[0] + z[2]) / 2, atol=1e-6)
    seen = {}

    def grab(act, hook):
        seen[hook.name] = act.clone()

    hooks = head_ablation_hooks(tiny_model, [(1, 2), (1, 0)], means)
    with torch.no_grad():
        tiny_model.run_with_hooks(reference, fwd_hooks=hooks + [("blocks.1.attn.hook_z", grab)])
    after = seen["blocks.1.attn.hook_z"]
    assert torch.allclose(after[:, :, [0, 2]], means["blocks.1.attn.hook_z"][:, :, [0, 2]])
    assert torch.allclose(after[:, :, [1, 3]], z[:, :, [1, 3]], atol=1e-6)


def test_embedding_noise_is_the_seeded_draw_times_the_embedding_std(tiny_model):
    tokens = tiny_model.to_tokens(CLEAN)
    _, hook = embedding_noise_hook(tiny_model, tokens, [1, -1], noise_scale=1.5, seed=4)
    gen = torch.Generator().manual_seed(4)
    draw = torch.randn(3, 2, tiny_model.cfg.d_model, generator=gen)
    std = tiny_model.W_E.detach().float().std()
    noisy = hook(torch.zeros(3, tokens.shape[1], tiny_model.cfg.d_model), hook=None)
    assert torch.allclose(noisy[:, [1, -1]], 1.5 * std * draw, atol=1e-6)
    assert noisy[:, 2:-1].abs().max() == 0 and noisy[:, 0].abs().max() == 0


def test_causal_tracing_anchors_by_hand(tiny_model):
    tokens, metric = tiny_model.to_tokens(CLEAN), name_logit_diff(tiny_model)
    name, hook = embedding_noise_hook(tiny_model, tokens, [1, 2], noise_scale=3.0, seed=0)
    with torch.no_grad():
        noisy = metric(tiny_model.run_with_hooks(tokens, fwd_hooks=[(name, hook)])).item()
        clean = metric(tiny_model(tokens)).item()
    result = causal_tracing(tiny_model, tokens, metric, noise_positions=[1, 2], layers=[1])
    assert result.clean == pytest.approx(clean, abs=1e-5)
    assert result.corrupted == pytest.approx(noisy, abs=1e-5)
    assert abs(clean - noisy) > 1e-3 and result.method == "causal tracing"
    _, cache = tiny_model.run_with_cache(tokens)
    hook_name = "blocks.1.hook_resid_pre"

    def restore_pos_3(act, hook):
        act = act.clone()
        act[:, 3] = cache[hook_name][:, 3]
        return act

    with torch.no_grad():
        restored = metric(tiny_model.run_with_hooks(tokens, fwd_hooks=[
            (name, hook), (hook_name, restore_pos_3)])).item()
    assert result.select(layer=1, pos=3).item() == pytest.approx(restored, abs=1e-5)
