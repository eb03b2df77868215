"""Circuit-discovery methods, each returning a sweep over the circuit graph's nodes or edges.

So that :mod:`.recovery` can score any method, each result here is a
:class:`~mi_helpers.core.results.SweepResult` over axis ``"node"`` or ``"edge"``:

* :func:`node_patching`: activation patching of every head (``z``) and MLP output
  (:func:`mi_helpers.circuits.activation_patching`, noising);
* :func:`path_patching_edges`: path patching (:func:`mi_helpers.circuits.path_patching`)
  from every head to every later head's q/k/v and to the logits; its senders are heads
  only, and a path "to the logits" also runs through MLPs;
* :func:`eap`: edge attribution patching and EAP-IG, the first-order estimate
  ``(a_clean - a_corrupt) . d metric / d input`` of each edge (TransformerLens 4.3's
  ``attribution_patch`` cannot score edges of a natively booted bridge: it raises
  ``NotImplementedError`` for ``use_attn_result``; its node scores agree with ours, tested);
* exact edge patching is :func:`mi_helpers.tracr.edges.edge_patching`.

:func:`output_metric` is the metric they share: the logits projected on the
clean-minus-corrupted output at every position after BOS. It is linear in the logits,
so the clean and corrupted runs differ by ``|clean - corrupted|^2 > 0`` wherever any
output differs, and a gradient method sees it at any point.
"""

from __future__ import annotations

from functools import partial

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..circuits import activation_patching, path_patching
from ..circuits.patching import Metric
from ..core.activations import run_cached
from ..core.checks import check_positive, check_same_shape
from ..core.graph import CircuitGraph, Edge, Node
from ..core.results import SweepResult
from .edges import input_weight, receiver_hook, sender_outputs

__all__ = ["output_metric", "node_patching", "path_patching_edges", "eap"]


def output_metric(clean_logits: Float[Tensor, "batch pos d_vocab"],
                  corrupted_logits: Float[Tensor, "batch pos d_vocab"]) -> Metric:
    """``mean over prompts and positions after BOS of logits . (clean - corrupted)``."""
    direction = (clean_logits - corrupted_logits)[:, 1:].detach()

    def metric(logits: Float[Tensor, "batch pos d_vocab"]) -> Float[Tensor, ""]:
        return (logits[:, 1:] * direction.to(logits)).sum(-1).mean()
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


def _add_probe(act: Tensor, hook, *, store: dict) -> Tensor:
    """Add a zero leaf tensor whose gradient will be the activation's."""
    probe = torch.zeros_like(act, requires_grad=True)
    store[hook.name] = probe
    return act + probe


def _interpolate(act: Tensor, hook, *, target: Tensor, alpha: float) -> Tensor:
    return act + alpha * (target.to(act) - act)


def _receiver_gradients(model, graph: CircuitGraph, corrupted, clean, metric: Metric,
                        alpha: float) -> dict[tuple[Node, str], Tensor]:
    """d metric / d (each receiver channel's residual input), ``[batch, pos, d_model]``.

    The run is the corrupted one with its embeddings moved ``alpha`` of the way to the
    clean ones (``alpha=0``: the corrupted run itself).
    """
    store: dict[str, Tensor] = {}
    receivers = [(e.receiver, e.channel) for e in graph.edges]
    receivers = list(dict.fromkeys(receivers))
    hooks = [(receiver_hook(r, c), partial(_add_probe, store=store)) for r, c in receivers]
    if alpha:
        _, embeds = run_cached(model, clean, ["hook_embed", "hook_pos_embed"])
        hooks = [(name, partial(_interpolate, target=act, alpha=alpha))
                 for name, act in embeds.items()] + hooks
    with torch.enable_grad(), model.hooks(fwd_hooks=list(dict.fromkeys(hooks))):
        metric(model(corrupted)).backward()
    grads = {}
    for receiver, channel in receivers:
        grad = store[receiver_hook(receiver, channel)].grad
        if receiver.kind == "head":
            grad = grad[:, :, receiver.head]
        grads[receiver, channel] = grad @ input_weight(model, receiver, channel).T
    model.zero_grad(set_to_none=True)
    return grads


def eap(model, graph: CircuitGraph, clean: Int[Tensor, "batch pos"],
        corrupted: Int[Tensor, "batch pos"], metric: Metric, ig_steps: int = 1) -> SweepResult:
    """Edge attribution patching (Syed et al., 2023), or EAP-IG (Hanna et al., 2024).

    Each edge's effect of patching the clean sender output into the corrupted run is
    estimated to first order: ``(a_clean - a_corrupt) . g``, where ``g`` is the gradient
    of the metric with respect to the receiver's input, taken on the corrupted run
    (``ig_steps=1``) or averaged over ``ig_steps`` runs whose input embeddings move from
    corrupted towards clean (EAP-IG, the "inputs" variant: steps ``0, 1/n, ..., (n-1)/n``).
    On a model without LayerNorm the receiver's input is linear in the residual stream,
    so ``g`` is the receiver's activation gradient times its input weight.

    Returns:
        A denoising sweep over every edge: ``values = corrupted + estimated effect``.
    """
    check_positive("ig_steps", ig_steps, integer=True)
    check_same_shape(clean, corrupted)
    delta = {node: sender - other for (node, sender), other in zip(
        sender_outputs(model, graph, clean).items(), sender_outputs(model, graph, corrupted).values())}
    grads: dict[tuple[Node, str], Tensor] = {}
    for step in range(ig_steps):
        for key, grad in _receiver_gradients(model, graph, corrupted, clean, metric,
                                             step / ig_steps).items():
            grads[key] = grads.get(key, 0) + grad / ig_steps
    effects = torch.stack([(delta[e.sender] * grads[e.receiver, e.channel]).sum().detach()
                           for e in graph.edges])
    with torch.no_grad():
        clean_value, corrupted_value = metric(model(clean)).item(), metric(model(corrupted)).item()
    method = "EAP" if ig_steps == 1 else f"EAP-IG ({ig_steps} steps)"
    return SweepResult(corrupted_value + effects, ("edge",), {"edge": list(graph.edges)},
                       clean_value, corrupted_value, method=f"{method}, denoise")
