"""Training dynamics: watch mechanisms form while a model trains.

* :mod:`.recorder`: :class:`Recorder` measures a model every few steps with *probes*;
* :mod:`.checkpoints`: resumable checkpoints (weights, optimiser, random state) that the
  zoo trainer (:func:`mi_helpers.zoo.train.train_model`) saves every few steps;
* :mod:`.induction`: probes for the induction phase change (head scores at two repeat
  lengths, the in-context-learning score) and the run's recipe;
* :mod:`.modular`, :mod:`.grokking`: modular addition, the one-layer transformer that
  groks it, its Fourier picture and its trainer;
* :mod:`.llc`: the local learning coefficient estimated by SGLD.

``python -m mi_helpers.dynamics --help`` trains the runs that notebook 13 loads.
"""

from .checkpoints import (RUNS_DIR, checkpoint_dir, list_checkpoints, load_checkpoint,
                          save_checkpoint)
from .grokking import GrokkingConfig, first_crossing, grokking_probes, train_grokking, weight_norm
from .induction import (icl_score, induction_probes, induction_spec, lm_loss,
                        model_attention_patterns, model_logits, repeat_head_scores, spec_batches,
                        spec_probes)
from .llc import LLCEstimate, estimate_llc
from .modular import (ModularData, OneLayerTransformer, effective_frequencies, fourier_basis,
                      frequency_norms, modular_addition_data)
from .recorder import Probe, Recorder

__all__ = [
    "Recorder", "Probe",
    "save_checkpoint", "load_checkpoint", "checkpoint_dir", "list_checkpoints", "RUNS_DIR",
    "repeat_head_scores", "icl_score", "induction_probes", "induction_spec", "spec_probes",
    "spec_batches", "lm_loss", "estimate_llc", "LLCEstimate",
    "model_attention_patterns", "model_logits",
    "ModularData", "modular_addition_data", "OneLayerTransformer", "fourier_basis",
    "frequency_norms", "effective_frequencies",
    "GrokkingConfig", "grokking_probes", "train_grokking", "weight_norm", "first_crossing",
]
