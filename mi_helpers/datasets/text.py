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
from dataclasses import dataclass, field

import torch
from jaxtyping import Int
from torch import Tensor

from ..core.checks import check_labels, check_positive
from ..zoo.corpus import EN_PREP, FR_NOUN_F, FR_PREP, NAMES, TEXT_KINDS

__all__ = ["corpus_sentences", "token_chunks", "language_prompts", "LanguagePrompts",
           "length_matched", "TEXT_KINDS", "EN_PREP", "FR_NOUN_F", "FR_PREP"]


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


@dataclass
class LanguagePrompts:
    """Prompts labelled by language (1 = French), each ending on a name.

    Attributes:
        prompts: the texts.
        labels: 0 (English) or 1 (French) per prompt.
        previous: the word right before the final name (``"."`` for ``where="after_sentence"``).
        lengths: the number of words per prompt.
    """

    prompts: list[str]
    labels: list[int]
    previous: list[str]
    lengths: list[int] = field(init=False)

    def __post_init__(self):
        self.lengths = [len(p.split()) for p in self.prompts]

    def __len__(self) -> int:
        return len(self.prompts)

    def subset(self, rows: Sequence[int]) -> LanguagePrompts:
        """The prompts at ``rows``, in that order."""
        return LanguagePrompts([self.prompts[i] for i in rows], [self.labels[i] for i in rows],
                               [self.previous[i] for i in rows])


def language_prompts(n_per_language: int, seed: int = 0, where: str = "object") -> LanguagePrompts:
    """English and French prompts that end on a *name*, the same token in both languages.

    * ``where="object"``: a clause cut right after a name in object position, ``"the old dog
      follows Mary"`` / ``"le chat voit Mary"``. What comes next (``in``, ``near`` vs
      ``dans``, ``sur``, ``et``) depends on the language, but the word before the name (a
      verb or preposition) already tells it: the probe's result may be that word, copied.
    * ``where="after_sentence"``: a whole sentence, then a name starting the next one:
      ``"le chat voit la pomme . Mary"``. The word before the name is ``"."`` in both
      languages, so a probe at the name can only read the language from further back.

    Returns:
        :class:`LanguagePrompts`, English first, then French.
    """
    check_positive("n_per_language", n_per_language, integer=True)
    if where not in ("object", "after_sentence"):
        raise ValueError(f"where must be 'object' or 'after_sentence', not {where!r}")
    rng = random.Random(seed)
    prompts, labels, previous = [], [], []
    for label, kind in enumerate(("english", "french")):
        while labels.count(label) < n_per_language:
            words = TEXT_KINDS[kind](rng).split()
            if where == "after_sentence":
                words = words + [rng.choice(NAMES)]
                cut = len(words) - 1
            else:
                names = [i for i, w in enumerate(words) if i >= 2 and w in NAMES]
                if not names:
                    continue
                cut = names[0]
            prompts.append(" ".join(words[: cut + 1]))
            labels.append(label)
            previous.append(words[cut - 1])
    return LanguagePrompts(prompts, labels, previous)


def length_matched(lengths: Sequence[int], labels: Sequence[int], seed: int = 0) -> list[int]:
    """Rows of a subset in which both labels have the same distribution of lengths.

    For every length, as many rows of each label as the rarer label has (drawn at random):
    a probe on the subset cannot use length to tell the labels apart.
    """
    if len(lengths) != len(labels):
        raise ValueError(f"{len(lengths)} lengths but {len(labels)} labels")
    labels = check_labels(labels, len(lengths)).tolist()
    rng = random.Random(seed)
    by_key: dict[tuple[int, int], list[int]] = {}
    for row, key in enumerate(zip(lengths, labels)):
        by_key.setdefault(key, []).append(row)
    rows = []
    for length in sorted({n for n, _ in by_key}):
        groups = [by_key.get((length, label), []) for label in (0, 1)]
        keep = min(len(g) for g in groups)
        for group in groups:
            rows += rng.sample(group, keep)
    return sorted(rows)
