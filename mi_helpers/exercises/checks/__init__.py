"""One ``check_<skill>(fn)`` per exercise, grouped like the roadmap.

* :mod:`.basics`: attention, layer norm, the loss (00); the logit lens, ranks, direct
  logit attribution, KL to the final layer (01);
* :mod:`.features`: F1, probe directions, projecting out (02); a TopK SAE's forward pass,
  loss and sparsity (03); top activations, promoted tokens, correlation scores (04);
* :mod:`.circuits`: a head-patching hook, the logit difference, a patching loop (05); a
  path-patching step, attention between positions, a copying score (06); induction
  score, K-composition, the loss on the repeat (07);
* :mod:`.discovery`: an edge's EAP and EAP-IG scores, ACDC's pruning rule, MIB's areas
  under a faithfulness curve (08);
* :mod:`.universality`: neuron correlations, best partners, mean max cosine (09);
* :mod:`.interventions`: an interchange intervention on a subspace, its accuracy (IIA),
  a steering hook (10);
* :mod:`.tracr`: a compiled model against its program, removing an edge by hand,
  precision, recall and AUROC against a known circuit (11);
* :mod:`.dynamics`: the in-context-learning score, the first step past a threshold, an
  embedding's Fourier-frequency norms (13).
"""

from .basics import (
                     check_answer_rank,
                     check_attention_pattern,
                     check_head_logit_attribution,
                     check_kl_final_vs_lens,
                     check_layer_norm,
                     check_logit_lens,
                     check_next_token_loss,
)
from .circuits import (
                     check_attention_between,
                     check_copying_score,
                     check_induction_score,
                     check_k_composition,
                     check_logit_diff,
                     check_loss_on_repeat,
                     check_patch_head_hook,
                     check_patching_loop,
                     check_path_patching_step,
)
from .discovery import (
                     check_acdc_prune,
                     check_eap_edge_score,
                     check_eap_ig_edge_score,
                     check_faithfulness_areas,
)
from .dynamics import (
                     check_crossing_step,
                     check_fourier_norms,
                     check_icl_from_logits,
)
from .features import (
                     check_activation_correlation,
                     check_f1_score,
                     check_mean_difference_direction,
                     check_project_out,
                     check_promoted_tokens,
                     check_sae_loss,
                     check_sparsity_stats,
                     check_top_activations,
                     check_topk_sae_forward,
)
from .interventions import (
                     check_interchange_accuracy,
                     check_interchange_subspace,
                     check_steering_hook,
)
from .tracr import (
                     check_auroc,
                     check_precision_recall,
                     check_remove_edge,
                     check_sequence_agreement,
)
from .universality import (
                     check_best_partner,
                     check_mean_max_cosine,
                     check_neuron_correlations,
)

__all__ = [
    "check_attention_pattern", "check_layer_norm", "check_next_token_loss",
    "check_logit_lens", "check_answer_rank", "check_head_logit_attribution",
    "check_kl_final_vs_lens",
    "check_f1_score", "check_mean_difference_direction", "check_project_out",
    "check_topk_sae_forward", "check_sae_loss", "check_sparsity_stats",
    "check_top_activations", "check_promoted_tokens", "check_activation_correlation",
    "check_patch_head_hook", "check_logit_diff", "check_patching_loop",
    "check_path_patching_step", "check_attention_between", "check_copying_score",
    "check_induction_score", "check_k_composition", "check_loss_on_repeat",
    "check_eap_edge_score", "check_eap_ig_edge_score", "check_acdc_prune",
    "check_faithfulness_areas",
    "check_neuron_correlations", "check_best_partner", "check_mean_max_cosine",
    "check_interchange_subspace", "check_interchange_accuracy", "check_steering_hook",
    "check_sequence_agreement", "check_remove_edge", "check_precision_recall", "check_auroc",
    "check_icl_from_logits", "check_crossing_step", "check_fourier_norms",
]
