"""Induction probes: the same head scores from a Hugging Face model while it trains as from
TransformerLens hooks afterwards; the ICL score on a model whose losses are known."""

from types import SimpleNamespace

import pytest
import torch
from transformers import GPT2LMHeadModel

from mi_helpers.circuits import head_scores
from mi_helpers.datasets import repeated_random_tokens
from mi_helpers.dynamics import (icl_score, induction_probes, induction_spec,
                                 model_attention_patterns, repeat_head_scores)


@pytest.fixture(scope="module")
def hf_model(tiny_model_dir):
    return GPT2LMHeadModel.from_pretrained(tiny_model_dir, attn_implementation="sdpa").eval()


def test_hf_scores_match_transformer_lens(hf_model, tiny_model):
    tokens = repeated_random_tokens(tiny_model, rep_len=7, n_seqs=8, seed=3)
    ours = repeat_head_scores(hf_model, tokens, rep_len=7)
    theirs = head_scores(tiny_model, rep_len=7, n_seqs=8, seed=3)
    for kind in ("previous_token", "induction"):
        torch.testing.assert_close(ours[kind], theirs[kind], atol=1e-5, rtol=0)
    torch.testing.assert_close(repeat_head_scores(tiny_model, tokens, 7)["induction"],
                               theirs["induction"])
    assert hf_model.config._attn_implementation == "sdpa"  # put back after reading patterns
    assert model_attention_patterns(hf_model, tokens).shape == (2, 8, 4, 15, 15)


def test_repeat_scores_check_the_shape(hf_model):
    with pytest.raises(ValueError, match=r"expected \[batch, 15\] tokens"):
        repeat_head_scores(hf_model, torch.zeros(2, 14, dtype=torch.long), rep_len=7)


class KnownLosses(torch.nn.Module):
    """Predicts the next token with certainty at ``good`` positions, uniformly elsewhere."""

    def __init__(self, good: range, d_vocab: int = 10):
        super().__init__()
        self.good, self.d_vocab = good, d_vocab
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, tokens, attention_mask=None):
        logits = torch.zeros(*tokens.shape, self.d_vocab)
        for i in self.good:
            logits[torch.arange(len(tokens)), i, tokens[:, i + 1]] = 100.0
        return SimpleNamespace(logits=logits)


def test_icl_score_is_late_minus_early_loss():
    tokens = torch.randint(0, 10, (3, 20))
    model = KnownLosses(good=range(12, 19))  # positions 12..18 predict perfectly
    out = icl_score(model, tokens, early=range(2, 5), late=range(12, 19))
    log_v = torch.log(torch.tensor(10.0)).item()
    assert out["icl_score"] == pytest.approx(-log_v, abs=1e-4)
    assert out["loss"] == pytest.approx(log_v * 12 / 19, abs=1e-4)
    shifted = icl_score(model, tokens, early=range(2, 5), late=range(11, 18))
    assert shifted["icl_score"] == pytest.approx(-log_v * 6 / 7, abs=1e-4)
    with pytest.raises(ValueError, match="late positions"):
        icl_score(model, tokens, early=range(2, 5), late=range(12, 20))


def test_induction_probes_record_every_quantity(hf_model):
    heldout = torch.randint(2, 300, (4, 32))
    probes = induction_probes(torch.arange(2, 300), 0, heldout, rep_lens=(5, 9), n_seqs=3)
    out = {}
    for probe in probes.values():
        out.update(probe(hf_model))
    assert sorted(out) == sorted(["loss", "icl_score", "previous_token@5", "induction@5",
                                  "previous_token@9", "induction@9"])
    assert out["induction@9"].shape == (2, 4)


def test_induction_spec_data():
    assert induction_spec().phases[0].repeat_share == 1.0
    assert induction_spec(repeats=False).phases[0].repeat_share == 0.0
    assert induction_spec(steps=10).steps == 10
