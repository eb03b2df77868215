"""Feature dashboards: what makes a unit fire, and what does it do when it fires?

A *unit* is anything with one activation per token: an MLP neuron, an SAE latent, or
the projection of the residual stream on a direction. A dashboard (in the style of
Anthropic's and Neuronpedia's) puts side by side:

* the **top-activating contexts**, each token shaded by the unit's activation;
* contexts sampled from several **activation quantiles** (the top alone flatters a unit:
  what does it do when it fires weakly?);
* the **activation histogram** and **density** (how often it fires at all);
* the **logit effects**: the unit's output direction read through the unembedding (the
  tokens it pushes up and down directly);
* a **steering test**: add the output direction to the residual stream and watch the
  next-token distribution move.

Statistics are gathered in one streaming pass over a token dataset
(:func:`collect_statistics`): for every unit at once it keeps the top ``n_top`` activations
and their positions, an exact firing count, and a fixed-size uniform sample of
positions (for histograms and quantiles), so memory does not grow with the dataset.
Contexts are re-read from the model only for the few rows a dashboard shows.

Views: :func:`render_html` gives a self-contained static HTML page (no scripts, no
CDN; it renders offline and in a committed notebook), :class:`DashboardWidget` an
ipywidgets view whose panels follow a slider or a text box.
"""

from .build import (Dashboard, HighlightedContext, build_dashboard, logit_effects,
                    random_contexts, steering_effect, unit_contexts)
from .evaluate import Interpretability, interpretability
from .render import DashboardWidget, StaticHTML, export_html, render_html
from .statistics import UnitStatistics, collect_statistics
from .units import DirectionReader, NeuronReader, SAELatentReader, UnitReader

__all__ = [
    "UnitReader", "NeuronReader", "SAELatentReader", "DirectionReader",
    "UnitStatistics", "collect_statistics",
    "Dashboard", "HighlightedContext", "build_dashboard", "unit_contexts", "random_contexts",
    "logit_effects", "steering_effect",
    "render_html", "export_html", "StaticHTML", "DashboardWidget",
    "Interpretability", "interpretability",
]
