"""The zoo's models: what each is for and how it is trained (the registry).

Every model is a Pythia-style ``transformers.GPTNeoXForCausalLM`` (rotary positions on
every head dimension, tied embeddings, sequential residual) with the word-level zoo
tokenizer, trained from scratch by ``python -m mi_helpers.zoo train NAME``. We measured
GPT-2 (``GPT2LMHeadModel``, learned absolute positions) on the same data first: its
previous-token heads only worked at early positions (best previous-token score 0.96 at
repeat length 5 but 0.29 at 25 after 3,000 steps, 0.21 at 25 after 6,000), while the
rotary model reached 0.94 / 0.95 (previous-token / induction) at every length by step
2,000. ``architecture="gpt2"`` is kept for comparison. The
phases say how the data mixture changes during training: the 2-layer models see only
repeat blocks at first, so the previous-token and induction heads form before text
arrives (with text from the start the phase change came late or not at all; see
``shared/notes/zoo-training.md``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .data import Phase

TEXT_HEAVY_IOI = (("english", 1.0), ("french", 1.0), ("ioi", 3.0), ("arithmetic", 0.5))


@dataclass(frozen=True)
class ZooSpec:
    """How one zoo model is built and trained.

    Attributes:
        name: folder name under ``data/zoo/``.
        purpose: one line for the model card.
        n_layer, d_model, n_head, n_ctx: model shape (``d_mlp = 4 * d_model``).
        seed: seeds the weights, the data and the evaluation prompts.
        steps, batch_size: optimiser steps and sequences per step.
        lr, warmup: peak AdamW learning rate and linear warm-up steps (then cosine
            decay to a tenth).
        phases: the data mixture over training.
        architecture: ``"gpt_neox"`` (the zoo) or ``"gpt2"``.
        expects: behaviours the tests require of the trained model.
    """

    name: str
    purpose: str
    n_layer: int = 2
    d_model: int = 64
    n_head: int = 4
    n_ctx: int = 64
    seed: int = 0
    steps: int = 3000
    batch_size: int = 64
    lr: float = 1e-3
    warmup: int = 200
    phases: tuple[Phase, ...] = (Phase(until=0.4, repeat_share=1.0),
                                 Phase(until=1.0, repeat_share=0.6))
    architecture: str = "gpt_neox"
    expects: tuple[str, ...] = ("induction", "previous_token")
    extra: dict = field(default_factory=dict)


def _two_layer(seed: int) -> ZooSpec:
    suffix = "" if seed == 0 else f"-seed{seed}"
    return ZooSpec(name=f"zoo-2l{suffix}", seed=seed,
                   purpose="2-layer model with induction heads (the default model)"
                   if seed == 0 else f"seed {seed} of zoo-2l, for universality")


ZOO_SPECS: dict[str, ZooSpec] = {
    spec.name: spec for spec in (
        _two_layer(0), _two_layer(1), _two_layer(2),
        ZooSpec(name="zoo-4l", purpose="4-layer model that does IOI on held-out templates",
                n_layer=4, d_model=64, n_head=8, steps=4000, seed=0,
                phases=(Phase(until=0.3, repeat_share=1.0),
                        Phase(until=1.0, repeat_share=0.3, text_weights=TEXT_HEAVY_IOI)),
                expects=("induction", "previous_token", "ioi")),
    )
}
