"""Interventions on directions and subspaces: ablate, steer, interchange, decode.

* :mod:`.directions`: context managers that ablate a direction or steer along it
  (``ablate_direction``, ``steer``, ``steer_direction``), and the measurements built on
  them (``causal_effect`` against random directions, ``next_token_shift``);
* :mod:`.subspaces`: interchange interventions on a subspace (``interchange``,
  ``interchange_logits``), with the norm-matched random placebo;
* :mod:`.das`: counterfactual pairs from a high-level causal model, interchange-
  intervention accuracy (``iia``) and distributed alignment search (``train_das``);
* :mod:`.bases`: the baselines DAS must beat (DiffMean, probe, PCA, SAE latents,
  neurons, random); :mod:`.comparison`: IIA for every family over seeds;
* :mod:`.causal_models`: worked variables on the zoo (IOI's indirect object, language);
* :mod:`.patchscope`: decode a hidden state by patching it into another prompt;
* :mod:`.steering`: contrastive steering vectors and their side-effect cost curves.
"""

from .bases import (FAMILIES, diffmean_basis, fixed_bases, neuron_basis, pca_basis, probe_basis,
                    random_basis, sae_latent_basis, top_neuron_basis, top_sae_latents)
from .causal_models import ioi_pairs, language_pairs, language_words
from .comparison import compare_bases, mean_ci, site_activations, summarise
from .das import CounterfactualPairs, DASResult, class_scores, iia, task_accuracy, train_das
from .directions import ablate_direction, causal_effect, next_token_shift, steer, steer_direction
from .patchscope import identity_prompt, patchscope, patchscope_logits, top1_agreement
from .steering import best_within_cost, contrastive_vector, generate, steering_sweep
from .subspaces import (check_basis, interchange, interchange_logits, orthonormal_basis,
                        principal_angles, source_activations)

__all__ = [
    "ablate_direction", "steer", "steer_direction", "causal_effect", "next_token_shift",
    "check_basis", "orthonormal_basis", "principal_angles", "interchange",
    "source_activations", "interchange_logits",
    "CounterfactualPairs", "class_scores", "task_accuracy", "iia", "DASResult", "train_das",
    "FAMILIES", "random_basis", "diffmean_basis", "probe_basis", "pca_basis", "neuron_basis",
    "top_neuron_basis", "top_sae_latents", "sae_latent_basis", "fixed_bases",
    "site_activations", "compare_bases", "mean_ci", "summarise",
    "ioi_pairs", "language_pairs", "language_words",
    "patchscope", "patchscope_logits", "identity_prompt", "top1_agreement",
    "contrastive_vector", "steering_sweep", "best_within_cost", "generate",
]
