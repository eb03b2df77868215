"""Drawing a circuit of the graph with matplotlib (offline)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from mi_helpers.core.graph import Circuit, CircuitGraph  # noqa: E402
from mi_helpers.viz import CHANNEL_COLOURS, plot_circuit  # noqa: E402


def test_plot_circuit_draws_one_arrow_per_edge_coloured_by_input():
    graph = CircuitGraph(2, 3)
    edges = [e for e in graph.edges if e.receiver.name in ("L1H2", "logits")][:7]
    circuit = Circuit.from_edges(graph, edges)
    effects = torch.arange(len(graph.edges), dtype=torch.float32)
    ax = plot_circuit(circuit, effects)
    arrows = [c for c in ax.get_children() if isinstance(c, matplotlib.text.Annotation)
              and c.arrow_patch is not None]
    assert len(arrows) == 7
    colours = {matplotlib.colors.to_hex(a.arrow_patch.get_edgecolor()) for a in arrows}
    assert colours == {matplotlib.colors.to_hex(CHANNEL_COLOURS[e.channel]) for e in edges}
    widths = sorted(a.arrow_patch.get_linewidth() for a in arrows)
    assert widths[-1] > widths[0]  # wider for larger |effect|
    labels = {t.get_text() for t in ax.texts}
    assert {"embed", "L1H2", "MLP0", "logits"} <= labels
    plt.close("all")
    empty = plot_circuit(Circuit(graph, frozenset()), effects)  # nothing to draw, no error
    assert empty.get_title() == f"0 of {len(graph.edges)} edges"
    plt.close("all")
