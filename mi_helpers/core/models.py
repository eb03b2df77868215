"""Load a model for the curriculum: the offline zoo by default, any hub model by name.

``load_model("zoo-2l")`` boots a model saved under ``data/zoo/zoo-2l/`` (Hugging Face
format) through TransformerLens' ``TransformerBridge``; ``load_model("gpt2")``
hands the name to TransformerLens, which downloads it from the hub. Either way the
bridge is put in *compatibility mode*, so hook names (``blocks.0.attn.hook_pattern``)
and weights (``W_Q``, ``W_U``, …) match the classic ``HookedTransformer`` and every
notebook runs unchanged on both.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from transformers.utils import logging as hf_logging
from transformer_lens.model_bridge import TransformerBridge

from .checks import check_device

__all__ = ["load_model", "zoo_names", "default_device", "ZOO_DIR"]

ZOO_DIR = Path(__file__).resolve().parents[2] / "data" / "zoo"
ZOO_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json")


def default_device() -> torch.device:
    """CUDA if present, then Apple's MPS, then the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def zoo_names(zoo_dir: Path | None = None) -> list[str]:
    """Names of the zoo models present on disk (the folders under ``data/zoo/``)."""
    zoo_dir = ZOO_DIR if zoo_dir is None else zoo_dir
    if not zoo_dir.is_dir():
        return []
    return sorted(p.name for p in zoo_dir.iterdir() if p.is_dir())


def check_zoo_files(model_dir: Path) -> None:
    """Raise a clear error if a zoo model's files are missing or unreadable.

    Raises:
        FileNotFoundError: a required file is missing (the message names it).
        ValueError: a file is corrupted (the message names it).
    """
    for name in ZOO_REQUIRED_FILES:
        if not (model_dir / name).is_file():
            raise FileNotFoundError(
                f"zoo model file is missing: {model_dir / name}. Re-train it with "
                f"`python -m mi_helpers.zoo train {model_dir.name}` or restore it from git.")
    for name in ("config.json", "tokenizer.json"):
        try:
            json.loads((model_dir / name).read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"zoo model file is corrupted: {model_dir / name} ({err})") from err
    weights = model_dir / "model.safetensors"
    try:
        with safe_open(str(weights), framework="pt") as f:
            for key in f.keys():
                f.get_tensor(key)
    except (SafetensorError, OSError, RuntimeError) as err:
        raise ValueError(f"zoo model file is corrupted: {weights} ({err})") from err


def load_model(name: str, device: str | torch.device | None = None) -> TransformerBridge:
    """Load a zoo model (offline) or a hub model, in TransformerLens compatibility mode.

    Args:
        name: a zoo name (see :func:`zoo_names`), a hub name such as ``"gpt2"``
            or ``"pythia-70m"``, or a local folder in the Hugging Face format.
        device: where to put the model; default :func:`default_device`.

    Returns:
        A ``TransformerBridge`` in eval mode with compatibility mode enabled.
    """
    device = check_device(device) or default_device()
    if name in zoo_names():
        model_dir = ZOO_DIR / name
        check_zoo_files(model_dir)
        source = str(model_dir)
    else:
        source = name
    bar_was_on = hf_logging.is_progress_bar_enabled()
    if source != name:  # a few small local files: no "Loading weights" bar
        hf_logging.disable_progress_bar()
    try:
        model = TransformerBridge.boot_transformers(source, device=device, dtype=torch.float32)
    except (OSError, ValueError) as err:
        if source != name:  # a zoo model that passed the file checks but failed to boot
            raise
        raise OSError(
            f"could not load {name!r}: it is not a zoo model (zoo models here: "
            f"{', '.join(zoo_names()) or 'none found under ' + str(ZOO_DIR)}) and the hub "
            f"could not provide it ({type(err).__name__}: {err}). Offline, use a zoo name."
        ) from err
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()
    model.enable_compatibility_mode()
    if source != name:
        model.cfg.default_prepend_bos = True  # the zoo always trains with BOS first
    model.eval()
    return model
