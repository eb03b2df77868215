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
from .paths import data_dir

__all__ = ["load_model", "zoo_names", "default_device", "check_model_folder", "ZOO_DIR"]

ZOO_DIR = data_dir() / "zoo"


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


def _check_json(path: Path) -> None:
    try:
        json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is corrupted: not valid JSON ({err})") from err


def _check_safetensors(path: Path) -> None:
    try:
        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():
                f.get_tensor(key)
    except (SafetensorError, OSError, RuntimeError) as err:
        raise ValueError(f"{path} is corrupted or truncated: {err}") from err


def check_model_folder(folder: Path, zoo: bool = False) -> None:
    """Raise a clear error, naming the file, if a model folder cannot be loaded safely.

    A folder needs ``config.json`` and its weights as safetensors (one file, or shards with
    an index); pickle weights (``*.bin``, ``*.pt``) are refused, because unpickling can run
    arbitrary code. A zoo model also needs its ``tokenizer.json``.

    Raises:
        FileNotFoundError: a required file is missing. ValueError: a file is corrupted,
            truncated or a pickle.
    """
    fix = (f"Re-train it with `python -m mi_helpers.zoo train {folder.name}` or restore it "
           f"from git." if zoo else "Save it again with `model.save_pretrained(folder)`.")
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder / 'config.json'} is missing: {folder} is not a model "
                                f"folder in the Hugging Face format. {fix}")
    _check_json(folder / "config.json")
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        pickles = sorted(p.name for p in folder.glob("*") if p.suffix in (".bin", ".pt", ".pth"))
        if pickles:
            raise ValueError(f"{folder} holds its weights as pickle files ({', '.join(pickles)}), "
                             f"which can run arbitrary code when loaded; convert them to "
                             f"safetensors: model.save_pretrained(folder, safe_serialization=True)")
        raise FileNotFoundError(f"no weights in {folder}: expected model.safetensors. {fix}")
    for path in weights:
        _check_safetensors(path)
    if zoo and not (folder / "tokenizer.json").is_file():
        raise FileNotFoundError(f"{folder / 'tokenizer.json'} is missing. {fix}")
    if (folder / "tokenizer.json").is_file():
        _check_json(folder / "tokenizer.json")


def load_model(name: str, device: str | torch.device | None = None,
               dtype: torch.dtype = torch.float32) -> TransformerBridge:
    """Load a zoo model (offline), a local folder, or a hub model, in compatibility mode.

    Args:
        name: a zoo name (see :func:`zoo_names`), a local folder in the Hugging Face format,
            or a hub name such as ``"gpt2"`` or ``"EleutherAI/pythia-70m"`` (needs the
            network, e.g. on Colab).
        device: where to put the model; default :func:`default_device`.
        dtype: the weights' dtype (float32; float64 for exact checks; bfloat16 on a GPU).

    Returns:
        A ``TransformerBridge`` in eval mode with compatibility mode enabled.

    Raises:
        FileNotFoundError, ValueError: a local or zoo model's file is missing or bad (named).
        OSError: a hub name that the hub could not provide (e.g. offline).
    """
    if not isinstance(name, (str, Path)) or not str(name).strip():
        raise ValueError(f"name must be a zoo name, a folder or a hub name, got {name!r}")
    device = check_device(device) or default_device()
    name = str(name)
    local = name in zoo_names() or Path(name).expanduser().is_dir()
    if local:
        folder = ZOO_DIR / name if name in zoo_names() else Path(name).expanduser()
        check_model_folder(folder, zoo=name in zoo_names())
        source = str(folder)
    elif name.startswith((".", "/", "~")):
        raise FileNotFoundError(f"no model folder at {name!r}")
    else:
        source = name
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating torch dtype such as torch.float32, got {dtype!r}")
    model = _boot(name, source, local, device, dtype)
    model.enable_compatibility_mode()
    if name in zoo_names():
        model.cfg.default_prepend_bos = True  # the zoo always trains with BOS first
    model.eval()
    return model


def _boot(name: str, source: str, local: bool, device: torch.device, dtype: torch.dtype
          ) -> TransformerBridge:
    """``TransformerBridge.boot_transformers`` with a message naming what went wrong."""
    bar_was_on = hf_logging.is_progress_bar_enabled()
    if local:  # a few small local files: no "Loading weights" bar
        hf_logging.disable_progress_bar()
    try:
        return TransformerBridge.boot_transformers(source, device=device, dtype=dtype)
    except (OSError, ValueError, KeyError, NotImplementedError) as err:
        if local:
            raise ValueError(f"TransformerLens could not load the model in {source}: "
                             f"{type(err).__name__}: {err}") from err
        raise OSError(
            f"could not load {name!r}: it is not a zoo model (zoo models here: "
            f"{', '.join(zoo_names()) or 'none found under ' + str(ZOO_DIR)}) nor a folder, and "
            f"the hub could not provide it ({type(err).__name__}: {str(err)[:300]}). Hub "
            f"models need the network (e.g. on Colab); offline, use a zoo name.") from err
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()
