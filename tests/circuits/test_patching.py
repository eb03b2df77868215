"""Activation patching: agreement with transformer_lens.patching, identities, ablations,
causal tracing and bad input. Tiny random models only (GPT-2 from conftest, and a
rotary GPT-NeoX built here), no downloads."""

import pandas as pd
import pytest
import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM
from transformer_lens import patching as tl_patching

from mi_helpers.core.models import load_model
from mi_helpers.circuits.ablation import ablation_patching, derangement
from mi_helpers.circuits.patching import (PatchTarget, activation_patching, patch_sweep,
                                          patch_target, set_pos)
from mi_helpers.circuits.tracing import causal_tracing, embedding_noise_hook
from mi_helpers.core.results import normalised_score
from mi_helpers.zoo.tokenizer import build_tokenizer

CLEAN = ["Mary likes the cat", "John likes the dog"]
CORRUPTED = ["John likes the cat", "Mary likes the dog"]


@pytest.fixture(scope="module")
def tiny_neox(tmp_path_factory):
    """A random 2-layer Pythia-style GPT-NeoX (rotary, parallel attention and MLP)."""
    tokenizer = build_tokenizer()
    torch.manual_seed(0)
    config = GPTNeoXConfig(vocab_size=len(tokenizer), max_position_embeddings=64,
                           hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=128, rotary_pct=0.25, bos_token_id=0,
                           eos_token_id=0)
    out = tmp_path_factory.mktemp("tiny-neox")
    GPTNeoXForCausalLM(config).eval().save_pretrained(out)
    tokenizer.save_pretrained(out)
    return load_model(str(out), device="cpu")


@pytest.fixture(params=["gpt2", "neox"])
def model(request, tiny_model, tiny_neox):
    return tiny_model if request.param == "gpt2" else tiny_neox


def name_logit_diff(model):
    """Mean ``logit(Mary) - logit(John)`` at the last position, as a scalar."""
    mary, john = (int(model.to_tokens(" " + w, prepend_bos=False)[0, 0]) for w in ("Mary", "John"))
    return lambda logits: (logits[:, -1, mary] - logits[:, -1, john]).mean()


def no_hooks_left(model):
    return all(not hook.fwd_hooks for hook in model.hook_dict.values())


# ---- agreement with transformer_lens.patching -------------------------------------------

ALL_POS = [  # (our target, per_position, the TransformerLens function that does the same)
    ("resid_pre", True, tl_patching.get_act_patch_resid_pre),
    ("attn_out", True, tl_patching.get_act_patch_attn_out),
    ("mlp_out", True, tl_patching.get_act_patch_mlp_out),
    ("z", False, tl_patching.get_act_patch_attn_head_out_all_pos),
    ("z", True, tl_patching.get_act_patch_attn_head_out_by_pos),
    ("q", False, tl_patching.get_act_patch_attn_head_q_all_pos),
    ("k", False, tl_patching.get_act_patch_attn_head_k_all_pos),
    ("v", False, tl_patching.get_act_patch_attn_head_v_all_pos),
    ("pattern", False, tl_patching.get_act_patch_attn_head_pattern_all_pos),
]


@pytest.mark.parametrize("target, per_position, theirs", ALL_POS,
                         ids=[f"{t}-{'pos' if p else 'all'}" for t, p, _ in ALL_POS])
def test_agrees_with_transformer_lens(model, target, per_position, theirs):
    clean, corrupted = model.to_tokens(CLEAN), model.to_tokens(CORRUPTED)
    metric = name_logit_diff(model)
    with torch.no_grad():
        _, clean_cache = model.run_with_cache(clean)
        expected = theirs(model, corrupted, clean_cache, metric)
    ours = activation_patching(model, clean, corrupted, metric, target, per_position=per_position)
    assert ours.values.shape == expected.shape
    assert (ours.values - expected).abs().max() < 1e-4


BY_POS = [  # a few patches (layer 1, two positions, two heads), in our axis order
    ("q", tl_patching.get_act_patch_attn_head_q_by_pos),
    ("k", tl_patching.get_act_patch_attn_head_k_by_pos),
    ("v", tl_patching.get_act_patch_attn_head_v_by_pos),
    ("pattern", tl_patching.get_act_patch_attn_head_pattern_by_pos),
]


