"""SAE activations, losses and metrics against hand computations and second formulas.

TopK must keep exactly ``k`` latents; JumpReLU must cut at its threshold in the forward
pass and give the threshold the pseudo-derivative ``-(threshold / eps) K`` (L0:
``-K / eps``); every loss is checked with weights whose rows have different norms, on
batches whose rows differ, so a sum for a mean or the wrong axis changes the number;
FVU on data with a non-zero mean (an uncentred total differs); CE loss recovered of an
imperfect SAE against a by-hand splice, with and without the BOS position.
"""

import pytest
import torch
import torch.nn.functional as F

from mi_helpers.features.sae import (build_sae, ce_loss_recovered, dead_fraction,
                                     dense_fraction, feature_density, fvu, l0, sae_metrics)
from mi_helpers.features.sae.base import squared_error
from mi_helpers.features.sae.jumprelu import _JumpReLU, _Step
from mi_helpers.features.sae.topk import topk_activation

HOOK = "blocks.0.hook_resid_post"


def with_params(sae, **values):
    """Set the SAE's parameters to the given tensors (in place, no gradient)."""
    with torch.no_grad():
        for name, value in values.items():
            getattr(sae, name).copy_(torch.as_tensor(value, dtype=torch.float32))
    return sae


def random_params(sae, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return sae


# ---- activation functions ---------------------------------------------------------------

def test_topk_keeps_exactly_the_k_largest():
    gen = torch.Generator().manual_seed(0)
    pre = torch.rand(20, 12, generator=gen) + 0.1  # all positive, no ties
    out = topk_activation(pre, 3)
    assert ((out != 0).sum(-1) == 3).all()
    kept = pre >= pre.sort(dim=-1, descending=True).values[:, 2:3]
    assert torch.equal(out, torch.where(kept, pre, torch.zeros(())))
    mixed = torch.tensor([[2.0, -1.0, 0.5, -3.0], [-1.0, -2.0, -0.5, -4.0]])
    assert topk_activation(mixed, 3).tolist() == [[2.0, 0.0, 0.5, 0.0], [0.0] * 4]  # ReLU'd


def test_topk_sae_encodes_with_its_k():
    sae = random_params(build_sae(d_in=6, d_sae=10, architecture="topk", k=4))
    x = torch.randn(30, 6)
    pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
    assert torch.allclose(sae.encode(x), topk_activation(pre, 4), atol=1e-6)
    assert ((sae.encode(x) != 0).sum(-1) <= 4).all() and ((sae.encode(x) != 0).sum(-1) == 4).any()


def test_jumprelu_forward_cuts_at_the_threshold():
    pre = torch.tensor([[0.05, 0.1, 0.15, -0.2, 0.5]])
    out = _JumpReLU.apply(pre, torch.full((5,), 0.1), 0.01)
    assert out[0].tolist() == pytest.approx([0.0, 0.0, 0.15, 0.0, 0.5])  # at the threshold: off
    sae = with_params(build_sae(d_in=2, d_sae=2, architecture="jumprelu"),
                      W_enc=torch.eye(2), b_enc=torch.zeros(2), b_dec=torch.zeros(2),
                      threshold=[0.3, 1.0])
    assert sae.encode(torch.tensor([[0.5, 0.5], [0.2, 2.0]])).tolist() == [[0.5, 0.0], [0.0, 2.0]]


def jump_inputs():
    """eps = 0.2, so the window is |pre - theta| < 0.1: row 0 is inside for both latents,
    row 1 for latent 0 only (0.08 away; 0.15 would need a window of eps, 0.08 one wider
    than eps / 3), row 2 outside, row 3 exactly at the thresholds (off, in the window)."""
    theta = torch.tensor([0.5, 0.8], requires_grad=True)
    pre = torch.tensor([[0.45, 0.75], [0.58, 1.2], [0.65, 0.2], [0.5, 0.8]], requires_grad=True)
    grad = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]])
    return pre, theta, grad


