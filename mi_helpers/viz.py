"""Visualisations that render offline and keep committed notebooks small.

circuitsvis draws interactive attention patterns with JavaScript. By default it
fetches that JavaScript from a CDN, and after a failed one-second internet probe *on
every call* inlines its whole 1.3 MB bundle into each output. Here the choice is made
once per kernel (:func:`embed_mode`):

* ``"cdn"`` (online, e.g. Colab): each output imports the bundle from the CDN;
* ``"inline"`` (offline): the first output of the kernel carries the bundle once,
  gzip-compressed (about a third of the size), and later outputs reuse it.

Set ``MI_VIZ=cdn`` or ``MI_VIZ=inline`` to choose by hand; the committed notebooks are
written in CDN mode (``python -m mi_helpers run --write-back`` sets it), so they stay small,
and an offline run is interactive. Element ids are numbered, not random, so re-running a
notebook gives the same outputs. For a picture that shows
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

from .core.checks import check_circuit

__all__ = ["attention_heads", "plot_attention", "heatmap", "plot_circuit", "embed_mode",
           "CircuitsVisHTML"]

CDN_HOST = "unpkg.com"
TRANSPORT = 'data-mi-viz="transport"'  # marks the scripts that load and render the JavaScript
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
        f"<script {TRANSPORT}>if(!window.cvReady){{window.cvReady=(async()=>{{"
        f"const b=Uint8Array.from(atob('{_bundle_gzip_b64()}'),c=>c.charCodeAt(0));"
        "const s=new Blob([b]).stream().pipeThrough(new DecompressionStream('gzip'));"
        "const code=await new Response(s).text();"
        "(0,eval)(code+';window.CircuitsVis=CircuitsVis;');})();}</script>"
    )


class CircuitsVisHTML:
    """A circuitsvis element that Jupyter shows through ``_repr_html_``.

    The output is the element's ``<div>``, its props as a JSON ``<script>``, and *transport*
    scripts (marked ``data-mi-viz="transport"``) that fetch or inline the JavaScript and
    render. Only the transport differs between the CDN and the inline mode, and the test
    settings (``tests/nbval_sanitize.cfg``) remove it, so a notebook committed in CDN mode
    (light) compares equal to one run offline (inline).
    """

    def __init__(self, element: str, props: dict):
        self.element, self.props = element, props
        self.html = self._build()

    def _build(self) -> str:
        global _bundle_sent
        div = f"mi-viz-{next(_ids)}"
        props = json.dumps(self.props, separators=(",", ":")).replace("</", "<\\/")
        head = (f'<div id="{div}" style="margin: 15px 0;"></div>'
                f'<script type="application/json" id="{div}-props">{props}</script>')
        read = f'JSON.parse(document.getElementById("{div}-props").textContent)'
        if embed_mode() == "cdn":
            url = f"https://{CDN_HOST}/circuitsvis@{circuitsvis.__version__}/dist/cdn/esm.js"
            return (head + f'<script type="module" {TRANSPORT}>import {{render, {self.element}}} '
                    f'from "{url}";render("{div}",{self.element},{read});</script>')
        loader = "" if _bundle_sent else _loader_script()
        _bundle_sent = True
        return (head + loader + f"<script {TRANSPORT}>window.cvReady.then(()=>CircuitsVis.render("
                f'"{div}",CircuitsVis.{self.element},{read}));</script>')

    def _repr_html_(self) -> str:
        return self.html


def _rounded(x: Tensor, decimals: int = 3) -> list:
    """A tensor as nested lists rounded for a small, reproducible output."""
    return torch.round(x.detach().float().cpu(), decimals=decimals).tolist()


def _check_pattern(pattern: Tensor, tokens: list[str], head_names: list[str] | None
                   ) -> list[str]:
    """Check one prompt's ``[head, dest_pos, src_pos]`` pattern and its labels; the head names."""
    if not isinstance(tokens, (list, tuple)) or not all(isinstance(t, str) for t in tokens):
        raise TypeError(f"tokens must be a list of token strings (e.g. model.to_str_tokens("
                        f"prompt)), got {type(tokens).__name__}")
    if pattern.ndim != 3 or pattern.shape[-1] != len(tokens) or pattern.shape[1] != len(tokens):
        raise ValueError(f"pattern must be [head, dest_pos, src_pos] with dest_pos = src_pos = "
                         f"{len(tokens)} tokens, got shape {tuple(pattern.shape)}")
    names = list(head_names) if head_names else [f"H{h}" for h in range(pattern.shape[0])]
    if len(names) != pattern.shape[0]:
        raise ValueError(f"{len(names)} head_names for {pattern.shape[0]} heads; give one per head")
    return names


def attention_heads(pattern: Float[Tensor, "head dest_pos src_pos"], tokens: list[str],
                    head_names: list[str] | None = None) -> CircuitsVisHTML:
    """Interactive attention patterns of several heads (circuitsvis ``AttentionHeads``).

    Args:
        pattern: attention weights of one prompt, ``[head, dest_pos, src_pos]``.
        tokens: the prompt's tokens as strings, one per position.
        head_names: a label per head (default ``H0``, ``H1``, …).
    """
    names = _check_pattern(pattern, tokens, head_names)
    return CircuitsVisHTML("AttentionHeads", {"attention": _rounded(pattern),
                                              "tokens": tokens, "attentionHeadNames": names})


