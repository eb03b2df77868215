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
(:func:`collect_statistics`): for every unit at once it keeps the top ``k`` activations
and their positions, an exact firing count, and a fixed-size uniform sample of
positions (for histograms and quantiles), so memory does not grow with the dataset.
Contexts are re-read from the model only for the few rows a dashboard shows.

Views: :func:`render_html` gives a self-contained static HTML page (no scripts, no
CDN; it renders offline and in a committed notebook), :class:`DashboardWidget` an
ipywidgets view whose panels follow a slider or a text box.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from .autointerp import ActivationContext
from .cache import check_hook_names, run_with_hooks_cached

BOS_EXCLUDED = 1  # statistics skip position 0 (BOS), whose activations are outliers


# ---- what a unit is ---------------------------------------------------------------------

class UnitReader:
    """Reads a family of units from one hook: ``read(act) -> [batch, pos, unit]``.

    Attributes:
        kind: ``"neuron"``, ``"sae latent"`` or ``"direction"``.
        hook: the hook whose activation the units read.
        n_units: how many units.
    """

    kind = "unit"
    hook: str
    n_units: int

    def read(self, act: Float[Tensor, "batch pos d"]) -> Float[Tensor, "batch pos unit"]:
        raise NotImplementedError

    def output_directions(self, model) -> Float[Tensor, "unit d_model"]:
        """What each unit adds to the residual stream per unit of activation."""
        raise NotImplementedError

    @property
    def write_hook(self) -> str:
        """The residual-stream hook where a steering vector for these units is added."""
        raise NotImplementedError

    def check_unit(self, unit: int) -> int:
        """``unit`` as an index, or ``IndexError`` naming the valid range."""
        if not -self.n_units <= int(unit) < self.n_units:
            raise IndexError(f"{self.kind} {int(unit)} is out of range: there are {self.n_units} "
                             f"({self.hook}), so use 0..{self.n_units - 1}")
        return int(unit) % self.n_units

    def name(self, unit: int) -> str:
        return f"{self.kind} {unit} ({self.hook})"


class NeuronReader(UnitReader):
    """The MLP neurons of one layer (``blocks.L.mlp.hook_post``)."""

    kind = "neuron"

    def __init__(self, model, layer: int):
        if not 0 <= layer < model.cfg.n_layers:
            raise IndexError(f"layer {layer} is out of range: the model has {model.cfg.n_layers}")
        self.layer, self.hook, self.n_units = layer, f"blocks.{layer}.mlp.hook_post", model.cfg.d_mlp

    def read(self, act):
        return act

    def output_directions(self, model):
        return model.W_out[self.layer].detach()  # d_mlp d_model

    @property
    def write_hook(self):
        return f"blocks.{self.layer}.hook_resid_post"

    def name(self, unit):
        return f"neuron L{self.layer}.{unit}"


class SAELatentReader(UnitReader):
    """The latents of a sparse autoencoder (reads ``sae.cfg.hook_name``)."""

    kind = "sae latent"

    def __init__(self, sae, label: str = "SAE"):
        self.sae, self.label = sae, label
        self.hook, self.n_units = sae.cfg.hook_name, sae.cfg.d_sae

    def read(self, act):
        with torch.no_grad():
            return self.sae.encode(act.to(self.sae.W_enc.dtype))

    def output_directions(self, model):
        return self.sae.W_dec.detach()  # d_sae d_in

    @property
    def write_hook(self):
        return self.hook

    def name(self, unit):
        return f"{self.label} latent {unit}"


class DirectionReader(UnitReader):
    """Projections of a residual-stream hook on given directions (e.g. probe weights)."""

    kind = "direction"

    def __init__(self, hook: str, directions: Float[Tensor, "unit d_model"],
                 names: Sequence[str] | None = None):
        self.hook, self.directions = hook, directions.detach().float()
        self.n_units = len(directions)
        self.names = list(names) if names is not None else None

    def read(self, act):
        return act.float() @ self.directions.to(act.device).T

    def output_directions(self, model):
        return self.directions

    @property
    def write_hook(self):
        return self.hook

    def name(self, unit):
        return self.names[unit] if self.names else f"direction {unit}"


