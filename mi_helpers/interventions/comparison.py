"""IIA for every family of bases on one variable and site, with intervals over seeds.

:func:`compare_bases` splits the pairs into train and test halves once per seed, fits
every family of :mod:`.bases` (and DAS, :mod:`.das`) on the training half, and measures
the interchange-intervention accuracy on the test half. The fixed families are fitted on
the activations at the site, labelled with the variable's value, of both the base and
the source prompts (:func:`site_activations`). Two references frame the numbers: the
whole activation (``"full"``, ordinary patching; the most any subspace of it can do at
this site) and a random subspace (what "no alignment" scores).

:func:`summarise` turns the rows into a mean and a 95% confidence interval per family
and dimension (Student's t over seeds: with 3 seeds the interval is wide, as it should
be).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from ..core.activations import collect_activations
from ..core.checks import check_records
from ..core.hooks import check_hook_names
from .bases import fixed_bases
from .das import CounterfactualPairs, iia, train_das

__all__ = ["site_activations", "compare_bases", "mean_ci", "summarise"]

# two-sided 95% quantiles of Student's t for 1..10 degrees of freedom
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)


def site_activations(model, pairs: CounterfactualPairs, hook: str
                     ) -> tuple[Float[Tensor, "n d_model"], Int[Tensor, "n"]]:
    """Activations at ``hook`` of the bases (at ``base_pos``) and the sources (at
    ``source_pos``), with the variable's value for each: data for the fixed bases."""
    (hook,) = check_hook_names(model, [hook])
    base = collect_activations(model, pairs.base, [hook], positions=pairs.base_pos)[hook]
    source = collect_activations(model, pairs.source, [hook], positions=pairs.source_pos)[hook]
    values = torch.cat([pairs.base_values, pairs.source_values]).cpu()
    return torch.cat([base, source]), values


def compare_bases(model, pairs: CounterfactualPairs, hook: str, n_dims: Sequence[int] = (1,),
                  seeds: Sequence[int] = (0, 1, 2), saes: Mapping | None = None,
                  das: bool = True, das_kwargs: dict | None = None, full: bool = True,
                  test_fraction: float = 0.5, progress: bool = True) -> list[dict]:
    """IIA of every family of bases at ``hook``, for each dimension and seed.

    Args:
        model: a TransformerLens model.
        pairs: the counterfactual pairs of one variable.
        hook: the intervention site (at ``pairs.base_pos``).
        n_dims: subspace dimensions to try (``diffmean`` and ``probe`` only at 1).
        seeds: one train / test split, DAS initialisation and random basis per seed.
        saes: ``{name: sae}``, SAEs reading ``hook``: one family ``"sae <name>"`` each.
        das: also train DAS (``das_kwargs`` go to :func:`~.das.train_das`).
        full: also measure the whole activation (``"full"``), once per seed.
        test_fraction: the share of pairs held out for measuring IIA.
        progress: show a tqdm bar over seeds.

    Returns:
        One row per family, dimension and seed: ``{"family", "n_dims", "seed", "iia"}``;
        the family ``"full"`` (the whole activation) once per seed if ``full``.
    """
    (hook,) = check_hook_names(model, [hook])
    for name, sae in (saes or {}).items():
        if sae.cfg.hook_name and sae.cfg.hook_name != hook:
            raise ValueError(f"the SAE {name!r} reads {sae.cfg.hook_name}, not {hook}")
    rows = []
    for seed in tqdm(list(seeds), desc="seeds", disable=not progress):
        train, test = pairs.split(test_fraction, seed)
        acts, values = site_activations(model, train, hook)
        width = acts.shape[1]
        if full:
            rows.append({"family": "full", "n_dims": width, "seed": seed,
                         "iia": iia(model, test, hook, torch.eye(width))})
        for n in n_dims:
            bases = fixed_bases(acts, values, n, saes=saes, seed=seed)
            if das:
                kwargs = {"seed": seed, "progress": False, **(das_kwargs or {})}
                bases = {"das": train_das(model, train, hook, n, **kwargs).basis, **bases}
            rows += [{"family": family, "n_dims": basis.shape[1], "seed": seed,
                      "iia": iia(model, test, hook, basis)} for family, basis in bases.items()]
    return rows


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """The mean and the half-width of its 95% confidence interval (Student's t).

    One value gives an interval of ``nan`` width (no spread can be measured).
    """
    values = [float(v) for v in values]
    if not values:
        raise ValueError("no values to summarise")
    n = len(values)
    mean = sum(values) / n
    if n == 1:
        return mean, math.nan
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    t = _T95[n - 2] if n - 1 <= len(_T95) else 1.96 + 2.4 / (n - 1)  # large-n approximation
    return mean, t * sd / math.sqrt(n)


def summarise(rows: Sequence[dict]) -> dict[tuple[str, int], dict[str, float]]:
    """``{(family, n_dims): {"mean", "ci", "n"}}`` over the seeds of :func:`compare_bases`."""
    rows = check_records(rows, ("family", "n_dims", "iia"), "compare_bases(...)")
    groups: dict[tuple[str, int], list[float]] = {}
    for row in rows:
        groups.setdefault((row["family"], row["n_dims"]), []).append(row["iia"])
    out = {}
    for key, values in groups.items():
        mean, ci = mean_ci(values)
        out[key] = {"mean": mean, "ci": ci, "n": len(values)}
    return out
