"""How interpretable is a family of units? Explain a sample of them, score each explanation.

For a reader (neurons, SAE latents, directions) and its collected statistics,
:func:`interpretability` draws units that fire often enough, explains each from half of
its top contexts (any :class:`~mi_helpers.features.autointerp.Explainer`), and scores the
explanation on contexts it has not seen: the other half of the top contexts, contexts from
the lower activation bands and contexts around random positions (where the unit is mostly
silent). It also scores every explanation on the *next* unit's contexts: the baseline an
explanation that says something true about its unit must beat.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Int
from torch import Tensor

from ...core.checks import check_positive, check_tokens, check_type
from ..autointerp import Explainer, score_explanation, simulation_score
from .build import build_dashboard, random_contexts
from .statistics import UnitStatistics
from .units import UnitReader

__all__ = ["Interpretability", "interpretability"]


@dataclass
class Interpretability:
    """Scores of a sample of units.

    Attributes:
        units: the units scored.
        explanations: each unit's explanation text.
        simulation: ``[unit]`` simulation score on unseen contexts (Pearson correlation).
        detection: ``[unit]`` detection score (balanced accuracy; NaN for a unit that fires
            in every random context, so has no quiet context to reject).
        shuffled: ``[unit]`` simulation score of the explanation on the next unit's contexts.
    """

    units: list[int]
    explanations: list[str]
    simulation: Tensor
    detection: Tensor
    shuffled: Tensor

    @property
    def mean(self) -> float:
        return self.simulation.mean().item()

    @property
    def sem(self) -> float:
        """Standard error of the mean simulation score."""
        return (self.simulation.std() / len(self.simulation) ** 0.5).item()


def interpretability(model, reader: UnitReader, stats: UnitStatistics,
                     tokens: Int[Tensor, "batch pos"], explainer: Explainer, n_units: int = 24,
                     min_density: float = 0.002, n_top: int = 12, seed: int = 0
                     ) -> Interpretability:
    """Explain and score ``n_units`` units drawn (seeded) among those firing on at least
    ``min_density`` of tokens.

    Raises:
        TypeError: arguments of the wrong kind (e.g. ``reader`` and ``stats`` swapped).
        ValueError: fewer than 2 units fire often enough, or ``n_units`` below 1.
    """
    check_type("reader", reader, UnitReader, "e.g. NeuronReader(model, layer)")
    check_type("stats", stats, UnitStatistics, "from collect_statistics(model, reader, tokens)")
    tokens = check_tokens(model, tokens)
    if not callable(getattr(explainer, "explain", None)):
        raise TypeError(f"explainer must have an explain(contexts) method (e.g. "
                        f"TokenExplainer()), got {type(explainer).__name__}")
    check_positive("n_units", n_units, integer=True)
    check_positive("n_top", n_top, integer=True)
    alive = (stats.density > min_density).nonzero().flatten()
    if len(alive) < 2:
        raise ValueError(f"only {len(alive)} units fire on more than {min_density:.1%} of tokens; "
                         f"lower min_density or collect more text")
    gen = torch.Generator().manual_seed(seed)
    units = alive[torch.randperm(len(alive), generator=gen)[:n_units]].tolist()
    explanations, tests, scores = [], [], []
    for unit in units:
        dash = build_dashboard(model, reader, stats, tokens, unit, n_top=n_top)
        train, test = dash.top_contexts[0::2], dash.top_contexts[1::2]
        bands = [c for contexts in dash.quantile_contexts.values() for c in contexts]
        quiet = random_contexts(model, reader, stats, tokens, unit, n=n_top, seed=unit)
        explanation = explainer.explain(train)
        explanations.append(explanation)
        tests.append(test + bands + quiet)
        scores.append(score_explanation(explanation, test + bands, quiet))
    shuffled = [simulation_score(e, tests[(i + 1) % len(tests)]) for i, e in enumerate(explanations)]
    return Interpretability(units, [e.text for e in explanations],
                            torch.tensor([s["simulation"] for s in scores]),
                            torch.tensor([s["detection"] for s in scores]), torch.tensor(shuffled))