def test_jumprelu_threshold_gets_the_pseudo_derivative():
    pre, theta, grad = jump_inputs()
    out = _JumpReLU.apply(pre, theta, 0.2)
    assert out[3].tolist() == [0.0, 0.0]
    out.backward(grad)
    # latent 0: rows 0, 1, 3 in the window -> -(0.5 / 0.2) (1 + 3 + 7); latent 1: rows 0, 3
    assert theta.grad.tolist() == pytest.approx([-27.5, -40.0])
    assert pre.grad.tolist() == [[0.0, 0.0], [3.0, 4.0], [5.0, 0.0], [0.0, 0.0]]  # where on


def test_step_threshold_gets_the_pseudo_derivative():
    pre, theta, grad = jump_inputs()
    out = _Step.apply(pre, theta, 0.2)
    assert out.tolist() == [[0.0, 0.0], [1.0, 1.0], [1.0, 0.0], [0.0, 0.0]]
    out.backward(grad)
    assert theta.grad.tolist() == pytest.approx([-55.0, -50.0])  # -(1 / eps) sum of K
    assert pre.grad is None


def test_the_window_is_open_as_in_saelens():
    theta = torch.tensor([0.5], requires_grad=True)
    pre = torch.tensor([[0.625], [0.375], [0.5]])  # exactly half a bandwidth away, and at it
    _Step.apply(pre, theta, 0.25).sum().backward()
    assert theta.grad.item() == pytest.approx(-1 / 0.25)  # only the row at the threshold


def test_jumprelu_thresholds_stay_positive_and_reset_with_their_latents():
    from mi_helpers.features.sae import resample_dead_latents
    sae = random_params(build_sae(d_in=3, d_sae=5, architecture="jumprelu",
                                  jumprelu_init_threshold=0.2, jumprelu_bandwidth=10.0), 7)
    with torch.no_grad():
        sae.threshold.copy_(torch.tensor([-1.0, 0.5, -0.1, 2.0, 0.3]))
    sae.after_step()
    assert sae.threshold.tolist() == pytest.approx([1e-6, 0.5, 1e-6, 2.0, 0.3])
    assert torch.allclose(sae.W_dec.norm(dim=1), torch.ones(5), atol=1e-6)
    optimizer = torch.optim.Adam(sae.parameters())
    sae(torch.randn(16, 3)).loss.backward()
    optimizer.step()
    resample_dead_latents(sae, torch.randn(16, 3), torch.tensor([1, 3]), optimizer)
    assert sae.threshold[[1, 3]].tolist() == pytest.approx([0.2, 0.2])
    assert (optimizer.state[sae.threshold]["exp_avg"][[1, 3]] == 0).all()
    assert (optimizer.state[sae.threshold]["exp_avg"][[0, 2, 4]] != 0).all()


def test_jumprelu_l0_loss_and_its_gradient():
    sae = with_params(build_sae(d_in=2, d_sae=2, architecture="jumprelu", l0_coefficient=0.5,
                                jumprelu_bandwidth=0.2),
                      W_enc=torch.eye(2), b_enc=torch.zeros(2), b_dec=torch.zeros(2),
                      threshold=[0.5, 0.8])
    x = torch.tensor([[0.45, 0.75], [0.58, 1.2], [0.65, 0.2]])
    out = sae(x, sparsity_scale=0.5)
    assert out.losses["l0"].item() == pytest.approx(0.5 * 0.5 * 3 / 3)  # 3 active in 3 rows
    out.losses["l0"].backward()
    # d l0 / d theta = 0.25 * mean over rows of -(1 / eps) K: rows 0, 1 for latent 0, row 0 for 1
    assert sae.threshold.grad.tolist() == pytest.approx([-0.25 * 2 / 0.2 / 3, -0.25 / 0.2 / 3])


# ---- losses -----------------------------------------------------------------------------

def test_squared_error_sums_over_d_in_and_averages_over_the_batch():
    x = torch.zeros(2, 2)
    assert squared_error(torch.tensor([[1.0, 2.0], [3.0, 0.0]]), x).item() == 7.0  # (5 + 9) / 2