# ---- streaming statistics ----------------------------------------------------------------

@dataclass
class UnitStatistics:
    """Per-unit statistics over a dataset, from one streaming pass.

    Attributes:
        top_values: ``[unit, k]`` the largest activations, descending.
        top_where: ``[unit, k, 2]`` their ``(row, pos)`` in the dataset.
        fire_count: ``[unit]`` tokens where the unit was > 0.
        sample_values: ``[n_sample, unit]`` activations at uniformly sampled positions.
        sample_where: ``[n_sample, 2]`` those positions' ``(row, pos)``.
        n_tokens: tokens seen (BOS excluded).
    """

    top_values: Tensor
    top_where: Tensor
    fire_count: Tensor
    sample_values: Tensor
    sample_where: Tensor
    n_tokens: int

    @property
    def density(self) -> Float[Tensor, "unit"]:
        """Fraction of tokens on which each unit fires (> 0)."""
        return self.fire_count.float() / max(self.n_tokens, 1)


def collect_statistics(model, reader: UnitReader, tokens: Int[Tensor, "batch pos"], k: int = 20,
                       n_sample: int = 4096, batch_size: int = 32, seed: int = 0,
                       progress: bool = True) -> UnitStatistics:
    """Stream ``tokens`` through the model once and keep each unit's statistics.

    Memory is ``O(units x (k + n_sample))``, whatever the dataset's size. The position
    sample is a bottom-``n_sample`` sketch over random keys: a uniform sample without
    replacement, the same positions for every unit.

    Raises:
        ValueError: an empty dataset, or one with only BOS tokens.
        KeyError: the reader's hook is not a hook of this model.
    """
    if tokens.ndim != 2 or tokens.shape[0] == 0 or tokens.shape[1] <= BOS_EXCLUDED:
        raise ValueError(f"the dataset is empty: tokens of shape {tuple(tokens.shape)} leave no "
                         f"position after BOS; pass [batch, pos] tokens with pos > 1")
    (hook,) = check_hook_names(model, [reader.hook])
    gen = torch.Generator().manual_seed(seed)
    units = reader.n_units
    top_values = torch.full((units, 0), -math.inf)
    top_where = torch.zeros((units, 0, 2), dtype=torch.long)
    fire_count = torch.zeros(units, dtype=torch.long)
    sample_keys, sample_values = torch.empty(0), torch.empty(0, units)
    sample_where = torch.zeros((0, 2), dtype=torch.long)
    n_tokens = 0
    starts = range(0, len(tokens), batch_size)
    for start in tqdm(starts, desc="collecting", disable=not progress):
        rows = tokens[start:start + batch_size].to(model.cfg.device)
        _, cache = run_with_hooks_cached(model, rows, [hook])
        acts = reader.read(cache[hook])[:, BOS_EXCLUDED:].float().cpu()  # batch pos unit
        batch, n_pos = acts.shape[:2]
        flat = acts.reshape(-1, units)  # n unit
        where = torch.stack(torch.meshgrid(torch.arange(start, start + batch),
                                           torch.arange(BOS_EXCLUDED, BOS_EXCLUDED + n_pos),
                                           indexing="ij"), -1).reshape(-1, 2)
        n_tokens += len(flat)
        fire_count += (flat > 0).sum(0)
        batch_top = flat.topk(min(k, len(flat)), dim=0)  # k unit
        merged_values = torch.cat([top_values, batch_top.values.T], dim=1)
        merged_where = torch.cat([top_where, where[batch_top.indices.T]], dim=1)
        keep = merged_values.topk(min(k, merged_values.shape[1]), dim=1)
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
    return UnitStatistics(top_values, top_where, fire_count, sample_values, sample_where, n_tokens)


