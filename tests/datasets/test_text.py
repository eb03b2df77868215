import pytest

from mi_helpers.datasets.text import corpus_sentences, token_chunks


def test_sentences_are_seeded_and_cycle_kinds():
    a = corpus_sentences(6, kinds=("english", "arithmetic"), seed=1)
    assert a == corpus_sentences(6, kinds=("english", "arithmetic"), seed=1)
    assert "=" in a[1] and "=" not in a[0]
    with pytest.raises(ValueError, match="klingon"):
        corpus_sentences(2, kinds=("klingon",))


def test_token_chunks_start_with_bos(tiny_model):
    rows = token_chunks(tiny_model, corpus_sentences(50), seq_len=16)
    assert rows.shape[1] == 16 and len(rows) > 5
    assert (rows[:, 0] == tiny_model.tokenizer.bos_token_id).all()
    assert tiny_model.tokenizer.unk_token_id not in rows.tolist()
    with pytest.raises(ValueError, match="context"):
        token_chunks(tiny_model, ["a"], seq_len=500)


def test_language_prompts_end_on_a_name():
    from mi_helpers.datasets.text import language_prompts
    from mi_helpers.zoo.corpus import NAMES
    data = language_prompts(20, seed=0)
    prompts, labels = data.prompts, data.labels
    assert len(prompts) == 40 and labels == [0] * 20 + [1] * 20
    assert all(p.split()[-1] in NAMES and len(p.split()) >= 3 for p in prompts)
    assert any(w in ("le", "la", "un", "une") for p in prompts[20:] for w in p.split())
    assert data.previous == [p.split()[-2] for p in prompts]
    after = language_prompts(10, seed=1, where="after_sentence")
    assert set(after.previous) == {"."} and all(p.split()[-1] in NAMES for p in after.prompts)


def test_length_matched_equalises_the_length_distributions():
    from collections import Counter

    from mi_helpers.datasets.text import length_matched
    lengths = [3, 3, 4, 5, 5, 5, 3, 4, 4, 4, 6]
    labels = [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1]
    rows = length_matched(lengths, labels, seed=0)
    per_label = [Counter(lengths[r] for r in rows if labels[r] == k) for k in (0, 1)]
    assert per_label[0] == per_label[1] == Counter({3: 1, 4: 1})
