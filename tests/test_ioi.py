import pytest

from mi_helpers.ioi import evaluate_ioi, single_token_ids, tokenize_prompts


def test_names_must_be_single_tokens(tiny_model):
    assert len(single_token_ids(tiny_model, ["Mary", "John"])) == 2
    with pytest.raises(ValueError, match="Bartholomew"):
        single_token_ids(tiny_model, ["Mary", "Bartholomew"])


def test_prompts_of_different_lengths(tiny_model):
    tokens, ends = tokenize_prompts(tiny_model, ["Mary likes", "the old dog sees the cat"])
    assert ends.tolist() == [2, 6] and tokens.shape == (2, 7)
    metrics = evaluate_ioi(tiny_model, ["When Mary and John went to the store , John gave a drink to"],
                           ["Mary"], ["John"])
    assert set(metrics) == {"logit_diff", "io_beats_s", "top1_accuracy"}