def test_relu_sae_losses_with_decoder_norms():
    sae = random_params(build_sae(d_in=3, d_sae=4, architecture="relu", l1_coefficient=0.7))
    with torch.no_grad():
        sae.W_dec.mul_(torch.tensor([[1.0], [2.0], [0.5], [3.0]]))
    x = torch.randn(5, 3)
    latents = torch.relu((x - sae.b_dec) @ sae.W_enc + sae.b_enc)
    out = sae(x, sparsity_scale=0.4)
    assert torch.allclose(out.latents, latents)
    l1 = 0.4 * 0.7 * (latents * sae.W_dec.norm(dim=1)).sum(-1).mean()
    mse = (latents @ sae.W_dec + sae.b_dec - x).pow(2).sum(-1).mean()
    assert out.losses["l1"].item() == pytest.approx(l1.item(), rel=1e-5)
    assert out.losses["mse"].item() == pytest.approx(mse.item(), rel=1e-5)
    assert out.loss.item() == pytest.approx((l1 + mse).item(), rel=1e-5)


def test_gated_sae_latents_and_losses():
    sae = random_params(build_sae(d_in=3, d_sae=6, architecture="gated", l1_coefficient=0.3), 1)
    x = torch.randn(40, 3, generator=torch.Generator().manual_seed(2))
    centred = x - sae.b_dec
    pi_gate = centred @ sae.W_enc + sae.b_gate
    pi_mag = centred @ (sae.W_enc * sae.r_mag.exp()) + sae.b_mag
    latents = (pi_gate > 0).float() * torch.relu(pi_mag)
    assert ((pi_gate > 0) & (pi_mag < 0)).any() and ((pi_gate < 0) & (pi_mag > 0)).any()
    out = sae(x, sparsity_scale=0.5)
    assert torch.allclose(out.latents, latents, atol=1e-6)
    gate = torch.relu(pi_gate)
    l1 = 0.5 * 0.3 * (gate * sae.W_dec.norm(dim=1)).sum(-1).mean()
    aux = (gate @ sae.W_dec + sae.b_dec - x).pow(2).sum(-1).mean()
    assert out.losses["l1"].item() == pytest.approx(l1.item(), rel=1e-5)
    assert out.losses["aux"].item() == pytest.approx(aux.item(), rel=1e-5)
    closed = with_params(build_sae(d_in=3, d_sae=6, architecture="gated"),
                         b_dec=torch.zeros(3), b_gate=torch.zeros(6), b_mag=torch.ones(6))
    assert (closed.encode(torch.zeros(2, 3)) == 0).all()  # pi_gate = 0 exactly: the gate is shut
    out.losses["aux"].backward()
    assert sae.W_dec.grad is None or sae.W_dec.grad.abs().max() == 0  # frozen decoder
    assert sae.W_enc.grad.abs().max() > 0


def test_matryoshka_prefix_losses():
    sae = random_params(build_sae(d_in=3, d_sae=6, architecture="matryoshka", k=4,
                                  matryoshka_widths=[1, 3, 6]), 3)
    x = torch.randn(8, 3)
    out = sae(x)
    latents = out.latents
    prefix = sum((latents[:, :m] @ sae.W_dec[:m] + sae.b_dec - x).pow(2).sum(-1).mean()
                 for m in (1, 3))
    assert out.losses["prefix_mse"].item() == pytest.approx(prefix.item(), rel=1e-5)
    full = (latents @ sae.W_dec + sae.b_dec - x).pow(2).sum(-1).mean()
    assert out.losses["mse"].item() == pytest.approx(full.item(), rel=1e-5)


