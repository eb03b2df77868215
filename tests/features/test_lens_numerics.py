"""Lens and attribution numbers against independent computations.

KL-to-final on asymmetric distributions whose positions differ (so ``KL(layer || final)``,
a sum over positions or a mean over the wrong axis all give other numbers), the tuned
lens's training loss against ``torch.nn.functional.kl_div``, ranks with ties, and each
head's direct logit attribution computed by hand from the cache.
"""

import pytest
import torch
import torch.nn.functional as F

from mi_helpers.features.attribution import direction_logits, head_logits, mlp_logits
from mi_helpers.features.lens import (
    Lens,
    TunedLens,
    _lens_loss,
    kl_to_final,
    lens_kl,
    lens_logits,
    target_rank_and_prob,
    top_tokens,
)

PROMPT = "the old dog follows Mary near the park ."


def kl(p_logits, q_logits):
    """KL(p || q) per row, from torch."""
    return F.kl_div(q_logits.log_softmax(-1), p_logits.log_softmax(-1), log_target=True,
                    reduction="none").sum(-1)


def test_kl_to_final_is_the_mean_of_kl_final_to_layer():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 2, 4, 5, generator=gen) * torch.tensor([3.0, 1.0, 0.5])[:, None, None,
                                                                                      None]
    ours = kl_to_final(logits)
    expected = torch.stack([kl(logits[-1], logits[layer]).mean() for layer in range(3)])
    reversed_ = torch.stack([kl(logits[layer], logits[-1]).mean() for layer in range(3)])
    assert ours.shape == (3,) and torch.allclose(ours, expected, atol=1e-6)
    assert (expected[:-1] - reversed_[:-1]).abs().min() > 0.05  # the direction matters here
    assert ours[-1] == 0


def test_tuned_lens_loss_is_kl_final_to_lens():
    """The loss is the mean over layers of KL(final || lens), the final distribution being
    the lens at the last residual (the model's own output), not the reverse KL. A stand-in
    lens with peaked outputs (a random tiny model's are nearly uniform: every KL ~ 0)."""
    gen = torch.Generator().manual_seed(1)
    readouts = 3 * torch.randn(3, 8, 20, generator=gen)  # layer d_model d_vocab

    def lens(resid, layer):
        return resid @ readouts[layer]

    resid = torch.randn(3, 6, 8, generator=gen)
    ours = _lens_loss(lens, resid).item()
    final = lens(resid[-1], 2).log_softmax(-1)
    per_layer = [F.kl_div(lens(resid[layer], layer).log_softmax(-1), final, log_target=True,
                          reduction="batchmean") for layer in range(2)]
    reverse = [F.kl_div(final, lens(resid[layer], layer).log_softmax(-1), log_target=True,
                        reduction="batchmean") for layer in range(2)]
    assert ours == pytest.approx(torch.stack(per_layer).mean().item(), rel=1e-5)
    assert abs(torch.stack(reverse).mean().item() - ours) > 0.1


def test_tuned_lens_translator_by_hand(tiny_model):
    lens = TunedLens(tiny_model)
    gen = torch.Generator().manual_seed(2)
    d = tiny_model.cfg.d_model
    with torch.no_grad():
        lens.weight[0] = torch.randn(d, d, generator=gen)
        lens.bias[0] = torch.randn(d, generator=gen)
    resid = torch.randn(3, d, generator=gen)
    translated = resid + resid @ lens.weight[0] + lens.bias[0]
    assert torch.allclose(lens.translate(resid, 0), translated)
    assert torch.equal(lens.translate(resid, 1), resid)  # the last layer is the model's output
    with torch.no_grad():
        expected = tiny_model.unembed(tiny_model.ln_final(translated))
        assert torch.allclose(lens(resid, 0), expected, atol=1e-5)
        assert torch.allclose(Lens(tiny_model)(resid, 0),
                              tiny_model.unembed(tiny_model.ln_final(resid)), atol=1e-5)


def test_lens_reads_each_layers_residual(tiny_model):
    tokens = tiny_model.to_tokens(PROMPT)
    _, cache = tiny_model.run_with_cache(tokens)
    with torch.no_grad():
        for site in ("resid_post", "resid_mid", "resid_pre"):
            ours = lens_logits(tiny_model, tokens, Lens(tiny_model, site=site))
            for layer in range(tiny_model.cfg.n_layers):
                resid = cache[f"blocks.{layer}.hook_{site}"]
                expected = tiny_model.unembed(tiny_model.ln_final(resid))
                assert torch.allclose(ours[layer], expected, atol=1e-5), (site, layer)


