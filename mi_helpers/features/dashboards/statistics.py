"""Per-unit statistics over a token dataset, from one streaming pass (memory independent
of the dataset's size)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ...core.activations import iter_activations
from ...core.checks import check_positive, check_tokens
from ...core.hooks import check_hook_names
from .units import UnitReader

__all__ = ["UnitStatistics", "collect_statistics"]


@dataclass
class UnitStatistics:
    """Per-unit statistics over a dataset, from one streaming pass.

    Attributes:
        top_values: ``[unit, n_top]`` the largest activations, descending.
        top_where: ``[unit, n_top, 2]`` their ``(row, pos)`` in the dataset.
        fire_count: ``[unit]`` tokens where the unit was > 0.
        sample_values: ``[n_sample, unit]`` activations at uniformly sampled positions.
        sample_where: ``[n_sample, 2]`` those positions' ``(row, pos)``.
        n_tokens: tokens seen (BOS excluded when ``drop_bos``).
        drop_bos: whether position 0 was left out.
    """

    top_values: Tensor
    top_where: Tensor
    fire_count: Tensor
    sample_values: Tensor
    sample_where: Tensor
    n_tokens: int
    drop_bos: bool = True

    @property
    def density(self) -> Float[Tensor, "unit"]:
        """Fraction of tokens on which each unit fires (> 0)."""
        return self.fire_count.float() / max(self.n_tokens, 1)


def collect_statistics(model, reader: UnitReader, tokens: Int[Tensor, "batch pos"],
                       n_top: int = 20, n_sample: int = 4096, batch_size: int = 32,
                       seed: int = 0, drop_bos: bool = True, progress: bool = True
                       ) -> UnitStatistics:
    """Stream ``tokens`` through the model once and keep each unit's statistics.

    Memory is ``O(units x (n_top + n_sample))``, whatever the dataset's size. The position
    sample is a bottom-``n_sample`` sketch over random keys: a uniform sample without
    replacement, the same positions for every unit.

    Raises:
        ValueError: an empty dataset, or one with only BOS tokens.
        KeyError: the reader's hook is not a hook of this model.
    """
    tokens = check_tokens(model, tokens)
    first = int(drop_bos)
    if tokens.shape[1] <= first:
        raise ValueError(f"the dataset is empty: tokens of shape {tuple(tokens.shape)} leave no "
                         f"position after BOS; pass [batch, pos] tokens with pos > 1")
    check_positive("n_top", n_top, integer=True)
    check_positive("n_sample", n_sample, integer=True)
    (hook,) = check_hook_names(model, [reader.hook])
    gen = torch.Generator().manual_seed(seed)
    units = reader.n_units
    top_values = torch.full((units, 0), -math.inf)
    top_where = torch.zeros((units, 0, 2), dtype=torch.long)
    fire_count = torch.zeros(units, dtype=torch.long)
    sample_keys, sample_values = torch.empty(0), torch.empty(0, units)
    sample_where = torch.zeros((0, 2), dtype=torch.long)
    n_tokens = 0
    batches = iter_activations(model, tokens, [hook], batch_size=batch_size, progress=progress,
                               desc="collecting")
    for rows, cache in batches:
        acts = reader.read(cache[hook])[:, first:].float().cpu()  # batch pos unit
        start, (batch, n_pos) = rows.start, acts.shape[:2]
        flat = acts.reshape(-1, units)  # n unit
        where = torch.stack(torch.meshgrid(torch.arange(start, start + batch),
                                           torch.arange(first, first + n_pos),
                                           indexing="ij"), -1).reshape(-1, 2)
        n_tokens += len(flat)
        fire_count += (flat > 0).sum(0)
        batch_top = flat.topk(min(n_top, len(flat)), dim=0)  # n_top unit
        merged_values = torch.cat([top_values, batch_top.values.T], dim=1)
        merged_where = torch.cat([top_where, where[batch_top.indices.T]], dim=1)
        keep = merged_values.topk(min(n_top, merged_values.shape[1]), dim=1)
        top_values = keep.values
        top_where = merged_where.gather(1, keep.indices[..., None].expand(-1, -1, 2))
        keys = torch.rand(len(flat), generator=gen)
        sample_keys = torch.cat([sample_keys, keys])
        sample_values = torch.cat([sample_values, flat])
        sample_where = torch.cat([sample_where, where])
        if len(sample_keys) > n_sample:
            chosen = sample_keys.topk(n_sample, largest=False).indices
            sample_keys, sample_values, sample_where = (sample_keys[chosen], sample_values[chosen],
                                                        sample_where[chosen])
    return UnitStatistics(top_values, top_where, fire_count, sample_values, sample_where, n_tokens,
                          drop_bos)