@pytest.mark.parametrize("target, theirs", BY_POS, ids=[t for t, _ in BY_POS])
def test_agrees_with_transformer_lens_by_position(model, target, theirs):
    clean, corrupted = model.to_tokens(CLEAN), model.to_tokens(CORRUPTED)
    metric = name_logit_diff(model)
    last = clean.shape[1] - 1
    rows = [(1, pos, head) for pos in (1, last) for head in (0, 3)]
    index_df = pd.DataFrame(rows, columns=["layer", "pos", "head_index"])  # our axis order
    if target == "pattern":  # their pattern setter takes (layer, head_index, dest_pos)
        index_df = index_df[["layer", "head_index", "pos"]].rename(columns={"pos": "dest_pos"})
    with torch.no_grad():
        _, clean_cache = model.run_with_cache(clean)
        expected = theirs(model, corrupted, clean_cache, metric, index_df=index_df,
                          index_axis_names=None)
    ours = activation_patching(model, clean, corrupted, metric, target,
                               per_position=True, layers=[1], positions=[1, -1], heads=[0, 3])
    pos_axis = "dest_pos" if target == "pattern" else "pos"
    assert ours.coords == {"layer": [1], pos_axis: [1, last], "head": [0, 3]}
    assert (ours.values.flatten() - expected).abs().max() < 1e-4


def test_noising_agrees_with_transformer_lens(tiny_model):
    clean, corrupted = tiny_model.to_tokens(CLEAN), tiny_model.to_tokens(CORRUPTED)
    metric = name_logit_diff(tiny_model)
    with torch.no_grad():
        _, corrupted_cache = tiny_model.run_with_cache(corrupted)
        expected = tl_patching.get_act_patch_attn_head_out_all_pos(
            tiny_model, clean, corrupted_cache, metric)
    ours = activation_patching(tiny_model, clean, corrupted, metric, "z", mode="noise")
    assert (ours.values - expected).abs().max() < 1e-4


def test_patches_per_pass_does_not_change_results(tiny_model):
    metric = name_logit_diff(tiny_model)
    one, seven = (activation_patching(tiny_model, CLEAN, CORRUPTED, metric, "z", per_position=True,
                                      patches_per_pass=n) for n in (1, 7))
    assert torch.allclose(one.values, seven.values, atol=1e-5)


@pytest.mark.parametrize("target, kwargs", [("resid_pre", {"per_position": True}),
                                            ("z", {}), ("mlp_out", {"mode": "noise"})])
def test_a_position_metric_gives_the_same_sweep_unembedding_one_position(tiny_model, target,
                                                                          kwargs, monkeypatch):
    """Declaring the one position per prompt a metric reads (the last here, given as -1 and
    as an index) changes no value of a replayed sweep; the replay then unembeds only there."""
    from mi_helpers.core.metrics import PositionMetric, PositionReader

    model = tiny_model  # a GPT-2: replayed
    plain = name_logit_diff(model)
    full = activation_patching(model, CLEAN, CORRUPTED, plain, target, **kwargs)
    rows = []
    real = PositionReader.read_logits

    def counting(self, x, unembed):
        if self.read_positions is not None:
            rows.append(len(x))
        return real(self, x, unembed)

    monkeypatch.setattr(PositionReader, "read_logits", counting)
    for last in (-1, model.to_tokens(CLEAN).shape[1] - 1):
        declared = PositionMetric(plain, torch.full((len(CLEAN),), last))
        fast = activation_patching(model, CLEAN, CORRUPTED, declared, target, **kwargs)
        assert torch.allclose(full.values, fast.values, atol=1e-5), target
        assert rows, "the replay should unembed only the declared positions"
        rows.clear()


def test_a_position_metric_that_reads_elsewhere_is_refused(tiny_model):
    from mi_helpers.core.metrics import PositionMetric

    reads_first = PositionMetric(lambda logits: logits[:, 0, 5].mean(), torch.full((2,), -1))
    with pytest.raises(ValueError, match="outside its declared positions"):
        activation_patching(tiny_model, CLEAN, CORRUPTED, reads_first, "resid_pre")
    assert activation_patching(tiny_model, CLEAN, CORRUPTED, reads_first, "resid_pre",
                               replay=False).values.isfinite().all()  # hooks: every logit


# ---- identities -------------------------------------------------------------------------

@pytest.mark.parametrize("target", ["resid_pre", "attn_out", "z", "pattern"])
def test_patching_clean_into_clean_changes_nothing(tiny_model, target):
    metric = name_logit_diff(tiny_model)
    result = activation_patching(tiny_model, CLEAN, CLEAN, metric, target, per_position=True)
    assert torch.allclose(result.values, torch.tensor(result.clean), atol=1e-5)


