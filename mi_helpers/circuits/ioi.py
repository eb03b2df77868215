"""Indirect object identification (IOI): prompts, tokens and the logit-difference metric.

In "When Mary and John went to the store, John gave a drink to", the next token should
be the *indirect object* (IO, " Mary"), not the repeated *subject* (S, " John"). The
standard metric is the logit difference ``logit(IO) - logit(S)`` at the last position
of the prompt (Wang et al., 2022): positive when the model prefers the right name.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..core.checks import check_model, check_positive, check_prompts, check_type
from ..core.metrics import PositionMetric, logit_difference
from ..datasets.prompts import (logits_at, natural_text, single_token_ids, single_token_words,
                                tokenize_prompts)
from ..zoo import corpus

__all__ = ["IOIDataset", "ioi_dataset", "abc_corruption", "evaluate_ioi", "fill_prompt"]


def evaluate_ioi(model, prompts: Sequence[str], io_names: Sequence[str],
                 s_names: Sequence[str]) -> dict[str, float]:
    """Mean logit difference, and how often IO beats S and is the top prediction.

    Returns:
        ``{"logit_diff": mean logit(IO) - logit(S), "io_beats_s": fraction with a
        positive difference, "top1_accuracy": fraction whose top token is IO}``.
    """
    prompts = check_prompts(prompts)
    if not len(prompts) == len(io_names) == len(s_names):
        raise ValueError(f"give one IO and one S name per prompt: {len(prompts)} prompts, "
                         f"{len(io_names)} IO names, {len(s_names)} S names")
    tokens, end_positions = tokenize_prompts(model, prompts)
    io_ids, s_ids = single_token_ids(model, io_names), single_token_ids(model, s_names)
    with torch.no_grad():
        final = logits_at(model(tokens), end_positions)
    diff = logit_difference(final, io_ids, s_ids)
    return {
        "logit_diff": diff.mean().item(),
        "io_beats_s": (diff > 0).float().mean().item(),
        "top1_accuracy": (final.argmax(-1) == io_ids).float().mean().item(),
    }


# ---- an IOI dataset and its ABC corruption ----------------------------------------------

@dataclass
class IOIDataset:
    """IOI prompts with their tokens, answer ids and the position of every name.

    Prompt ``i`` is ``templates[template_ids[i]]`` filled with ``io[i]``, ``s[i]`` and a
    place and object; every name, place and object is a single token, so all prompts of
    one template have the same length and the same word at each position.

    Attributes:
        prompts: the text up to (not including) the answer.
        io, s: the indirect object (answer) and the subject (named twice) of each prompt.
        template_ids: ``[batch]`` index of each prompt's template (prompts of one template
            share positions; means over a template are means per position).
        order: ``"ABBA"`` (IO named first) or ``"BABA"`` for each prompt.
        tokens: ``[batch, pos]`` BOS-prefixed, right-padded token ids.
        io_ids, s_ids: ``[batch]`` token ids of ``" " + io`` and ``" " + s``.
        word_positions: ``{"IO", "S1", "S2", "end"}`` -> ``[batch]`` position of the IO
            name, the first and second subject, and the last prompt token.
        templates: the templates ``template_ids`` index.
        places, objects: the place and object of each prompt.
        name_ids: token ids of every candidate name (for :meth:`name_score`).
    """

    prompts: list[str]
    io: list[str]
    s: list[str]
    template_ids: Int[Tensor, "batch"]
    order: list[str]
    tokens: Int[Tensor, "batch pos"]
    io_ids: Int[Tensor, "batch"]
    s_ids: Int[Tensor, "batch"]
    word_positions: dict[str, Int[Tensor, "batch"]] = field(repr=False)
    templates: list[str] = field(repr=False, default_factory=list)
    places: list[str] = field(repr=False, default_factory=list)
    objects: list[str] = field(repr=False, default_factory=list)
    name_ids: Int[Tensor, "name"] | None = field(repr=False, default=None)

    def __len__(self) -> int:
        return len(self.prompts)

    def __getitem__(self, rows: slice) -> IOIDataset:
        """The prompts ``rows`` (a slice, e.g. ``ioi[:20]``) as a dataset of their own, with
        the same token width, so an aligned corruption sliced alike stays aligned."""
        if not isinstance(rows, slice):
            raise TypeError(f"index an IOIDataset with a slice (e.g. ioi[:20]), not "
                            f"{type(rows).__name__}")
        picked = range(len(self))[rows]
        if not picked:
            raise ValueError(f"the slice {rows} selects none of the {len(self)} prompts")
        index = torch.tensor(list(picked), device=self.tokens.device)

        def cut(values):
            return [values[i] for i in picked] if isinstance(values, list) else values[index]

        return replace(self, prompts=cut(self.prompts), io=cut(self.io), s=cut(self.s),
                       template_ids=cut(self.template_ids), order=cut(self.order),
                       tokens=cut(self.tokens), io_ids=cut(self.io_ids), s_ids=cut(self.s_ids),
                       word_positions={k: cut(v) for k, v in self.word_positions.items()},
                       places=cut(self.places) if self.places else [],
                       objects=cut(self.objects) if self.objects else [])

    def logit_diff(self, logits: Float[Tensor, "batch pos d_vocab"]) -> Float[Tensor, "batch"]:
        """``logit(IO) - logit(S)`` at each prompt's last position."""
        return logit_difference(logits_at(logits, self.word_positions["end"]), self.io_ids,
                                self.s_ids)

    @property
    def metric(self) -> PositionMetric:
        """The mean logit difference (``logits -> scalar``): the metric for patching. It
        reads only each prompt's last position, and says so (:class:`PositionMetric`)."""
        return PositionMetric(self.mean_logit_diff, self.word_positions["end"])

    def mean_logit_diff(self, logits: Float[Tensor, "batch pos d_vocab"]) -> Float[Tensor, ""]:
        """The mean of :meth:`logit_diff` over the prompts."""
        return self.logit_diff(logits).mean()

    def name_score(self, logits: Float[Tensor, "batch pos d_vocab"], who: str = "IO"
                   ) -> Float[Tensor, ""]:
        """Mean of ``logit(IO)`` (or ``logit(S)``) minus the mean logit of all candidate names.

        Unlike the logit difference, which a model can raise by pushing S *down*, this
        only rises when the named token is pushed *up* among the names.
        """
        if who not in ("IO", "S"):
            raise ValueError(f"who must be 'IO' or 'S', not {who!r}")
        last = logits_at(logits, self.word_positions["end"])
        rows = torch.arange(len(last), device=last.device)
        target = self.io_ids if who == "IO" else self.s_ids
        return (last[rows, target] - last[:, self.name_ids].mean(-1)).mean()

    def top1_accuracy(self, logits: Float[Tensor, "batch pos d_vocab"]) -> Float[Tensor, ""]:
        """Fraction of prompts whose top prediction is IO."""
        last = logits_at(logits, self.word_positions["end"])
        return (last.argmax(-1) == self.io_ids).float().mean()


