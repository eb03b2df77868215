"""Shared fixtures: offline hub, seeded RNGs, a tiny random GPT-2 built from a config."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach the network from tests
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import random  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402

from mi_helpers.core.models import load_model  # noqa: E402
from mi_helpers.zoo.tokenizer import build_tokenizer  # noqa: E402


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
