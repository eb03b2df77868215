"""Sparse autoencoders (SAEs): architectures, training, metrics, SAELens-format files.

An SAE reads an activation ``x`` (width ``d_in``) and rewrites it as a sparse
combination of ``d_sae`` learned directions (see :mod:`.base`). One file per
architecture — :mod:`.relu` (L1), :mod:`.topk`, :mod:`.jumprelu` (L0, learned
thresholds), :mod:`.gated`, :mod:`.matryoshka` — chosen by name through ``SAE_CLASSES``::

    sae = build_sae(d_in=64, d_sae=512, architecture="topk", k=16,
                    hook_name="blocks.0.hook_resid_post")
    buffer = ActivationBuffer.from_model(model, tokens, sae.cfg.hook_name)
    history = train_sae(sae, buffer, steps=2000, lr=1e-3)   # SAETrainConfig fields
    sae_metrics(sae, acts), ce_loss_recovered(model, sae, tokens)
    save_sae(sae, "data/saes/zoo-2l/topk"); load_sae("data/saes/zoo-2l/topk")

:mod:`.toy` plants known features in superposition, to check that training finds them
(:func:`mmcs`).

Axes, besides the package's (``batch``, ``d_sae``, ...): ``d_in`` is the width of the
activations an SAE reads (``d_model`` for the residual stream, as SAELens names it).
"""

from .base import ARCHITECTURES, SAE, SAEConfig, SAEOutput
from .gated import GatedSAE
from .buffer import ActivationBuffer
from .io import SAES_DIR, load_sae, save_sae
from .jumprelu import JumpReLUSAE
from .matryoshka import MatryoshkaSAE
from .metrics import (ce_loss_recovered, dead_fraction, dense_fraction, feature_density, fvu,
                      l0, sae_metrics)
from .registry import SAE_CLASSES, build_sae
from .relu import ReLUSAE
from .topk import TopKSAE
from .toy import ToyFeatures, mmcs
from .training import (CollapsedError, DivergedError, NonFiniteLossError, SAETrainConfig,
                       TrainHistory, TrainingError, geometric_median, init_b_dec,
                       resample_dead_latents, train_sae)

__all__ = [
    "ARCHITECTURES", "SAE", "SAEConfig", "SAEOutput", "SAE_CLASSES", "build_sae",
    "ReLUSAE", "TopKSAE", "JumpReLUSAE", "GatedSAE", "MatryoshkaSAE",
    "ActivationBuffer", "train_sae", "SAETrainConfig", "TrainHistory", "TrainingError",
    "NonFiniteLossError", "DivergedError", "CollapsedError",
    "geometric_median", "init_b_dec", "resample_dead_latents",
    "l0", "fvu", "feature_density", "dead_fraction", "dense_fraction", "sae_metrics",
    "ce_loss_recovered", "save_sae", "load_sae", "SAES_DIR", "ToyFeatures", "mmcs",
]
