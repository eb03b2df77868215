"""Steering vectors from contrastive prompts, and what steering costs.

**Activation addition** (Turner et al., 2023) adds a vector to the residual stream at
one layer, at every position, while the model runs; **contrastive activation addition**
(Rimsky et al., 2024) takes the vector from contrastive prompts: the mean activation
on prompts *with* a behaviour minus the mean on prompts *without* it
(:func:`contrastive_vector`, the difference of class means, "DiffMean" in AxBench).
Any direction can be steered along: a probe's, an SAE latent's decoder row, a random
one (:func:`~mi_helpers.interventions.directions.steer_direction` adds ``scale`` times
the unit direction).

Steering is only useful if it changes the target behaviour *more than it breaks
everything else*. :func:`steering_sweep` measures both as the scale grows: the change
in a behaviour metric on prompts where the behaviour matters, and the increase of the
next-token loss on unrelated text (the side-effect cost). Comparing directions means
comparing these cost curves, against a random direction of the same norm.
:func:`generate` shows what steering does to greedy generations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from ..core.activations import collect_activations
from ..core.checks import as_tokens, check_positive, check_records, check_tokens
from ..core.hooks import check_hook_names
from ..core.metrics import per_token_loss
from .directions import steer_direction

__all__ = ["contrastive_vector", "steering_sweep", "best_within_cost", "generate"]


def contrastive_vector(model, positive: Int[Tensor, "batch pos"],
                       negative: Int[Tensor, "batch pos"], hook: str,
                       positive_pos: int | Int[Tensor, "batch"] = -1,
                       negative_pos: int | Int[Tensor, "batch"] = -1, batch_size: int = 64
                       ) -> Float[Tensor, "d_model"]:
    """``mean(act | positive) - mean(act | negative)`` at ``hook``, one position per prompt.

    Args:
        model: a TransformerLens model.
        positive, negative: prompts with and without the behaviour (any counts).
        hook: e.g. ``hook_name("resid_post", 0)``.
        positive_pos, negative_pos: the position read in each prompt (``-1``: the last;
            pass each prompt's last token for right-padded batches).
        batch_size: prompts per forward pass.
    """
    (hook,) = check_hook_names(model, [hook])
    means = [collect_activations(model, tokens, [hook], positions=pos,
                                 batch_size=batch_size)[hook].mean(0)
             for tokens, pos in ((positive, positive_pos), (negative, negative_pos))]
    return means[0] - means[1]


def _behaviour_and_loss(model, behaviour_tokens: Tensor, behaviour: Callable[[Tensor], Tensor],
                        unrelated: Tensor, batch_size: int) -> tuple[float, float]:
    """The behaviour metric, and the mean next-token loss on the unrelated text."""
    with torch.no_grad():
        value = float(behaviour(model(behaviour_tokens)))
        losses = [per_token_loss(model(unrelated[s:s + batch_size]), unrelated[s:s + batch_size])
                  for s in range(0, len(unrelated), batch_size)]
    return value, torch.cat(losses).mean().item()


def steering_sweep(model, hook: str, directions: Mapping[str, Float[Tensor, "d_model"]],
                   scales: Sequence[float], behaviour_tokens: Int[Tensor, "batch pos"],
                   behaviour: Callable[[Float[Tensor, "batch pos d_vocab"]], Float[Tensor, ""]],
                   unrelated: Int[Tensor, "batch pos"], batch_size: int = 64,
                   progress: bool = True) -> list[dict]:
    """Steer along each direction at each scale; measure the behaviour and the cost.

    Args:
        model: a TransformerLens model.
        hook: where to steer (every position), e.g. ``hook_name("resid_post", 0)``.
        directions: ``{name: direction}``; each is normalised, so a scale means the same
            distance for every direction.
        scales: steering strengths in activation units (0 is the unsteered model).
        behaviour_tokens: prompts on which the behaviour is measured.
        behaviour: maps their logits to a scalar (e.g. a preference in nats).
        unrelated: text the steering should leave alone; its mean next-token loss is the
            side-effect cost.
        batch_size: prompts per forward pass on the unrelated text.
        progress: show a tqdm bar.

    Returns:
        One row per direction and scale: ``{"direction", "scale", "behaviour",
        "behaviour_change", "loss", "loss_increase"}``, changes measured from scale 0.
    """
    (hook,) = check_hook_names(model, [hook])
    behaviour_tokens = check_tokens(model, behaviour_tokens).to(model.cfg.device)
    unrelated = check_tokens(model, unrelated).to(model.cfg.device)
    check_positive("batch_size", batch_size, integer=True)
    if not directions or not len(scales):
        raise ValueError("give at least one direction and one scale")
    base_value, base_loss = _behaviour_and_loss(model, behaviour_tokens, behaviour, unrelated,
                                                batch_size)
    rows = []
    runs = [(name, float(s)) for name in directions for s in scales]
    for name, scale in tqdm(runs, desc="steering", disable=not progress):
        with steer_direction(model, hook, directions[name], scale):
            value, loss = _behaviour_and_loss(model, behaviour_tokens, behaviour, unrelated,
                                              batch_size)
        rows.append({"direction": name, "scale": scale, "behaviour": value,
                     "behaviour_change": value - base_value, "loss": loss,
                     "loss_increase": loss - base_loss})
    return rows


def best_within_cost(rows: Sequence[dict], max_loss_increase: float) -> dict[str, float]:
    """For each direction of a :func:`steering_sweep`, the largest behaviour change
    reached at a side-effect cost of at most ``max_loss_increase`` nats (scale 0, a
    change of 0, always qualifies)."""
    rows = check_records(rows, ("direction", "loss_increase", "behaviour_change"),
                         "steering_sweep(...)")
    check_positive("max_loss_increase", max_loss_increase, allow_zero=True)
    best: dict[str, float] = {}
    for row in rows:
        name = row["direction"]
        best.setdefault(name, 0.0)
        if row["loss_increase"] <= max_loss_increase:
            best[name] = max(best[name], row["behaviour_change"])
    return best


def generate(model, prompt: str | Int[Tensor, "pos"], n_tokens: int = 8,
             hook: str | None = None, direction: Float[Tensor, "d_model"] | None = None,
             scale: float = 0.0) -> str:
    """Greedy continuation of ``prompt``, steered along ``direction`` at ``hook`` by
    ``scale`` at every position (unsteered when ``direction`` is ``None``).

    Returns:
        The generated text only (without the prompt).
    """
    check_positive("n_tokens", n_tokens, integer=True)
    tokens = as_tokens(model, prompt)[:1]
    if direction is not None and hook is None:
        raise ValueError("give the hook to steer at along with the direction")
    n_prompt = tokens.shape[1]
    for _ in range(min(n_tokens, model.cfg.n_ctx - n_prompt)):
        with torch.no_grad():
            if direction is None:
                logits = model(tokens)
            else:
                with steer_direction(model, hook, direction, scale):
                    logits = model(tokens)
        tokens = torch.cat([tokens, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return model.tokenizer.decode(tokens[0, n_prompt:].tolist())
