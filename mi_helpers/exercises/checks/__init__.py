"""One ``check_<skill>(fn)`` per exercise, grouped like the roadmap.

* :mod:`.basics`: attention, layer norm, the loss (00); the logit lens, ranks, direct
  logit attribution, KL to the final layer (01);
* :mod:`.features`: F1, probe directions, projecting out (02); a TopK SAE's forward pass,
  loss and sparsity (03); top activations, promoted tokens, correlation scores (04);
* :mod:`.circuits`: a head-patching hook, the logit difference, a patching loop (05); a
  path-patching step, attention between positions, a copying score (06); induction
  score, K-composition, the loss on the repeat (07);
* :mod:`.universality`: neuron correlations, best partners, mean max cosine (09);
* :mod:`.tracr`: a compiled model against its program, removing an edge by hand,
  precision, recall and AUROC against a known circuit (11).
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
    "check_neuron_correlations", "check_best_partner", "check_mean_max_cosine",
    "check_sequence_agreement", "check_remove_edge", "check_precision_recall", "check_auroc",
]
