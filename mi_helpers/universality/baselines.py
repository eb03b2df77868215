"""Baselines for universality: what a match looks like when nothing was learned."""

from __future__ import annotations

import tempfile
from contextlib import contextmanager

import torch

from ..core.checks import check_model

__all__ = ["random_like"]


def random_like(model, seed: int = 0):
    """A randomly initialised model with ``model``'s architecture and tokenizer (a baseline).

    Saves a fresh Hugging Face model of the same config to a temporary folder (removed
    once loaded) and loads it like any local model, with ``model``'s BOS handling.

    Raises:
        TypeError: ``model`` is a name or a Hugging Face model, not a loaded model.
    """
    check_model(model)
    from transformers import AutoConfig, AutoModelForCausalLM

    from ..core.models import load_model

    source = getattr(model.cfg, "model_name", None)
    config = getattr(getattr(model, "original_model", None), "config", None)
    if config is None:
        config = AutoConfig.from_pretrained(source)
    torch.manual_seed(seed)
    fresh = AutoModelForCausalLM.from_config(config).eval()
    with tempfile.TemporaryDirectory(prefix="random-like-") as folder:  # loaded into memory
        with _no_progress_bar():  # a temporary file is no news to the reader
            fresh.save_pretrained(folder)
        model.tokenizer.save_pretrained(folder)
        baseline = load_model(folder, device=model.cfg.device)
    baseline.cfg.default_prepend_bos = model.cfg.default_prepend_bos
    return baseline


@contextmanager
def _no_progress_bar():
    """Silence transformers' progress bars (e.g. "Writing model shards"), then restore."""
    from transformers.utils import logging

    was_enabled = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            logging.enable_progress_bar()