def ioi_dataset(model, n: int, seed: int = 0, *, templates: Sequence[str] | None = None,
                names: Sequence[str] | None = None, places: Sequence[str] | None = None,
                objects: Sequence[str] | None = None, heldout: bool = True) -> IOIDataset:
    """``n`` IOI prompts, half ABBA and half BABA, cycling through the templates.

    Args:
        model: a TransformerLens model (its tokenizer decides what is a single token).
        n: number of prompts (at least 2).
        seed: random seed for names, places and objects.
        templates: format strings with ``{A} {B} {S} {IO} {PLACE} {OBJECT}`` ending
            ``to {IO} .`` (default: the zoo's held-out templates, or its training ones
            when ``heldout=False``).
        names: candidate names; each must be a single token (default: the zoo's names
            that are single tokens for this tokenizer, held-out pairs if ``heldout``).
        places, objects: candidate fillers (default: the zoo's single-token ones).
        heldout: with the default templates and names, use the held-out templates and
            name pairs (never seen in the zoo's training) or the training ones.

    Raises:
        ValueError: fewer than 3 names, a given name that is not a single token (the
            message names them), or a template without the IOI fields.
    """
    check_positive("n", n, integer=True)
    if n < 2:
        raise ValueError(f"an IOI dataset needs at least 2 prompts, got n={n}")
    default_names = names is None
    if templates is None:
        templates = corpus.IOI_HELDOUT_TEMPLATES if heldout else corpus.IOI_TRAIN_TEMPLATES
    for t in templates:
        if not all(f in t for f in ("{A}", "{B}", "{S}", "{IO}")) or not t.endswith("{IO} ."):
            raise ValueError(f"template {t!r} must contain {{A}} {{B}} {{S}} {{IO}} and end "
                             f"with '{{IO}} .'")
    names = single_token_words(model, corpus.NAMES) if default_names else list(names)
    single_token_ids(model, names)  # raises, naming every name that is not a single token
    if len(set(names)) < 3:
        raise ValueError(f"need at least 3 different single-token names (IO, S and a third "
                         f"for the ABC corruption), got {sorted(set(names))}")
    places = single_token_words(model, corpus.PLACES) if places is None else list(places)
    objects = single_token_words(model, corpus.OBJECTS) if objects is None else list(objects)
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        while True:
            io, s = rng.sample(names, 2)
            if not default_names:  # only the zoo's own names have held-out pairs
                break
            if corpus.is_heldout_pair(io, s) == heldout:
                break
        rows.append({"template_id": i % len(templates), "io": io, "s": s,
                     "order": "ABBA" if i % 2 == 0 else "BABA",
                     "place": rng.choice(places), "object": rng.choice(objects)})
    dataset = _build_dataset(model, list(templates), rows)
    dataset.name_ids = single_token_ids(model, sorted(set(names)))
    return dataset


