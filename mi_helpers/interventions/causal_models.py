"""Worked high-level causal models on the zoo, as labelled counterfactual pairs.

Each function returns :class:`~mi_helpers.interventions.das.CounterfactualPairs` for one
variable, ready for :func:`~mi_helpers.interventions.das.iia` and DAS:

* :func:`ioi_pairs`, "**which name is the indirect object**" (IOI, zoo-4l): the base is
  "When A and B went to the store, B gave a drink to" (IO = A); the source has the
  same two names in the same order, a new place and object, and a second subject drawn
  from {A, B}: half the sources keep the IO, half swap it. The causal model's output is
  the IO, so after an interchange of the variable the model should name the *source's*
  IO. Output classes: [base IO, base S]; the variable's value is the IO's place among
  the two names (0 first, 1 second).
* :func:`language_pairs`, "**which language is the text**" (zoo-2l): base and source are
  clauses cut after a name (:func:`mi_helpers.datasets.language_prompts`), half the
  sources in the other language. Output classes: [English, French] function words
  that may follow the name; the value is the language (1 = French).

Half the pairs keep the base's output and half change it, so chance IIA is 0.5, and an
intervention that does nothing scores 0.5 too.
"""

from __future__ import annotations

import random

import torch

from ..circuits.ioi import fill_prompt, ioi_dataset
from ..core.checks import check_model
from ..datasets.prompts import single_token_ids, single_token_words, tokenize_prompts
from ..datasets.text import EN_PREP, FR_PREP, language_prompts
from ..zoo import corpus
from .das import CounterfactualPairs

__all__ = ["ioi_pairs", "language_pairs", "language_words"]


def ioi_pairs(model, n: int, seed: int = 0, heldout: bool = True) -> CounterfactualPairs:
    """``n`` IOI pairs for the variable "which of the two names is the IO", at the end.

    The intervention site and the readout are the base's last token (``to``); base and
    source share their template, so they have the same length.

    Args:
        model: a TransformerLens model whose tokenizer has the zoo's names.
        n: number of pairs (at least 2).
        seed: seeds the prompts and the sources.
        heldout: use the zoo's held-out templates and name pairs.
    """
    base = ioi_dataset(model, n, seed, heldout=heldout)
    rng = random.Random(seed + 10_007)
    places = single_token_words(model, corpus.PLACES)
    objects = single_token_words(model, corpus.OBJECTS)
    prompts, source_io_first = [], []
    for k in range(n):
        first, second = ((base.io[k], base.s[k]) if base.order[k] == "ABBA"
                         else (base.s[k], base.io[k]))
        io_first = rng.random() < 0.5  # the source's IO: the first name or the second
        subject = second if io_first else first
        prompts.append(fill_prompt(base.templates[int(base.template_ids[k])], first, second,
                                   subject, rng.choice(places), rng.choice(objects)))
        source_io_first.append(io_first)
    source, source_end = tokenize_prompts(model, prompts)
    end = base.word_positions["end"]
    if source.shape != base.tokens.shape or not torch.equal(source_end.cpu(), end.cpu()):
        raise ValueError("source prompts do not have their bases' lengths; every name, place "
                         "and object must be a single token")
    base_values = torch.tensor([int(o == "BABA") for o in base.order])
    source_values = 1 - torch.tensor(source_io_first, dtype=torch.long)
    return CounterfactualPairs(
        base=base.tokens, source=source, base_pos=end, source_pos=source_end, answer_pos=end,
        answers=torch.stack([base.io_ids, base.s_ids], dim=1)[..., None],
        targets=(base_values != source_values).long(), base_labels=torch.zeros(n).long(),
        base_values=base_values, source_values=source_values,
        variable="which of the two names is the indirect object")


def language_words(model) -> tuple[list[str], list[str]]:
    """The English and French function words that may follow a name, as single tokens."""
    check_model(model)
    english = single_token_words(model, EN_PREP)
    french = single_token_words(model, [*FR_PREP, "et"])
    if not english or not french:
        raise ValueError("this tokenizer has no single-token English or French function "
                         "words from the zoo's corpus")
    return english, french


def language_pairs(model, n: int, seed: int = 0) -> CounterfactualPairs:
    """``n`` pairs for the variable "which language is the text", at the final name.

    Bases alternate English and French; each source is drawn from the other language
    for half the pairs and from the same one for the other half. The site is each
    prompt's last token (a name, the same word in both languages).
    """
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"need at least 2 pairs, got n={n}")
    data = language_prompts(n, seed=seed)  # n English, then n French
    prompts, labels = data.prompts, data.labels
    rng = random.Random(seed + 10_007)
    english, french = list(range(n)), list(range(n, 2 * n))
    rng.shuffle(english)
    rng.shuffle(french)
    base_idx, source_idx = [], []
    for k in range(n):
        base_lang = k % 2
        source_lang = base_lang if k % 4 < 2 else 1 - base_lang
        base_idx.append((french if base_lang else english).pop())
        source_idx.append((french if source_lang else english)[k // 2])  # reused sources
    tokens, ends = tokenize_prompts(model, [prompts[i] for i in base_idx + source_idx])
    en_words, fr_words = language_words(model)
    width = max(len(en_words), len(fr_words))
    answers = torch.full((2, width), -1, dtype=torch.long)
    answers[0, :len(en_words)] = single_token_ids(model, en_words).cpu()
    answers[1, :len(fr_words)] = single_token_ids(model, fr_words).cpu()
    base_values = torch.tensor([labels[i] for i in base_idx])
    source_values = torch.tensor([labels[i] for i in source_idx])
    return CounterfactualPairs(
        base=tokens[:n], source=tokens[n:], base_pos=ends[:n], source_pos=ends[n:],
        answer_pos=ends[:n], answers=answers.expand(n, -1, -1).to(tokens.device),
        targets=source_values, base_labels=base_values, base_values=base_values,
        source_values=source_values, variable="which language the text is in")