def plot_attention(pattern: Float[Tensor, "head dest_pos src_pos"], tokens: list[str],
                   head_names: list[str] | None = None, ncols: int = 4):
    """A static grid of attention heatmaps (rows: destination, columns: source).

    Panels grow with the number of tokens so that every token label stays readable.
    """
    names = _check_pattern(pattern, tokens, head_names)
    n_heads, n_tokens = pattern.shape[0], len(tokens)
    ncols = min(ncols, n_heads)
    nrows = (n_heads + ncols - 1) // ncols
    side = max(2.6, 0.16 * n_tokens + 0.8)
    fig, axes = plt.subplots(nrows, ncols, figsize=(side * ncols, side * nrows), squeeze=False)
    labels = [t.replace("\n", "\\n") for t in tokens]
    for ax, h in zip(axes.flat, range(n_heads)):
        ax.imshow(pattern[h].detach().float().cpu(), cmap=CMAPS["score"], vmin=0, vmax=1)
        ax.set_title(names[h], fontsize=10)
        ax.set_xticks(range(n_tokens), labels, rotation=90, fontsize=7)
        ax.set_yticks(range(n_tokens), labels, fontsize=7)
        ax.set_xlabel("source (key)", fontsize=8)
        ax.set_ylabel("destination (query)", fontsize=8)
    for ax in list(axes.flat)[n_heads:]:
        ax.axis("off")
    fig.tight_layout()
    return fig


#: One colour language for the curriculum: red = "matters" (a large effect, a large drop),
#: blue = a score in [0, 1] (attention, probability, head scores), and signed values on a
#: diverging map whose positive side is red.
CMAPS = {"matters": "Reds", "score": "Blues", "signed": "RdBu_r"}


def heatmap(values: Float[Tensor, "row col"], title: str = "", *, xlabel: str = "",
            ylabel: str = "", xticklabels: list[str] | None = None,
            yticklabels: list[str] | None = None, kind: str = "signed",
            colorbar_label: str = "", ax=None, vmax: float | None = None):
    """A labelled matplotlib heatmap in the curriculum's shared style.

    Rows and columns get integer ticks (layers, heads, positions) unless labels are given;
    token labels are rotated and sized to stay readable. NaN cells (e.g. heads that cannot
    be senders) are left blank.

    Args:
        values: the grid.
        title, xlabel, ylabel, colorbar_label: the figure's text.
        xticklabels, yticklabels: labels for the columns / rows (e.g. tokens).
        kind: ``"signed"`` (symmetric about 0, positive = red), ``"matters"`` (0 = white,
            large = red) or ``"score"`` (a value in [0, 1], blue).
        ax: draw into these axes (default: a new figure).
        vmax: the colour scale's upper end (default: from the values).

    Returns:
        The axes.
    """
    values = torch.as_tensor(values).detach().float().cpu()
    if values.ndim != 2:
        raise ValueError(f"a heatmap needs a [row, col] grid, got shape {tuple(values.shape)}")
    if kind not in CMAPS:
        raise ValueError(f"kind must be one of {sorted(CMAPS)}, not {kind!r}")
    if ax is None:
        width = max(4.0, min(14.0, 0.45 * values.shape[1] + 2.5))
        _, ax = plt.subplots(figsize=(width, max(2.2, min(8.0, 0.35 * values.shape[0] + 1.5))))
    image = ax.imshow(values, cmap=CMAPS[kind], aspect="auto", **_limits(values, kind, vmax))
    _ticks(ax.set_xticks, values.shape[1], xticklabels, rotate=True)
    _ticks(ax.set_yticks, values.shape[0], yticklabels, rotate=False)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.figure.colorbar(image, ax=ax, label=colorbar_label)
    return ax


def _limits(values: Tensor, kind: str, vmax: float | None) -> dict:
    finite = values[values.isfinite()]
    if kind == "score":
        return {"vmin": 0.0, "vmax": 1.0 if vmax is None else vmax}
    top = vmax if vmax is not None else (finite.abs().max().item() if len(finite) else 1.0)
    top = top or 1.0
    return {"vmin": -top, "vmax": top} if kind == "signed" else {"vmin": 0.0, "vmax": top}


def _ticks(set_ticks, n: int, labels: list[str] | None, rotate: bool) -> None:
    """Integer ticks (every one up to 32, else about 16), or the given labels."""
    if labels is not None:
        if len(labels) != n:
            raise ValueError(f"{len(labels)} tick labels for {n} rows or columns")
        size = 8 if n <= 30 else 6
        set_ticks(range(n), labels, fontsize=size, **({"rotation": 60, "ha": "right",
                                                      "rotation_mode": "anchor"} if rotate else {}))
        return
    step = 1 if n <= 32 else -(-n // 16)
    set_ticks(range(0, n, step), [str(i) for i in range(0, n, step)])


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
    graph = check_circuit(circuit).graph
    if effects is not None and tuple(torch.as_tensor(effects).shape) != (len(graph.edges),):
        raise ValueError(f"effects must have one value per edge of the graph "
                         f"({len(graph.edges)}), got shape {tuple(torch.as_tensor(effects).shape)}")
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