# ---- one unit's dashboard -----------------------------------------------------------------

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
                  where: Int[Tensor, "n 2"], unit: int, before: int = 10, after: int = 3
                  ) -> list[ActivationContext]:
    """The unit's per-token activations around each ``(row, pos)``, as contexts.

    The highlighted token is ``where``'s; the context runs ``before`` tokens back and
    ``after`` forward (within the row).
    """
    if len(where) == 0:
        return []
    rows = sorted({int(r) for r, _ in where.tolist()})
    _, cache = run_with_hooks_cached(model, tokens[rows].to(model.cfg.device), [reader.hook])
    acts = reader.read(cache[reader.hook])[..., unit].float().cpu()  # row pos
    out = []
    for row, pos in where.tolist():
        r = rows.index(row)
        lo, hi = max(BOS_EXCLUDED, pos - before), min(tokens.shape[1], pos + after + 1)
        strs = model.to_str_tokens(tokens[row, lo:hi])
        out.append(HighlightedContext(tokens=list(strs), activations=acts[r, lo:hi].tolist(),
                                      highlight=pos - lo))
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
    return unit_contexts(model, reader, tokens, stats.sample_where[pick], unit)


def logit_effects(model, reader: UnitReader, unit: int, k: int = 10
                  ) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """The ``k`` tokens whose logits the unit's output direction raises and lowers most.

    The direction is read through ``W_U`` directly (the final layer norm's scale is
    left out, so compare values within a unit rather than across models).
    """
    direction = reader.output_directions(model)[unit].to(model.W_U.device)
    effects = (direction @ model.W_U.detach()).float().cpu()  # d_vocab
    up, down = effects.topk(k).indices, (-effects).topk(k).indices
    return (list(zip(model.to_str_tokens(up), effects[up].tolist())),
            list(zip(model.to_str_tokens(down), effects[down].tolist())))


def steering_effect(model, reader: UnitReader, unit: int, prompt: str | Int[Tensor, "pos"],
                    scale: float, k: int = 8) -> dict:
    """Add ``scale`` x the unit's output direction at every position; compare the next token.

    Returns:
        ``{"prompt", "scale", "kl", "before": [(token, prob)], "after": [(token, prob)],
        "most_raised": [(token, prob change)]}`` for the prompt's last position.
    """
    tokens = model.to_tokens(prompt) if isinstance(prompt, str) else prompt.reshape(1, -1)
    direction = reader.output_directions(model)[unit].to(model.cfg.device)
    (hook,) = check_hook_names(model, [reader.write_hook])

    def add(act, hook):
        return act + scale * direction.to(act.dtype)

    with torch.no_grad():
        before = model(tokens)[0, -1].float().softmax(-1).cpu()
        after = model.run_with_hooks(tokens, fwd_hooks=[(hook, add)])[0, -1].float().softmax(-1).cpu()
    def top(p):  # the k largest entries of p, as (token, value), decoding only those
        values = p.topk(k)
        return list(zip(model.to_str_tokens(values.indices), values.values.tolist()))

    kl = (before * (before.clamp_min(1e-12).log() - after.clamp_min(1e-12).log())).sum().item()
    text = prompt if isinstance(prompt, str) else "".join(model.to_str_tokens(tokens[0]))
    return {"prompt": text, "scale": scale, "kl": kl, "before": top(before), "after": top(after),
            "most_raised": top(after - before)}


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
    top_where = stats.top_where[unit, :top_n][stats.top_values[unit, :top_n] > 0]
    top = unit_contexts(model, reader, tokens, top_where, unit)
    values = stats.sample_values[:, unit]
    firing = (values > 0).nonzero().flatten()
    quantiles: dict[str, list[ActivationContext]] = {}
    notes = []
    if len(firing) >= 4:
        gen = torch.Generator().manual_seed(seed)
        ordered = firing[values[firing].argsort()]
        for q, part in enumerate(ordered.tensor_split(4)):
            pick = part[torch.randperm(len(part), generator=gen)[:n_per_quantile]]
            label = f"{25 * q}-{25 * (q + 1)}% of firing activations"
            quantiles[label] = unit_contexts(model, reader, tokens, stats.sample_where[pick], unit)
    else:
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