def test_whole_last_residual_restores_the_clean_metric(model):
    metric = name_logit_diff(model)
    denoised = activation_patching(model, CLEAN, CORRUPTED, metric, "resid_post", layers=[-1])
    assert abs(denoised.clean - denoised.corrupted) > 1e-6
    assert torch.allclose(denoised.score, torch.ones(1), atol=1e-4)
    noised = activation_patching(model, CLEAN, CORRUPTED, metric, "resid_pre", mode="noise")
    assert torch.allclose(noised.score, torch.zeros(model.cfg.n_layers), atol=1e-4)


def test_normalised_score_anchors():
    assert normalised_score(torch.tensor([2.0, 1.0, 3.0]), 3.0, 1.0).tolist() == [0.5, 0.0, 1.0]
    with pytest.raises(ValueError, match="undefined"):
        normalised_score(torch.tensor([1.0]), 2.0, 2.0)


def test_custom_target_is_a_hook_and_a_setter(tiny_model):
    metric = name_logit_diff(tiny_model)
    custom = PatchTarget("resid_pre", ("pos",), (1,), set_pos)
    ours = activation_patching(tiny_model, CLEAN, CORRUPTED, metric, custom)
    named = activation_patching(tiny_model, CLEAN, CORRUPTED, metric, "resid_pre",
                                per_position=True)
    assert torch.equal(ours.values, named.values) and ours.axes == ("layer", "pos")


# ---- ablations and causal tracing -------------------------------------------------------

def test_zero_ablating_attn_out_equals_zeroing_it_by_hand(model):
    tokens, metric = model.to_tokens(CLEAN), name_logit_diff(model)
    result = ablation_patching(model, tokens, metric, "attn_out", ablation="zero")
    for layer in range(model.cfg.n_layers):
        with torch.no_grad():
            logits = model.run_with_hooks(tokens, fwd_hooks=[(
                f"blocks.{layer}.hook_attn_out", lambda act, hook: torch.zeros_like(act))])
        assert abs(result.values[layer].item() - metric(logits).item()) < 1e-5
    assert no_hooks_left(model)


def test_resample_with_identity_permutation_is_a_no_op(tiny_model):
    metric = name_logit_diff(tiny_model)
    result = ablation_patching(tiny_model, CLEAN, metric, "z", ablation="resample",
                               permutation=[0, 1], per_position=True)
    assert torch.allclose(result.values, torch.tensor(result.clean), atol=1e-5)


def test_resample_and_mean_ablations_change_the_metric(tiny_model):
    metric = name_logit_diff(tiny_model)
    resampled = ablation_patching(tiny_model, CLEAN, metric, "mlp_out", ablation="resample")
    mean = ablation_patching(tiny_model, CLEAN, metric, "mlp_out", ablation="mean",
                             reference=CLEAN + CORRUPTED)
    for result in (resampled, mean):
        assert result.values.shape == (tiny_model.cfg.n_layers,)
        assert (result.values - result.clean).abs().max() > 1e-6
    single = ablation_patching(tiny_model, CLEAN[:1], metric, "mlp_out", ablation="mean",
                               reference=CLEAN[:1])  # the mean of one prompt is itself
    assert torch.allclose(single.values, torch.tensor(single.clean), atol=1e-5)


def test_derangement_moves_every_prompt():
    perm = derangement(5, seed=3)
    assert sorted(perm.tolist()) == list(range(5))
    assert (perm != torch.arange(5)).all()


def test_causal_tracing_noise_changes_and_restoring_restores(model):
    metric = name_logit_diff(model)
    whole = causal_tracing(model, CLEAN, metric, noise_positions=[-4, -3], per_position=False)
    assert abs(whole.clean - whole.corrupted) > 1e-4
    assert torch.allclose(whole.score, torch.ones(model.cfg.n_layers), atol=1e-4)
    by_pos = causal_tracing(model, CLEAN, metric, noise_positions=[-4, -3], layers=[0])
    n_pos = by_pos.values.shape[1]
    untouched = [p for p in range(n_pos) if p not in (n_pos - 4, n_pos - 3)]
    assert torch.allclose(by_pos.score[0, untouched], torch.zeros(len(untouched)), atol=1e-4)


def test_embedding_noise_is_fixed_and_scaled(tiny_model):
    tokens = tiny_model.to_tokens(CLEAN)
    name, hook = embedding_noise_hook(tiny_model, tokens, [1], noise_scale=3.0, seed=0)
    embed = torch.zeros(2 * len(tokens), tokens.shape[1], tiny_model.cfg.d_model)
    noisy = hook(embed, hook=None)  # two copies of the batch get the same noise
    assert name == "hook_embed" and torch.equal(noisy[:2], noisy[2:])
    assert noisy[:, [0, 2, 3, 4]].abs().max() == 0
    ratio = noisy[:, 1].std() / tiny_model.W_E.std()
    assert 2.0 < ratio < 4.0


