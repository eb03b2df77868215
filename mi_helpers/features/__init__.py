"""Features: what the model represents, read from its activations.

* :mod:`.lens`: the logit lens and the tuned lens (each layer's next-token guess);
* :mod:`.attribution`: direct logit attribution of heads, MLPs and directions;
* :mod:`.probing`: dense and sparse linear probes with controls;
* :mod:`.sae`: sparse autoencoders (five architectures), training, metrics, files;
* :mod:`.dashboards`: per-unit dashboards (neurons, SAE latents, directions);
* :mod:`.autointerp`: automatic explanations and their simulation / detection scores.
"""

from .attribution import direction_logits, head_logits, logit_difference_attribution, mlp_logits
from .lens import (Lens, TunedLens, kl_to_final, lens_kl, lens_logits, residual_stack,
                   target_rank_and_prob, top_tokens, train_tuned_lens)
from .probing import Probe, fit_probe, probe_rows, probe_sweep, probe_with_control, train_probe

__all__ = [
    "Lens", "TunedLens", "lens_logits", "lens_kl", "residual_stack", "kl_to_final", "top_tokens",
    "target_rank_and_prob", "train_tuned_lens",
    "head_logits", "mlp_logits", "direction_logits", "logit_difference_attribution",
    "Probe", "fit_probe", "train_probe", "probe_with_control", "probe_sweep",
    "probe_rows",
]
