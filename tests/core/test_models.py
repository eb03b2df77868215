import shutil

import pytest
import torch

from mi_helpers import load_model, zoo_names
from mi_helpers.core import models as models_module


def test_hub_code_path_loads_a_local_gpt2(tiny_model, tiny_model_dir):
    from transformers import GPT2LMHeadModel
    tokens = tiny_model.to_tokens("When Mary and John went to the store")
    hf = GPT2LMHeadModel.from_pretrained(tiny_model_dir).eval()
    with torch.no_grad():
        ours, theirs = tiny_model(tokens), hf(tokens).logits
    assert torch.allclose(ours.log_softmax(-1), theirs.log_softmax(-1), atol=1e-5)
    assert "blocks.1.attn.hook_pattern" in tiny_model.hook_dict  # compatibility names


def test_unknown_name_offline_lists_the_zoo():
    with pytest.raises(OSError) as err:
        load_model("no-such-model-anywhere", device="cpu")
    message = str(err.value)
    assert "not a zoo model" in message and "hub could not provide it" in message
    for name in zoo_names():
        assert name in message


def _fake_zoo(tmp_path, monkeypatch, source_dir):
    zoo = tmp_path / "zoo"
    shutil.copytree(source_dir, zoo / "fake")
    monkeypatch.setattr(models_module, "ZOO_DIR", zoo)
    return zoo / "fake"


def test_zoo_loads_from_its_folder(tmp_path, monkeypatch, tiny_model_dir):
    _fake_zoo(tmp_path, monkeypatch, tiny_model_dir)
    model = models_module.load_model("fake", device="cpu")
    assert model.cfg.n_layers == 2


def test_missing_weight_file_is_named(tmp_path, monkeypatch, tiny_model_dir):
    folder = _fake_zoo(tmp_path, monkeypatch, tiny_model_dir)
    (folder / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        models_module.load_model("fake", device="cpu")


def test_corrupted_weight_file_is_named(tmp_path, monkeypatch, tiny_model_dir):
    folder = _fake_zoo(tmp_path, monkeypatch, tiny_model_dir)
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="model.safetensors"):
        models_module.load_model("fake", device="cpu")


def test_default_device_prefers_cuda_then_mps_then_cpu(monkeypatch):
    mps = torch.backends.mps
    for cuda, apple, expected in ((True, True, "cuda"), (False, True, "mps"),
                                  (False, False, "cpu")):
        monkeypatch.setattr(torch.cuda, "is_available", lambda cuda=cuda: cuda)
        monkeypatch.setattr(mps, "is_available", lambda apple=apple: apple)
        assert models_module.default_device() == torch.device(expected)


def test_zoo_models_prepend_bos(tmp_path, monkeypatch, tiny_model_dir):
    _fake_zoo(tmp_path, monkeypatch, tiny_model_dir)
    model = models_module.load_model("fake", device="cpu")
    assert model.to_str_tokens("Mary likes")[0] == "<|endoftext|>"


def _copy(tmp_path, source):
    folder = tmp_path / "model"
    shutil.copytree(source, folder)
    return folder


def test_bad_folders_by_path_name_the_file(tmp_path, tiny_model_dir):
    folder = _copy(tmp_path, tiny_model_dir)
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 3])
    with pytest.raises(ValueError, match=r"model\.safetensors is corrupted or truncated"):
        load_model(str(folder), device="cpu")
    (folder / "model.safetensors").write_bytes(data)
    (folder / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"config\.json is missing.*not a model folder"):
        load_model(str(folder), device="cpu")


def test_pickle_weights_are_refused_with_the_reason(tmp_path, tiny_model_dir):
    folder = _copy(tmp_path, tiny_model_dir)
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    with pytest.raises(ValueError, match="pickle.*arbitrary code.*safetensors"):
        load_model(str(folder), device="cpu")


def test_bad_json_and_bad_names(tmp_path, tiny_model_dir):
    folder = _copy(tmp_path, tiny_model_dir)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"config\.json is corrupted: not valid JSON"):
        load_model(str(folder), device="cpu")
    with pytest.raises(FileNotFoundError, match="no model folder"):
        load_model(str(tmp_path / "nowhere"), device="cpu")
    with pytest.raises(ValueError, match="zoo name, a folder or a hub name"):
        load_model("  ", device="cpu")
    with pytest.raises(ValueError, match="no CUDA GPU|not a device"):
        load_model("zoo-2l", device="cuda" if not torch.cuda.is_available() else "gpu0")
