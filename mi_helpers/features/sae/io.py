"""Saving and loading SAEs as SAELens does: a folder with ``cfg.json`` and safetensors.

::

    my_sae/
        cfg.json                  # SAELens config fields (architecture, d_in, d_sae, ...)
        sae_weights.safetensors   # W_enc [d_in d_sae], b_enc [d_sae], W_dec [d_sae d_in],
                                  # b_dec [d_in]; + threshold (jumprelu); gated: b_gate,
                                  # r_mag, b_mag instead of b_enc
        sparsity.safetensors      # optional: "sparsity" = log10 feature density [d_sae]

No pickle anywhere: weights are raw tensors, the config is JSON. SAELens reads the folder
with ``SAE.load_from_disk(folder)`` (checked with sae-lens 6.54.12 for the ``relu``,
``topk``, ``jumprelu``, ``gated`` and ``matryoshka`` architectures: same keys, shapes and
outputs). Architecture names differ in one place: our ``relu`` is SAELens's
``"standard"``; a ``matryoshka`` SAE is saved as ``"topk"`` (what it is at inference).
Our full config rides along in ``metadata["mi_helpers"]``, so :func:`load_sae` gets the
exact SAE back; it also reads folders written by SAELens (standard, topk, jumprelu, gated).

The curriculum's own SAEs live under ``SAES_DIR`` (``data/saes/<model>/<name>/``), e.g.
``load_sae(SAES_DIR / "zoo-2l" / "topk-k16")``; ``benchmarks/train_zoo_saes.py`` makes them.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from jaxtyping import Float
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from ...core.checks import check_type
from ...core.paths import data_dir
from .base import SAE, SAEConfig
from .registry import build_sae

__all__ = ["save_sae", "load_sae", "config_from_saelens", "SAES_DIR"]

SAES_DIR = data_dir() / "saes"  # the committed SAEs
CFG_FILENAME = "cfg.json"
WEIGHTS_FILENAME = "sae_weights.safetensors"
SPARSITY_FILENAME = "sparsity.safetensors"
# SAELens reads metadata["sae_lens_version"] to tell its 6.x config format from older
# ones; we write the 6.x format, in the layout of this release (the one we checked).
SAELENS_FORMAT_VERSION = "6.54.12"
TO_SAELENS = {"relu": "standard", "topk": "topk", "jumprelu": "jumprelu", "gated": "gated",
              "matryoshka": "topk"}
FROM_SAELENS = {"standard": "relu", "topk": "topk", "jumprelu": "jumprelu", "gated": "gated"}
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
          "float64": torch.float64}


def saelens_config(sae: SAE) -> dict:
    """The ``cfg.json`` contents for ``sae``, in SAELens's 6.x format."""
    cfg = sae.cfg
    out = {"architecture": TO_SAELENS[cfg.architecture], "d_in": cfg.d_in, "d_sae": cfg.d_sae,
           "dtype": str(sae.W_enc.dtype).removeprefix("torch."), "device": "cpu",
           "apply_b_dec_to_input": cfg.apply_b_dec_to_input, "normalize_activations": "none",
           "reshape_activations": "none"}
    if cfg.architecture in ("topk", "matryoshka"):
        out.update(k=cfg.k, rescale_acts_by_decoder_norm=False)
    out["metadata"] = {"sae_lens_version": SAELENS_FORMAT_VERSION,
                       "sae_lens_training_version": SAELENS_FORMAT_VERSION,
                       "hook_name": cfg.hook_name, "model_name": cfg.model_name,
                       "prepend_bos": True, "mi_helpers": cfg.to_dict()}
    return out


def save_sae(sae: SAE, folder: str | Path,
             feature_density: Float[Tensor, "d_sae"] | None = None) -> Path:
    """Write ``sae`` to ``folder`` (created if needed) in the SAELens layout.

    Args:
        sae: the SAE.
        folder: the output folder.
        feature_density: optional per-latent firing frequency, saved as SAELens's
            ``sparsity.safetensors`` (log10 of the density).

    Returns:
        The folder, as a ``Path``.

    Raises:
        TypeError: ``sae`` is not an SAE. ValueError: ``feature_density`` is not one
            value per latent. FileExistsError: ``folder`` is a file.
    """
    check_type("sae", sae, SAE, "e.g. from build_sae(...) and train_sae(...)")
    if feature_density is not None and tuple(feature_density.shape) != (sae.cfg.d_sae,):
        raise ValueError(f"feature_density must have one value per latent ({sae.cfg.d_sae}), "
                         f"got shape {tuple(feature_density.shape)}")
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{folder} is a file; save_sae writes a folder (config and "
                              f"weights): give a folder path")
    folder.mkdir(parents=True, exist_ok=True)
    weights = {name: p.detach().cpu().contiguous() for name, p in sae.state_dict().items()}
    save_file(weights, str(folder / WEIGHTS_FILENAME))
    (folder / CFG_FILENAME).write_text(json.dumps(saelens_config(sae), indent=2) + "\n")
    if feature_density is not None:
        log_density = torch.log10(feature_density.detach().float().cpu() + 1e-10)
        save_file({"sparsity": log_density.contiguous()}, str(folder / SPARSITY_FILENAME))
    return folder


