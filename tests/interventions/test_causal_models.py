"""The worked causal models: the pairs say what they claim, and the zoo solves the task."""

import pytest
import torch

from mi_helpers.core import hook_name, load_model
from mi_helpers.interventions.causal_models import ioi_pairs, language_pairs, language_words
from mi_helpers.interventions.das import iia, task_accuracy


@pytest.fixture(scope="module")
def zoo4():
    return load_model("zoo-4l", device="cpu")


@pytest.fixture(scope="module")
def zoo2():
    return load_model("zoo-2l", device="cpu")


def test_ioi_pairs_swap_only_the_subject_and_fillers(zoo4):
    pairs = ioi_pairs(zoo4, 40, seed=0)
    assert pairs.base.shape == pairs.source.shape
    assert 0.3 < pairs.targets.float().mean() < 0.7  # about half the sources swap the IO
    io, s = pairs.answers[:, 0, 0], pairs.answers[:, 1, 0]
    for k in range(len(pairs)):
        base, source = pairs.base[k], pairs.source[k]
        names = [int(t) for t in base if int(t) in (int(io[k]), int(s[k]))]
        src_names = [int(t) for t in source if int(t) in (int(io[k]), int(s[k]))]
        assert names[:2] == src_names[:2]  # the same two names, in the same order
        subject = src_names[2]  # the source's second mention is its subject
        source_io = int(io[k]) if subject == int(s[k]) else int(s[k])
        assert int(pairs.answers[k, pairs.targets[k], 0]) == source_io
        assert pairs.source_values[k] == names.index(source_io)
    assert task_accuracy(zoo4, pairs) > 0.95


def test_ioi_variable_moves_with_the_whole_residual(zoo4):
    pairs = ioi_pairs(zoo4, 32, seed=1)
    hook = hook_name("resid_post", 1)
    assert iia(zoo4, pairs, hook, torch.eye(zoo4.cfg.d_model)) > 0.95
    nothing = (pairs.targets == pairs.base_labels).float().mean().item()
    # one coordinate of the residual is far too little: IIA stays near "no effect"
    one_unit = torch.eye(zoo4.cfg.d_model)[:, :1]
    assert iia(zoo4, pairs, hook, one_unit) == pytest.approx(nothing, abs=0.15)


def test_language_pairs(zoo2):
    pairs = language_pairs(zoo2, 40, seed=0)
    english, french = language_words(zoo2)
    assert pairs.answers.shape == (40, 2, max(len(english), len(french)))
    assert (pairs.answers[:, 0] >= 0).sum(-1).eq(len(english)).all()
    assert pairs.base_labels.float().mean() == 0.5
    assert (pairs.targets != pairs.base_labels).float().mean() == 0.5
    assert torch.equal(pairs.targets, pairs.source_values)
    # the last token of each prompt is a name, the same word class in both languages
    last = pairs.base[torch.arange(40), pairs.base_pos]
    assert all(zoo2.to_str_tokens(t.unsqueeze(0))[0].strip()[0].isupper() for t in last)
    assert task_accuracy(zoo2, pairs) > 0.9
    with pytest.raises(ValueError, match="at least 2"):
        language_pairs(zoo2, 1)
