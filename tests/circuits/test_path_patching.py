import pytest
import torch

from mi_helpers.circuits.ioi import abc_corruption, ioi_dataset
from mi_helpers.circuits.patching import activation_patching
from mi_helpers.circuits.path_patching import path_patching


@pytest.fixture(scope="module")
def ioi(request):
    from mi_helpers.core.models import load_model
    model = load_model("zoo-4l", device="cpu")
    data = ioi_dataset(model, 16, seed=0)
    return model, data, abc_corruption(data, model)


def test_patching_nothing_gives_the_clean_metric(ioi):
    model, data, abc = ioi
    for receivers in ("logits", [(2, 1, "q"), (3, 0, "v")]):
        result = path_patching(model, data.tokens, abc.tokens, data.metric, receivers, senders=[[]])
        assert result.values.item() == pytest.approx(result.clean, abs=1e-4)


def test_patching_a_sender_with_its_clean_value_changes_nothing(ioi):
    model, data, _ = ioi
    result = path_patching(model, data.tokens, data.tokens, data.metric, [(2, 3, "k")],
                           senders=[[(0, 7)], [(0, 2), (1, 5)]])
    assert torch.allclose(result.values, torch.tensor(result.clean), atol=1e-4)


def test_last_layer_sender_to_logits_equals_activation_patching(ioi):
    """With no later head to freeze, the path to the logits is the head's whole effect."""
    model, data, abc = ioi
    last = model.cfg.n_layers - 1
    act = activation_patching(model, data.tokens, abc.tokens, data.metric, "z",
                              mode="noise", layers=[last])
    senders = [[(last, h)] for h in range(model.cfg.n_heads)]
    path = path_patching(model, data.tokens, abc.tokens, data.metric, "logits", senders=senders)
    assert torch.allclose(path.values, act.values[0], atol=1e-4)
    # in layer 0 the two differ: the later heads that read the sender are frozen
    act = activation_patching(model, data.tokens, abc.tokens, data.metric, "z", mode="noise",
                              layers=[0])
    path = path_patching(model, data.tokens, abc.tokens, data.metric, "logits",
                         senders=[[(0, h)] for h in range(model.cfg.n_heads)])
    assert (path.values - act.values[0]).abs().max() > 0.1


def test_sweep_grid_and_batching_agree(ioi):
    model, data, abc = ioi
    grid = path_patching(model, data.tokens, abc.tokens, data.metric, [(2, 0, "q")],
                         receiver_positions=data.word_positions["end"])
    assert grid.values.shape == (model.cfg.n_layers, model.cfg.n_heads)
    assert grid.values[2:].isnan().all() and not grid.values[:2].isnan().any()
    one_by_one = path_patching(model, data.tokens, abc.tokens, data.metric, [(2, 0, "q")],
                               senders=[[(0, 7)], [(1, 3)]], patches_per_pass=1,
                               receiver_positions=data.word_positions["end"])
    assert torch.allclose(one_by_one.values, grid.values[[0, 1], [7, 3]], atol=1e-4)
    # a sender that matters to the logits lowers the score
    to_logits = path_patching(model, data.tokens, abc.tokens, data.metric, "logits")
    assert to_logits.score.nan_to_num(1.0).min() < 0.9


def test_bad_input_gets_clear_errors(ioi):
    model, data, abc = ioi
    with pytest.raises(ValueError, match="same number of tokens"):
        path_patching(model, data.tokens, abc.tokens[:, :-1], data.metric)
    with pytest.raises(IndexError, match="head 9"):
        path_patching(model, data.tokens, abc.tokens, data.metric, senders=[[(0, 9)]])
    with pytest.raises(ValueError, match="not before the first receiver"):
        path_patching(model, data.tokens, abc.tokens, data.metric, [(1, 0, "q")],
                      senders=[[(2, 0)]])
    with pytest.raises(ValueError, match="nothing comes before"):
        path_patching(model, data.tokens, abc.tokens, data.metric, [(0, 1, "q")])
    with pytest.raises(ValueError, match="'q'\\|'k'\\|'v'"):
        path_patching(model, data.tokens, abc.tokens, data.metric, [(1, 0, "x")])
    with pytest.raises(ValueError, match="scalar"):
        path_patching(model, data.tokens, abc.tokens, data.logit_diff, senders=[[(0, 1)]])


def test_the_metric_s_declared_position_gives_the_same_values(ioi):
    """data.metric declares the last position it reads, so the replay unembeds only there;
    the same metric as a plain function (every position unembedded) gives the same values."""
    model, data, abc = ioi
    plain = data.mean_logit_diff
    for receivers in ("logits", [(2, 0, "q"), (3, 1, "v")]):
        fast = path_patching(model, data.tokens, abc.tokens, data.metric, receivers,
                             senders=[[(0, 7)], [(1, 3), (0, 2)]])
        full = path_patching(model, data.tokens, abc.tokens, plain, receivers,
                             senders=[[(0, 7)], [(1, 3), (0, 2)]])
        assert torch.allclose(fast.values, full.values, atol=1e-5)
    reads_first = type(data.metric)(lambda logits: logits[:, 0, 5].mean(), data.word_positions["end"])
    with pytest.raises(ValueError, match="outside its declared positions"):
        path_patching(model, data.tokens, abc.tokens, reads_first, "logits", senders=[[(0, 1)]])
