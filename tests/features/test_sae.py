import json

import pytest
import torch
from safetensors import safe_open

from mi_helpers.core.models import load_model
from mi_helpers.features.sae import (SAE_CLASSES, ActivationBuffer, NonFiniteLossError, SAEConfig,
                            ToyFeatures, build_sae, ce_loss_recovered, dead_fraction,
                            dense_fraction, feature_density, fvu, init_b_dec, l0, load_sae,
                            mmcs, resample_dead_latents, sae_metrics, save_sae, train_sae)
from mi_helpers.features.sae.io import SAES_DIR
from mi_helpers.datasets.text import corpus_sentences, token_chunks

D_IN, D_SAE = 8, 16
HOOK = "blocks.0.hook_resid_post"
ARCH_KWARGS = {
    "relu": {"l1_coefficient": 0.1},
    "topk": {"k": 4},
    "jumprelu": {"l0_coefficient": 0.1, "jumprelu_bandwidth": 0.05,
                 "jumprelu_init_threshold": 0.1},
    "gated": {"l1_coefficient": 0.1},
    "matryoshka": {"k": 4, "matryoshka_widths": [4, 8, 16]},
}
LOSS_NAMES = {"relu": {"mse", "l1"}, "topk": {"mse"}, "jumprelu": {"mse", "l0"},
              "gated": {"mse", "l1", "aux"}, "matryoshka": {"mse", "prefix_mse"}}
SAELENS_KEYS = {"relu": {"W_enc", "b_enc", "W_dec", "b_dec"},
                "topk": {"W_enc", "b_enc", "W_dec", "b_dec"},
                "jumprelu": {"W_enc", "b_enc", "W_dec", "b_dec", "threshold"},
                "gated": {"W_enc", "W_dec", "b_dec", "b_gate", "r_mag", "b_mag"},
                "matryoshka": {"W_enc", "b_enc", "W_dec", "b_dec"}}


def make_sae(arch: str, d_in: int = D_IN, d_sae: int = D_SAE, **kwargs):
    return build_sae(d_in=d_in, d_sae=d_sae, architecture=arch,
                     **{**ARCH_KWARGS[arch], **kwargs})


def perturbed(sae):
    """The SAE with every parameter moved randomly, so biases are not all zero."""
    with torch.no_grad():
        for p in sae.parameters():
            p.add_(0.1 * torch.randn_like(p))
        if hasattr(sae, "threshold"):
            sae.threshold.abs_()
    return sae


def identity_sae(d_in: int) -> object:
    """A ReLU SAE that reconstructs exactly: latents (relu(x), relu(-x)), decoder (I, -I)."""
    sae = build_sae(d_in=d_in, d_sae=2 * d_in, architecture="relu", hook_name=HOOK)
    eye = torch.eye(d_in)
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye], dim=1))
        sae.W_dec.copy_(torch.cat([eye, -eye], dim=0))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae


@pytest.fixture(scope="module")
def zoo():
    return load_model("zoo-2l", device="cpu")


@pytest.fixture(scope="module")
def zoo_tokens(zoo):
    return token_chunks(zoo, corpus_sentences(60), 32)


# ---- architectures ------------------------------------------------------------------------

@pytest.mark.parametrize("arch", sorted(SAE_CLASSES))
def test_shapes_and_named_losses(arch):
    sae = make_sae(arch)
    assert type(sae) is SAE_CLASSES[arch]
    assert sae.W_enc.shape == (D_IN, D_SAE) and sae.W_dec.shape == (D_SAE, D_IN)
    assert sae.b_dec.shape == (D_IN,)
    x = torch.randn(2, 3, D_IN)
    assert sae.encode(x).shape == (2, 3, D_SAE)
    assert sae.decode(sae.encode(x)).shape == (2, 3, D_IN)
    out = sae(x.reshape(6, D_IN))
    assert out.reconstruction.shape == (6, D_IN) and out.latents.shape == (6, D_SAE)
    assert set(out.losses) == LOSS_NAMES[arch]
    assert (out.latents >= 0).all()
    out.loss.backward()
    assert all(p.grad is not None for p in sae.parameters())


@pytest.mark.parametrize("arch", ["topk", "matryoshka"])
def test_topk_keeps_exactly_k_latents(arch):
    sae = make_sae(arch)
    with torch.no_grad():
        sae.b_enc.fill_(10.0)  # every pre-activation positive: exactly k fire, the k largest
    x = torch.randn(50, D_IN)
    latents = sae.encode(x)
    assert ((latents > 0).sum(-1) == 4).all()
    pre = sae.pre_activations(x)
    assert torch.equal(latents > 0, pre >= pre.topk(4, dim=-1).values[:, -1:])


