"""Replayed sweeps (mi_helpers.circuits.replay): the replay reproduces the model's own
activations, and every sweep gives the same numbers replayed or through the model's
hooks, one patch per pass or many, whatever the chunk boundaries. Tiny random GPT-2
(learned positions) and the zoo's 2- and 4-layer models (rotary)."""

import weakref

import pytest
import torch

from mi_helpers import load_model
from mi_helpers.circuits import edge_memory, patching as patching_module
from mi_helpers.circuits import replay as replay_module
from mi_helpers.circuits.ablation import ablation_patching
from mi_helpers.circuits.ioi import abc_corruption, ioi_dataset
from mi_helpers.circuits.patching import TARGETS, activation_patching, default_patches_per_pass
from mi_helpers.circuits.path_patching import path_patching
from mi_helpers.circuits.replay import REPLAY_SITES, Replay, replay_unsupported, replayer
from mi_helpers.circuits.tracing import causal_tracing, embedding_noise_hook
from mi_helpers.core.hooks import hook_name

ATOL = 1e-5


@pytest.fixture(scope="module")
def zoo2l():
    return load_model("zoo-2l", device="cpu")


@pytest.fixture(params=["gpt2", "zoo2l"])
def model(request, tiny_model, zoo2l):
    return tiny_model if request.param == "gpt2" else zoo2l


def prompts(model, batch=3, n_pos=7, seed=0):
    """Random clean tokens and corrupted copies that differ at positions 2 and 3."""
    gen = torch.Generator().manual_seed(seed)
    clean = torch.randint(1, model.cfg.d_vocab, (batch, n_pos), generator=gen)
    clean[:, 0] = 0
    corrupted = clean.clone()
    corrupted[:, 2:4] = torch.randint(1, model.cfg.d_vocab, (batch, 2), generator=gen)
    return clean, corrupted


def weighted_metric(batch):
    """A different weight for each prompt, so a patch landing on the wrong prompt (or the
    wrong copy of the batch) changes the value."""
    weights = torch.arange(1.0, batch + 1) ** 2

    def metric(logits):
        return (weights[:, None] * logits[:, -1, :5]).sum() / weights.sum()

    return metric


# ---- the replay reproduces the model ------------------------------------------------------

def test_replay_reproduces_every_patchable_activation(model):
    clean, _ = prompts(model)
    rp = Replay(model)
    names = {(site, layer): hook_name(site, layer) for site in REPLAY_SITES
             for layer in range(model.cfg.n_layers)}
    state, logits, cache = rp.run(clean, hooks=list(names.values()))
    assert torch.allclose(state.logits, logits, atol=ATOL)
    for (site, layer), name in names.items():
        assert torch.allclose(rp.activation(state, site, layer), cache[name], atol=ATOL), name


@pytest.mark.parametrize("site", REPLAY_SITES)
def test_replaying_an_unchanged_activation_gives_the_run_s_logits(model, site):
    clean, _ = prompts(model)
    rp = Replay(model)
    state = rp.run(clean)[0]
    for layer in range(model.cfg.n_layers):
        act = rp.activation(state, site, layer)
        logits = rp.logits_after(state, site, layer, act.repeat(2, *[1] * (act.ndim - 1)))
        assert torch.allclose(logits, state.logits.repeat(2, 1, 1), atol=ATOL), (site, layer)


# ---- activation patching: replayed = hooked = one patch per pass ---------------------------

@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("per_position", [False, True])
def test_replayed_and_hooked_sweeps_agree(model, target, per_position):
    clean, corrupted = prompts(model)
    metric = weighted_metric(len(clean))
    kwargs = dict(per_position=per_position, positions=[1, 3, -1] if per_position else None)
    hooked = activation_patching(model, clean, corrupted, metric, target, replay=False,
                                 patches_per_pass=1, **kwargs)
    for per_pass in (None, 3, 1000):  # as many as fit, one that does not divide, all
        replayed = activation_patching(model, clean, corrupted, metric, target,
                                       patches_per_pass=per_pass, **kwargs)
        assert replayed.coords == hooked.coords
        assert torch.allclose(replayed.values, hooked.values, atol=ATOL), per_pass
        assert replayed.clean == pytest.approx(hooked.clean, abs=ATOL)
    batched_hooks = activation_patching(model, clean, corrupted, metric, target, replay=False,
                                        patches_per_pass=3, **kwargs)
    assert torch.allclose(batched_hooks.values, hooked.values, atol=ATOL)


