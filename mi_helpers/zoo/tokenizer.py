"""The zoo's word-level tokenizer: one token per word, so every name is one token.

Built with the ``tokenizers`` library from the corpus vocabulary and wrapped as a
``PreTrainedTokenizerFast`` whose BOS, EOS and padding token is ``<|endoftext|>``, as
in GPT-2. Text is split on whitespace and punctuation; a word outside the vocabulary
becomes ``<unk>``. Decoding joins words with spaces and tidies the space before
punctuation.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from .corpus import SPECIAL_TOKENS, vocabulary

BOS = SPECIAL_TOKENS[0]
UNK = SPECIAL_TOKENS[1]


def build_tokenizer() -> PreTrainedTokenizerFast:
    """The word-level tokenizer over :func:`~mi_helpers.zoo.corpus.vocabulary`."""
    vocab = {word: i for i, word in enumerate(vocabulary())}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation("isolated")]
    )
    core.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    return PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token=BOS, eos_token=BOS, pad_token=BOS,
        unk_token=UNK, model_max_length=1024,
    )


def load_tokenizer(model_dir: str | Path) -> PreTrainedTokenizerFast:
    """Load the tokenizer saved beside a zoo model (``tokenizer.json``)."""
    path = Path(model_dir) / "tokenizer.json"
    if not path.is_file():
        raise FileNotFoundError(f"zoo tokenizer file is missing: {path}")
    return PreTrainedTokenizerFast(
        tokenizer_file=str(path), bos_token=BOS, eos_token=BOS, pad_token=BOS,
        unk_token=UNK, model_max_length=1024,
    )