def test_config_errors():
    with pytest.raises(ValueError, match=r"k=20 is larger than the dictionary d_sae=16"):
        SAEConfig(d_in=D_IN, d_sae=16, architecture="topk", k=20)
    with pytest.raises(ValueError, match="needs k"):
        SAEConfig(d_in=D_IN, d_sae=16, architecture="topk")
    with pytest.raises(ValueError, match="unknown SAE architecture 'relux'"):
        SAEConfig(d_in=D_IN, d_sae=16, architecture="relux")
    with pytest.raises(ValueError, match="d_sae must be a positive int"):
        SAEConfig(d_in=D_IN, d_sae=0)
    with pytest.raises(ValueError, match="end at d_sae=16"):
        SAEConfig(d_in=D_IN, d_sae=16, architecture="matryoshka", k=2,
                  matryoshka_widths=[4, 8])
    with pytest.raises(ValueError, match="unknown SAEConfig fields"):
        SAEConfig.from_dict({"d_in": 4, "d_sae": 8, "dsae": 8})


@pytest.mark.parametrize("arch", sorted(SAE_CLASSES))
def test_width_mismatch_is_a_clear_error(arch):
    sae = make_sae(arch)
    with pytest.raises(ValueError, match=rf"activations have width 7 .* this SAE has d_in={D_IN}"):
        sae(torch.randn(4, 7))
    with pytest.raises(ValueError, match="width 7"):
        sae.encode(torch.randn(2, 3, 7))


def test_unit_norm_decoder():
    sae = make_sae("topk")
    with torch.no_grad():
        sae.W_dec.mul_(torch.rand(D_SAE, 1) * 3)
    sae.normalize_decoder()
    assert torch.allclose(sae.W_dec.norm(dim=1), torch.ones(D_SAE), atol=1e-6)
    toy = ToyFeatures(n_features=16, d=D_IN, p_fire=0.2)
    train_sae(sae, toy.batches(64), steps=20, lr=1e-2, progress=False)
    assert torch.allclose(sae.W_dec.norm(dim=1), torch.ones(D_SAE), atol=1e-5)


@pytest.mark.parametrize("arch", sorted(SAE_CLASSES))
def test_every_architecture_trains(arch):
    toy = ToyFeatures(n_features=16, d=D_IN, p_fire=0.15)
    sae = make_sae(arch)
    history = train_sae(sae, toy.batches(256), steps=150, lr=3e-3, log_every=10,
                        progress=False)
    assert history.step[0] == 0 and history.step[-1] == 149
    assert history.mse[-1] < 0.5 * history.mse[0], history
    assert all(torch.isfinite(p).all() for p in sae.parameters())


def test_jumprelu_threshold_learns_through_the_pseudo_derivative():
    sae = make_sae("jumprelu", jumprelu_bandwidth=10.0)  # every pre-activation in the window
    out = sae(torch.randn(32, D_IN))
    out.losses["l0"].backward()
    assert (sae.threshold.grad < 0).all()  # raising the thresholds lowers L0
    assert sae.W_enc.grad is None or torch.count_nonzero(sae.W_enc.grad) == 0


# ---- save / load --------------------------------------------------------------------------

@pytest.mark.parametrize("arch", sorted(SAE_CLASSES))
def test_save_load_round_trip_is_exact(arch, tmp_path):
    sae = perturbed(make_sae(arch, hook_name=HOOK, model_name="zoo-2l"))
    folder = save_sae(sae, tmp_path / arch, feature_density=torch.rand(D_SAE))
    assert {p.name for p in folder.iterdir()} == {"cfg.json", "sae_weights.safetensors",
                                                 "sparsity.safetensors"}
    cfg = json.loads((folder / "cfg.json").read_text())
    assert cfg["architecture"] == {"relu": "standard", "matryoshka": "topk"}.get(arch, arch)
    assert (cfg["d_in"], cfg["d_sae"], cfg["metadata"]["hook_name"]) == (D_IN, D_SAE, HOOK)
    with safe_open(str(folder / "sae_weights.safetensors"), framework="pt") as f:
        assert set(f.keys()) == SAELENS_KEYS[arch]
        assert f.get_tensor("W_enc").shape == (D_IN, D_SAE)
        assert f.get_tensor("W_dec").shape == (D_SAE, D_IN)
    loaded = load_sae(folder)
    assert type(loaded) is type(sae) and loaded.cfg == sae.cfg
    for name, value in sae.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    x = torch.randn(10, D_IN)
    assert torch.equal(loaded.reconstruct(x), sae.reconstruct(x))


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="cfg.json"):
        load_sae(tmp_path)
    folder = save_sae(make_sae("relu"), tmp_path / "sae")
    cfg = json.loads((folder / "cfg.json").read_text())
    cfg["metadata"]["mi_helpers"]["d_sae"] = 32
    (folder / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="contradict"):
        load_sae(folder)
    cfg["d_sae"] = 32  # now consistent, but the weights are for 16 latents
    (folder / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="needs"):
        load_sae(folder)


