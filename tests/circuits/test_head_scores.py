import importlib

import pytest
import torch

from mi_helpers.circuits.head_scores import head_scores, offset_score, repeated_random_tokens


def test_offset_score_reads_planted_patterns():
    pos, rep = 9, 4
    patterns = torch.zeros(2, 3, 2, pos, pos)  # layer batch head dest src
    for i in range(1, pos):
        patterns[0, :, 0, i, i - 1] = 1.0  # L0H0: previous token
    for i in range(rep + 1, pos):
        patterns[1, :, 1, i, i - rep + 1] = 1.0  # L1H1: induction
    prev = offset_score(patterns, range(1, pos), 1)
    ind = offset_score(patterns, range(rep + 1, pos), rep - 1)
    assert prev[0, 0] == 1 and prev.sum() == 1
    assert ind[1, 1] == 1 and ind.sum() == 1


def test_repeated_tokens_repeat_and_avoid_specials(tiny_model):
    toks = repeated_random_tokens(tiny_model, rep_len=7, n_seqs=5)
    assert toks.shape == (5, 15)
    assert (toks[:, 1:8] == toks[:, 8:]).all()
    assert not set(toks[:, 1:].flatten().tolist()) & set(tiny_model.tokenizer.all_special_ids)


def planted_patterns(model, tokens):
    """``[layer, batch, head, dest, src]`` patterns with a known job per head.

    Layer 0: previous-token, uniform (causal), duplicate-token and induction heads (the
    last two attend to BOS outside the second copy); layer 1: every head on BOS.
    """
    batch, n_pos = tokens.shape
    rep = (n_pos - 1) // 2
    assert torch.equal(tokens[:, 1:rep + 1], tokens[:, rep + 1:])  # BOS + r + r
    patterns = torch.zeros(2, batch, 4, n_pos, n_pos)
    patterns[:, :, :, :, 0] = 1.0  # BOS by default
    for i in range(1, n_pos):
        patterns[0, :, 0, i] = 0.0
        patterns[0, :, 0, i, i - 1] = 1.0
        patterns[0, :, 1, i, :i + 1] = 1.0 / (i + 1)
        if i > rep:
            patterns[0, :, 2:4, i] = 0.0
            patterns[0, :, 2, i, i - rep] = 1.0
            patterns[0, :, 3, i, i - rep + 1] = 1.0
    patterns[0, :, 1, 0, 0] = 1.0
    return patterns


def test_head_scores_on_planted_attention(tiny_model, monkeypatch):
    module = importlib.import_module("mi_helpers.circuits.head_scores")  # not the function
    monkeypatch.setattr(module, "attention_patterns", planted_patterns)
    rep = 5
    scores = head_scores(tiny_model, rep_len=rep, n_seqs=3)
    uniform_all = sum(1 / (i + 1) for i in range(1, 2 * rep + 1)) / (2 * rep)
    uniform_second = sum(1 / (i + 1) for i in range(rep + 1, 2 * rep + 1)) / rep
    bos_at_1 = 1 / (2 * rep)  # BOS is the previous token of position 1 only
    expected = {
        "previous_token": [[1.0, uniform_all, bos_at_1, bos_at_1], [bos_at_1] * 4],
        "duplicate_token": [[0.0, uniform_second, 1.0, 0.0], [0.0] * 4],
        "induction": [[0.0, uniform_second, 0.0, 1.0], [0.0] * 4],
    }
    assert set(scores) == set(expected)
    for name, grid in expected.items():
        assert torch.allclose(scores[name], torch.tensor(grid), atol=1e-6), (name, scores[name])


def test_head_scores_of_a_real_model_are_attention_weights(tiny_model):
    scores = head_scores(tiny_model, rep_len=10, n_seqs=4)
    patterns = module_patterns(tiny_model, rep_len=10, n_seqs=4)
    i = torch.arange(11, 21)
    assert torch.allclose(scores["induction"], patterns[..., i, i - 9].mean(dim=(1, 3)), atol=1e-6)
    for value in scores.values():
        assert value.shape == (2, 4) and (value >= 0).all() and (value <= 1).all()
    with pytest.raises(ValueError, match="context"):
        head_scores(tiny_model, rep_len=40)


def module_patterns(model, rep_len, n_seqs):
    """Every layer's pattern on the same repeated tokens, straight from a full cache."""
    tokens = repeated_random_tokens(model, rep_len, n_seqs, seed=0)
    _, cache = model.run_with_cache(tokens)
    return torch.stack([cache[f"blocks.{layer}.attn.hook_pattern"]
                        for layer in range(model.cfg.n_layers)])