def test_noising_and_one_prompt_one_patch(model):
    clean, corrupted = prompts(model)
    metric = weighted_metric(len(clean))
    hooked = activation_patching(model, clean, corrupted, metric, "z", mode="noise", replay=False)
    replayed = activation_patching(model, clean, corrupted, metric, "z", mode="noise",
                                   patches_per_pass=5)
    assert torch.allclose(replayed.values, hooked.values, atol=ATOL)
    single = activation_patching(model, clean[:1], corrupted[:1], weighted_metric(1), "z",
                                 layers=[1], heads=[2])  # N = 1 prompt, N = 1 patch
    one = activation_patching(model, clean[:1], corrupted[:1], weighted_metric(1), "z",
                              layers=[1], heads=[2], replay=False)
    assert single.values.shape == (1, 1)
    assert torch.allclose(single.values, one.values, atol=ATOL)


def test_a_misaligned_patch_would_be_seen(tiny_model):
    """The weighted metric tells prompts apart: patching prompt 0's source into prompt 1
    gives another value, so the agreement above is not a coincidence."""
    clean, corrupted = prompts(tiny_model)
    metric = weighted_metric(len(clean))
    right = activation_patching(tiny_model, clean, corrupted, metric, "resid_pre", layers=[1])
    swapped = activation_patching(tiny_model, clean[[1, 0, 2]], corrupted, metric, "resid_pre",
                                  layers=[1])
    assert (right.values - swapped.values).abs().max() > 100 * ATOL


def test_ablations_and_causal_tracing_replay(model):
    clean, _ = prompts(model, batch=4)
    metric = weighted_metric(len(clean))
    for ablation in ("zero", "mean", "resample"):
        results = [ablation_patching(model, clean, metric, "z", ablation=ablation, replay=r,
                                     patches_per_pass=p) for r, p in ((False, 1), (True, 3))]
        assert torch.allclose(results[0].values, results[1].values, atol=ATOL), ablation
    traced = [causal_tracing(model, clean, metric, [2, 3], replay=r, patches_per_pass=p)
              for r, p in ((False, 1), (True, 4))]
    assert torch.allclose(traced[0].values, traced[1].values, atol=ATOL)
    assert traced[0].corrupted == pytest.approx(traced[1].corrupted, abs=ATOL)


# ---- path patching ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ioi():
    model = load_model("zoo-4l", device="cpu")
    data = ioi_dataset(model, 8, seed=0)
    return model, data, abc_corruption(data, model)


@pytest.mark.parametrize("receivers, positioned", [
    ("logits", False), ([(2, 1, "q"), (3, 0, "v")], False), ([(2, 1, "k"), (2, 4, "q")], True)])
def test_replayed_and_hooked_path_patching_agree(ioi, receivers, positioned):
    model, data, abc = ioi
    senders = [[], [(0, 7)], [(1, 3), (0, 2)], [(1, 5)], [(0, 0), (0, 1)]]
    positions = data.word_positions["end"] if positioned else None
    kwargs = dict(senders=senders, receiver_positions=positions)
    hooked = path_patching(model, data.tokens, abc.tokens, data.metric, receivers, replay=False,
                           patches_per_pass=1, **kwargs)
    assert (hooked.values - hooked.values[0]).abs().max() > 100 * ATOL  # the senders matter
    for per_pass in (None, 2, 1):
        replayed = path_patching(model, data.tokens, abc.tokens, data.metric, receivers,
                                 patches_per_pass=per_pass, **kwargs)
        assert torch.allclose(replayed.values, hooked.values, atol=ATOL), per_pass


def test_path_patching_grid_replayed(ioi):
    model, data, abc = ioi
    hooked, replayed = (path_patching(model, data.tokens, abc.tokens, data.metric,
                                      [(3, 2, "q")], replay=r) for r in (False, True))
    assert torch.allclose(replayed.values, hooked.values, atol=ATOL, equal_nan=True)


# ---- when a sweep is not replayed, and how many patches share a pass --------------------------

def test_what_cannot_be_replayed(tiny_model, zoo2l):
    noise = embedding_noise_hook(tiny_model, torch.zeros(2, 5, dtype=torch.long), [1])
    assert replay_unsupported(tiny_model, [noise], "z") is None
    assert "forward hooks at ['blocks.0.hook_resid_pre']" in replay_unsupported(
        tiny_model, [("blocks.0.hook_resid_pre", lambda a, hook: a)])
    assert "site 'mlp_post'" in replay_unsupported(tiny_model, site="mlp_post")
    assert replayer(zoo2l, replay=False) is None
    assert isinstance(replayer(zoo2l), Replay)


