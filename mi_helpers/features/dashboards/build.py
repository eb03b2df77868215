"""One unit's dashboard: top and quantile contexts, logit effects, a steering test."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from jaxtyping import Int
from torch import Tensor

from ...core.activations import run_cached
from ...core.checks import check_tokens
from ...interventions.directions import next_token_shift
from ..attribution import direction_logits
from ...datasets.prompts import token_texts
from ..autointerp import ActivationContext
from .statistics import UnitStatistics
from .units import UnitReader

__all__ = ["Dashboard", "HighlightedContext", "build_dashboard", "unit_contexts",
           "random_contexts", "logit_effects", "steering_effect"]


@dataclass
class HighlightedContext(ActivationContext):
    """A context with the index of the token it was chosen for (``highlight``)."""

    highlight: int = -1


@dataclass
class Dashboard:
    """Everything shown for one unit (see the module docstring)."""

    title: str
    unit: int
    density: float
    top_contexts: list[ActivationContext]
    quantile_contexts: dict[str, list[ActivationContext]]
    sample_values: Tensor
    positive_logits: list[tuple[str, float]]
    negative_logits: list[tuple[str, float]]
    steering: dict | None = None
    notes: list[str] = field(default_factory=list)


def unit_contexts(model, reader: UnitReader, tokens: Int[Tensor, "batch pos"],
                  where: Int[Tensor, "n 2"], unit: int, before: int = 10, after: int = 3,
                  drop_bos: bool = True) -> list[ActivationContext]:
    """The unit's per-token activations around each ``(row, pos)``, as contexts.

    The highlighted token is ``where``'s; the context runs ``before`` tokens back and
    ``after`` forward (within the row), never back to position 0 when ``drop_bos``.
    """
    if len(where) == 0:
        return []
    tokens = check_tokens(model, tokens)
    rows = sorted({int(r) for r, _ in where.tolist()})
    _, cache = run_cached(model, tokens[rows], [reader.hook], stop_early=True)
    acts = reader.read(cache[reader.hook])[..., unit].float().cpu()  # row pos
    out = []
    for row, pos in where.tolist():
        r = rows.index(row)
        lo, hi = max(int(drop_bos), pos - before), min(tokens.shape[1], pos + after + 1)
        ids = tokens[row, lo:hi]
        out.append(HighlightedContext(tokens=list(model.to_str_tokens(ids)),
                                      activations=acts[r, lo:hi].tolist(),
                                      texts=token_texts(model.tokenizer, ids), highlight=pos - lo))
    return out


def _grouped_contexts(model, reader: UnitReader, tokens: Int[Tensor, "batch pos"],
                      groups: dict[str, Int[Tensor, "n 2"]], unit: int, drop_bos: bool
                      ) -> dict[str, list[ActivationContext]]:
    """:func:`unit_contexts` for several groups of ``(row, pos)`` from one forward pass."""
    where = torch.cat([w.reshape(-1, 2) for w in groups.values()])
    contexts = unit_contexts(model, reader, tokens, where, unit, drop_bos=drop_bos)
    out, start = {}, 0
    for name, w in groups.items():
        out[name], start = contexts[start:start + len(w)], start + len(w)
    return out


def random_contexts(model, reader: UnitReader, stats: UnitStatistics,
                    tokens: Int[Tensor, "batch pos"], unit: int, n: int = 10, seed: int = 0
                    ) -> list[ActivationContext]:
    """Contexts around ``n`` positions drawn from the uniform sample, firing or not.

    The negative half of an explanation's test: most of them show the unit silent.
    """
    unit = reader.check_unit(unit)
    gen = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(stats.sample_where), generator=gen)[:n]
    return unit_contexts(model, reader, tokens, stats.sample_where[pick], unit,
                         drop_bos=stats.drop_bos)


def logit_effects(model, reader: UnitReader, unit: int, n: int = 10
                  ) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """The ``n`` tokens whose logits the unit's output direction raises and lowers most.

    The direction is read through ``W_U`` directly (:func:`~mi_helpers.features.
    attribution.direction_logits`: the final layer norm's scale is left out, so compare
    values within a unit rather than across models).
    """
    unit = reader.check_unit(unit)
    effects = direction_logits(model, reader.output_directions(model)[unit]).float().cpu()
    up, down = effects.topk(n).indices, (-effects).topk(n).indices
    return (list(zip(model.to_str_tokens(up), effects[up].tolist())),
            list(zip(model.to_str_tokens(down), effects[down].tolist())))


def steering_effect(model, reader: UnitReader, unit: int, prompt: str | Int[Tensor, "pos"],
                    scale: float, n: int = 8) -> dict:
    """Add ``scale`` x the unit's output direction at every position of ``reader.write_hook``
    and compare the next-token distribution (:func:`~mi_helpers.interventions.next_token_shift`).

    Returns:
        ``{"prompt", "scale", "kl", "before", "after", "most_raised"}``.
    """
    unit = reader.check_unit(unit)
    direction = reader.output_directions(model)[unit].float()
    shift = next_token_shift(model, reader.write_hook, scale * direction, prompt, n=n)
    return {"scale": scale, **shift}


def build_dashboard(model, reader: UnitReader, stats: UnitStatistics, tokens: Int[Tensor, "batch pos"],
                    unit: int, n_top: int = 8, n_per_quantile: int = 3,
                    steering_prompt: str | None = None, steering_scale: float | None = None,
                    seed: int = 0) -> Dashboard:
    """Assemble one unit's :class:`Dashboard` from the collected statistics.

    Quantile samples: positions from the uniform sample where the unit fires, split into
    four activation bands by its quantiles (``0-25%`` ... ``75-100%``), a few per band.
    Steering (optional) uses ``steering_scale`` or, by default, the unit's largest
    activation times 4.

    Raises:
        IndexError: ``unit`` out of range.
    """
    unit = reader.check_unit(unit)
    top_n = min(n_top, stats.top_values.shape[1])
    groups = {"top": stats.top_where[unit, :top_n][stats.top_values[unit, :top_n] > 0]}
    values = stats.sample_values[:, unit]
    firing = (values > 0).nonzero().flatten()
    notes = []
    if len(firing) >= 4:
        gen = torch.Generator().manual_seed(seed)
        ordered = firing[values[firing].argsort()]
        for q, part in enumerate(ordered.tensor_split(4)):
            pick = part[torch.randperm(len(part), generator=gen)[:n_per_quantile]]
            groups[f"{25 * q}-{25 * (q + 1)}% of firing activations"] = stats.sample_where[pick]
    contexts = _grouped_contexts(model, reader, tokens, groups, unit, stats.drop_bos)
    top = contexts.pop("top")
    quantiles: dict[str, list[ActivationContext]] = contexts
    if len(firing) < 4:
        notes.append(f"fires on only {len(firing)} of the {len(values)} sampled positions: "
                     f"no quantile samples")
    if not len(top):
        notes.append("never fired on this dataset")
    positive, negative = logit_effects(model, reader, unit)
    steering = None
    if steering_prompt is not None:
        scale = steering_scale if steering_scale is not None else 4 * max(stats.top_values[unit, 0].item(), 1.0)
        steering = steering_effect(model, reader, unit, steering_prompt, scale)
    return Dashboard(title=reader.name(unit), unit=unit, density=stats.density[unit].item(),
                     top_contexts=top, quantile_contexts=quantiles, sample_values=values,
                     positive_logits=positive, negative_logits=negative, steering=steering,
                     notes=notes)