def fill_prompt(template: str, a: str, b: str, s: str, place: str, obj: str) -> str:
    """``template`` with ordinary punctuation, filled, cut before its final ``{IO}`` slot."""
    text = natural_text(template).format(A=a, B=b, S=s, IO="{IO}", PLACE=place, OBJECT=obj)
    return text[: text.rindex(" {IO}.")]


def _build_dataset(model, templates: list[str], rows: list[dict]) -> IOIDataset:
    """Fill the templates, tokenize and find every name's position."""
    prompts = []
    for row in rows:
        a, b = (row["io"], row["s"]) if row["order"] == "ABBA" else (row["s"], row["io"])
        prompts.append(fill_prompt(templates[row["template_id"]], a, b, row["s"],
                                   row["place"], row["object"]))
    tokens, ends = tokenize_prompts(model, prompts)
    io_ids = single_token_ids(model, [r["io"] for r in rows])
    s_ids = single_token_ids(model, [r["s"] for r in rows])
    positions = {"IO": [], "S1": [], "S2": [], "end": ends}
    for row_tokens, end, io_id, s_id, row in zip(tokens, ends, io_ids, s_ids, rows):
        s_at = (row_tokens[: end + 1] == s_id).nonzero().flatten().tolist()
        io_at = (row_tokens[: end + 1] == io_id).nonzero().flatten().tolist()
        if len(s_at) != 2 or len(io_at) != 1:
            raise ValueError(f"expected the subject twice and IO once in {row}; a place or "
                             f"object must not be a name")
        positions["IO"].append(io_at[0])
        positions["S1"].append(s_at[0])
        positions["S2"].append(s_at[1])
    device = tokens.device
    word_positions = {k: torch.as_tensor(v, device=device) for k, v in positions.items()}
    return IOIDataset(prompts=prompts, io=[r["io"] for r in rows], s=[r["s"] for r in rows],
                      template_ids=torch.tensor([r["template_id"] for r in rows], device=device),
                      order=[r["order"] for r in rows], tokens=tokens, io_ids=io_ids,
                      s_ids=s_ids, word_positions=word_positions, templates=templates,
                      places=[r["place"] for r in rows], objects=[r["object"] for r in rows])


def abc_corruption(dataset: IOIDataset, model, seed: int = 1,
                   names: Sequence[str] | None = None) -> IOIDataset:
    """The "ABC" distribution: each prompt with its three name slots refilled.

    "When Mary and John went to the store, John gave a drink to" becomes "When Alice and
    Bob went to the store, Carl gave a drink to": same template, place and object (so the
    same tokens everywhere else and the same length), three different names, none of them
    the prompt's IO or S. The IOI information is gone; the sentence shape is kept.

    Returns:
        An :class:`IOIDataset` aligned with ``dataset`` (same template at each index) whose
        ``io``, ``s`` and their ids are the *clean* answers, so ``dataset.metric`` and
        ``abc.metric`` agree on any logits: logit(clean IO) - logit(clean S).

    Raises:
        ValueError: fewer than three names other than a prompt's IO and S, or a name that
            is not a single token.
    """
    check_type("dataset", dataset, IOIDataset, "make one with ioi_dataset(model, n)")
    check_model(model)
    names = single_token_words(model, corpus.NAMES) if names is None else list(names)
    single_token_ids(model, names)
    short = [k for k, pair in enumerate(zip(dataset.io, dataset.s)) if len(set(names) - set(pair)) < 3]
    if short:
        raise ValueError(f"an ABC prompt needs three names other than its IO and S, but prompt "
                         f"{short[0]} ({dataset.io[short[0]]}, {dataset.s[short[0]]}) has "
                         f"{sorted(set(names) - {dataset.io[short[0]], dataset.s[short[0]]})}; "
                         f"give at least 5 names")
    rng = random.Random(seed)
    prompts = []
    for k, (io, s) in enumerate(zip(dataset.io, dataset.s)):
        a, b, c = rng.sample([nm for nm in names if nm not in (io, s)], 3)
        prompts.append(fill_prompt(dataset.templates[int(dataset.template_ids[k])], a, b, c,
                                   dataset.places[k], dataset.objects[k]))
    tokens, ends = tokenize_prompts(model, prompts)
    if tokens.shape != dataset.tokens.shape or not torch.equal(ends, dataset.word_positions["end"]):
        raise ValueError("the ABC prompts do not have the clean prompts' lengths; every name "
                         "must be a single token")
    return replace(dataset, prompts=prompts, tokens=tokens)