def test_a_replay_that_does_not_reproduce_the_model_is_refused(tiny_model, monkeypatch):
    monkeypatch.setattr(replay_module.edge_model, "LOGIT_TOLERANCE", -1.0)
    clean, corrupted = prompts(tiny_model)
    with pytest.raises(ValueError, match="replay=False"):
        activation_patching(tiny_model, clean, corrupted, weighted_metric(3), "z")
    hooked = activation_patching(tiny_model, clean, corrupted, weighted_metric(3), "z",
                                 replay=False)
    assert hooked.values.shape == (2, 4)


def test_patches_per_pass_follow_the_memory_budget(tiny_model):
    tokens = torch.zeros(3, 7, dtype=torch.long)
    need = edge_memory.estimate_bytes(tiny_model, 3, 7, "replay")
    assert edge_memory.estimate_bytes(tiny_model, 3, 7, "hooks") == 2 * need
    assert default_patches_per_pass(tiny_model, tokens, None, 5 * need, "replay") == 5
    assert default_patches_per_pass(tiny_model, tokens, None, 5 * need - 1, "replay") == 4
    assert default_patches_per_pass(tiny_model, tokens, None, need // 2, "replay") == 1
    assert default_patches_per_pass(tiny_model, tokens, 4, 4 * need, "replay") == 4
    with pytest.raises(MemoryError, match="fewer patches per pass"):
        default_patches_per_pass(tiny_model, tokens, 5, 4 * need, "replay")
    with pytest.raises(ValueError, match="memory_budget must be > 0"):
        default_patches_per_pass(tiny_model, tokens, None, 0, "replay")
    with pytest.raises(ValueError, match="unknown kind of pass"):
        edge_memory.estimate_bytes(tiny_model, 3, 7, "everything")
    cpu_default = default_patches_per_pass(tiny_model, tokens)
    assert cpu_default == edge_memory.CPU_PASS_BYTES // (2 * need)


# ---- one checked run vouches for the second -------------------------------------------------

def test_a_second_run_from_the_weights_matches_the_model(model):
    clean, corrupted = prompts(model)
    rp = Replay(model)
    rp.run(clean)
    state = rp.run_from_weights(corrupted)
    checked, logits, cache = rp.run(corrupted, hooks=[hook_name("z", 1)])
    assert torch.allclose(state.logits, logits, atol=ATOL)
    assert torch.allclose(state.z[1], cache[hook_name("z", 1)], atol=ATOL)
    assert torch.allclose(state.embed, checked.embed, atol=1e-6)


def test_what_a_checked_run_does_not_vouch_for(model, monkeypatch):
    monkeypatch.setattr(replay_module, "_VOUCHED", weakref.WeakKeyDictionary())
    clean, corrupted = prompts(model)
    rp = Replay(model)
    assert rp.run_from_weights(corrupted) is None  # nothing checked yet
    rp.run(clean, fwd_hooks=[embedding_noise_hook(model, clean, [1])])
    assert rp.run_from_weights(corrupted) is None  # hooks changed the checked run's input
    rp.run(clean)
    assert rp.run_from_weights(corrupted[:, :-1]) is None  # another shape (rotary angles)
    assert rp.run_from_weights(corrupted) is not None
    real = rp._embed  # embeddings the weights do not give (a model the lookup misreads)
    monkeypatch.setattr(rp, "_embed", lambda tokens: real(tokens) + 1e-3)
    rp.run(clean)
    assert rp.run_from_weights(corrupted) is None


def test_denoising_sweeps_run_the_model_once_per_weights(model, monkeypatch):
    """The patched run is checked against the model; the clean run is replayed from the
    weights; a later sweep on the same weights and shapes runs the model not at all, a
    change to the weights (even through ``.data``) brings the check back. With corruption
    hooks (causal tracing) the model runs both."""
    monkeypatch.setattr(replay_module, "_VOUCHED", weakref.WeakKeyDictionary())
    calls = []
    for module in (replay_module, patching_module):
        real = module.run_cached
        monkeypatch.setattr(module, "run_cached",
                            lambda *a, _real=real, **k: calls.append(1) or _real(*a, **k))
    clean, corrupted = prompts(model)
    metric = weighted_metric(len(clean))
    first = activation_patching(model, clean, corrupted, metric, "z")
    assert len(calls) == 1
    again = activation_patching(model, clean, corrupted, metric, "z")
    assert len(calls) == 1 and torch.equal(first.values, again.values)
    path_patching(model, clean, corrupted, metric)
    assert len(calls) == 1
    weight = next(model.parameters())
    saved = weight.detach().clone()
    try:
        weight.data[0] += 1.0  # no version bump: only the bytes say it changed
        changed = activation_patching(model, clean, corrupted, metric, "z")
        assert len(calls) == 2 and not torch.equal(changed.values, first.values)
    finally:
        weight.data.copy_(saved)
    activation_patching(model, clean, None, metric, "resid_pre",
                        corruption_hooks=[embedding_noise_hook(model, clean, [1])])
    assert len(calls) == 4


def test_big_models_are_checked_on_every_sweep(tiny_model, monkeypatch):
    """Above FINGERPRINT_MAX_BYTES hashing the weights would cost more than the check."""
    monkeypatch.setattr(replay_module, "_VOUCHED", weakref.WeakKeyDictionary())
    assert replay_module._fingerprint(tiny_model) is not None
    monkeypatch.setattr(replay_module, "FINGERPRINT_MAX_BYTES", 1000)
    assert replay_module._fingerprint(tiny_model) is None
    clean, corrupted = prompts(tiny_model)
    Replay(tiny_model).run(clean)
    assert not replay_module._VOUCHED and Replay(tiny_model).run_from_weights(clean) is None


def test_fingerprint_size_limit_and_devices(tiny_model, monkeypatch):
    """Fingerprinted up to exactly FINGERPRINT_MAX_BYTES parameter bytes, not above; a model
    with any parameter off the CPU is not fingerprinted (hashing it would cost a copy)."""
    from types import SimpleNamespace
    size = sum(p.numel() * p.element_size() for p in tiny_model.parameters())
    monkeypatch.setattr(replay_module, "FINGERPRINT_MAX_BYTES", size)
    digest = replay_module._fingerprint(tiny_model)
    assert isinstance(digest, bytes) and len(digest) > 0
    monkeypatch.setattr(replay_module, "FINGERPRINT_MAX_BYTES", size - 1)
    assert replay_module._fingerprint(tiny_model) is None
    split = SimpleNamespace(parameters=lambda: [torch.ones(3), torch.ones(3, device="meta")])
    assert replay_module._fingerprint(split) is None


def test_the_check_bounds_the_relative_logit_difference(model, monkeypatch):
    """A run is refused when its largest absolute logit difference, over the model's largest
    absolute logit (at least 1), exceeds LOGIT_TOLERANCE, and accepted below it: a planted
    difference of -d in one replayed logit sits just above or below the tolerance."""
    clean, _ = prompts(model)
    rp = Replay(model)
    real_cache, d = rp._cache, 0.1
    scale = max(1.0, model(clean).abs().max().item())

    def shifted(embed):
        state = real_cache(embed)
        state.logits = state.logits.clone()
        state.logits[1, -1, 3] -= d
        return state

    monkeypatch.setattr(rp, "_cache", shifted)
    monkeypatch.setattr(replay_module.edge_model, "LOGIT_TOLERANCE", 0.9 * d / scale)
    with pytest.raises(ValueError, match="does not reproduce"):
        rp.run(clean)
    monkeypatch.setattr(replay_module.edge_model, "LOGIT_TOLERANCE", 1.1 * d / scale)
    rp.run(clean)


def test_an_unchecked_run_vouches_for_no_other_replay(model, monkeypatch):
    """Runs with corruption hooks, or whose embeddings the weights do not give, leave
    nothing for a later Replay of the same model to trust."""
    monkeypatch.setattr(replay_module, "_VOUCHED", weakref.WeakKeyDictionary())
    clean, corrupted = prompts(model)
    Replay(model).run(clean, fwd_hooks=[embedding_noise_hook(model, clean, [1])])
    assert Replay(model).run_from_weights(corrupted) is None
    rp = Replay(model)
    real = rp._embed
    monkeypatch.setattr(rp, "_embed", lambda tokens: real(tokens) + 1e-3)
    rp.run(clean)
    assert Replay(model).run_from_weights(corrupted) is None
    Replay(model).run(clean)
    assert Replay(model).run_from_weights(corrupted) is not None


def test_resid_post_of_a_four_layer_model(ioi):
    """resid_post at layer l is resid_pre at l + 1 (the final residual after the last): on
    four layers, where layer l - 1 would be another layer (on two it wraps to the right one)."""
    model, data, _ = ioi
    rp = Replay(model)
    names = [hook_name("resid_post", layer) for layer in range(model.cfg.n_layers)]
    state, _, cache = rp.run(data.tokens, hooks=names)
    for layer, name in enumerate(names):
        assert torch.allclose(rp.activation(state, "resid_post", layer), cache[name],
                              atol=ATOL), name
