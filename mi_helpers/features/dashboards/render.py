"""Dashboards as self-contained HTML (inline CSS and SVG, no scripts, no CDN) and as an
ipywidgets view whose panel follows a slider or a text box."""

from __future__ import annotations

import html
import math
from pathlib import Path

import torch
from jaxtyping import Int
from torch import Tensor

from ...core.checks import check_tokens, check_type
from ..autointerp import ActivationContext
from .build import Dashboard, build_dashboard
from .statistics import UnitStatistics
from .units import UnitReader

__all__ = ["render_html", "export_html", "StaticHTML", "DashboardWidget"]


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
    texts = context.texts if context.texts is not None else context.tokens
    for i, (tok, text, act) in enumerate(zip(context.tokens, texts, context.activations)):
        alpha = 0.0 if scale <= 0 else max(0.0, min(1.0, act / scale))
        title = html.escape(f"{tok!r}: {act:.3f}", quote=True)
        cls = "tok hl" if i == highlight else "tok"
        spans.append(f'<span class="{cls}" style="background:rgba(255,140,0,{alpha:.2f})" '
                     f'title="{title}">{html.escape(text)}</span>')
    return "".join(spans)


def _contexts_html(contexts: list[ActivationContext], scale: float) -> str:
    return "".join(f'<div class="ctx"><span class="act">{c.max_activation:6.2f}</span>'
                   f'<span class="text">{_token_html(c, scale)}</span></div>'
                   for c in contexts) or '<div class="note">none</div>'


def _ticks(top: float, n: int = 4) -> list[float]:
    """About ``n`` round tick values from 0 to ``top`` (1, 2 or 5 times a power of ten)."""
    raw = top / n
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    return [i * step for i in range(int(top / step) + 1)]


def _histogram_svg(values: Tensor, width: int = 320, height: int = 150, bins: int = 30) -> str:
    """The histogram of the sampled positive activations, with labelled, ticked axes."""
    firing = values[values > 0]
    if len(firing) == 0:
        return '<div class="note">no positive activations in the sample</div>'
    left, bottom, top_pad = 40, 32, 8  # room for the count axis, the value axis, the top
    plot_w, plot_h = width - left - 8, height - bottom - top_pad
    peak = firing.max().item()
    counts = torch.histc(firing.float(), bins=bins, min=0.0, max=peak)
    most = counts.max().item()
    bar_w = plot_w / bins
    parts = [f'<rect x="{left + i * bar_w:.1f}" y="{top_pad + plot_h * (1 - c / most):.1f}" '
             f'width="{max(bar_w - 1, 0.5):.1f}" height="{plot_h * c / most:.1f}" fill="#e66100"/>'
             for i, c in enumerate(counts.tolist())]
    axis_y = top_pad + plot_h
    parts.append(f'<line x1="{left}" y1="{axis_y}" x2="{left + plot_w}" y2="{axis_y}" stroke="#444"/>'
                 f'<line x1="{left}" y1="{top_pad}" x2="{left}" y2="{axis_y}" stroke="#444"/>')
    for tick in _ticks(peak):
        x = left + plot_w * tick / peak
        parts.append(f'<line x1="{x:.1f}" y1="{axis_y}" x2="{x:.1f}" y2="{axis_y + 4}" stroke="#444"/>'
                     f'<text x="{x:.1f}" y="{axis_y + 15}" font-size="10" text-anchor="middle">'
                     f'{tick:g}</text>')
    for tick in _ticks(most, 3):
        y = axis_y - plot_h * tick / most
        parts.append(f'<text x="{left - 4}" y="{y + 3:.1f}" font-size="10" text-anchor="end">'
                     f'{tick:g}</text>')
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 3}" font-size="11" '
                 f'text-anchor="middle">activation value</text>'
                 f'<text x="11" y="{top_pad + plot_h / 2}" font-size="11" text-anchor="middle" '
                 f'transform="rotate(-90 11 {top_pad + plot_h / 2})">count</text>')
    return (f'<svg width="{width}" height="{height}" role="img" aria-label="activation '
            f'histogram">{"".join(parts)}</svg>')


def _density_note(dash: Dashboard) -> str:
    firing = int((dash.sample_values > 0).sum())
    return (f'<div class="note">{firing} of the {len(dash.sample_values)} uniformly sampled '
            f"positions fire (density {dash.density:.2%} over the whole dataset)</div>")


def _logit_table(pairs: list[tuple[str, float]], cls: str) -> str:
    return "<table>" + "".join(f'<tr><td>{html.escape(repr(t))}</td><td class="{cls}">{v:+.3f}</td></tr>'
                               for t, v in pairs) + "</table>"


def render_html(dash: Dashboard, standalone: bool = False) -> str:
    """The dashboard as self-contained HTML: inline CSS and SVG, no scripts, no CDN.

    Args:
        standalone: wrap it in a complete ``<html>`` document (for :func:`export_html`).
    """
    check_type("dash", dash, Dashboard, "build one with build_dashboard(model, reader, stats, "
               "tokens, unit)")
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
            f"<div class='row'><div class='col'><h4>Activation histogram</h4>"
            f"{_histogram_svg(dash.sample_values)}{_density_note(dash)}</div>"
            f"<div class='col'><h4>Logits raised</h4>{_logit_table(dash.positive_logits, 'pos')}</div>"
            f"<div class='col'><h4>Logits lowered</h4>{_logit_table(dash.negative_logits, 'neg')}</div></div>"
            f"<h4>Top activations</h4>{_contexts_html(dash.top_contexts, scale)}"
            f"{quantiles}{steering}</div>")
    if standalone:
        return (f"<!DOCTYPE html><html><head><meta charset='utf-8'>"
                f"<title>{html.escape(dash.title)}</title></head><body>{body}</body></html>")
    return body


def export_html(dash: Dashboard, path) -> int:
    """Write :func:`render_html` as a standalone page; returns its size in bytes.

    Raises:
        FileNotFoundError: the folder to write into does not exist.
    """
    check_type("dash", dash, Dashboard, "build one with build_dashboard(...)")
    if not Path(path).parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: the folder {Path(path).parent} does not "
                                f"exist; create it first")
    text = render_html(dash, standalone=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return len(text.encode("utf-8"))


class StaticHTML:
    """Display pre-rendered HTML in a notebook (kept in the saved outputs)."""

    def __init__(self, text: str):
        self.text = check_type("text", text, str, "render a dashboard first: "
                               "StaticHTML(render_html(dash))")

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
        check_type("reader", reader, UnitReader, "e.g. NeuronReader(model, layer)")
        check_type("stats", stats, UnitStatistics, "from collect_statistics(model, reader, tokens)")
        tokens = check_tokens(model, tokens)
        start = reader.check_unit(start)
        import ipywidgets as widgets

        self.model, self.reader, self.stats, self.tokens = model, reader, stats, tokens
        self.kwargs = dashboard_kwargs
        self.slider = widgets.IntSlider(value=start, min=0,
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
