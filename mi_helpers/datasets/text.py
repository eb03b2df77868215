"""Text datasets for any model, built from the zoo's generated corpus.

The notebooks need plain text (to train a tuned lens, to probe, to fit SAEs) that
works offline and with any tokenizer. The zoo's generator writes ordinary English and
French words, so its sentences tokenize fine with GPT-2's or Pythia's tokenizer too.
:func:`corpus_sentences` draws sentences of chosen kinds; :func:`token_chunks` joins
them and cuts the token stream into equal-length rows that each start with BOS.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch
from jaxtyping import Int
from torch import Tensor

from ..core.checks import check_positive
from ..zoo.corpus import EN_PREP, FR_PREP, NAMES, TEXT_KINDS

__all__ = ["corpus_sentences", "token_chunks", "language_prompts", "TEXT_KINDS", "EN_PREP",
           "FR_PREP"]


def corpus_sentences(n: int, kinds: Sequence[str] = ("english", "french", "ioi", "arithmetic"),
                     seed: int = 0) -> list[str]:
    """``n`` sentences, cycling through ``kinds`` (see ``mi_helpers.zoo.corpus``)."""
    check_positive("n", n, integer=True)
    if isinstance(kinds, str):
        kinds = [kinds]
    unknown = set(kinds) - set(TEXT_KINDS)
    if unknown:
        raise ValueError(f"unknown sentence kinds {sorted(unknown)}; choose from {sorted(TEXT_KINDS)}")
    rng = random.Random(seed)
    return [TEXT_KINDS[kinds[i % len(kinds)]](rng) for i in range(n)]


def token_chunks(model, sentences: Sequence[str], seq_len: int) -> Int[Tensor, "batch pos"]:
    """Join ``sentences`` into one token stream and cut it into rows of ``seq_len``.

    Each row is BOS followed by ``seq_len - 1`` tokens; a ragged tail is dropped.
    """
    if not 2 <= seq_len <= model.cfg.n_ctx:
        raise ValueError(f"seq_len must be in 2..{model.cfg.n_ctx} (the model's context)")
    stream = model.to_tokens(" ".join(sentences), prepend_bos=False, truncate=False)[0]
    body = seq_len - 1
    n_rows = len(stream) // body
    if n_rows == 0:
        raise ValueError(f"{len(stream)} tokens are not enough for one row of {seq_len}")
    rows = stream[: n_rows * body].reshape(n_rows, body)
    bos = torch.full((n_rows, 1), model.tokenizer.bos_token_id, device=rows.device)
    return torch.cat([bos, rows], dim=1)


def language_prompts(n_per_language: int, seed: int = 0) -> tuple[list[str], list[int]]:
    """English and French clauses cut right after a *name* in object position.

    ``"the old dog follows Mary"`` / ``"le chat voit Mary"``: the last token is the same
    in both languages, so a probe there can only read the language from the context,
    and what comes next (``in`` / ``near`` vs ``dans`` / ``sur`` / ``et``) depends on it.

    Returns:
        The prompts (English first, then French) and their labels (1 = French).
    """
    check_positive("n_per_language", n_per_language, integer=True)
    rng = random.Random(seed)
    prompts: list[str] = []
    for kind in ("english", "french"):
        found = 0
        while found < n_per_language:
            words = TEXT_KINDS[kind](rng).split()
            names = [i for i, w in enumerate(words) if i >= 2 and w in NAMES]
            if names:
                prompts.append(" ".join(words[: names[0] + 1]))
                found += 1
    return prompts, [0] * n_per_language + [1] * n_per_language
