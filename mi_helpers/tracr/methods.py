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
from ..core.checks import check_model, check_same_shape, check_tokens, check_type
from ..core.graph import CircuitGraph, Edge, Node
from ..core.results import SweepResult
from .files import TracrModel

__all__ = ["output_metric", "clean_distance", "node_patching", "path_patching_edges"]


def _check_logits(name: str, logits: Tensor) -> Tensor:
    """``logits`` if they are float ``[batch, pos, d_vocab]`` with a position after BOS."""
    check_type(name, logits, Tensor, "pass the model's output, e.g. tracr_model.model(tokens)")
    if not logits.dtype.is_floating_point:
        raise TypeError(f"{name} must be float logits, got dtype {logits.dtype} (token ids?); "
                        f"pass the model's output, e.g. tracr_model.model(tokens)")
    if logits.ndim != 3 or logits.shape[1] < 2:
        raise ValueError(f"{name} must be [batch, pos, d_vocab] with BOS and at least one "
                         f"position after it, got shape {tuple(logits.shape)}; keep the batch "
                         f"axis (logits[None] for one prompt)")
    return logits


def _check_run(model, clean: Tensor, corrupted: Tensor, metric: Metric):
    """The bridge of a patching run, after checking its tokens and metric."""
    if isinstance(model, TracrModel):
        raise TypeError("model must be the TransformerBridge, got a TracrModel; pass its "
                        ".model (e.g. tracr_model.model)")
    check_model(model)
    for name, tokens in (("clean", clean), ("corrupted", corrupted)):
        check_type(name, tokens, Tensor, "encode Tracr inputs with tracr_model.encode(inputs)")
        check_tokens(model, tokens)
    check_same_shape(clean, corrupted)
    if not callable(metric):
        raise TypeError(f"metric must be a function of the logits, got "
                        f"{type(metric).__name__}; e.g. output_metric(clean_logits, "
                        f"corrupted_logits)")
    return model


def output_metric(clean_logits: Float[Tensor, "batch pos d_vocab"],
                  corrupted_logits: Float[Tensor, "batch pos d_vocab"]) -> Metric:
    """``mean over prompts and positions after BOS of logits . (clean - corrupted)``.

    Raises:
        TypeError: not float logits. ValueError: not ``[batch, pos, d_vocab]`` with a
            position after BOS, or the two runs' shapes differ.
    """
    _check_logits("clean_logits", clean_logits)
    _check_logits("corrupted_logits", corrupted_logits)
    if clean_logits.shape != corrupted_logits.shape:
        raise ValueError(f"clean_logits have shape {tuple(clean_logits.shape)} but "
                         f"corrupted_logits have {tuple(corrupted_logits.shape)}; run the "
                         f"model on clean and corrupted tokens of the same shape")
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

    Raises:
        TypeError: not float logits. ValueError: not ``[batch, pos, d_vocab]`` with a
            position after BOS.
    """
    _check_logits("clean_logits", clean_logits)
    reference = clean_logits[:, 1:].detach()

    def metric(logits: Float[Tensor, "batch pos d_vocab"]) -> Float[Tensor, ""]:
        return (logits[:, 1:] - reference.to(logits)).pow(2).sum(-1).mean()
    return metric


def node_patching(model, clean: Int[Tensor, "batch pos"], corrupted: Int[Tensor, "batch pos"],
                  metric: Metric) -> SweepResult:
    """Activation patching (noising) of each head's ``z`` and each MLP's output, over nodes.

    Raises:
        TypeError: ``model`` is a TracrModel (pass its ``.model``), tokens are not integer
            ids, or ``metric`` is not callable. ValueError: the token batches differ in shape.
    """
    _check_run(model, clean, corrupted, metric)
    heads = activation_patching(model, clean, corrupted, metric, "z", mode="noise")
    mlps = activation_patching(model, clean, corrupted, metric, "mlp_out", mode="noise")
    nodes = ([Node(layer, "head", head) for layer in heads.coords["layer"]
              for head in heads.coords["head"]] + [Node(layer, "mlp") for layer in mlps.coords["layer"]])
    values = torch.cat([heads.values.flatten(), mlps.values.flatten()])
    return SweepResult(values, ("node",), {"node": nodes}, heads.clean, heads.corrupted,
                       method="activation patching (noise)")


def path_patching_edges(model, graph: CircuitGraph, clean: Int[Tensor, "batch pos"],
                        corrupted: Int[Tensor, "batch pos"], metric: Metric) -> SweepResult:
    """Path patching from each head to each later head's q, k, v and to the logits (noising).

    Raises:
        TypeError: as :func:`node_patching`, or ``graph`` is not a CircuitGraph.
        ValueError: ``graph`` is another model's (other layers or heads).
    """
    check_type("graph", graph, CircuitGraph, "e.g. tracr_model.graph or "
               "CircuitGraph.from_model(model)")
    _check_run(model, clean, corrupted, metric)
    if (graph.n_layers, graph.n_heads) != (model.cfg.n_layers, model.cfg.n_heads):
        raise ValueError(f"the graph has {graph.n_layers} layers of {graph.n_heads} heads but "
                         f"the model has {model.cfg.n_layers} of {model.cfg.n_heads}; pass "
                         f"this model's graph (tracr_model.graph)")
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
