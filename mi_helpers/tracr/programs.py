"""The RASP programs we compile with Tracr (needs the optional extra: ``pip install .[tracr]``).

RASP (Weiss et al., 2021) describes a transformer's computation as operations on
sequences: ``Select`` builds an attention pattern from keys and queries,
``Aggregate`` moves values along it (an attention head), ``SelectorWidth`` counts the
selected positions (a head and an MLP), ``Map`` and ``SequenceMap`` apply a function
position by position (MLPs). Tracr compiles such a program into transformer weights.

Every operation here is named, so the committed files use stable names
(``"length"``, ``"opp_index"``) rather than Tracr's numbered labels (``"length_6"``).
Importing this module imports Tracr's ``rasp`` (pure Python); compiling imports JAX.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tracr.rasp import rasp

__all__ = ["TracrProgram", "PROGRAMS", "VOCAB", "MAX_SEQ_LEN"]

VOCAB = (1, 2, 3)
MAX_SEQ_LEN = 5
tokens, indices = rasp.tokens, rasp.indices
Cmp = rasp.Comparison


@dataclass(frozen=True)
class TracrProgram:
    """A RASP program with what Tracr needs to compile it.

    Attributes:
        name: the program's name, also its output variable's and its files'.
        description: one sentence a learner reads in the notebook.
        build: returns a fresh RASP expression (fresh ids on every call).
        vocab: the input tokens; max_seq_len: the longest input (BOS not counted).
    """

    name: str
    description: str
    build: Callable[[], rasp.SOp]
    vocab: tuple = VOCAB
    max_seq_len: int = MAX_SEQ_LEN


def make_length() -> rasp.SOp:
    """The number of tokens, at every position: ``SelectorWidth(Select(TRUE))``."""
    everything = rasp.Select(tokens, tokens, Cmp.TRUE).named("all_true")
    return rasp.SelectorWidth(everything).named("length")


def make_reverse() -> rasp.SOp:
    """The tokens in reverse order: read position ``length - i - 1``."""
    length = make_length()
    opp_index = rasp.SequenceMap(lambda n, i: n - i - 1, length, indices).named("opp_index")
    flip = rasp.Select(indices, opp_index, Cmp.EQ).named("flip")
    return rasp.Aggregate(flip, tokens).named("reverse")


def make_hist() -> rasp.SOp:
    """How often each position's token occurs in the input."""
    same_token = rasp.Select(tokens, tokens, Cmp.EQ).named("same_token")
    return rasp.SelectorWidth(same_token).named("hist")


def make_sort() -> rasp.SOp:
    """The tokens in increasing order, duplicates kept (ties broken by position).

    As Tracr's ``lib.make_sort``: the key ``token + index / max_seq_len`` is unique, its
    rank (how many keys are smaller) is each token's target position, and a head reads
    the token whose target is this position.
    """
    key = rasp.SequenceMap(lambda x, i: x + i / MAX_SEQ_LEN, tokens, indices).named("unique_key")
    smaller = rasp.Select(key, key, Cmp.LT).named("smaller")
    target_pos = rasp.SelectorWidth(smaller).named("target_pos")
    to_target = rasp.Select(target_pos, indices, Cmp.EQ).named("to_target")
    return rasp.Aggregate(to_target, tokens).named("sort")


def make_frac_prevs() -> rasp.SOp:
    """The fraction of tokens so far (this one included) that are 1 (a numerical output)."""
    is_one = rasp.numerical(rasp.Map(lambda x: 1 if x == 1 else 0, tokens).named("is_one"))
    prevs = rasp.Select(indices, indices, Cmp.LEQ).named("prevs")
    return rasp.numerical(rasp.Aggregate(prevs, is_one, default=0)).named("frac_prevs")


def make_double_hist() -> rasp.SOp:
    """How many distinct tokens occur as often as this position's token (Weiss et al.).

    ``same_count`` counts the positions whose token count equals mine; each distinct
    token with count ``h`` fills ``h`` of them, so dividing by ``hist`` counts tokens.
    """
    hist = make_hist()
    same_count = rasp.Select(hist, hist, Cmp.EQ).named("same_count")
    positions = rasp.SelectorWidth(same_count).named("positions_with_my_count")
    return rasp.SequenceMap(lambda c, h: c // h if h else 0, positions, hist).named("double_hist")


def make_induction_count() -> rasp.SOp:
    """How many positions follow an occurrence of this position's token (our own program).

    Two interacting attention layers, as in an induction circuit: a previous-token head
    writes ``prev_token``; the second head's *keys* read it (K-composition) to select
    the positions whose previous token equals this position's token, and
    ``SelectorWidth`` counts them.
    """
    previous = rasp.Select(indices, indices, lambda k, q: q == k + 1).named("previous")
    prev_token = rasp.Aggregate(previous, tokens, default=None).named("prev_token")
    follows_mine = rasp.Select(prev_token, tokens, lambda k, q: k == q).named("follows_my_token")
    return rasp.SelectorWidth(follows_mine).named("induction_count")


PROGRAMS: dict[str, TracrProgram] = {p.name: p for p in (
    TracrProgram("length", "the number of tokens, at every position", make_length),
    TracrProgram("reverse", "the tokens in reverse order", make_reverse),
    TracrProgram("hist", "how often each position's token occurs", make_hist),
    TracrProgram("sort", "the tokens sorted, duplicates kept", make_sort),
    TracrProgram("frac_prevs", "the fraction of tokens so far that are 1", make_frac_prevs),
    TracrProgram("double_hist", "how many distinct tokens occur as often as this one",
                 make_double_hist),
    TracrProgram("induction_count", "how many positions follow an earlier copy of this "
                 "position's token (two composed heads)", make_induction_count),
)}