def test_lens_at_chosen_positions_and_lens_kl_in_batches(tiny_model):
    """One position per prompt picks that prompt's row (batch 5 != pos 6, so a wrong axis
    cannot pass); lens_kl, batch by batch, is the mean KL(final || layer) over every
    position of every prompt, whatever the batch size (5 prompts: a last partial batch)."""
    gen = torch.Generator().manual_seed(3)
    tokens = torch.randint(1, tiny_model.cfg.d_vocab, (5, 6), generator=gen)
    full = lens_logits(tiny_model, tokens)  # layer batch pos d_vocab
    where = torch.tensor([5, 0, 3, 2, 4])
    picked = lens_logits(tiny_model, tokens, positions=where)
    assert picked.shape == (full.shape[0], 5, full.shape[-1])
    for row, pos in enumerate(where.tolist()):
        assert torch.allclose(picked[:, row], full[:, row, pos], atol=1e-5)
    assert torch.allclose(lens_logits(tiny_model, tokens, positions=-1), full[:, :, -1], atol=1e-5)
    by_hand = torch.stack([kl(full[-1], full[layer]).mean() for layer in range(len(full))])
    assert by_hand[:-1].min() > 1e-4  # the layers do differ from the final one
    for batch_size in (1, 2, 5, 16):
        assert torch.allclose(lens_kl(tiny_model, tokens, batch_size=batch_size), by_hand,
                              rtol=1e-3, atol=1e-8), batch_size