def load_sae(folder: str | Path, device: str | torch.device = "cpu") -> SAE:
    """Read an SAE written by :func:`save_sae` or by SAELens's ``save_model``.

    Raises:
        FileNotFoundError: ``cfg.json`` or the weights file is missing.
        ValueError: the config uses something this package does not implement, or the
            weights' names or shapes do not match the config.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no SAE folder at {folder}")
    pickles = sorted(p.name for p in folder.glob("*") if p.suffix in (".pt", ".pth", ".pkl", ".bin"))
    if pickles and not (folder / WEIGHTS_FILENAME).is_file():
        raise ValueError(f"{folder} holds pickle files ({', '.join(pickles)}), which can run "
                         f"arbitrary code when loaded; save the SAE as safetensors (save_sae)")
    for name in (CFG_FILENAME, WEIGHTS_FILENAME):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name} is missing: {folder} is not an SAE folder")
    raw = _read_config(folder / CFG_FILENAME)
    try:
        cfg = config_from_saelens(raw)
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{folder / CFG_FILENAME}: {err}") from err
    try:
        weights = load_file(str(folder / WEIGHTS_FILENAME))
    except (SafetensorError, OSError, RuntimeError) as err:
        raise ValueError(f"{folder / WEIGHTS_FILENAME} is corrupted or truncated: {err}") from err
    if raw.get("dtype", "float32") not in DTYPES:
        raise ValueError(f"{folder / CFG_FILENAME}: unknown dtype {raw['dtype']!r}; known: "
                         f"{sorted(DTYPES)}")
    dtype = DTYPES[raw.get("dtype", "float32")]
    sae = build_sae(cfg).to(dtype)
    _check_weights(sae, weights, folder)
    sae.load_state_dict(weights)
    return sae.to(device)


def _read_config(path: Path) -> dict:
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err})") from err
    if not isinstance(raw, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(raw).__name__}")
    return raw


def config_from_saelens(raw: dict) -> SAEConfig:
    """Our :class:`SAEConfig` from a ``cfg.json`` dict (ours, or SAELens's own).

    Raises:
        ValueError: an architecture or option this package does not implement, a missing
            field, or our own config contradicting the SAELens fields beside it.
    """
    metadata = raw.get("metadata") or {}
    arch = raw.get("architecture", "standard")
    if "mi_helpers" in metadata:
        cfg = SAEConfig.from_dict(metadata["mi_helpers"])
        if TO_SAELENS[cfg.architecture] != arch or (raw.get("d_in"), raw.get("d_sae")) != (
                cfg.d_in, cfg.d_sae):
            raise ValueError(f"the top-level fields (architecture={arch!r}, d_in={raw.get('d_in')}, "
                             f"d_sae={raw.get('d_sae')}) contradict metadata.mi_helpers "
                             f"({cfg.architecture}, {cfg.d_in}, {cfg.d_sae})")
        return cfg
    if arch not in FROM_SAELENS:
        raise ValueError(f"SAELens architecture {arch!r} is not implemented here; known: "
                         f"{sorted(FROM_SAELENS)}")
    for key, plain in (("normalize_activations", "none"), ("reshape_activations", "none"),
                       ("rescale_acts_by_decoder_norm", False)):
        if raw.get(key, plain) != plain:
            raise ValueError(f"{key}={raw[key]!r} is not supported (only {plain!r})")
    missing = [key for key in ("d_in", "d_sae") if key not in raw]
    if missing:
        raise ValueError(f"missing fields {missing}")
    hook = metadata.get("hook_name", raw.get("hook_name")) or ""
    return SAEConfig(d_in=raw["d_in"], d_sae=raw["d_sae"], architecture=FROM_SAELENS[arch],
                     k=raw.get("k"), apply_b_dec_to_input=raw.get("apply_b_dec_to_input", True),
                     hook_name=hook, model_name=metadata.get("model_name") or "")


def _check_weights(sae: SAE, weights: dict[str, Tensor], folder: Path) -> None:
    expected = {name: tuple(p.shape) for name, p in sae.state_dict().items()}
    found = {name: tuple(t.shape) for name, t in weights.items()}
    if expected != found:
        raise ValueError(f"{folder / WEIGHTS_FILENAME} holds {found} but a "
                         f"{sae.cfg.architecture} SAE with this cfg.json needs {expected}")
