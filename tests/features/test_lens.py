import pytest
import torch

from mi_helpers.core.residual import frozen_final_ln
from mi_helpers.features.attribution import head_logits, mlp_logits
from mi_helpers.features.lens import (Lens, TunedLens, kl_to_final, lens_logits, residual_stack,
                                      target_rank_and_prob, top_tokens, train_tuned_lens)

PROMPT = "the old dog follows Mary near the park ."


@pytest.fixture(scope="module")
def random_tokens(tiny_model):
    """Random token sequences (BOS first): the tiny model's 'training distribution'."""
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(1, tiny_model.cfg.d_vocab, (48, 32), generator=gen)
    tokens[:, 0] = tiny_model.tokenizer.bos_token_id
    return tokens


@pytest.fixture(scope="module")
def trained_lens(tiny_model, random_tokens):
    lens, losses = train_tuned_lens(tiny_model, random_tokens[:32], steps=30,
                                    tokens_per_step=512, progress=False)
    return lens, losses


def test_last_layer_logit_lens_is_the_model(tiny_model):
    tokens = tiny_model.to_tokens(PROMPT)
    logits = lens_logits(tiny_model, tokens)
    with torch.no_grad():
        model_logits = tiny_model(tokens)
    assert logits.shape == (tiny_model.cfg.n_layers, *model_logits.shape)
    # equal up to a per-position constant: compare log-probs
    assert torch.allclose(logits[-1].log_softmax(-1), model_logits.log_softmax(-1), atol=1e-5)


def test_head_and_mlp_projections_add_up_to_the_logits(tiny_model):
    tokens = tiny_model.to_tokens(PROMPT)
    heads, mlps = head_logits(tiny_model, tokens), mlp_logits(tiny_model, tokens)
    cfg = tiny_model.cfg
    assert heads.shape == (cfg.n_layers, cfg.n_heads, 1, tokens.shape[1], cfg.d_vocab)
    assert mlps.shape == (cfg.n_layers, 1, tokens.shape[1], cfg.d_vocab)
    logits, cache = tiny_model.run_with_cache(tokens)
    biases = cache["hook_embed"] + cache["hook_pos_embed"] + tiny_model.b_O.sum(0)
    with torch.no_grad():
        rest = frozen_final_ln(tiny_model, biases, cache["ln_final.hook_scale"]) @ tiny_model.W_U
        total = heads.sum(dim=(0, 1)) + mlps.sum(0) + rest + tiny_model.b_U
    assert torch.allclose(total, logits, atol=1e-4)


def test_top_k_rank_and_prob_agree(tiny_model):
    tokens = tiny_model.to_tokens(PROMPT)
    logits = lens_logits(tiny_model, tokens)
    top = top_tokens(tiny_model, logits[:, 0], n=3)
    assert len(top) == tiny_model.cfg.n_layers and len(top[0]) == tokens.shape[1]
    best = logits[-1, 0, -1].argmax().item()
    assert top[-1][-1][0] == tiny_model.tokenizer.decode([best])
    rank, prob = target_rank_and_prob(logits, best, pos=-1)
    assert rank[-1, 0] == 0
    assert torch.isclose(prob[-1, 0], logits[-1, 0, -1].softmax(-1).max())


def test_kl_to_final_is_zero_at_the_last_layer(tiny_model, random_tokens):
    logits = lens_logits(tiny_model, random_tokens[:8])
    kl = kl_to_final(logits)
    assert kl.shape == (tiny_model.cfg.n_layers,)
    assert kl[-1].abs() < 1e-6 and (kl[:-1] > 0).all()
    final, first = logits[-1].log_softmax(-1), logits[0].log_softmax(-1)
    expected = torch.nn.functional.kl_div(first, final, log_target=True, reduction="none")
    assert kl[0].item() == pytest.approx(expected.sum(-1).mean().item(), rel=1e-4)  # KL(final||lens)


def test_untrained_tuned_lens_is_the_logit_lens(tiny_model):
    tokens = tiny_model.to_tokens(PROMPT)
    tuned = lens_logits(tiny_model, tokens, TunedLens(tiny_model))
    assert torch.equal(tuned, lens_logits(tiny_model, tokens, Lens(tiny_model)))


def test_trained_tuned_lens_beats_the_logit_lens(tiny_model, random_tokens, trained_lens):
    lens, losses = trained_lens
    assert losses[-1] < losses[0]
    for tokens in (random_tokens[:32], random_tokens[32:]):  # trained on, held out
        logit_kl = kl_to_final(lens_logits(tiny_model, tokens))
        tuned_kl = kl_to_final(lens_logits(tiny_model, tokens, lens))
        assert (tuned_kl[:-1] < 0.5 * logit_kl[:-1]).all(), (tuned_kl, logit_kl)
        assert tuned_kl[-1].abs() < 1e-6


def test_tuned_lens_save_load_round_trip(tiny_model, trained_lens, tmp_path):
    lens, _ = trained_lens
    lens.save(tmp_path)
    assert not list(tmp_path.glob("*.pt")) and not list(tmp_path.glob("*.pkl"))
    loaded = TunedLens.load(tmp_path, tiny_model)
    assert torch.equal(loaded.weight, lens.weight) and torch.equal(loaded.bias, lens.bias)


def test_load_rejects_a_lens_for_another_model(tiny_model, trained_lens, tmp_path):
    trained_lens[0].save(tmp_path)
    config = tmp_path / "tuned_lens.json"
    config.write_text(config.read_text().replace('"d_model": 32', '"d_model": 64'))
    with pytest.raises(ValueError, match="d_model"):
        TunedLens.load(tmp_path, tiny_model)


def test_layer_out_of_range(tiny_model):
    _, resid = residual_stack(tiny_model, tiny_model.to_tokens(PROMPT))
    with pytest.raises(IndexError, match="2 layers"):
        Lens(tiny_model)(resid[0], 2)


def test_position_beyond_prompt(tiny_model):
    tokens = tiny_model.to_tokens(PROMPT)
    with pytest.raises(IndexError, match=f"{tokens.shape[1]} positions"):
        target_rank_and_prob(lens_logits(tiny_model, tokens), 5, pos=tokens.shape[1])


def test_a_lens_reads_only_residual_sites(tiny_model):
    for bad in ("resid_pots", "blocks.0.hook_resid_post", "z"):
        with pytest.raises(ValueError, match="resid_post"):
            Lens(tiny_model, site=bad)


def test_logit_lens_reads_another_residual(tiny_model):
    tokens = tiny_model.to_tokens(PROMPT)
    mid = lens_logits(tiny_model, tokens, Lens(tiny_model, site="resid_mid"))
    post = lens_logits(tiny_model, tokens)
    assert mid.shape == post.shape and not torch.allclose(mid, post)
