"""Prompts to token ids: padding, answer positions and single-token words.

Many experiments compare a model's logits at the *last token of each prompt* for
*single-token answers* (a name, a word). These helpers make that safe for any
tokenizer: :func:`tokenize_prompts` right-pads a batch and returns each prompt's last
position, :func:`logits_at` reads the logits there, and :func:`single_token_ids` maps
words (after a space, as they follow another word) to ids, refusing words that the
tokenizer splits. GPT-2's tokenizer, for example, makes ``" Mary"`` one token (5335) but
splits rarer names.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..core.checks import check_model, check_positions, check_prompts

__all__ = ["tokenize_prompts", "logits_at", "is_single_token", "single_token_ids",
           "single_token_words", "natural_text", "token_texts", "minimal_pairs"]


def _check_word(word: str) -> str:
    if not isinstance(word, str):
        raise TypeError(f"a word is a string, got {type(word).__name__} {word!r}")
    if not word.strip():
        raise ValueError(f"a word must have some text, got {word!r}")
    if word != word.strip():
        raise ValueError(f"give the word {word.strip()!r} without surrounding spaces: the "
                         f"space before it is added here (got {word!r})")
    return word


def _check_words(words: Sequence[str]) -> list[str]:
    if isinstance(words, str):
        raise TypeError(f"words must be a list of words, got the string {words!r}; wrap it "
                        f"in a list: [{words!r}]")
    return [_check_word(w) for w in words]


def is_single_token(model, word: str) -> bool:
    """Whether ``" " + word`` is one known token for the model's tokenizer.

    Raises:
        TypeError: ``word`` is not a non-empty string. ValueError: it has surrounding
            spaces (the leading space is added here).
    """
    check_model(model)
    _check_word(word)
    toks = model.to_tokens(" " + word, prepend_bos=False)[0]
    unk_id = model.tokenizer.unk_token_id
    return len(toks) == 1 and (unk_id is None or int(toks[0]) != unk_id)


def single_token_ids(model, words: Sequence[str]) -> Int[Tensor, "batch"]:
    """Token ids of ``" " + word`` for each word; every one must be a single token.

    Raises:
        ValueError: naming every word that is not a single token for this tokenizer
            (split into several tokens, or unknown to a word-level vocabulary).
    """
    words = _check_words(words)
    bad = sorted({w for w in words if not is_single_token(model, w)})
    if bad:
        raise ValueError(f"these words are not single tokens for this model's tokenizer: "
                         f"{bad}; choose words from its vocabulary")
    ids = [int(model.to_tokens(" " + w, prepend_bos=False)[0, 0]) for w in words]
    return torch.tensor(ids, device=model.cfg.device)


def tokenize_prompts(model, prompts: Sequence[str]
                     ) -> tuple[Int[Tensor, "batch pos"], Int[Tensor, "batch"]]:
    """BOS-prefixed tokens, right-padded, and the index of each prompt's last token."""
    rows = [model.to_tokens(p)[0] for p in check_prompts(prompts)]
    too_long = [i for i, r in enumerate(rows) if len(r) > model.cfg.n_ctx]
    if too_long:
        raise ValueError(f"prompts {too_long[:5]} are longer than the model's context of "
                         f"{model.cfg.n_ctx} tokens; shorten them")
    end_positions = torch.tensor([len(r) - 1 for r in rows], device=model.cfg.device)
    pad_id = model.tokenizer.pad_token_id
    if pad_id is None:  # e.g. GPT-2: padding sits after each prompt's end and is never read
        pad_id = model.tokenizer.eos_token_id or 0
    tokens = torch.full((len(rows), max(len(r) for r in rows)), pad_id,
                        dtype=torch.long, device=model.cfg.device)
    for i, row in enumerate(rows):
        tokens[i, : len(row)] = row
    return tokens, end_positions


def logits_at(logits: Float[Tensor, "batch pos d_vocab"],
              end_positions: Int[Tensor, "batch"]) -> Float[Tensor, "batch d_vocab"]:
    """Each prompt's logits at its own last position (an int, or one position per prompt).

    Raises:
        ValueError: logits not ``[batch, pos, d_vocab]``, or not one position per prompt.
        IndexError: a position beyond the prompts.
    """
    if logits.ndim != 3:
        raise ValueError(f"logits must be [batch, pos, d_vocab], got shape {tuple(logits.shape)}")
    where = check_positions(end_positions, *logits.shape[:2]).to(logits.device)
    rows = torch.arange(len(logits), device=logits.device)
    return logits[rows, where]