# ---- static HTML ---------------------------------------------------------------------------

_CSS = """
.mi-dash{font-family:system-ui,sans-serif;font-size:13px;max-width:980px;color:#222}
.mi-dash h3{margin:4px 0 6px 0}.mi-dash h4{margin:10px 0 4px 0;font-size:13px}
.mi-dash .row{display:flex;gap:18px;flex-wrap:wrap}.mi-dash .col{flex:1;min-width:280px}
.mi-dash .ctx{font-family:monospace;white-space:pre-wrap;margin:2px 0;line-height:1.7}
.mi-dash .tok{padding:1px 0;border-radius:2px}.mi-dash .hl{outline:1px solid #c00}
.mi-dash .act{color:#888;font-size:11px;margin-right:6px}
.mi-dash table{border-collapse:collapse}.mi-dash td{padding:1px 6px;font-family:monospace}
.mi-dash .pos{color:#1a5fb4}.mi-dash .neg{color:#c01c28}.mi-dash .note{color:#a60}
"""


def _token_html(context: ActivationContext, scale: float) -> str:
    spans = []
    highlight = getattr(context, "highlight", None)
    for i, (tok, act) in enumerate(zip(context.tokens, context.activations)):
        alpha = 0.0 if scale <= 0 else max(0.0, min(1.0, act / scale))
        title = html.escape(f"{tok!r}: {act:.3f}", quote=True)
        cls = "tok hl" if i == highlight else "tok"
        spans.append(f'<span class="{cls}" style="background:rgba(255,140,0,{alpha:.2f})" '
                     f'title="{title}">{html.escape(tok)}</span>')
    return "".join(spans)


def _contexts_html(contexts: list[ActivationContext], scale: float) -> str:
    return "".join(f'<div class="ctx"><span class="act">{c.max_activation:6.2f}</span>'
                   f"{_token_html(c, scale)}</div>" for c in contexts) or '<div class="note">none</div>'


def _histogram_svg(values: Tensor, width: int = 300, height: int = 110, bins: int = 30) -> str:
    firing = values[values > 0]
    if len(firing) == 0:
        return '<div class="note">no positive activations in the sample</div>'
    counts = torch.histc(firing, bins=bins, min=0.0, max=firing.max().item())
    top = counts.max().item()
    bar_w = width / bins
    bars = "".join(
        f'<rect x="{i * bar_w:.1f}" y="{height - 15 - (c / top) * (height - 20):.1f}" '
        f'width="{bar_w - 1:.1f}" height="{(c / top) * (height - 20):.1f}" fill="#e66100"/>'
        for i, c in enumerate(counts.tolist()))
    return (f'<svg width="{width}" height="{height}" role="img" aria-label="activation histogram">'
            f"{bars}<text x='0' y='{height - 2}' font-size='10'>0</text>"
            f"<text x='{width - 40}' y='{height - 2}' font-size='10'>{firing.max().item():.2f}</text>"
            f"</svg>")


def _logit_table(pairs: list[tuple[str, float]], cls: str) -> str:
    return "<table>" + "".join(f'<tr><td>{html.escape(repr(t))}</td><td class="{cls}">{v:+.3f}</td></tr>'
                               for t, v in pairs) + "</table>"