# ---- bad input --------------------------------------------------------------------------

def test_prompts_of_different_lengths_are_refused(tiny_model):
    with pytest.raises(ValueError, match="same number of tokens"):
        activation_patching(tiny_model, CLEAN, ["John likes the old cat", "Mary likes a dog"],
                            name_logit_diff(tiny_model), "z")


def test_non_scalar_metric_is_refused_and_leaves_no_hooks(tiny_model):
    per_prompt = lambda logits: logits[:, -1, 0]  # noqa: E731  (not reduced over the batch)
    with pytest.raises(ValueError, match=r"must return a scalar.*\.mean\(\)"):
        activation_patching(tiny_model, CLEAN, CORRUPTED, per_prompt, "z")
    tokens = tiny_model.to_tokens(CLEAN)
    with torch.no_grad():
        _, cache = tiny_model.run_with_cache(tokens)
    with pytest.raises(ValueError, match="must return a scalar"):  # raised inside the sweep
        patch_sweep(tiny_model, tokens, cache, per_prompt, "attn_out")
    assert no_hooks_left(tiny_model)


def test_an_error_inside_a_patched_run_leaves_no_hooks(tiny_model):
    def broken_setter(act, source, index):
        raise RuntimeError("setter failed")

    broken = PatchTarget("attn_out", (), (), broken_setter)
    with pytest.raises(RuntimeError, match="setter failed"):
        activation_patching(tiny_model, CLEAN, CORRUPTED, name_logit_diff(tiny_model), broken)
    assert no_hooks_left(tiny_model)


def test_a_source_must_cover_the_sweep(tiny_model):
    tokens, metric = tiny_model.to_tokens(CLEAN), name_logit_diff(tiny_model)
    with pytest.raises(KeyError, match="no activation for 'blocks.0.hook_attn_out'"):
        patch_sweep(tiny_model, tokens, {}, metric, "attn_out")
    wrong_batch = {f"blocks.{layer}.hook_attn_out": torch.zeros(3, tokens.shape[1], 32)
                   for layer in range(tiny_model.cfg.n_layers)}
    with pytest.raises(ValueError, match="batch of 3 but the patched run has 2 prompts"):
        patch_sweep(tiny_model, tokens, wrong_batch, metric, "attn_out")


def test_unknown_targets_and_hooks_are_refused(tiny_model, tiny_neox):
    metric = name_logit_diff(tiny_neox)
    with pytest.raises(ValueError, match="unknown patch target 'attn_output'.*attn_out"):
        patch_target("attn_output")
    with pytest.raises(ValueError, match="cannot patch 'resid_mid'.*reach only the MLP"):
        activation_patching(tiny_neox, CLEAN, CORRUPTED, metric, "resid_mid")
    with pytest.raises(ValueError, match="unknown site 'zz'.*'z'"):
        PatchTarget("zz", ("head",), (2,), set_pos)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"layers": [2]}, IndexError, r"layer index 2 is out of range.*0\.\.1"),
    ({"heads": [4]}, IndexError, r"head index 4 is out of range.*0\.\.3"),
    ({"heads": [-5]}, IndexError, "head index -5 is out of range"),
    ({"positions": [0], "per_position": False}, ValueError, "per_position=True"),
    ({"mode": "sideways"}, ValueError, "'denoise' or 'noise'"),
], ids=["layer", "head", "negative-head", "positions-without-per-position", "direction"])
def test_out_of_range_indices_are_refused(tiny_model, kwargs, error, message):
    with pytest.raises(error, match=message):
        activation_patching(tiny_model, CLEAN, CORRUPTED, name_logit_diff(tiny_model), "z",
                            **kwargs)


def test_bad_ablations_are_refused(tiny_model):
    metric = name_logit_diff(tiny_model)
    with pytest.raises(ValueError, match="'zero', 'mean', 'resample'"):
        ablation_patching(tiny_model, CLEAN, metric, ablation="gaussian")
    with pytest.raises(ValueError, match="reference prompts have 6 tokens"):
        ablation_patching(tiny_model, CLEAN, metric, ablation="mean",
                          reference=["Mary likes the old cat"])
    with pytest.raises(ValueError, match="permutation must hold 2 indices"):
        ablation_patching(tiny_model, CLEAN, metric, ablation="resample", permutation=[0, 5])
    with pytest.raises(ValueError, match="at least 2 prompts"):
        ablation_patching(tiny_model, CLEAN[:1], metric, ablation="resample")
