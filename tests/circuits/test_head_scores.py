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


def test_head_scores_shapes_and_range(tiny_model):
    scores = head_scores(tiny_model, rep_len=10, n_seqs=4)
    for value in scores.values():
        assert value.shape == (2, 4) and (value >= 0).all() and (value <= 1).all()
    with pytest.raises(ValueError, match="context"):
        head_scores(tiny_model, rep_len=40)
