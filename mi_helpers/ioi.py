"""Indirect object identification (IOI): prompts, tokens and the logit-difference metric.

In "When Mary and John went to the store, John gave a drink to", the next token should
be the *indirect object* (IO, " Mary"), not the repeated *subject* (S, " John"). The
standard metric is the logit difference ``logit(IO) - logit(S)`` at the last position
of the prompt (Wang et al., 2022): positive when the model prefers the right name.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor


def is_single_token(model, word: str) -> bool:
    """Whether ``" " + word`` is one known token for the model's tokenizer."""
    toks = model.to_tokens(" " + word, prepend_bos=False)[0]
    unk_id = model.tokenizer.unk_token_id
    return len(toks) == 1 and (unk_id is None or int(toks[0]) != unk_id)


def single_token_ids(model, words: Sequence[str]) -> Int[Tensor, "batch"]:
    """Token ids of ``" " + word`` for each word; every one must be a single token.

    Raises:
        ValueError: naming every word that is not a single token for this tokenizer
            (split into several tokens, or unknown to a word-level vocabulary).
    """
    bad = sorted({w for w in words if not is_single_token(model, w)})
    if bad:
        raise ValueError(f"these names are not single tokens for this model's tokenizer: "
                         f"{bad}; choose names from its vocabulary")
    ids = [int(model.to_tokens(" " + w, prepend_bos=False)[0, 0]) for w in words]
    return torch.tensor(ids, device=model.cfg.device)


def tokenize_prompts(model, prompts: Sequence[str]
                     ) -> tuple[Int[Tensor, "batch pos"], Int[Tensor, "batch"]]:
    """BOS-prefixed tokens, right-padded, and the index of each prompt's last token."""
    rows = [model.to_tokens(p)[0] for p in prompts]
    end_positions = torch.tensor([len(r) - 1 for r in rows], device=model.cfg.device)
    pad_id = model.tokenizer.pad_token_id
    tokens = torch.full((len(rows), max(len(r) for r in rows)), pad_id,
                        dtype=torch.long, device=model.cfg.device)
    for i, row in enumerate(rows):
        tokens[i, : len(row)] = row
    return tokens, end_positions


def logits_at(logits: Float[Tensor, "batch pos d_vocab"],
              end_positions: Int[Tensor, "batch"]) -> Float[Tensor, "batch d_vocab"]:
    """Each prompt's logits at its own last position."""
    return logits[torch.arange(len(logits), device=logits.device), end_positions]


def logit_diff(final_logits: Float[Tensor, "batch d_vocab"], io_ids: Int[Tensor, "batch"],
               s_ids: Int[Tensor, "batch"]) -> Float[Tensor, "batch"]:
    """``logit(IO) - logit(S)`` for each prompt."""
    rows = torch.arange(len(final_logits), device=final_logits.device)
    return final_logits[rows, io_ids] - final_logits[rows, s_ids]


def evaluate_ioi(model, prompts: Sequence[str], io_names: Sequence[str],
                 s_names: Sequence[str]) -> dict[str, float]:
    """Mean logit difference, and how often IO beats S and is the top prediction.

    Returns:
        ``{"logit_diff": mean logit(IO) - logit(S), "io_beats_s": fraction with a
        positive difference, "top1_accuracy": fraction whose top token is IO}``.
    """
    tokens, end_positions = tokenize_prompts(model, prompts)
    io_ids, s_ids = single_token_ids(model, io_names), single_token_ids(model, s_names)
    with torch.no_grad():
        final = logits_at(model(tokens), end_positions)
    diff = logit_diff(final, io_ids, s_ids)
    return {
        "logit_diff": diff.mean().item(),
        "io_beats_s": (diff > 0).float().mean().item(),
        "top1_accuracy": (final.argmax(-1) == io_ids).float().mean().item(),
    }
