import random

from mi_helpers.zoo import corpus
from mi_helpers.zoo.data import Phase, SequenceSampler
from mi_helpers.zoo.tokenizer import build_tokenizer


def test_sampler_is_deterministic():
    a = SequenceSampler(64, seed=3).batch(8, Phase(1.0, 0.5))
    b = SequenceSampler(64, seed=3).batch(8, Phase(1.0, 0.5))
    c = SequenceSampler(64, seed=4).batch(8, Phase(1.0, 0.5))
    assert a.shape == (8, 64) and (a == b).all() and not (a == c).all()
    assert (a[:, 0] == 0).all()  # every sequence starts with BOS


def test_every_name_and_word_is_one_token():
    tok = build_tokenizer()
    for word in corpus.vocabulary()[2:]:
        assert tok(" " + word, add_special_tokens=False)["input_ids"] == [tok.convert_tokens_to_ids(word)]
    ids = tok("When Mary and John went to the store, John gave", add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids and len(ids) == 11


def test_sampler_matches_tokenizer():
    sampler = SequenceSampler(64, seed=0)
    tok = build_tokenizer()
    text = corpus.english_sentence(random.Random(1))
    assert [sampler.word_to_id[w] for w in text.split()] == tok(text, add_special_tokens=False)["input_ids"]


def test_heldout_ioi_is_disjoint_from_training():
    rng = random.Random(0)
    for _ in range(2000):
        sent = corpus.ioi_sentence(rng, rng.choice(corpus.IOI_TRAIN_TEMPLATES), heldout_pairs=False)
        assert not corpus.is_heldout_pair(sent.io, sent.s)
    assert not set(corpus.IOI_TRAIN_TEMPLATES) & set(corpus.IOI_HELDOUT_TEMPLATES)
    for sent in corpus.ioi_split(200, heldout=True):
        assert corpus.is_heldout_pair(sent.io, sent.s)
        words = sent.prompt.split()
        assert words.count(sent.s) == 2 and words.count(sent.io) == 1  # IOI-shaped


def test_heldout_template_words_are_trained():
    """Every word of a held-out template appears in some training sentence kind."""
    rng = random.Random(0)
    seen = set()
    for _ in range(3000):
        for make in corpus.TEXT_KINDS.values():
            seen.update(make(rng).split())
    for template in corpus.IOI_HELDOUT_TEMPLATES:
        for word in template.split():
            assert word.startswith("{") or word in seen, word
