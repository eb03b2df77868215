"""Datasets the curriculum runs on, generated offline for any tokenizer.

* :mod:`.text`: English / French / IOI / arithmetic sentences from the zoo's corpus
  generator, cut into token rows; "is this French?" prompts for probing;
* :mod:`.repeats`: ``BOS + r + r`` repeated random tokens (induction), and clean /
  corrupted pairs of them;
* :mod:`.prompts`: prompts to right-padded tokens, last positions, single-token words,
  clean / corrupted minimal pairs from two templates.

IOI prompts and their ABC corruption are in :mod:`mi_helpers.circuits.ioi`.
"""

from ..zoo.corpus import IOI_HELDOUT_TEMPLATES, IOI_TRAIN_TEMPLATES, ioi_split
from .prompts import (is_single_token, logits_at, minimal_pairs, natural_text, single_token_ids,
                      single_token_words, tokenize_prompts)
from .repeats import induction_pair, repeat_block, repeated_random_tokens
from .text import (EN_PREP, FR_PREP, TEXT_KINDS, LanguagePrompts, corpus_sentences,
                   language_prompts, length_matched, token_chunks)

__all__ = [
    "corpus_sentences", "token_chunks", "language_prompts", "LanguagePrompts", "length_matched",
    "TEXT_KINDS", "EN_PREP", "FR_PREP",
    "repeat_block", "repeated_random_tokens", "induction_pair",
    "tokenize_prompts", "logits_at", "is_single_token", "single_token_ids",
    "single_token_words", "natural_text", "minimal_pairs",
    "IOI_TRAIN_TEMPLATES", "IOI_HELDOUT_TEMPLATES", "ioi_split",
]
