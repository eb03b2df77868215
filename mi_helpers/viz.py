"""Visualisations that render offline and keep committed notebooks small.

circuitsvis draws interactive attention patterns with JavaScript. By default it
fetches that JavaScript from a CDN, and after a failed one-second internet probe *on
every call* inlines its whole 1.3 MB bundle into each output. Here the choice is made
once per kernel (:func:`embed_mode`):

* ``"cdn"`` (online, e.g. Colab): each output imports the bundle from the CDN;
* ``"inline"`` (offline): the first output of the kernel carries the bundle once,
  gzip-compressed (about a third of the size), and later outputs reuse it.

Set ``MI_VIZ=cdn`` or ``MI_VIZ=inline`` to choose by hand. Element ids are numbered,
not random, so re-running a notebook gives the same outputs. For a picture that shows
everywhere (GitHub, PDF), use the matplotlib :func:`plot_attention`.
"""

from __future__ import annotations

import base64
import gzip
import itertools
import json
import os
import socket
from functools import lru_cache
from pathlib import Path

import circuitsvis
import matplotlib.pyplot as plt
import torch
from jaxtyping import Float
from torch import Tensor

__all__ = ["attention_heads", "plot_attention", "heatmap", "plot_circuit", "embed_mode",
           "CircuitsVisHTML"]

CDN_HOST = "unpkg.com"
_ids = itertools.count()
_bundle_sent = False


@lru_cache(maxsize=1)
def embed_mode() -> str:
    """``"cdn"`` or ``"inline"``: from ``MI_VIZ`` if set, else one reachability probe."""
    chosen = os.environ.get("MI_VIZ", "").strip().lower()
    if chosen in ("cdn", "inline"):
        return chosen
    if chosen:
        raise ValueError(f"MI_VIZ must be 'cdn' or 'inline', not {chosen!r}")
    try:
        socket.create_connection((CDN_HOST, 443), timeout=1).close()
        return "cdn"
    except OSError:
        return "inline"


@lru_cache(maxsize=1)
def _bundle_gzip_b64() -> str:
    """circuitsvis' browser bundle, gzip-compressed (deterministically) and base64."""
    path = Path(circuitsvis.__file__).parent / "dist" / "cdn" / "iife.js"
    return base64.b64encode(gzip.compress(path.read_bytes(), compresslevel=9, mtime=0)).decode()


def _loader_script() -> str:
    """JavaScript that unzips the bundle once and publishes ``window.cvReady``."""
    return (
        "<script>if(!window.cvReady){window.cvReady=(async()=>{"
        f"const b=Uint8Array.from(atob('{_bundle_gzip_b64()}'),c=>c.charCodeAt(0));"
        "const s=new Blob([b]).stream().pipeThrough(new DecompressionStream('gzip'));"
        "const code=await new Response(s).text();"
        "(0,eval)(code+';window.CircuitsVis=CircuitsVis;');})();}</script>"
    )


class CircuitsVisHTML:
    """A circuitsvis element that Jupyter shows through ``_repr_html_``."""

    def __init__(self, element: str, props: dict):
        self.element, self.props = element, props
        self.html = self._build()

    def _build(self) -> str:
        global _bundle_sent
        div = f"mi-viz-{next(_ids)}"
        props = json.dumps(self.props, separators=(",", ":"))
        head = f'<div id="{div}" style="margin: 15px 0;"></div>'
        if embed_mode() == "cdn":
            url = f"https://{CDN_HOST}/circuitsvis@{circuitsvis.__version__}/dist/cdn/esm.js"
            return (head + f'<script type="module">import {{render, {self.element}}} from '
                    f'"{url}";render("{div}",{self.element},{props});</script>')
        loader = "" if _bundle_sent else _loader_script()
        _bundle_sent = True
        return (head + loader + "<script>window.cvReady.then(()=>CircuitsVis.render("
                f'"{div}",CircuitsVis.{self.element},{props}));</script>')

    def _repr_html_(self) -> str:
        return self.html


def _rounded(x: Tensor, decimals: int = 3) -> list:
    """A tensor as nested lists rounded for a small, reproducible output."""
    return torch.round(x.detach().float().cpu(), decimals=decimals).tolist()


def attention_heads(pattern: Float[Tensor, "head dest_pos src_pos"], tokens: list[str],
                    head_names: list[str] | None = None) -> CircuitsVisHTML:
    """Interactive attention patterns of several heads (circuitsvis ``AttentionHeads``).

    Args:
        pattern: attention weights of one prompt, ``[head, dest_pos, src_pos]``.
        tokens: the prompt's tokens as strings, one per position.
        head_names: a label per head (default ``H0``, ``H1``, …).
    """
    if pattern.ndim != 3 or pattern.shape[-1] != len(tokens):
        raise ValueError(f"pattern must be [head, dest_pos, src_pos] with src_pos = "
                         f"{len(tokens)} tokens, got shape {tuple(pattern.shape)}")
    names = head_names or [f"H{h}" for h in range(pattern.shape[0])]
    return CircuitsVisHTML("AttentionHeads", {"attention": _rounded(pattern),
                                              "tokens": tokens, "attentionHeadNames": names})