def test_base_encode_decode_and_decoder_constraints():
    sae = random_params(build_sae(d_in=3, d_sae=4, architecture="relu"), 4)
    x = torch.randn(5, 3)
    assert torch.allclose(sae.pre_activations(x), (x - sae.b_dec) @ sae.W_enc + sae.b_enc)
    sae.cfg.apply_b_dec_to_input = False
    assert torch.allclose(sae.pre_activations(x), x @ sae.W_enc + sae.b_enc)
    latents = torch.rand(2, 5, 4)
    assert torch.allclose(sae.decode(latents), latents @ sae.W_dec + sae.b_dec, atol=1e-6)
    sae.W_dec.grad = torch.randn(4, 3)
    before = sae.W_dec.grad.clone()
    sae.remove_parallel_decoder_grad()
    unit = sae.W_dec / sae.W_dec.norm(dim=1, keepdim=True)
    assert (sae.W_dec.grad * unit).sum(1).abs().max() < 1e-6  # nothing along the rows
    assert torch.allclose(sae.W_dec.grad, before - (before * unit).sum(1, keepdim=True) * unit,
                          atol=1e-6)
    sae.normalize_decoder()
    assert torch.allclose(sae.W_dec.norm(dim=1), torch.ones(4), atol=1e-6)
    assert torch.allclose(sae.W_dec, unit.detach(), atol=1e-6)  # directions unchanged
    with torch.no_grad():
        sae.W_dec[2] = 0.0  # a dead row stays zero, not NaN
    sae.W_dec.grad = torch.randn(4, 3)
    sae.remove_parallel_decoder_grad()
    sae.normalize_decoder()
    assert torch.isfinite(sae.W_dec.grad).all() and (sae.W_dec[2] == 0).all()
    assert sae.encode(x[0]).shape == (4,)  # one activation, no batch axis
    with pytest.raises(ValueError, match="none \\(a scalar\\)"):
        sae.encode(torch.tensor(1.0))


@pytest.mark.parametrize("arch, norm", [("relu", 0.1), ("topk", 1.0), ("gated", 1.0)])
def test_initial_decoder_norms_and_tied_encoder(arch, norm):
    sae = build_sae(d_in=5, d_sae=7, architecture=arch, k=2)
    assert torch.allclose(sae.W_dec.norm(dim=1), torch.full((7,), norm), atol=1e-6)
    assert torch.equal(sae.W_enc, sae.W_dec.T)
    assert sae.W_dec.std() > 0 and (sae.b_dec == 0).all()


# ---- metrics ----------------------------------------------------------------------------

def test_fvu_centres_the_total():
    x = torch.tensor([[1.0, 2.0], [3.0, 6.0], [5.0, 4.0]])  # mean (3, 4): total 16
    reconstruction = x + torch.tensor([[1.0, 0.0], [0.0, -1.0], [0.0, 0.0]])  # RSS 2
    assert fvu(x, reconstruction).item() == pytest.approx(2 / 16)
    with pytest.raises(ValueError, match="do not vary"):
        fvu(torch.ones(4, 2), torch.zeros(4, 2))


def test_sparsity_metrics_by_hand():
    latents = torch.tensor([[1.0, 0.0, 0.0, 2.0], [0.0, 0.0, 3.0, 1.0], [0.0, -1.0, 0.0, 1.0],
                            [0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]])  # 5 rows, 4 latents
    assert l0(latents).item() == pytest.approx(7 / 5)
    density = feature_density(latents)
    assert density.tolist() == pytest.approx([0.2, 0.2, 0.2, 0.8])
    assert dead_fraction(torch.tensor([0.0, 0.1, 0.0, 1.0])) == 0.5
    assert dense_fraction(density, threshold=0.5) == 0.25
    assert dense_fraction(torch.tensor([0.25, 0.5, 0.3, 0.25]), threshold=0.25) == 0.5  # not =
    assert dense_fraction(density, threshold=0.1) == 1.0


