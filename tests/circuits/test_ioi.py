import torch
import pytest

from mi_helpers.circuits.ioi import evaluate_ioi, single_token_ids, tokenize_prompts


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


@pytest.fixture(scope="module")
def zoo4():
    from mi_helpers.core.models import load_model
    return load_model("zoo-4l", device="cpu")


def test_dataset_positions_and_answers(zoo4):
    from mi_helpers.circuits.ioi import ioi_dataset
    data = ioi_dataset(zoo4, 10, seed=3)
    rows = torch.arange(len(data))
    pos = data.word_positions
    assert torch.equal(data.tokens[rows, pos["IO"]], data.io_ids)
    assert torch.equal(data.tokens[rows, pos["S1"]], data.s_ids)
    assert torch.equal(data.tokens[rows, pos["S2"]], data.s_ids)
    assert (pos["S1"] < pos["S2"]).all() and (pos["S2"] < pos["end"]).all()
    assert data.order.count("ABBA") == data.order.count("BABA") == 5
    assert ((pos["IO"] < pos["S1"]) == torch.tensor([o == "ABBA" for o in data.order])).all()
    assert data.metric(zoo4(data.tokens)).ndim == 0


def test_abc_corruption_keeps_shape_and_drops_names(zoo4):
    from mi_helpers.circuits.ioi import abc_corruption, ioi_dataset
    data = ioi_dataset(zoo4, 12, seed=0)
    abc = abc_corruption(data, zoo4, seed=1)
    assert abc.tokens.shape == data.tokens.shape
    for clean, corrupt, io, s in zip(data.prompts, abc.prompts, data.io, data.s):
        assert io not in corrupt.split() and s not in corrupt.split()
        assert len(set(corrupt.split()) - set(clean.split())) == 3  # three fresh names
    same = data.tokens == abc.tokens
    changed = (~same).sum(dim=1)
    assert (changed == 3).all()  # only the three name slots differ
    assert torch.equal(abc.io_ids, data.io_ids)  # the metric keeps the clean answers


def test_abc_corruption_needs_three_other_names_per_prompt(zoo4):
    """Each prompt's IO and S come from the dataset's three names: five names leave
    exactly three others (enough), four leave two (refused, with the reason)."""
    from mi_helpers.circuits.ioi import abc_corruption, ioi_dataset
    three = ["Mary", "John", "Anna"]
    data = ioi_dataset(zoo4, 4, names=three)
    extra = [n for n in ioi_dataset(zoo4, 12).io if n not in three]
    extra = sorted(set(extra))[:2]
    abc = abc_corruption(data, zoo4, names=three + extra)
    for corrupt in abc.prompts:
        assert set(corrupt.split()) & set(three + extra)
    with pytest.raises(ValueError, match="three names other than its IO and S"):
        abc_corruption(data, zoo4, names=three + extra[:1])


def test_bad_names_and_templates_are_named(zoo4):
    from mi_helpers.circuits.ioi import ioi_dataset
    with pytest.raises(ValueError, match="Zebedee"):
        ioi_dataset(zoo4, 4, names=["Mary", "John", "Zebedee", "Anna"])
    with pytest.raises(ValueError, match="at least 3"):
        ioi_dataset(zoo4, 4, names=["Mary", "John"])
    with pytest.raises(ValueError, match="must contain"):
        ioi_dataset(zoo4, 4, templates=["{A} went to the {PLACE} , {S} said hi to {IO} ."])


def test_natural_punctuation_gives_zoo_tokens(zoo4):
    from mi_helpers.circuits.ioi import natural_text
    text = "When Mary and John went to the store , John gave a drink to Mary ."
    assert torch.equal(zoo4.to_tokens(text), zoo4.to_tokens(natural_text(text)))


def test_name_score_and_accuracy(zoo4):
    from mi_helpers.circuits.ioi import ioi_dataset
    data = ioi_dataset(zoo4, 6, seed=0)
    logits = torch.zeros(6, data.tokens.shape[1], zoo4.cfg.d_vocab)
    rows = torch.arange(6)
    logits[rows, data.word_positions["end"], data.io_ids] = float(len(data.name_ids))
    assert data.name_score(logits).item() == pytest.approx(len(data.name_ids) - 1)
    assert data.name_score(logits, "S").item() == pytest.approx(-1)
    assert data.top1_accuracy(logits).item() == 1
    with pytest.raises(ValueError, match="'IO' or 'S'"):
        data.name_score(logits, "X")


def test_logit_diff_reads_each_prompts_end_by_hand(zoo4):
    from mi_helpers.circuits.ioi import ioi_dataset
    data = ioi_dataset(zoo4, 6, seed=1)
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(6, data.tokens.shape[1], zoo4.cfg.d_vocab, generator=gen)
    rows, end = torch.arange(6), data.word_positions["end"]
    expected = logits[rows, end, data.io_ids] - logits[rows, end, data.s_ids]
    assert torch.allclose(data.logit_diff(logits), expected)
    assert data.metric(logits).item() == pytest.approx(expected.mean().item(), abs=1e-6)
    names = logits[rows, end][:, data.name_ids].mean(-1)
    io_score = (logits[rows, end, data.io_ids] - names).mean()
    assert data.name_score(logits).item() == pytest.approx(io_score.item(), abs=1e-6)
    top1 = (logits[rows, end].argmax(-1) == data.io_ids).float().mean()
    assert data.top1_accuracy(logits).item() == top1.item()


