"""The architecture registry: a name in ``SAEConfig.architecture`` -> its SAE class."""

from __future__ import annotations

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


def build_sae(cfg: SAEConfig | None = None, **kwargs) -> SAE:
    """A freshly initialised SAE of ``cfg.architecture``.

    ``build_sae(d_in=64, d_sae=512, architecture="topk", k=16)`` builds the config too.
    """
    if cfg is None:
        cfg = SAEConfig(**kwargs)
    elif kwargs:
        raise ValueError("give either a config or keyword arguments, not both")
    return SAE_CLASSES[cfg.architecture](cfg)
