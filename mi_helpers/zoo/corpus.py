"""A deterministic, generated training corpus for the model zoo.

The zoo models learn from five kinds of text, each chosen so that a known
mechanism pays off:

* **English** and **French** clauses from a small grammar (a probe can look for
  "is this French?"; next words depend on the previous one or two, which rewards
  previous-token heads);
* **IOI** sentences ("When Mary and John went to the store , John gave a drink to
  Mary"), from *training* templates and name pairs only; the held-out templates and
  pairs are kept for evaluation (see :func:`ioi_split`);
* **repeats**: blocks ``r + gap + r`` of random tokens, ``r`` 6–24 tokens long and
  ``gap`` 0–12 tokens, so the distance between the two copies varies over most of
  the context and only an induction mechanism predicts the second copy;
* a little **arithmetic** ("12 + 7 = 19 .").

Every word is one token of a word-level vocabulary (:func:`vocabulary`), so names are
single tokens. Everything is drawn from a ``random.Random(seed)``: the same seed gives
the same corpus.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache

from ..core.checks import check_positive

NAMES = (
    "Mary John Alice Bob Tom Anna James Sarah David Emma Michael Laura Daniel Kate "
    "Paul Lucy Mark Julia Peter Rose Chris Amy Adam Claire Sam Grace Ben Helen Jack "
    "Diana Eric Fiona George Hannah Ivan Irene Kevin Jane Leo Nina Oscar Olivia Ryan "
    "Rachel Simon Sophie Victor Tina William Zoe Henry Ella Frank Megan Carl Lisa "
    "Dean Maria Edward Nora Felix Paula Gary Ruth Harry Sandra Ian Tara Joe Vera Luke "
    "Wendy Max Alan Beth Colin Dora Owen Iris Scott Jill"
).split()

PLACES = (
    "store park school office garden station house kitchen library market restaurant "
    "hospital beach church farm museum theatre bank cafe hotel"
).split()

OBJECTS = (
    "drink book ring kiss bone basketball computer necklace flower snack letter key "
    "bag hat apple ticket cake map coin gift"
).split()

#: IOI templates. ``{IO}`` is the indirect object (the answer), ``{S}`` the subject,
#: named twice. ``{A} and {B}`` in the first clause is filled as ``IO and S`` (ABBA) or
#: ``S and IO`` (BABA). The sentence ends ``... to {IO} .``; the prompt is everything
#: before the final ``{IO}``.
IOI_TRAIN_TEMPLATES = (
    "When {A} and {B} went to the {PLACE} , {S} gave a {OBJECT} to {IO} .",
    "When {A} and {B} got a {OBJECT} at the {PLACE} , {S} decided to give it to {IO} .",
    "Then , {A} and {B} had a long argument , and afterwards {S} said to {IO} .",
    "After {A} and {B} went to the {PLACE} , {S} gave a {OBJECT} to {IO} .",
    "While {A} and {B} were working at the {PLACE} , {S} gave a {OBJECT} to {IO} .",
    "Then , {A} and {B} went to the {PLACE} . {S} gave a {OBJECT} to {IO} .",
    "Friends {A} and {B} found a {OBJECT} at the {PLACE} . {S} gave it to {IO} .",
    "{A} and {B} were at the {PLACE} . {S} handed the {OBJECT} to {IO} .",
    "The {PLACE} was busy when {A} and {B} arrived . {S} passed the {OBJECT} to {IO} .",
    "Yesterday {A} and {B} walked to the {PLACE} , and {S} showed the {OBJECT} to {IO} .",
    "Later , {A} and {B} met at the {PLACE} , where {S} sold a {OBJECT} to {IO} .",
    "Once {A} and {B} left the {PLACE} , {S} threw the {OBJECT} to {IO} .",
    "{A} and {B} were eating at the {PLACE} , so {S} offered a {OBJECT} to {IO} .",
    "After lunch , {A} and {B} went to the {PLACE} , and {S} brought a {OBJECT} to {IO} .",
    "When {A} and {B} arrived at the {PLACE} , {S} sent a {OBJECT} to {IO} .",
    "In the morning {A} and {B} cleaned the {PLACE} , then {S} lent a {OBJECT} to {IO} .",
    "{A} and {B} talked at the {PLACE} for hours . Then {S} wrote a letter to {IO} .",
    "At the {PLACE} , {A} and {B} found a {OBJECT} , and {S} handed it to {IO} .",
)

#: Held-out IOI templates: never seen in training. Each names the subject twice, so
#: each is solvable by the IOI rule "the answer is the name that appears once".
IOI_HELDOUT_TEMPLATES = (
    "When {A} and {B} visited the {PLACE} , {S} handed a {OBJECT} to {IO} .",
    "After {A} and {B} finished at the {PLACE} , {S} passed the {OBJECT} to {IO} .",
    "While {A} and {B} waited at the {PLACE} , {S} showed a {OBJECT} to {IO} .",
    "Before {A} and {B} left the {PLACE} , {S} threw a {OBJECT} to {IO} .",
    "Then , {A} and {B} stayed at the {PLACE} , and {S} gave a {OBJECT} to {IO} .",
)

# --- a small English grammar -------------------------------------------------------
EN_DET = "the a this that my your".split()
EN_ADJ = "big small red green old new happy sad quick quiet warm cold".split()
EN_NOUN = "cat dog bird man woman child teacher doctor friend fish horse king".split()
EN_VERB = (
    "sees likes finds takes wants holds visits helps watches follows needs loves "
    "visited finished waited left stayed met"
).split()
EN_PREP = "in near behind under at before after".split()
EN_OPEN = "Today Yesterday Later Then Before While Once Sometimes".split()

# --- a small French grammar --------------------------------------------------------
FR_NOUN_M = "chat chien oiseau homme enfant livre pain jardin".split()
FR_NOUN_F = "femme maison pomme voiture fleur table porte ville".split()
FR_ADJ = "grand petit rouge vert vieux nouveau heureux triste".split()
FR_VERB = "voit aime trouve prend veut tient mange regarde cherche suit".split()
FR_PREP = "dans sur sous devant derrière avec".split()
FR_OPEN = "Maintenant Hier Ensuite Puis Souvent Demain".split()

SPECIAL_TOKENS = ("<|endoftext|>", "<unk>")
PUNCTUATION = [".", ",", "+", "-", "="]
NUMBERS = [str(n) for n in range(100)]


@lru_cache(maxsize=1)
def vocabulary() -> tuple[str, ...]:
    """Every word the corpus can produce, special tokens first, in a fixed order."""
    words: list[str] = list(SPECIAL_TOKENS) + PUNCTUATION + NUMBERS
    for template in IOI_TRAIN_TEMPLATES + IOI_HELDOUT_TEMPLATES:
        words += [w for w in template.split() if not w.startswith("{")]
    for group in (NAMES, PLACES, OBJECTS, EN_DET, EN_ADJ, EN_NOUN, EN_VERB, EN_PREP,
                  EN_OPEN, FR_NOUN_M, FR_NOUN_F, FR_ADJ, FR_VERB, FR_PREP, FR_OPEN):
        words += group
    words += "le la un une et".split()
    seen: dict[str, None] = {}
    for w in words:
        seen.setdefault(w, None)
    return tuple(seen)


# --- IOI --------------------------------------------------------------------------
def is_heldout_pair(name_a: str, name_b: str) -> bool:
    """Whether the unordered name pair is held out of training (about one pair in 5)."""
    i, j = sorted((NAMES.index(name_a), NAMES.index(name_b)))
    return (7 * i + 13 * j) % 5 == 0


@dataclass(frozen=True)
class IOISentence:
    """One IOI sentence: ``prompt + " " + io`` is the whole text up to the answer."""

    prompt: str
    io: str
    s: str
    template: str
    order: str  # "ABBA" (IO named first) or "BABA" (S named first)


def ioi_sentence(rng: random.Random, template: str, heldout_pairs: bool) -> IOISentence:
    """Fill one template with a name pair from the training or the held-out pairs."""
    while True:
        io, s = rng.sample(NAMES, 2)
        if is_heldout_pair(io, s) == heldout_pairs:
            break
    order = rng.choice(("ABBA", "BABA"))
    a, b = (io, s) if order == "ABBA" else (s, io)
    text = template.format(A=a, B=b, S=s, IO=io, PLACE=rng.choice(PLACES),
                           OBJECT=rng.choice(OBJECTS))
    prompt = text[: text.rindex(" " + io + " .")]
    return IOISentence(prompt=prompt, io=io, s=s, template=template, order=order)


def ioi_split(n: int, seed: int = 0, heldout: bool = True) -> list[IOISentence]:
    """IOI sentences for evaluation (held-out templates and pairs) or training.

    Args:
        n: number of sentences.
        seed: random seed.
        heldout: if True, use the held-out templates and name pairs (never trained on).
    """
    check_positive("n", n, integer=True)
    rng = random.Random(seed)
    templates = IOI_HELDOUT_TEMPLATES if heldout else IOI_TRAIN_TEMPLATES
    return [ioi_sentence(rng, templates[k % len(templates)], heldout) for k in range(n)]


# --- sentences ----------------------------------------------------------------------
def english_sentence(rng: random.Random) -> str:
    """A short English clause, e.g. ``the old dog follows Mary near the park .``."""

    def noun_phrase() -> list[str]:
        if rng.random() < 0.3:
            return [rng.choice(NAMES)]
        adj = [rng.choice(EN_ADJ)] if rng.random() < 0.5 else []
        return [rng.choice(EN_DET), *adj, rng.choice(EN_NOUN + OBJECTS)]

    words = [rng.choice(EN_OPEN)] if rng.random() < 0.3 else []
    words += noun_phrase() + [rng.choice(EN_VERB)] + noun_phrase()
    if rng.random() < 0.5:
        words += [rng.choice(EN_PREP), "the", rng.choice(PLACES)]
    return " ".join(words + ["."])


def french_sentence(rng: random.Random) -> str:
    """A short French clause, e.g. ``le petit chat mange la pomme rouge .``."""

    def noun_phrase() -> list[str]:
        if rng.random() < 0.2:
            return [rng.choice(NAMES)]
        feminine = rng.random() < 0.5
        noun = rng.choice(FR_NOUN_F if feminine else FR_NOUN_M)
        det = rng.choice(("la", "une") if feminine else ("le", "un"))
        adj = [rng.choice(FR_ADJ)] if rng.random() < 0.5 else []
        return [det, noun, *adj]

    words = [rng.choice(FR_OPEN)] if rng.random() < 0.3 else []
    words += noun_phrase() + [rng.choice(FR_VERB)] + noun_phrase()
    if rng.random() < 0.4:
        words += [rng.choice(FR_PREP), *noun_phrase()]
    if rng.random() < 0.2:
        words += ["et", rng.choice(FR_VERB), *noun_phrase()]
    return " ".join(words + ["."])


def arithmetic_sentence(rng: random.Random) -> str:
    """``a + b = c .`` or ``a - b = c .`` with every number below 100."""
    a, b = rng.randrange(50), rng.randrange(50)
    if rng.random() < 0.5:
        return f"{a} + {b} = {a + b} ."
    a, b = max(a, b), min(a, b)
    return f"{a} - {b} = {a - b} ."


def ioi_training_sentence(rng: random.Random) -> str:
    """A whole IOI sentence from a training template and a training name pair."""
    sent = ioi_sentence(rng, rng.choice(IOI_TRAIN_TEMPLATES), heldout_pairs=False)
    return f"{sent.prompt} {sent.io} ."


TEXT_KINDS = {
    "english": english_sentence,
    "french": french_sentence,
    "ioi": ioi_training_sentence,
    "arithmetic": arithmetic_sentence,
}