def plot_attention(pattern: Float[Tensor, "head dest_pos src_pos"], tokens: list[str],
                   head_names: list[str] | None = None, ncols: int = 4):
    """A static grid of attention heatmaps (rows: destination, columns: source)."""
    n_heads = pattern.shape[0]
    nrows = (n_heads + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 2.6 * nrows), squeeze=False)
    names = head_names or [f"H{h}" for h in range(n_heads)]
    for ax, h in zip(axes.flat, range(n_heads)):
        ax.imshow(pattern[h].detach().cpu(), cmap="Blues", vmin=0, vmax=1)
        ax.set_title(names[h], fontsize=9)
        ticks = range(len(tokens))
        ax.set_xticks(ticks, tokens, rotation=90, fontsize=6)
        ax.set_yticks(ticks, tokens, fontsize=6)
    for ax in list(axes.flat)[n_heads:]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def heatmap(values: Float[Tensor, "row col"], title: str = "", *, xlabel: str = "",
            ylabel: str = "", xticklabels: list[str] | None = None,
            yticklabels: list[str] | None = None, center: float | None = 0.0,
            cmap: str = "RdBu", colorbar_label: str = "", ax=None):
    """A labelled matplotlib heatmap; with ``center`` the colour scale is symmetric about it.

    NaN cells (e.g. heads that cannot be senders) are left blank. Returns the axes.
    """
    values = torch.as_tensor(values).detach().float().cpu()
    if ax is None:
        width = max(4.0, min(14.0, 0.45 * values.shape[1] + 2.5))
        _, ax = plt.subplots(figsize=(width, max(2.2, min(8.0, 0.35 * values.shape[0] + 1.5))))
    finite = values[values.isfinite()]
    limits = {}
    if center is not None and len(finite):
        bound = (finite - center).abs().max().item() or 1.0
        limits = {"vmin": center - bound, "vmax": center + bound}
    image = ax.imshow(values, cmap=cmap, aspect="auto", **limits)
    if xticklabels is not None:
        ax.set_xticks(range(len(xticklabels)), xticklabels, rotation=60, fontsize=8)
    if yticklabels is not None:
        ax.set_yticks(range(len(yticklabels)), yticklabels, fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.figure.colorbar(image, ax=ax, label=colorbar_label)
    return ax


CHANNEL_COLOURS = {"q": "tab:blue", "k": "tab:green", "v": "tab:red", "in": "0.35"}


def plot_circuit(circuit, effects: Float[Tensor, "edge"] | None = None, title: str = "", ax=None):
    """Draw a :class:`~mi_helpers.core.graph.Circuit` with matplotlib, layer by layer.

    The embeddings sit at the bottom and the logits at the top; each layer's heads form
    a row with the MLP just above them. Edges are coloured by the receiver's input
    (query blue, key green, value red, MLP or logits grey) and, with ``effects`` (one per
    edge of the graph, e.g. :func:`~mi_helpers.circuits.edge_effects`), drawn with a
    width proportional to ``|effect|``. Nodes outside the circuit are faint. Returns
    the axes.
    """
    graph = circuit.graph
    n_heads = graph.n_heads
    place = {}
    for node in graph.nodes:
        if node.kind == "head":
            place[node] = (node.head - (n_heads - 1) / 2, 2 * node.layer + 1)
        elif node.kind == "mlp":
            place[node] = (0.0, 2 * node.layer + 2)  # between its layer's heads and the next
        else:
            place[node] = (0.0, 0 if node.kind == "embed" else 2 * graph.n_layers + 1)
    if ax is None:
        _, ax = plt.subplots(figsize=(max(5.0, 0.8 * n_heads + 2), 1.1 * graph.n_layers + 2.5))
    widest = 1.0
    if effects is not None:
        effects = torch.as_tensor(effects).detach().abs().float().cpu()
        if circuit.edges:
            widest = effects[[graph.edge_index[e] for e in circuit.edges]].max().item() or 1.0
    for edge in sorted(circuit.edges, key=lambda e: graph.edge_index[e]):
        (x0, y0), (x1, y1) = place[edge.sender], place[edge.receiver]
        width = 1.2 if effects is None else 0.3 + 3.5 * effects[graph.edge_index[edge]] / widest
        ax.annotate("", (x1, y1 - 0.18), (x0, y0 + 0.18), arrowprops={
            "arrowstyle": "-|>", "color": CHANNEL_COLOURS[edge.channel], "lw": float(width),
            "alpha": 0.7, "shrinkA": 0, "shrinkB": 0, "connectionstyle": "arc3,rad=0.08"})
    kept = set(circuit.nodes)
    for node, (x, y) in place.items():
        ax.text(x, y, node.name, ha="center", va="center", fontsize=8,
                alpha=1.0 if node in kept else 0.25,
                bbox={"boxstyle": "round,pad=0.25", "fc": "white",
                      "ec": "black" if node in kept else "0.8"})
    handles = [plt.Line2D([], [], color=c, label=name) for name, c in CHANNEL_COLOURS.items()]
    ax.legend(handles=handles, title="input", loc="upper left", fontsize=7, title_fontsize=7)
    ax.set_xlim(-(n_heads + 1) / 2, (n_heads + 1) / 2)
    ax.set_ylim(-0.8, 2 * graph.n_layers + 1.8)
    ax.axis("off")
    ax.set_title(title or f"{len(circuit)} of {len(graph.edges)} edges")
    return ax
