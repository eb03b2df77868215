"""Probes for watching induction heads form during training (Olsson et al. 2022).

Early in training a small transformer predicts each token from the token before it at
best. Then, in a short *phase change*, two heads appear together: a previous-token head
in one layer and an induction head in a later one, whose keys read the first head's
output. At the same moment the model starts to use its context: its loss late in a
sequence falls below its loss early in the sequence. Three probes measure this:

* :func:`repeat_head_scores`: every head's previous-token and induction score on
  ``BOS + r + r`` (as :func:`mi_helpers.circuits.head_scores`), at a given repeat length;
* :func:`icl_score`: the **in-context-learning score**, the mean loss at late positions
  minus the mean loss at early positions of held-out sequences (negative once the model
  uses its context; Olsson et al. use token 500 minus token 50 of natural text);
* :func:`induction_probes`: both, at two repeat lengths, as :class:`~.recorder.Recorder`
  probes. Measure at two lengths: a head that attends a fixed distance back scores at one
  length only;
* :func:`induction_spec`, :func:`spec_probes`: the zoo-2l recipe on repeat blocks only
  (or, as a control, on text only) and its probes, for the zoo trainer.

The probes work on a Hugging Face model while it trains (attention weights read with the
eager attention) and on a TransformerLens model (its ``hook_pattern``), so the same
numbers can be recomputed from a saved checkpoint.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..circuits.head_scores import attention_patterns, offset_score
from ..core.checks import check_positive, check_type
from ..core.metrics import per_token_loss
from ..datasets.repeats import repeat_block
from ..zoo.data import Phase, SequenceSampler, phase_at
from ..zoo.specs import ZooSpec
from .recorder import Probe

__all__ = ["model_attention_patterns", "model_logits", "repeat_head_scores", "icl_score",
           "induction_probes", "induction_spec", "spec_probes", "spec_batches", "lm_loss"]


def _is_transformer_lens(model) -> bool:
    return hasattr(model, "run_with_cache")


def model_attention_patterns(model, tokens: Int[Tensor, "batch pos"]
                             ) -> Float[Tensor, "layer batch head dest_pos src_pos"]:
    """Every layer's attention pattern, from a TransformerLens or a Hugging Face model."""
    if _is_transformer_lens(model):
        return attention_patterns(model, tokens)
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")  # sdpa returns no attention weights
    try:
        with torch.no_grad():
            out = model(tokens, attention_mask=torch.ones_like(tokens), output_attentions=True)
    finally:
        model.set_attn_implementation(previous)
    return torch.stack(out.attentions)