def test_load_a_saelens_written_config(tmp_path):
    sae = perturbed(make_sae("jumprelu"))
    folder = save_sae(sae, tmp_path / "sae")
    cfg = json.loads((folder / "cfg.json").read_text())
    del cfg["metadata"]["mi_helpers"]  # as SAELens itself writes it
    (folder / "cfg.json").write_text(json.dumps(cfg))
    loaded = load_sae(folder)
    x = torch.randn(10, D_IN)
    assert loaded.cfg.architecture == "jumprelu"
    assert torch.equal(loaded.encode(x), sae.encode(x))


# ---- training: failure modes --------------------------------------------------------------

def constant_schedule(**kwargs):
    return dict(lr_decay_steps=0, sparsity_warmup_steps=0, progress=False, **kwargs)


def test_nan_batch_stops_with_the_last_good_parameters():
    batches = [torch.randn(64, D_IN) for _ in range(5)] + [torch.full((64, D_IN), float("nan"))]
    torch.manual_seed(1)
    sae = make_sae("relu")
    with pytest.raises(NonFiniteLossError, match="not finite at step 5") as info:
        train_sae(sae, iter(batches), steps=10, lr=1e-2, **constant_schedule())
    assert info.value.step == 5 and info.value.good_step == 4
    assert "step 4" in str(info.value)
    torch.manual_seed(1)
    reference = make_sae("relu")  # the same init, trained on the 4 batches before step 4
    train_sae(reference, iter(batches[:4]), steps=4, lr=1e-2, **constant_schedule())
    for name, value in reference.state_dict().items():
        assert torch.equal(sae.state_dict()[name], value), name


def test_a_nan_batch_at_step_1_restores_the_start():
    batches = [torch.randn(64, D_IN) for _ in range(3)]
    batches[1][5, 2] = float("nan")
    torch.manual_seed(2)
    sae = make_sae("topk")
    with pytest.raises(NonFiniteLossError, match="step 1") as info:
        train_sae(sae, iter(batches), steps=3, lr=1e-2, **constant_schedule())
    assert info.value.good_step == 0
    torch.manual_seed(2)
    reference = make_sae("topk")
    init_b_dec(reference, batches[0])
    for name, value in reference.state_dict().items():
        assert torch.equal(sae.state_dict()[name], value), name


def test_training_argument_errors():
    sae = make_sae("relu")
    with pytest.raises(ValueError, match="ran out after 2 steps"):
        train_sae(sae, [torch.randn(8, D_IN)] * 2, steps=5, progress=False)
    with pytest.raises(ValueError, match="autocast=True needs CUDA"):
        train_sae(sae, [torch.randn(8, D_IN)], steps=1, autocast=True, progress=False)
    with pytest.raises(ValueError, match="activations have width"):
        train_sae(sae, [torch.randn(8, D_IN + 1)], steps=1, progress=False)


def test_resampling_revives_dead_latents():
    sae = make_sae("relu")
    dead = torch.tensor([1, 5, 9])
    with torch.no_grad():
        sae.b_enc[dead] = -1e3  # never fire
    toy = ToyFeatures(n_features=16, d=D_IN, p_fire=0.2)
    history = train_sae(sae, toy.batches(128), steps=40, lr=1e-3, resample_every=20,
                        dead_after=10, lr_decay_steps=0, progress=False)
    assert history.resampled and history.resampled[0][0] == 19
    assert (sae.b_enc[dead] > -10).all()
    assert (sae.encode(toy.sample(2000)[0])[:, dead] > 0).any(0).all()