def natural_text(template: str) -> str:
    """A zoo template with ordinary punctuation (``"store , John"`` -> ``"store, John"``).

    The zoo tokenizer splits punctuation off, so both spellings give the same zoo tokens;
    BPE tokenizers such as GPT-2's expect the ordinary one.
    """
    return template.replace(" ,", ",").replace(" .", ".")


def single_token_words(model, words: Sequence[str]) -> list[str]:
    """The words of ``words`` that are single tokens (after a space) for this model."""
    words = _check_words(words)
    return [w for w in words if is_single_token(model, w)]


def token_texts(tokenizer, ids: Sequence[int] | Int[Tensor, "pos"]) -> list[str]:
    """Each token's text as the tokenizer writes it in context, spacing included.

    ``"".join(token_texts(tok, ids)) == tok.decode(ids)``: a word-level tokenizer (the zoo's)
    stores no spaces in its tokens and adds them when decoding; a byte-level BPE (GPT-2's)
    stores them in the tokens (``" Mary"``). Decoding every prefix and keeping what each
    token adds gives both right. A token that ends inside a multi-byte character adds
    nothing until the character is complete.

    Args:
        tokenizer: a Hugging Face tokenizer (e.g. ``model.tokenizer``).
        ids: the token ids of one text.
    """
    ids = [int(i) for i in (ids.tolist() if isinstance(ids, Tensor) else ids)]
    texts, previous = [], ""
    for end in range(1, len(ids) + 1):
        text = tokenizer.decode(ids[:end])
        if text.endswith("\ufffd") and end < len(ids):  # inside a multi-byte character
            texts.append("")
            continue
        if text.startswith(previous):
            texts.append(text[len(previous):])
        else:  # the decoder rewrote earlier text (e.g. cleaned up spaces): keep the total right
            texts.append(text[len(_common_prefix(previous, text)):])
        previous = text
    return texts


def _common_prefix(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


def minimal_pairs(model, clean: str, corrupted: str, slots: Mapping[str, Sequence[str]], n: int,
                  seed: int = 0) -> tuple[Int[Tensor, "batch pos"], Int[Tensor, "batch pos"],
                                          list[dict[str, str]]]:
    """``n`` clean / corrupted prompt pairs from two templates sharing their slots.

    Each ``{SLOT}`` of ``clean`` and ``corrupted`` is filled, pair by pair, with the same
    word drawn from ``slots[SLOT]``, keeping only words that are single tokens for this
    model, so every prompt has the same length and positions line up across the batch
    (as per-position patching needs). E.g. ``"{S} sees {O} near the"`` against
    ``"{S} sees {O} . the"``.

    Returns:
        BOS-prefixed clean and corrupted tokens ``[n, pos]``, and the words of each pair.

    Raises:
        ValueError: a slot of a template has no words, or none is a single token; the
            two templates give prompts of different lengths.
    """
    names = set(re.findall(r"{(\w+)}", clean)) | set(re.findall(r"{(\w+)}", corrupted))
    missing = sorted(names - set(slots))
    if missing:
        raise ValueError(f"no words given for the slots {missing}")
    words = {name: single_token_words(model, slots[name]) for name in sorted(names)}
    empty = sorted(name for name, found in words.items() if not found)
    if empty:
        raise ValueError(f"no word of the slots {empty} is a single token for this tokenizer")
    rng = random.Random(seed)
    fills = [{name: rng.choice(found) for name, found in words.items()} for _ in range(n)]
    pairs = [(model.to_tokens(clean.format(**f))[0], model.to_tokens(corrupted.format(**f))[0])
             for f in fills]
    lengths = {len(t) for pair in pairs for t in pair}
    if len(lengths) != 1:
        raise ValueError(f"the prompts have {sorted(lengths)} tokens: words outside the slots "
                         f"must be single tokens too, and both templates the same length")
    return (torch.stack([c for c, _ in pairs]), torch.stack([x for _, x in pairs]), fills)