def model_logits(model, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_vocab"]:
    """Logits from a TransformerLens or a Hugging Face model (no gradients)."""
    with torch.no_grad():
        if _is_transformer_lens(model):
            return model(tokens)
        return model(tokens, attention_mask=torch.ones_like(tokens)).logits


def repeat_head_scores(model, tokens: Int[Tensor, "batch pos"], rep_len: int
                       ) -> dict[str, Float[Tensor, "layer head"]]:
    """Previous-token and induction score of every head on ``BOS + r + r`` tokens.

    Args:
        model: a Hugging Face or TransformerLens model.
        tokens: ``[batch, 1 + 2 * rep_len]`` repeated blocks (e.g. from ``repeat_block``).
        rep_len: the length of ``r``.

    Returns:
        ``{"previous_token": ..., "induction": ...}``, each ``[layer, head]`` in [0, 1].
    """
    check_positive("rep_len", rep_len, integer=True)
    if tokens.ndim != 2 or tokens.shape[1] != 1 + 2 * rep_len:
        raise ValueError(f"expected [batch, {1 + 2 * rep_len}] tokens (BOS + r + r with "
                         f"rep_len={rep_len}), got shape {tuple(tokens.shape)}")
    patterns = model_attention_patterns(model, tokens)
    return {"previous_token": offset_score(patterns, range(1, 2 * rep_len + 1), 1),
            "induction": offset_score(patterns, range(rep_len + 1, 2 * rep_len + 1), rep_len - 1)}


def icl_score(model, tokens: Int[Tensor, "batch pos"], early: range, late: range
              ) -> dict[str, float]:
    """The in-context-learning score and the mean loss of held-out sequences.

    Args:
        model: a Hugging Face or TransformerLens model.
        tokens: ``[batch, pos]`` held-out sequences of the training distribution.
        early, late: positions whose prediction losses are compared (position ``i``
            predicts token ``i + 1``), e.g. ``range(4, 8)`` and ``range(48, 63)``.

    Returns:
        ``{"loss": mean loss over all positions, "icl_score": late minus early loss}``.
    """
    n_pred = tokens.shape[1] - 1
    for name, where in (("early", early), ("late", late)):
        if len(where) == 0 or where.start < 0 or where.stop > n_pred:
            raise ValueError(f"{name} positions {where} must be a non-empty range inside "
                             f"[0, {n_pred}) (the positions that predict a next token)")
    losses = per_token_loss(model_logits(model, tokens), tokens.to(_device(model)))
    icl = losses[:, late.start:late.stop].mean() - losses[:, early.start:early.stop].mean()
    return {"loss": losses.mean().item(), "icl_score": icl.item()}


def _device(model) -> torch.device:
    return next(model.parameters()).device


def induction_probes(content_ids: Int[Tensor, "n_allowed"], bos_id: int,
                     heldout: Int[Tensor, "batch pos"], rep_lens: tuple[int, ...] = (10, 25),
                     n_seqs: int = 16, seed: int = 1234) -> dict[str, Probe]:
    """Recorder probes: held-out loss, ICL score, and head scores at each repeat length.

    Args:
        content_ids: token ids the random blocks are drawn from (no special tokens).
        bos_id: the BOS token id.
        heldout: held-out training-distribution sequences for the loss and ICL score;
            early positions are the second sixteenth of the context, late ones its last
            quarter.
        rep_lens: repeat lengths to score heads at (two or more: see the module docstring).
        n_seqs: random blocks per repeat length.
        seed: seeds the blocks (the same blocks at every record).

    Returns:
        Probes recording ``loss``, ``icl_score`` and, for each length ``L``,
        ``previous_token@L`` and ``induction@L`` (``[layer, head]``).

    Raises:
        ValueError: ``heldout`` is not ``[batch, pos]``, or a repeat length does not fit.
    """
    if heldout.ndim != 2 or heldout.numel() == 0:
        raise ValueError(f"heldout must be [batch, pos] sequences, got shape "
                         f"{tuple(heldout.shape)}")
    n_ctx = heldout.shape[1]
    for rep_len in rep_lens:
        check_positive("rep_len", rep_len, integer=True)
        if 1 + 2 * rep_len > n_ctx:
            raise ValueError(f"rep_len={rep_len} needs {1 + 2 * rep_len} positions but the "
                             f"sequences have {n_ctx}; use rep_lens of at most {(n_ctx - 1) // 2}")
    early, late = range(n_ctx // 16, n_ctx // 8), range(n_ctx - 1 - n_ctx // 4, n_ctx - 1)
    blocks = {rep_len: repeat_block(content_ids, bos_id, rep_len, n_seqs, seed + rep_len)
              for rep_len in rep_lens}

    def context(model):
        return icl_score(model, heldout.to(_device(model)), early, late)

    def heads(model):
        out = {}
        for rep_len, tokens in blocks.items():
            scores = repeat_head_scores(model, tokens.to(_device(model)), rep_len)
            out.update({f"{kind}@{rep_len}": s for kind, s in scores.items()})
        return out

    return {"context": context, "heads": heads}


def induction_spec(steps: int = 1500, seed: int = 0, repeats: bool = True) -> ZooSpec:
    """The zoo-2l recipe (2 layers, d_model 64, 4 heads, context 64) on one data mixture.

    Args:
        steps: optimiser steps (warm-up 200, then cosine decay to a tenth at ``steps``).
        seed: seeds the weights and the data.
        repeats: train on repeat blocks ``r + gap + r`` only; ``False`` trains on the
            zoo's text sentences only (the control: no repeated random spans).
    """
    check_positive("steps", steps, integer=True)
    phase = Phase(until=1.0, repeat_share=1.0 if repeats else 0.0)
    kind = "repeats" if repeats else "text"
    return ZooSpec(name=f"dynamics-2l-{kind}", purpose=f"induction dynamics on {kind}",
                   steps=steps, seed=seed, phases=(phase,))


def spec_probes(spec: ZooSpec, n_heldout: int = 32, **kwargs) -> dict[str, Probe]:
    """:func:`induction_probes` for a zoo run: its content tokens, and held-out sequences of
    its own data mixture (drawn with a different seed from the training data)."""
    check_type("spec", spec, ZooSpec, "e.g. induction_spec() or ZOO_SPECS['zoo-2l']")
    check_positive("n_heldout", n_heldout, integer=True)
    sampler = SequenceSampler(spec.n_ctx, seed=10_000 + spec.seed)
    heldout = sampler.batch(n_heldout, phase_at(spec.phases, 0.0))
    return induction_probes(torch.tensor(sampler.content_ids), sampler.bos_id, heldout, **kwargs)


def lm_loss(model, batch: Int[Tensor, "batch pos"]) -> Float[Tensor, ""]:
    """Mean next-token loss of a Hugging Face causal LM on a batch (e.g. for the LLC)."""
    return model(batch, attention_mask=torch.ones_like(batch), labels=batch).loss


def spec_batches(spec: ZooSpec, n_batches: int = 4, batch_size: int = 16,
                 seed: int = 20_000) -> list[Int[Tensor, "batch pos"]]:
    """Fixed batches of a run's data mixture, drawn with their own seed (e.g. for the LLC)."""
    sampler = SequenceSampler(spec.n_ctx, seed=seed + spec.seed)
    return [sampler.batch(batch_size, phase_at(spec.phases, 0.0)) for _ in range(n_batches)]