def render_html(dash: Dashboard, standalone: bool = False) -> str:
    """The dashboard as self-contained HTML: inline CSS and SVG, no scripts, no CDN.

    Args:
        standalone: wrap it in a complete ``<html>`` document (for :func:`export_html`).
    """
    scale = max([c.max_activation for c in dash.top_contexts] or [1.0])
    quantiles = "".join(f"<h4>{html.escape(label)}</h4>{_contexts_html(ctxs, scale)}"
                        for label, ctxs in dash.quantile_contexts.items())
    steering = ""
    if dash.steering:
        s = dash.steering
        steering = (f"<h4>Steering: add {s['scale']:.2f} x direction; prompt "
                    f"{html.escape(repr(s['prompt']))}</h4>"
                    f"<div class='row'><div class='col'>before{_logit_table(s['before'], 'pos')}</div>"
                    f"<div class='col'>after (KL {s['kl']:.3f}){_logit_table(s['after'], 'pos')}</div>"
                    f"<div class='col'>most raised{_logit_table(s['most_raised'], 'pos')}</div></div>")
    notes = "".join(f'<div class="note">{html.escape(n)}</div>' for n in dash.notes)
    body = (f'<div class="mi-dash"><style>{_CSS}</style>'
            f"<h3>{html.escape(dash.title)}</h3>"
            f"<div>fires on {dash.density:.2%} of tokens</div>{notes}"
            f"<div class='row'><div class='col'><h4>Activation histogram (sampled positions where it fires)</h4>"
            f"{_histogram_svg(dash.sample_values)}</div>"
            f"<div class='col'><h4>Logits raised</h4>{_logit_table(dash.positive_logits, 'pos')}</div>"
            f"<div class='col'><h4>Logits lowered</h4>{_logit_table(dash.negative_logits, 'neg')}</div></div>"
            f"<h4>Top activations</h4>{_contexts_html(dash.top_contexts, scale)}"
            f"{quantiles}{steering}</div>")
    if standalone:
        return (f"<!DOCTYPE html><html><head><meta charset='utf-8'>"
                f"<title>{html.escape(dash.title)}</title></head><body>{body}</body></html>")
    return body


def export_html(dash: Dashboard, path) -> int:
    """Write :func:`render_html` as a standalone page; returns its size in bytes."""
    text = render_html(dash, standalone=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return len(text.encode("utf-8"))


class StaticHTML:
    """Display pre-rendered HTML in a notebook (kept in the saved outputs)."""

    def __init__(self, text: str):
        self.text = text

    def _repr_html_(self) -> str:
        return self.text


# ---- the interactive view -----------------------------------------------------------------

class DashboardWidget:
    """An ipywidgets dashboard: a slider and a text box pick the unit; the panel follows.

    Args:
        model, reader, stats, tokens: as for :func:`build_dashboard`.
        **dashboard_kwargs: passed on to :func:`build_dashboard` (e.g. ``steering_prompt``).

    ``widget.select(unit)`` changes the unit from code (as the slider does); the
    rendered panel is ``widget.panel.value``; show it with ``display(widget.view)``.
    """

    def __init__(self, model, reader: UnitReader, stats: UnitStatistics,
                 tokens: Int[Tensor, "batch pos"], start: int = 0, **dashboard_kwargs):
        import ipywidgets as widgets

        self.model, self.reader, self.stats, self.tokens = model, reader, stats, tokens
        self.kwargs = dashboard_kwargs
        self.slider = widgets.IntSlider(value=reader.check_unit(start), min=0,
                                        max=reader.n_units - 1, description=reader.kind)
        self.box = widgets.Text(value=str(self.slider.value), description="go to",
                                continuous_update=False)
        self.message = widgets.HTML("")
        self.panel = widgets.HTML("")
        self.view = widgets.VBox([widgets.HBox([self.slider, self.box]), self.message, self.panel])
        self.slider.observe(self._on_slider, names="value")
        self.box.observe(self._on_box, names="value")
        self._render(self.slider.value)

    def select(self, unit: int) -> None:
        """Show ``unit`` (raises ``IndexError`` when out of range)."""
        self.slider.value = self.reader.check_unit(unit)

    def _on_slider(self, change) -> None:
        self.box.value = str(change["new"])
        self._render(change["new"])

    def _on_box(self, change) -> None:
        try:
            self.select(int(change["new"]))
            self.message.value = ""
        except (ValueError, IndexError) as err:
            self.message.value = f"<span style='color:#c01c28'>{html.escape(str(err))}</span>"

    def _render(self, unit: int) -> None:
        dash = build_dashboard(self.model, self.reader, self.stats, self.tokens, unit, **self.kwargs)
        self.panel.value = render_html(dash)
