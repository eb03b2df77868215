"""ACDC: automatic circuit discovery by pruning edges one at a time (Conmy et al., 2023).

Start from the full circuit graph, every edge carrying the clean run. Visit the
receivers from the logits backwards (the logits, the last MLP, the last layer's heads'
value, key and query inputs, ..., the first layer). For each incoming edge, latest
sender first, try removing it (patch the sender's *corrupted* output into that
receiver, :mod:`.edge_model`) and keep it removed if the metric changes by less than
``tau``:

* ``metric="kl"``: the KL divergence from the clean run's next-token distribution
  (at ``positions``); an edge is removed if the KL *rises* by less than ``tau``;
* a task metric (e.g. the logit difference): removed if it moves by less than ``tau``
  either way.

With ``corrupted=None`` a removed edge carries zeros instead (zero ablation). What
remains is a :class:`~mi_helpers.core.graph.Circuit`. A receiver none of whose
outputs is left in the circuit cannot affect the metric, so its incoming edges are
removed without being tried (their effect is zero up to rounding).

**Batched.** The decisions are sequential: each depends on the edges removed before it.
A pass tries ``patches_per_pass`` edges of one receiver at once, *speculating that each
is removed*: copy ``i`` removes the first ``i`` of them. The speculation holds up to the
first edge that must stay; the copies after it are dropped and the next pass starts
from there. The circuit is the same as trying one edge per pass (tested).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Int
from torch import Tensor
from tqdm.auto import tqdm

from ..core.checks import as_tokens, check_positions
from ..core.graph import Circuit, Node
from ..core.metrics import kl_divergence, metric_positions
from .edge_memory import DEFAULT_MEMORY_BUDGET, copies_per_pass
from .edge_model import CHANNELS, EdgeModel
from .edge_patching import build_edge_model
from .patching import Metric, metric_value

__all__ = ["acdc"]


def acdc(model, clean: Sequence[str] | Int[Tensor, "batch pos"],
         corrupted: Sequence[str] | Int[Tensor, "batch pos"] | None,
         metric: Metric | str = "kl", *,
         tau: float, positions: int | Int[Tensor, "batch"] = -1,
         patches_per_pass: int | None = None, memory_budget: int = DEFAULT_MEMORY_BUDGET,
         progress: bool = True) -> Circuit:
    """Prune the model's circuit graph edge by edge; return the edges that matter.

    Args:
        model: a TransformerLens model in compatibility mode.
        clean, corrupted: prompts or ``[batch, pos]`` tokens of the same shape;
            ``corrupted=None``: zero ablation.
        metric: ``"kl"`` (KL from the clean run at ``positions``) or a task metric,
            logits ``[batch, pos, d_vocab]`` -> scalar.
        tau: the threshold (> 0): an edge whose removal changes the metric by less goes.
        positions: where the KL is read: one position, or one per prompt (e.g. IOI's
            ``word_positions["end"]``); default the last.
        patches_per_pass: edges tried per forward pass (default: as many as fit).
        memory_budget: bytes a pass may use, estimated before any work.
        progress: show a tqdm bar over the receivers.

    Returns:
        The :class:`~mi_helpers.core.graph.Circuit` of the edges kept.

    Raises:
        ValueError: ``tau <= 0``, an unknown metric name, prompts of different lengths.
        MemoryError: one pass would exceed ``memory_budget``.
    """
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not tau > 0:
        raise ValueError(f"tau must be a number > 0 (a metric change below it removes an "
                         f"edge), got {tau!r}")
    if isinstance(metric, str) and metric != "kl":
        raise ValueError(f"metric must be 'kl' or a callable task metric, not {metric!r}")
    tokens = as_tokens(model, clean)
    per_pass = copies_per_pass(model, tokens, "masked", patches_per_pass, memory_budget, "ACDC")
    em, tokens = build_edge_model(model, tokens, corrupted)
    read_at = check_positions(positions, *tokens.shape)
    score, change = _scorer(em, metric, read_at)
    graph = em.graph
    removed = torch.zeros(len(graph.edges), dtype=torch.bool)
    current = score(em.clean.logits)
    inputs = [(node, channel) for node in reversed(graph.nodes[1:])
              for channel in (reversed(CHANNELS) if node.kind == "head" else ("in",))]
    sends = torch.tensor([em.slots[edge.sender] for edge in graph.edges])
    read = read_at if metric == "kl" else metric_positions(metric, tokens)
    with em.reading_positions(read):  # unembed only where the score reads
        for node, channel in tqdm(inputs, desc="ACDC receivers", disable=not progress):
            block = graph.edges_into(node, channel)
            if node.kind != "logits" and not _still_sends(em, node, removed, sends):
                removed[block] = True
                continue
            candidates = list(reversed(range(block.start, block.stop)))  # latest sender first
            current = _prune(em, candidates, removed, current, score, change, tau, per_pass)
    return Circuit.from_mask(graph, ~removed)


def _scorer(em: EdgeModel, metric: Metric | str, positions: Tensor):
    """``(score, change)``: the metric of one copy's logits, and how a change is measured."""
    if metric == "kl":
        rows = torch.arange(em.batch)
        reference = em.clean.logits[rows, positions]

        def score(logits: Tensor) -> float:
            return kl_divergence(reference, logits[rows, positions]).mean().item()

        return score, lambda new, old: new - old
    return (lambda logits: metric_value(metric, logits).item()), lambda new, old: abs(new - old)


def _still_sends(em: EdgeModel, node: Node, removed: Tensor, sends: Tensor) -> bool:
    """Whether any edge out of ``node`` is still in the circuit."""
    return bool(((sends == em.slots[node]) & ~removed).any())


def _prune(em: EdgeModel, candidates: list[int], removed: Tensor, current: float, score, change,
           tau: float, per_pass: int) -> float:
    """Try removing each candidate edge in order (updating ``removed`` in place); return
    the metric of the final state."""
    i = 0
    while i < len(candidates):
        chunk = candidates[i:i + per_pass]
        masks = removed.repeat(len(chunk), 1)
        for copy, edge in enumerate(chunk):
            masks[copy:, edge] = True  # copy c speculates that chunk[:c + 1] all go
        values = [score(part) for part in em.patched_logits(masks).split(em.batch)]
        for edge, value in zip(chunk, values):
            i += 1
            if change(value, current) < tau:
                removed[edge] = True
                current = value
            else:
                break  # this edge stays: the later copies assumed it gone
    return current