def test_sae_metrics_of_an_imperfect_sae_in_chunks():
    sae = random_params(build_sae(d_in=4, d_sae=8, architecture="relu"), 5)
    with torch.no_grad():
        sae.b_enc[2] = -1e3  # a dead latent
    gen = torch.Generator().manual_seed(6)
    acts = torch.randn(50, 4, generator=gen) + torch.tensor([3.0, -1.0, 0.0, 2.0])
    metrics = sae_metrics(sae, acts, chunk_size=16, dense_threshold=0.3)
    with torch.no_grad():
        latents, recon = sae.encode(acts), sae.reconstruct(acts)
    density = (latents != 0).float().mean(0)
    assert metrics["l0"] == pytest.approx((latents != 0).sum(-1).float().mean().item())
    assert metrics["fvu"] == pytest.approx(fvu(acts, recon).item(), rel=1e-5)
    assert 0.05 < metrics["fvu"] < 10
    assert metrics["mse"] == pytest.approx((recon - acts).pow(2).sum(-1).mean().item(), rel=1e-5)
    assert torch.allclose(metrics["density"], density)
    assert metrics["dead_fraction"] == pytest.approx((density == 0).float().mean().item())
    assert density[2] == 0 and metrics["dead_fraction"] < 1
    assert metrics["dense_fraction"] == pytest.approx((density > 0.3).float().mean().item())
    grid = sae_metrics(sae, acts.reshape(5, 10, 4), chunk_size=7)  # [batch, pos, d_in] is fine
    assert grid["fvu"] == pytest.approx(metrics["fvu"], rel=1e-5)


def ce_by_hand(model, sae, tokens, drop_bos, where):
    """Mean next-token loss with the hook's output replaced by the reconstruction (BOS
    kept when ``drop_bos``), and with it zeroed (BOS kept likewise)."""
    def splice(act, hook):
        out = sae.reconstruct(act)
        if drop_bos:
            out[:, 0] = act[:, 0]
        return out

    def zero(act, hook):
        out = torch.zeros_like(act)
        if drop_bos:
            out[:, 0] = act[:, 0]
        return out

    losses = {}
    with torch.no_grad():
        for key, hooks in (("ce_clean", []), ("ce_sae", [(where, splice)]),
                           ("ce_zero", [(where, zero)])):
            logits = model.run_with_hooks(tokens, fwd_hooks=hooks)
            losses[key] = F.cross_entropy(logits[:, :-1].flatten(0, 1),
                                          tokens[:, 1:].flatten()).item()
    return losses


@pytest.mark.parametrize("drop_bos, hook", [(True, HOOK), (False, HOOK),
                                            (True, "blocks.0.mlp.hook_post")])
def test_ce_loss_recovered_of_an_imperfect_sae(tiny_model, drop_bos, hook):
    """On the MLP neurons as well: there a constant is not removed by a layer norm."""
    gen = torch.Generator().manual_seed(7)
    tokens = torch.randint(1, tiny_model.cfg.d_vocab, (5, 9), generator=gen)
    tokens[:, 0] = tiny_model.tokenizer.bos_token_id
    d = tiny_model.cfg.d_model if hook == HOOK else tiny_model.cfg.d_mlp
    sae = build_sae(d_in=d, d_sae=2 * d, architecture="relu", hook_name=hook)
    eye = torch.eye(d)
    noise = 0.3 * torch.randn(2 * d, d, generator=gen)
    with_params(sae, W_enc=torch.cat([eye, -eye], 1), W_dec=torch.cat([eye, -eye]) + noise,
                b_enc=torch.zeros(2 * d), b_dec=torch.zeros(d))
    ours = ce_loss_recovered(tiny_model, sae, tokens, drop_bos=drop_bos, batch_size=2)
    expected = ce_by_hand(tiny_model, sae, tokens, drop_bos, hook)
    for key, value in expected.items():
        assert ours[key] == pytest.approx(value, rel=1e-5), key
    recovered = (ours["ce_zero"] - ours["ce_sae"]) / (ours["ce_zero"] - ours["ce_clean"])
    assert ours["ce_recovered"] == pytest.approx(recovered, rel=1e-9)
    assert abs(recovered - 1) > 0.01 and abs(recovered) > 0.01  # neither perfect nor useless
    other = ce_by_hand(tiny_model, sae, tokens, not drop_bos, hook)
    assert abs(other["ce_sae"] - expected["ce_sae"]) > 1e-3  # BOS handling shows here
    sae.cfg.drop_bos = drop_bos  # the default comes from the SAE's config
    assert ce_loss_recovered(tiny_model, sae, tokens)["ce_sae"] == pytest.approx(ours["ce_sae"])
