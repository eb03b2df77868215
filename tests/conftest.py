"""Shared fixtures: offline hub, seeded RNGs, tiny random GPT-2s built from a config, with
the zoo's tokenizer or with GPT-2's real byte-pair tokenizer (vendored in tests/data)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach the network from tests
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import random  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402

from tokenizers import Tokenizer, decoders, models, pre_tokenizers  # noqa: E402
from transformers import GPT2TokenizerFast  # noqa: E402

from mi_helpers.core.models import load_model  # noqa: E402
from mi_helpers.zoo.tokenizer import build_tokenizer  # noqa: E402

GPT2_TOKENIZER_DIR = Path(__file__).parent / "data" / "gpt2-tokenizer"


def gpt2_tokenizer() -> GPT2TokenizerFast:
    """GPT-2's real tokenizer (50,257 tokens) from the vendored vocabulary and merges.

    ``GPT2TokenizerFast(vocab_file=..., merges_file=...)`` silently builds an empty
    vocabulary in transformers 5.24, so the BPE model is built with ``tokenizers``.
    """
    core = Tokenizer(models.BPE.from_file(str(GPT2_TOKENIZER_DIR / "encoder.json"),
                                          str(GPT2_TOKENIZER_DIR / "vocab.bpe")))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    end = "<|endoftext|>"
    return GPT2TokenizerFast(tokenizer_object=core, bos_token=end, eos_token=end, unk_token=end,
                             model_max_length=1024)


def save_random_gpt2(out: Path, n_layer: int, n_embd: int, n_head: int, seed: int = 0) -> Path:
    """A randomly initialised GPT-2 of the given shape with GPT-2's real tokenizer and
    context (1,024 positions), saved in the Hugging Face format."""
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=50257, n_positions=1024, n_embd=n_embd, n_layer=n_layer,
                        n_head=n_head, bos_token_id=50256, eos_token_id=50256)
    GPT2LMHeadModel(config).eval().save_pretrained(out)
    gpt2_tokenizer().save_pretrained(out)
    return out


@pytest.fixture(autouse=True)
def seeded():
    """Seed every RNG the helpers use, before each test."""
    random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A random 2-layer GPT-2 with the zoo tokenizer, saved in the Hugging Face format."""
    tokenizer = build_tokenizer()
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=32, n_layer=2,
                        n_head=4, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        bos_token_id=0, eos_token_id=0)
    out = tmp_path_factory.mktemp("tiny-gpt2")
    GPT2LMHeadModel(config).eval().save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    """The tiny GPT-2 loaded through the hub code path of ``load_model`` (a local folder)."""
    return load_model(str(tiny_model_dir), device="cpu")


@pytest.fixture(scope="session")
def gpt2_model_dir(tmp_path_factory):
    """A small random GPT-2 (2 layers, d_model 64) with GPT-2's real tokenizer: the hub
    code path (``MODEL = "gpt2"``) at a size the tests can afford."""
    return save_random_gpt2(tmp_path_factory.mktemp("gpt2-bpe"), n_layer=2, n_embd=64, n_head=4)


@pytest.fixture(scope="session")
def gpt2_model(gpt2_model_dir):
    return load_model(str(gpt2_model_dir), device="cpu")


@pytest.fixture(scope="session")
def gpt2_others(tmp_path_factory):
    """Notebook 09's comparison models for the hub code path: two more random GPT-2 seeds
    and a deeper GPT-2, all with GPT-2's tokenizer."""
    root = tmp_path_factory.mktemp("gpt2-others")
    seeds = [str(save_random_gpt2(root / f"seed{s}", 2, 64, 4, seed=s)) for s in (1, 2)]
    deeper = str(save_random_gpt2(root / "deeper", 3, 64, 4, seed=3))
    return {"OTHERS": seeds, "OTHER_SIZE": deeper}
