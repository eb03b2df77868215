"""The behaviours a zoo model is required to have, measured from its loaded weights.

Used twice: after training (written into the model card) and by the tests (which
recompute them and compare with the thresholds below). Induction and previous-token
scores are measured at two repeat lengths and the minimum is kept, so a head that
attends a fixed distance back cannot pass.
"""

from __future__ import annotations

import torch

from ..circuits.head_scores import head_scores
from ..circuits.ioi import evaluate_ioi
from ..core.heads import top_heads
from .corpus import ioi_split

#: Repeat lengths for the head scores; the longer one fills most of the context.
REP_LENS = (10, 25)
#: What the foundation issue requires of the zoo.
THRESHOLDS = {"induction": 0.8, "previous_token": 0.8, "ioi_logit_diff": 3.0,
              "ioi_top1_accuracy": 0.9}


def best_heads(model) -> dict[str, dict]:
    """Best head for each score, taking each head's minimum over :data:`REP_LENS`."""
    per_len = [head_scores(model, rep_len=n, n_seqs=64, seed=7) for n in REP_LENS]
    result = {}
    for kind in ("induction", "previous_token", "duplicate_token"):
        worst = torch.stack([scores[kind] for scores in per_len]).min(dim=0).values
        (best,) = top_heads(worst, 1)
        result[kind] = {"layer": best.layer, "head": best.head,
                        "score": round(worst.max().item(), 4)}
    return result


def ioi_behaviour(model, n_prompts: int = 400, seed: int = 0) -> dict[str, dict]:
    """IOI metrics on held-out templates and name pairs, and on training ones."""
    out = {}
    for split, heldout in (("heldout", True), ("train", False)):
        sents = ioi_split(n_prompts, seed=seed, heldout=heldout)
        metrics = evaluate_ioi(model, [s.prompt for s in sents], [s.io for s in sents],
                               [s.s for s in sents])
        out[split] = {k: round(v, 4) for k, v in metrics.items()}
    return out


def measure_behaviours(model) -> dict:
    """Everything the model card records about a trained zoo model."""
    return {"heads": best_heads(model), "ioi": ioi_behaviour(model),
            "rep_lens": list(REP_LENS)}