def test_resample_resets_adam_state():
    sae = make_sae("gated")
    optimizer = torch.optim.Adam(sae.parameters())
    sae(torch.randn(32, D_IN)).loss.backward()
    optimizer.step()
    dead = torch.tensor([0, 3])
    resample_dead_latents(sae, torch.randn(32, D_IN), dead, optimizer)
    for name, axis in sae.latent_axes().items():
        state = optimizer.state[getattr(sae, name)]["exp_avg"]
        assert (state.index_select(axis, dead) == 0).all(), name
    assert (sae.b_gate[dead] == 0).all()
    assert torch.allclose(sae.W_dec[dead].norm(dim=1), torch.ones(2))


# ---- activation buffer --------------------------------------------------------------------

def test_buffer_from_tensor_is_a_seeded_shuffle():
    acts = torch.arange(40.0).reshape(20, 2)
    buffer = ActivationBuffer.from_tensor(acts, acts_per_batch=5, seed=3)
    epoch = torch.cat([next(buffer) for _ in range(4)])
    assert epoch.shape == (20, 2)
    assert torch.equal(epoch[epoch[:, 0].argsort()], acts)  # every row once
    assert not torch.equal(epoch, acts)
    again = ActivationBuffer.from_tensor(acts, acts_per_batch=5, seed=3)
    assert torch.equal(torch.cat([next(again) for _ in range(4)]), epoch)
    other = ActivationBuffer.from_tensor(acts, acts_per_batch=5, seed=4)
    assert not torch.equal(torch.cat([next(other) for _ in range(4)]), epoch)
    assert next(buffer).shape == (5, 2)  # and it goes on (a new epoch)
    with pytest.raises(ValueError, match="fewer than one batch"):
        ActivationBuffer.from_tensor(acts, acts_per_batch=50)


def test_buffer_from_a_model_hook(zoo, zoo_tokens):
    tokens = zoo_tokens[:6]
    buffer = ActivationBuffer.from_model(zoo, tokens, HOOK, acts_per_batch=31, buffer_size=62,
                                         batch_size=2, seed=0)
    _, cache = zoo.run_with_cache(tokens, names_filter=[HOOK])
    expected = cache[HOOK][:, 1:].reshape(-1, zoo.cfg.d_model)  # no BOS
    rows = torch.cat([next(buffer) for _ in range(6)])  # 186 rows = one pass over tokens
    assert rows.shape == (186, zoo.cfg.d_model)
    distance = torch.cdist(rows, expected, compute_mode="donot_use_mm_for_euclid_dist")
    assert distance.min(dim=1).values.max() < 1e-4
    bos = cache[HOOK][0, 0]
    assert (rows - bos).norm(dim=1).min() > 1e-2


def test_unknown_hook_is_a_clear_error(zoo, zoo_tokens):
    with pytest.raises(KeyError, match="blocks.0.hook_resid_post"):
        ActivationBuffer.from_model(zoo, zoo_tokens, "blocks.0.hook_resid_psot")


# ---- metrics ------------------------------------------------------------------------------

def test_metrics_on_constructed_cases():
    x = torch.randn(100, D_IN)
    assert fvu(x, x).item() == 0.0
    assert fvu(x, x.mean(0).expand_as(x)).item() == pytest.approx(1.0)
    latents = torch.tensor([[1.0, 0.0, 0.0, 2.0], [0.0, 0.0, 0.0, 1.0], [3.0, 0.0, 0.0, 1.0],
                            [0.0, 0.0, 0.0, 1.0]])
    assert l0(latents).item() == 1.5
    density = feature_density(latents)
    assert density.tolist() == [0.5, 0.0, 0.0, 1.0]
    assert dead_fraction(density) == 0.5
    assert dense_fraction(density, threshold=0.6) == 0.25
    metrics = sae_metrics(identity_sae(D_IN), x, chunk_size=32)
    assert metrics["fvu"] == 0.0 and metrics["mse"] == 0.0
    assert metrics["l0"] == pytest.approx(D_IN, abs=0.1)  # one of (relu(x), relu(-x)) each
    assert metrics["dead_fraction"] == 0.0 and metrics["density"].shape == (2 * D_IN,)


def test_ce_loss_recovered_on_constructed_saes(zoo, zoo_tokens):
    tokens = zoo_tokens[:8]
    perfect = ce_loss_recovered(zoo, identity_sae(zoo.cfg.d_model), tokens)
    assert perfect["ce_sae"] == pytest.approx(perfect["ce_clean"], abs=1e-6)
    assert perfect["ce_recovered"] == pytest.approx(1.0, abs=1e-5)
    assert perfect["ce_zero"] > perfect["ce_clean"] + 0.1
    zero = identity_sae(zoo.cfg.d_model)
    with torch.no_grad():
        zero.W_dec.zero_()
    result = ce_loss_recovered(zoo, zero, tokens)
    assert result["ce_sae"] == pytest.approx(result["ce_zero"], abs=1e-6)
    assert result["ce_recovered"] == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(KeyError, match="Did you mean"):
        ce_loss_recovered(zoo, zero, tokens, hook_name="blocks.0.hook_resid_psot")


