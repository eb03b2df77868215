"""The architecture registry: a name in ``SAEConfig.architecture`` -> its SAE class."""

from __future__ import annotations

import torch

from ...core.checks import check_device
from .base import SAE, SAEConfig
from .gated import GatedSAE
from .jumprelu import JumpReLUSAE
from .matryoshka import MatryoshkaSAE
from .relu import ReLUSAE
from .topk import TopKSAE

__all__ = ["SAE_CLASSES", "build_sae"]

SAE_CLASSES: dict[str, type[SAE]] = {
    cls.architecture: cls for cls in (ReLUSAE, TopKSAE, JumpReLUSAE, GatedSAE, MatryoshkaSAE)
}


def build_sae(cfg: SAEConfig | None = None, *, device: str | torch.device | None = None,
              dtype: torch.dtype | None = None, **kwargs) -> SAE:
    """A freshly initialised SAE of ``cfg.architecture``, on ``device`` in ``dtype``.

    ``build_sae(d_in=64, d_sae=512, architecture="topk", k=16)`` builds the config too.
    For an SAE on a model's activations, pass ``device=model.cfg.device`` (and, to train in
    the model's precision, ``dtype=model.cfg.dtype``; the default is float32, and inputs are
    cast to the SAE's dtype).
    """
    if cfg is None:
        cfg = SAEConfig(**kwargs)
    elif kwargs:
        raise ValueError("give either a config or keyword arguments, not both")
    return SAE_CLASSES[cfg.architecture](cfg).to(device=check_device(device), dtype=dtype)