def test_dataset_cycles_templates_and_keeps_pairs_held_out(zoo4):
    from mi_helpers.circuits.ioi import ioi_dataset
    from mi_helpers.zoo import corpus
    data = ioi_dataset(zoo4, 12, seed=2)
    assert data.template_ids.tolist() == [i % 5 for i in range(12)]
    assert data.order == ["ABBA", "BABA"] * 6
    assert all(corpus.is_heldout_pair(io, s) for io, s in zip(data.io, data.s))
    train = ioi_dataset(zoo4, 12, seed=2, heldout=False)
    assert not any(corpus.is_heldout_pair(io, s) for io, s in zip(train.io, train.s))
    assert train.templates == list(corpus.IOI_TRAIN_TEMPLATES)
    a, b = (data.io[0], data.s[0])  # prompt 0: template 0, ABBA
    assert data.prompts[0] == (f"When {a} and {b} visited the {data.places[0]}, {b} handed a "
                               f"{data.objects[0]} to")
    for prompt, io, s, order in zip(data.prompts, data.io, data.s, data.order):
        words = prompt.replace(",", " ").split()
        assert words.count(s) == 2 and words.count(io) == 1
        assert (words.index(io) < words.index(s)) == (order == "ABBA")


def test_evaluate_ioi_by_hand(zoo4):
    from mi_helpers.circuits.ioi import evaluate_ioi
    from mi_helpers.datasets.prompts import tokenize_prompts
    prompts = ["When Mary and John went to the store , John gave a drink to",
               "When Anna and Tom went to the park , Tom gave a book to",
               "When Mary and John went to the store , John gave a drink to"]
    io, s = ["Mary", "Anna", "John"], ["John", "Tom", "Mary"]  # the last one swapped
    result = evaluate_ioi(zoo4, prompts, io, s)
    tokens, ends = tokenize_prompts(zoo4, prompts)
    with torch.no_grad():
        final = zoo4(tokens)[torch.arange(3), ends]
    io_ids, s_ids = single_token_ids(zoo4, io), single_token_ids(zoo4, s)
    diff = final[torch.arange(3), io_ids] - final[torch.arange(3), s_ids]
    assert result["logit_diff"] == pytest.approx(diff.mean().item(), abs=1e-5)
    assert result["io_beats_s"] == pytest.approx((diff > 0).float().mean().item())
    assert result["top1_accuracy"] == (final.argmax(-1) == io_ids).float().mean().item()
    assert result["io_beats_s"] == pytest.approx(2 / 3) and result["top1_accuracy"] == \
        pytest.approx(2 / 3)  # the zoo model gets the first two right
    tie = evaluate_ioi(zoo4, prompts[:1], ["Mary"], ["Mary"])  # IO = S: a tie is not a win
    assert tie["logit_diff"] == 0 and tie["io_beats_s"] == 0

    class Cooler:  # the zoo model with every logit divided by 50: differences below 1
        def __getattr__(self, name):
            return getattr(zoo4, name)

        def __call__(self, tokens):
            return zoo4(tokens) / 50

    small = evaluate_ioi(Cooler(), prompts, io, s)
    assert abs(small["logit_diff"]) < 1 and small["io_beats_s"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="one IO and one S name per prompt"):
        evaluate_ioi(zoo4, prompts, io[:2], s)


def test_a_slice_of_the_dataset_is_the_same_prompts_and_metric(zoo4):
    """``ioi[a:b]`` keeps its prompts' rows of every field, and its metric on their logits
    is the full dataset's metric restricted to those prompts."""
    from mi_helpers.circuits.ioi import abc_corruption, ioi_dataset
    data = ioi_dataset(zoo4, 12, seed=0)
    abc = abc_corruption(data, zoo4, seed=1)
    part, part_abc = data[3:9:2], abc[3:9:2]
    rows = [3, 5, 7]
    assert part.prompts == [data.prompts[i] for i in rows] and len(part) == 3
    assert part.io == [data.io[i] for i in rows] and part.order == [data.order[i] for i in rows]
    assert torch.equal(part.tokens, data.tokens[rows])
    assert torch.equal(part_abc.tokens, abc.tokens[rows]) and part_abc.io == part.io
    for key, where in data.word_positions.items():
        assert torch.equal(part.word_positions[key], where[rows]), key
    with torch.no_grad():
        logits = zoo4(data.tokens)
    assert torch.allclose(part.logit_diff(logits[rows]), data.logit_diff(logits)[rows])
    assert part.metric.positions.tolist() == data.word_positions["end"][rows].tolist()
    assert part.top1_accuracy(logits[rows]) == (
        logits[rows, data.word_positions["end"][rows]].argmax(-1) == data.io_ids[rows]).float().mean()
    with pytest.raises(TypeError, match="slice"):
        data[3]
    with pytest.raises(ValueError, match="selects none"):
        data[20:]
