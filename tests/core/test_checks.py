"""Input checks: bad tokens, layers, positions, devices and prompts are named, never silent."""

import pytest
import torch

from mi_helpers.core.checks import (as_tokens, check_device, check_layer, check_pos,
                                    check_positions, check_prompts, check_tokens,
                                    checked_indices)


def test_tokens_must_be_integer_ids_in_the_vocabulary(tiny_model):
    good = tiny_model.to_tokens("Mary likes the cat")
    assert torch.equal(check_tokens(tiny_model, good[0]), good)  # 1-D is one prompt
    with pytest.raises(TypeError, match="integer token ids.*float"):
        check_tokens(tiny_model, good.float())
    with pytest.raises(ValueError, match=f"0..{tiny_model.cfg.d_vocab - 1}"):
        check_tokens(tiny_model, good + tiny_model.cfg.d_vocab)
    with pytest.raises(ValueError, match="at least one id"):
        check_tokens(tiny_model, torch.zeros(0, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="context"):
        check_tokens(tiny_model, torch.zeros(1, tiny_model.cfg.n_ctx + 1, dtype=torch.long))
    with pytest.raises(TypeError, match="to_tokens"):
        check_tokens(tiny_model, [1, 2, 3])


def test_prompts_and_truncation(tiny_model):
    with pytest.raises(ValueError, match="no prompts"):
        check_prompts([])
    with pytest.raises(ValueError, match="empty strings"):
        check_prompts(["Mary", "  "])
    with pytest.raises(TypeError, match="list of strings"):
        check_prompts([1, 2])
    long_text = " ".join(["cat"] * (tiny_model.cfg.n_ctx + 10))
    with pytest.warns(UserWarning, match="truncated"):
        tokens = as_tokens(tiny_model, long_text)
    assert tokens.shape[1] == tiny_model.cfg.n_ctx


def test_layers_positions_and_indices(tiny_model):
    assert check_layer(tiny_model, -1) == 1
    with pytest.raises(IndexError, match="0..1"):
        check_layer(tiny_model, 2)
    with pytest.raises(TypeError, match="a layer is an int"):
        check_layer(tiny_model, 1.0)
    with pytest.raises(TypeError, match="a layer is an int"):
        check_layer(tiny_model, True)
    assert check_pos(-1, 5) == 4
    with pytest.raises(IndexError, match="5 positions"):
        check_pos(5, 5)
    assert check_positions(torch.tensor([-1, 0]), 2, 5).tolist() == [4, 0]
    with pytest.raises(ValueError, match="one position per example"):
        check_positions(torch.tensor([1, 2, 3]), 2, 5)
    with pytest.raises(TypeError, match="integers"):
        check_positions(torch.tensor([1.0, 2.0]), 2, 5)
    with pytest.raises(ValueError, match="no head to sweep"):
        checked_indices("head", [], 4)


def test_devices_that_do_not_exist_are_named():
    assert check_device(None) is None and check_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="not a device name"):
        check_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            check_device("cuda")
