import pytest

from mi_helpers.datasets import minimal_pairs


def test_pairs_share_their_words_and_differ_in_one_position(tiny_model):
    slots = {"S": ["Mary", "John", "Zyxwv"], "P": ["near", "in"]}  # "Zyxwv" is not one token
    clean, corrupted, fills = minimal_pairs(tiny_model, "{S} sees Tom {P} the",
                                            "{S} sees Tom . the", slots, n=12, seed=3)
    assert clean.shape == corrupted.shape == (12, 6)
    assert ((clean != corrupted).sum(1) == 1).all() and (clean[:, 4] != corrupted[:, 4]).all()
    assert {f["S"] for f in fills} <= {"Mary", "John"} and len({f["P"] for f in fills}) == 2
    for row, fill in zip(clean, fills):
        assert tiny_model.to_string(row[1:]) == f"{fill['S']} sees Tom {fill['P']} the"
    again = minimal_pairs(tiny_model, "{S} sees Tom {P} the", "{S} sees Tom . the", slots, 12, seed=3)
    assert (again[0] == clean).all()


def test_bad_templates_are_named(tiny_model):
    with pytest.raises(ValueError, match="slots \\['O'\\]"):
        minimal_pairs(tiny_model, "{S} sees {O}", "{S} sees", {"S": ["Mary"]}, 2)
    with pytest.raises(ValueError, match="single token"):
        minimal_pairs(tiny_model, "{S} sees", "{S} sees", {"S": ["Zyxwv"]}, 2)
    with pytest.raises(ValueError, match="same length"):
        minimal_pairs(tiny_model, "{S} sees the", "{S} sees", {"S": ["Mary"]}, 2)


def test_a_slot_that_opens_the_template_needs_words_without_a_space_too(gpt2_model):
    """GPT-2's BPE: " Claire" is one token, "Claire" (no space, at the start) is two."""
    slots = {"S": ["Mary", "Claire", "John", "Zoe"], "O": ["Claire", "Tina"]}
    clean, corrupted, fills = minimal_pairs(gpt2_model, "{S} sees {O} near the",
                                            "{S} sees {O} . the", slots, n=16, seed=0)
    assert clean.shape == corrupted.shape == (16, 6)  # BOS + 5 words, every one a token
    assert {f["S"] for f in fills} == {"Mary", "John"}  # Claire and Zoe split at the start
    assert {f["O"] for f in fills} == {"Claire", "Tina"}  # after a space they are one token
