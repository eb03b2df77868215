"""The node- and path-level methods as sweeps over the circuit graph, and the shared metric.

The edge-level methods run on a Tracr model through the package's one edge engine
(:mod:`mi_helpers.circuits.edge_model`, which handles models without LayerNorm and
with bidirectional attention): exact edge patching
(:func:`mi_helpers.circuits.edge_patching`, zero ablation with ``corrupted=None``),
EAP and EAP-IG (:func:`mi_helpers.circuits.edge_attribution`) and ACDC
(:func:`mi_helpers.circuits.acdc`). So that :mod:`.recovery` can score the node- and
path-level methods the same way, this module turns them into
:class:`~mi_helpers.core.results.SweepResult` values over axis ``"node"`` or ``"edge"``:

* :func:`node_patching`: activation patching of every head (``z``) and MLP output
  (:func:`mi_helpers.circuits.activation_patching`, noising);
* :func:`path_patching_edges`: path patching (:func:`mi_helpers.circuits.path_patching`)
  from every head to every later head's q/k/v and to the logits; its senders are heads
  only, and a path "to the logits" also runs through MLPs.

:func:`output_metric` is the metric they share: the logits projected on the
clean-minus-corrupted output at every position after BOS. It is linear in the logits,
so the clean and corrupted runs differ by ``|clean - corrupted|^2 > 0`` wherever any
output differs, and a gradient method sees it at any point. :func:`clean_distance`
(for ACDC) compares a run with the clean one alone, so it also serves zero ablation.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..circuits import activation_patching, path_patching
from ..circuits.patching import Metric
from ..core.graph import CircuitGraph, Edge, Node
from ..core.results import SweepResult

__all__ = ["output_metric", "clean_distance", "node_patching", "path_patching_edges"]


def output_metric(clean_logits: Float[Tensor, "batch pos d_vocab"],
                  corrupted_logits: Float[Tensor, "batch pos d_vocab"]) -> Metric:
    """``mean over prompts and positions after BOS of logits . (clean - corrupted)``."""
    direction = (clean_logits - corrupted_logits)[:, 1:].detach()

    def metric(logits: Float[Tensor, "batch pos d_vocab"]) -> Float[Tensor, ""]:
        return (logits[:, 1:] * direction.to(logits)).sum(-1).mean()
    return metric


def clean_distance(clean_logits: Float[Tensor, "batch pos d_vocab"]) -> Metric:
    """``mean over prompts and positions after BOS of |logits - clean|^2``: 0 on the clean run.

    ACDC's paper measures how far a pruned model strays from the clean run by a KL
    divergence; a numerical Tracr output is a single logit, where a softmax (and so the
    KL) is constant, so this measures the squared distance of the logits instead. On the
    corrupted run it equals :func:`output_metric`'s clean-to-corrupted gap.
    """
    reference = clean_logits[:, 1:].detach()

    def metric(logits: Float[Tensor, "batch pos d_vocab"]) -> Float[Tensor, ""]:
        return (logits[:, 1:] - reference.to(logits)).pow(2).sum(-1).mean()
    return metric


def node_patching(model, clean: Int[Tensor, "batch pos"], corrupted: Int[Tensor, "batch pos"],
                  metric: Metric) -> SweepResult:
    """Activation patching (noising) of each head's ``z`` and each MLP's output, over nodes."""
    heads = activation_patching(model, clean, corrupted, metric, "z", mode="noise")
    mlps = activation_patching(model, clean, corrupted, metric, "mlp_out", mode="noise")
    nodes = ([Node(layer, "head", head) for layer in heads.coords["layer"]
              for head in heads.coords["head"]] + [Node(layer, "mlp") for layer in mlps.coords["layer"]])
    values = torch.cat([heads.values.flatten(), mlps.values.flatten()])
    return SweepResult(values, ("node",), {"node": nodes}, heads.clean, heads.corrupted,
                       method="activation patching (noise)")


def path_patching_edges(model, graph: CircuitGraph, clean: Int[Tensor, "batch pos"],
                        corrupted: Int[Tensor, "batch pos"], metric: Metric) -> SweepResult:
    """Path patching from each head to each later head's q, k, v and to the logits (noising)."""
    values, edges, anchors = [], [], None
    receivers = [(node, channel) for node in graph.nodes if node.kind == "head" and node.layer > 0
                 for channel in graph.channels] + [(graph.nodes[-1], "in")]
    for receiver, channel in receivers:
        target = "logits" if receiver.kind == "logits" else [(receiver.layer, receiver.head, channel)]
        result = path_patching(model, clean, corrupted, metric, target)
        anchors = anchors or (result.clean, result.corrupted)
        for layer in range(min(receiver.layer, model.cfg.n_layers)):
            for head in range(model.cfg.n_heads):
                edges.append(Edge(Node(layer, "head", head), receiver, channel))
                values.append(result.values[layer, head])
    return SweepResult(torch.stack(values), ("edge",), {"edge": edges}, *anchors,
                       method="path patching (noise)")