def test_lens_kl_sizes_its_passes_by_memory(tiny_model, monkeypatch):
    """By default one pass holds at most 16 prompts and no more than LENS_PASS_BYTES of lens
    logits (at least one prompt): a 50k-token vocabulary gets small passes, the same KL."""
    import mi_helpers.features.lens as lens_module

    gen = torch.Generator().manual_seed(4)
    tokens = torch.randint(1, tiny_model.cfg.d_vocab, (40, 6), generator=gen)
    seen = []
    real = lens_module.lens_logits
    monkeypatch.setattr(lens_module, "lens_logits",
                        lambda model, rows, lens=None: seen.append(len(rows)) or real(model, rows, lens))
    expected = lens_kl(tiny_model, tokens, batch_size=40)
    seen.clear()
    assert torch.allclose(lens_kl(tiny_model, tokens), expected, rtol=1e-4)
    assert seen == [16, 16, 8]
    row_bytes = (tiny_model.cfg.n_layers + 1) * 6 * tiny_model.cfg.d_vocab * 4
    for budget, per_pass in ((3 * row_bytes, 3), (row_bytes // 2, 1)):
        monkeypatch.setattr(lens_module, "LENS_PASS_BYTES", budget)
        seen.clear()
        assert torch.allclose(lens_kl(tiny_model, tokens), expected, rtol=1e-4)
        assert max(seen) == per_pass and sum(seen) == 40, (budget, seen)


def test_rank_and_probability_by_hand():
    logits = torch.tensor([[[[0.0, 2.0, 1.0, 2.0], [5.0, 0.0, 0.0, 0.0]],
                            [[1.0, 1.0, 1.0, 3.0], [0.0, 0.0, 9.0, 0.0]]]])  # 1 layer, 2 x 2 pos
    rank, prob = target_rank_and_prob(logits, torch.tensor([2, 0]), pos=0)
    assert rank.tolist() == [[2, 1]]  # ties do not count against the target
    expected = torch.stack([logits[0, 0, 0].softmax(-1)[2], logits[0, 1, 0].softmax(-1)[0]])
    assert torch.allclose(prob[0], expected)
    rank, prob = target_rank_and_prob(logits, 2, pos=-1)
    assert rank.tolist() == [[1, 0]] and prob.shape == (1, 2)


def test_top_tokens_are_best_first(tiny_model):
    logits = torch.zeros(1, 2, tiny_model.cfg.d_vocab)
    logits[0, 0, [7, 3, 9]] = torch.tensor([1.0, 3.0, 2.0])
    logits[0, 1, [5, 8]] = torch.tensor([2.0, 1.0])
    top = top_tokens(tiny_model, logits, n=3)  # more tokens than positions
    decode = tiny_model.tokenizer.decode
    assert top[0][0] == [decode([3]), decode([9]), decode([7])]
    assert top[0][1][:2] == [decode([5]), decode([8])] and len(top[0][1]) == 3


def test_training_data_covers_every_token_in_any_batch_size(tiny_model):
    from mi_helpers.features.lens import _training_data, residual_stack
    gen = torch.Generator().manual_seed(3)
    tokens = torch.randint(1, tiny_model.cfg.d_vocab, (7, 6), generator=gen)
    resid = _training_data(tiny_model, tokens, batch_size=3)
    logits, stack = residual_stack(tiny_model, tokens)
    assert resid.shape == (len(stack), 42, tiny_model.cfg.d_model)
    assert torch.allclose(resid, stack.flatten(1, 2), atol=1e-5)
    with torch.no_grad():  # the last residual, through the untrained lens, is the output
        final = TunedLens(tiny_model)(resid[-1], len(resid) - 1)
    assert torch.allclose(final.log_softmax(-1), logits.flatten(0, 1).log_softmax(-1), atol=1e-4)


def test_training_the_tuned_lens_leaves_the_model_alone(tiny_model, tmp_path):
    from mi_helpers.features.lens import train_tuned_lens
    params = list(tiny_model.parameters())
    flags = [p.requires_grad for p in params]
    for p in params:
        p.grad = None
    lens, losses = train_tuned_lens(tiny_model, torch.randint(1, 100, (4, 8)), steps=2,
                                    tokens_per_step=16, progress=False)
    assert all(p.grad is None for p in params)  # frozen while the lens trained
    assert [p.requires_grad for p in params] == flags  # and restored afterwards
    assert lens.weight.shape == (tiny_model.cfg.n_layers - 1, 32, 32)  # none for the last layer
    assert lens.bias.shape == (tiny_model.cfg.n_layers - 1, 32) and len(losses) == 2
    lens.save(str(tmp_path))  # folders as strings too
    assert torch.equal(TunedLens.load(str(tmp_path), tiny_model).weight, lens.weight)


# ---- direct logit attribution, one head at a time ---------------------------------------

def by_hand(model, cache, out):
    """An output read through the final layer norm with its scale frozen, then ``W_U``."""
    centred = out - out.mean(-1, keepdim=True)
    return centred / cache["ln_final.hook_scale"] @ model.W_U


def test_each_heads_and_mlps_attribution_by_hand(tiny_model):
    tokens = tiny_model.to_tokens(PROMPT)
    heads, mlps = head_logits(tiny_model, tokens), mlp_logits(tiny_model, tokens)
    _, cache = tiny_model.run_with_cache(tokens)
    with torch.no_grad():
        for layer, head in ((0, 1), (1, 3), (1, 0)):
            z = cache[f"blocks.{layer}.attn.hook_z"][:, :, head]
            expected = by_hand(tiny_model, cache, z @ tiny_model.W_O[layer, head])
            assert torch.allclose(heads[layer, head], expected, atol=1e-5), (layer, head)
        for layer in range(tiny_model.cfg.n_layers):
            expected = by_hand(tiny_model, cache, cache[f"blocks.{layer}.hook_mlp_out"])
            assert torch.allclose(mlps[layer], expected, atol=1e-5), layer
    directions = torch.randn(3, tiny_model.cfg.d_model)
    assert torch.allclose(direction_logits(tiny_model, directions),
                          directions @ tiny_model.W_U.detach(), atol=1e-6)


def test_attribution_at_chosen_positions_and_tokens(tiny_model):
    """One position per prompt and a [2, 2] block of token ids (read flat) pick exactly
    those entries of the full readout; batch 5 != pos 6, so a wrong axis cannot pass."""
    gen = torch.Generator().manual_seed(4)
    tokens = torch.randint(1, tiny_model.cfg.d_vocab, (5, 6), generator=gen)
    where, vocab = torch.tensor([5, 0, 3, 2, 4]), torch.tensor([[7, 3], [11, 2]])
    rows = torch.arange(5)
    for readout in (head_logits, mlp_logits):
        full = readout(tiny_model, tokens)  # ... batch pos d_vocab
        picked = readout(tiny_model, tokens, positions=where, vocab=vocab)
        expected = full[..., rows, where, :][..., vocab.flatten()]
        assert picked.shape == expected.shape and torch.allclose(picked, expected, atol=1e-5)