# ---- ground truth -------------------------------------------------------------------------

def test_mmcs_by_hand():
    toy = ToyFeatures(n_features=12, d=6)
    shuffled = 3.0 * toy.directions[torch.randperm(12)]
    assert mmcs(torch.cat([shuffled, torch.randn(5, 6)]), toy.directions).item() == \
        pytest.approx(1.0)
    assert mmcs(toy.directions[:1], toy.directions).item() < 0.7
    coefficients = toy.sample_coefficients(20000)
    assert (coefficients > 0).float().mean().item() == pytest.approx(toy.p_fire, abs=0.005)


def test_correlated_features_fire_together():
    toy = ToyFeatures(n_features=8, d=4, p_fire=0.1, correlation=0.8, group_size=4)
    fired = (toy.sample_coefficients(20000) > 0).float()
    corr = torch.corrcoef(fired.T)
    assert corr[0, 1] > 0.3 and corr[0, 5].abs() < 0.05
    assert fired.mean().item() == pytest.approx(0.1, abs=0.01)


@pytest.mark.parametrize("arch, kwargs", [("topk", {"k": 4}), ("relu", {"l1_coefficient": 1.0})])
def test_saes_recover_planted_features(arch, kwargs):
    """On the default toy (128 features in 32 dims, ~4 on at a time) both find every one."""
    toy = ToyFeatures()
    sae = build_sae(d_in=toy.d, d_sae=2 * toy.n_features, architecture=arch, **kwargs)
    train_sae(sae, toy.batches(1024), steps=1000, lr=3e-3, progress=False)
    score = mmcs(sae.W_dec.detach(), toy.directions).item()
    assert score >= 0.95, score


# ---- the committed zoo SAEs ---------------------------------------------------------------

@pytest.mark.parametrize("name, min_recovered", [("topk-k16", 0.9), ("relu-l1", 0.8)])
def test_committed_zoo_saes_load_and_reconstruct(zoo, name, min_recovered):
    sae = load_sae(SAES_DIR / "zoo-2l" / name)
    assert (sae.cfg.hook_name, sae.cfg.d_in, sae.cfg.d_sae) == (HOOK, zoo.cfg.d_model, 512)
    tokens = token_chunks(zoo, corpus_sentences(150, seed=1), 64)[:16]
    result = ce_loss_recovered(zoo, sae, tokens)
    assert result["ce_recovered"] >= min_recovered, result


def test_bad_sae_folders_name_the_file_and_the_problem(tmp_path):
    import json as _json
    sae = build_sae(d_in=D_IN, d_sae=16, architecture="topk", k=2)
    folder = save_sae(sae, tmp_path / "sae")
    cfg_path, weights_path = folder / "cfg.json", folder / "sae_weights.safetensors"
    good_cfg, good_weights = cfg_path.read_text(), weights_path.read_bytes()
    weights_path.write_bytes(good_weights[: len(good_weights) // 2])
    with pytest.raises(ValueError, match=r"sae_weights\.safetensors is corrupted or truncated"):
        load_sae(folder)
    weights_path.write_bytes(good_weights)
    cfg_path.write_text("{oops")
    with pytest.raises(ValueError, match=r"cfg\.json is not valid JSON"):
        load_sae(folder)
    raw = _json.loads(good_cfg)
    raw["architecture"] = "standard"  # contradicts metadata.mi_helpers (topk)
    cfg_path.write_text(_json.dumps(raw))
    with pytest.raises(ValueError, match=r"cfg\.json: the top-level fields.*contradict"):
        load_sae(folder)
    raw = _json.loads(good_cfg)
    raw["architecture"] = "batchtopk"
    del raw["metadata"]["mi_helpers"]
    cfg_path.write_text(_json.dumps(raw))
    with pytest.raises(ValueError, match="batchtopk.*not implemented"):
        load_sae(folder)
    cfg_path.unlink()
    with pytest.raises(FileNotFoundError, match=r"cfg\.json is missing"):
        load_sae(folder)
    weights_path.rename(folder / "sae.pt")
    with pytest.raises(ValueError, match="pickle.*arbitrary code"):
        load_sae(folder)
