"""The forward pass written over the circuit graph, so that single edges can be cut.

An edge ``sender -> receiver`` (:mod:`mi_helpers.core.graph`) is a term of a sum: the
receiver (a head's query, key or value input, an MLP's input, the logits) reads the
residual stream before its layer norm, and the residual is the embeddings plus every
earlier head's output ``z_h @ W_O[h]`` plus every earlier MLP's output (plus biases that
belong to no node). So **patching an edge** means rebuilding that one receiver's input
from a modified sum::

    input(receiver) = residual - output(sender, this run) + output(sender, other run)

and leaving every other receiver's input alone. :class:`EdgeModel` runs the model's
layers from its weights (TransformerLens compatibility mode: ``W_Q``, ``W_O``, ``ln1``,
...) with a hook at every receiver input and every sender output, the way
transformer-lens 4.3's ``tools/analysis/attribution_patching.py`` rebuilds reader
inputs, but with the *copies* of a batch patched differently in one pass, and able to
start a pass at a later layer from cached activations (an edge into layer 3 changes
nothing before layer 3). On construction it reruns the clean and corrupted prompts
and checks its logits against the model's own, so an architecture it does not
reproduce fails loudly instead of giving wrong edges.

Supported: sequential (not parallel) attention and MLP blocks, LayerNorm, RMSNorm or
none, causal or bidirectional attention, learned or rotary positions (GPT-2, the zoo's
GPT-NeoX models, Tracr models: no LayerNorm, bidirectional attention, and a layer that
only attends or only has an MLP compiled with zero weights in the other half, whose
edges then carry nothing). A patch gives the receiver the sender's output in the
corrupted run (**resample ablation**) or, built without corrupted prompts, zeros
(**zero ablation**).

How many copies of the batch a pass holds is decided in :mod:`.edge_memory`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from ..core.activations import run_cached
from ..core.graph import CircuitGraph, Node
from ..core.hooks import hook_name
from ..core.metrics import PositionReader

__all__ = ["EdgeModel", "Stage", "RunState", "CHANNELS"]

CHANNELS = ("q", "k", "v")
LOGIT_TOLERANCE = 1e-3  # max |our logits - model logits| / max(1, max |logits|)


def _gelu_tanh(x: Tensor) -> Tensor:
    return F.gelu(x, approximate="tanh")


NORMALIZATIONS = ("LN", "LNPre", "RMS", "RMSPre", None)  # None: no norm (e.g. Tracr)
ATTENTION_DIRS = ("causal", "bidirectional")  # Tracr compiles bidirectional attention

ACTIVATIONS = {"gelu": F.gelu, "gelu_new": _gelu_tanh, "gelu_pytorch_tanh": _gelu_tanh,
               "gelu_fast": _gelu_tanh, "relu": F.relu, "silu": F.silu}


@dataclass(frozen=True)
class Stage:
    """A step of the forward pass: ``"attn"`` or ``"mlp"`` of a layer, or the ``"logits"``."""

    kind: str
    layer: int


@dataclass
class RunState:
    """One run (clean or corrupted) of the prompts, cached for patching.

    Attributes:
        embed: ``[batch, pos, d_model]`` the embeddings (token plus learned position).
        senders: ``[batch, pos, sender, d_model]`` every sender's output (graph order).
        resid_pre, resid_mid: per layer, the residual before attention and before the MLP.
        qkv: per layer, ``[batch, pos, 3, head, d_head]`` queries, keys, values (pre-rotary).
        final: ``[batch, pos, d_model]`` the residual the logits read.
        logits: ``[batch, pos, d_vocab]``.
    """

    embed: Tensor
    senders: Tensor
    resid_pre: list[Tensor]
    resid_mid: list[Tensor]
    qkv: list[Tensor]
    final: Tensor
    logits: Tensor


Receive = Callable[[Stage, Tensor, "Tensor | None"], "Tensor | None"]
Send = Callable[[Stage, Tensor], Tensor]


def _unsupported(model) -> str | None:
    """Why the model's architecture is outside what :class:`EdgeModel` reproduces, or None."""
    cfg = model.cfg
    checks = [
        (getattr(cfg, "parallel_attn_mlp", False), "parallel attention and MLP blocks"),
        (getattr(cfg, "gated_mlp", False), "gated MLPs"),
        (getattr(cfg, "n_key_value_heads", None) not in (None, cfg.n_heads),
         "grouped-query attention"),
        (getattr(cfg, "use_local_attn", False), "local attention"),
        (getattr(cfg, "scale_attn_by_inverse_layer_idx", False), "layer-scaled attention"),
        (getattr(cfg, "positional_embedding_type", "standard") not in ("standard", "rotary"),
         f"{getattr(cfg, 'positional_embedding_type', '?')} positions"),
        (getattr(cfg, "rotary_adjacent_pairs", False), "GPT-J style rotary pairs"),
        (getattr(cfg, "normalization_type", "LN") not in NORMALIZATIONS,
         f"normalization {getattr(cfg, 'normalization_type', '?')}"),
        (getattr(cfg, "attention_dir", "causal") not in ATTENTION_DIRS,
         f"attention direction {getattr(cfg, 'attention_dir', '?')}"),
        (getattr(cfg, "act_fn", "gelu") not in ACTIVATIONS, f"activation {cfg.act_fn}"),
        (bool(getattr(cfg, "attn_scores_soft_cap", -1) > 0), "attention soft-capping"),
        (bool(getattr(cfg, "output_logits_soft_cap", -1) > 0), "logit soft-capping"),
    ]
    found = [what for bad, what in checks if bad]
    return ", ".join(found) or None


class EdgeModel(PositionReader):
    """A model and a clean/corrupted pair of prompt batches, run over the circuit graph.

    Args:
        model: a TransformerLens model in compatibility mode (e.g. from ``load_model``).
        clean, corrupted: ``[batch, pos]`` token ids of the same shape (checked by callers);
            ``corrupted=None`` for zero ablation (then :attr:`corrupted` is None and
            :attr:`replacement` is zeros).

    Attributes:
        replacement: ``[batch, pos, sender, d_model]`` what a patched edge carries instead:
            the corrupted run's sender outputs, or zeros.

    Raises:
        ValueError: an architecture this forward pass does not reproduce (the message
            says which feature), or logits that differ from the model's own.
    """

    def __init__(self, model, clean: Int[Tensor, "batch pos"],
                 corrupted: Int[Tensor, "batch pos"] | None):
        why = _unsupported(model)
        if why:
            raise ValueError(f"edge-level methods rebuild each receiver's input from the senders' "
                             f"outputs, which this model's architecture does not allow as "
                             f"implemented here ({why}); use node-level patching instead")
        self.model, self.cfg = model, model.cfg
        self.graph = CircuitGraph.from_model(model)  # channels q, k, v in this order
        kinds = ("attn", "mlp") if self.graph.mlps else ("attn",)
        self.stages = [Stage(kind, layer) for layer in range(self.cfg.n_layers) for kind in kinds]
        self.stages.append(Stage("logits", self.cfg.n_layers))
        self._weights()
        self.slots = {node: i for i, node in enumerate(self.graph.senders)}
        self.clean = self._run_state(clean)
        self.corrupted = None if corrupted is None else self._run_state(corrupted)
        self.replacement = (torch.zeros_like(self.clean.senders) if self.corrupted is None
                            else self.corrupted.senders)
        self.batch, self.n_pos = clean.shape

    @property
    def ablation(self) -> str:
        """``"resample"`` (patches carry the corrupted run's outputs) or ``"zero"``."""
        return "zero" if self.corrupted is None else "resample"

    @property
    def corrupted_logits(self) -> Float[Tensor, "batch pos d_vocab"]:
        """The logits with *every* edge patched: the corrupted run's, or with zero ablation
        the run in which every receiver reads nothing but the biases."""
        if self.corrupted is not None:
            return self.corrupted.logits
        return self.patched_logits(torch.ones(1, len(self.graph.edges)))

    # ---- weights and the pieces of a layer ------------------------------------------------

    def _weights(self) -> None:
        m = self.model
        names = ["W_Q", "W_K", "W_V", "b_Q", "b_K", "b_V", "W_O", "b_O", "W_U", "b_U"]
        if self.graph.mlps:
            names += ["W_in", "b_in", "W_out", "b_out"]
        with torch.no_grad():
            self.w = {name: getattr(m, name).detach().clone() for name in names}
            self.w["W_qkv"] = torch.stack([self.w["W_Q"], self.w["W_K"], self.w["W_V"]], 1)
            self.w["b_qkv"] = torch.stack([self.w["b_Q"], self.w["b_K"], self.w["b_V"]], 1)
            self.ln1 = [self._norm_params(b.ln1) for b in m.blocks]
            self.ln2 = [self._norm_params(b.ln2) for b in m.blocks] if self.graph.mlps else []
            self.ln_final = self._norm_params(m.ln_final)
        self.act = ACTIVATIONS[self.cfg.act_fn]
        self.causal = getattr(self.cfg, "attention_dir", "causal") == "causal"
        scale = getattr(self.cfg, "attn_scale", -1)
        self.attn_scale = math.sqrt(self.cfg.d_head) if scale in (None, -1, -1.0) else scale
        if not getattr(self.cfg, "use_attn_scale", True):
            self.attn_scale = 1.0

    @staticmethod
    def _norm_params(module) -> tuple[Tensor | None, Tensor | None]:
        weight, bias = getattr(module, "weight", None), getattr(module, "bias", None)
        return (None if weight is None else weight.detach().clone(),
                None if bias is None else bias.detach().clone())

    def norm(self, x: Tensor, params: tuple[Tensor | None, Tensor | None]) -> Tensor:
        """The model's LayerNorm or RMSNorm over the last axis (none: ``x`` itself)."""
        weight, bias = params
        if self.cfg.normalization_type is None:
            return x
        if self.cfg.normalization_type in ("LN", "LNPre"):
            return F.layer_norm(x, x.shape[-1:], weight, bias, self.cfg.eps)
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.cfg.eps)
        x = x if weight is None else x * weight
        return x if bias is None else x + bias

    def qkv(self, layer: int, x: Tensor) -> Float[Tensor, "batch pos 3 head d_head"]:
        """Queries, keys, values from one shared input ``[batch, pos, d_model]`` or one per
        channel and head ``[batch, pos, 3, head, d_model]``."""
        h = self.norm(x, self.ln1[layer])
        if h.ndim == 3:
            out = torch.einsum("bpd,chde->bpche", h, self.w["W_qkv"][layer])
        else:
            out = torch.einsum("bpchd,chde->bpche", h, self.w["W_qkv"][layer])
        return out + self.w["b_qkv"][layer]

    def head_outputs(self, layer: int, qkv: Tensor) -> Float[Tensor, "batch pos head d_model"]:
        """Each head's output ``z_h @ W_O[h]`` (no ``b_O``) from its queries, keys, values."""
        q, k, v = qkv.unbind(2)
        if self.rotary is not None:
            q, k = self._rotate(q), self._rotate(k)
        scores = torch.einsum("bqhe,bkhe->bhqk", q, k) / self.attn_scale
        if self.causal:
            n_pos = scores.shape[-1]
            causal = torch.ones(n_pos, n_pos, dtype=torch.bool, device=scores.device).tril()
            scores = scores.masked_fill(~causal, float("-inf"))
        pattern = scores.softmax(-1)
        z = torch.einsum("bhqk,bkhe->bqhe", pattern, v)
        return torch.einsum("bqhe,hed->bqhd", z, self.w["W_O"][layer])

    def _rotate(self, x: Tensor) -> Tensor:
        """Rotary embedding, GPT-NeoX style (the first ``rotary_dim`` dims, halves rotated)."""
        cos, sin = self.rotary
        dims = cos.shape[-1]
        x_rot, x_pass = x[..., :dims], x[..., dims:]
        first, second = x_rot[..., : dims // 2], x_rot[..., dims // 2:]
        rotated = torch.cat([-second, first], -1)
        return torch.cat([x_rot * cos + rotated * sin, x_pass], -1)

    def mlp(self, layer: int, x: Tensor) -> Float[Tensor, "batch pos d_model"]:
        """The MLP's output (with ``b_out``) from its input before ``ln2``."""
        h = self.norm(x, self.ln2[layer])
        hidden = self.act(h @ self.w["W_in"][layer] + self.w["b_in"][layer])
        return hidden @ self.w["W_out"][layer] + self.w["b_out"][layer]

    def unembed(self, x: Tensor) -> Float[Tensor, "batch pos d_vocab"]:
        """The logits (only at :attr:`read_positions` when set, NaN elsewhere; see
        :class:`~mi_helpers.core.metrics.PositionReader`)."""
        return self.read_logits(x, lambda h: self.norm(h, self.ln_final) @ self.w["W_U"]
                                + self.w["b_U"])

    # ---- one forward pass ------------------------------------------------------------------

    def forward(self, x: Float[Tensor, "batch pos d_model"], *, start: int = 0,
                receive: Receive | None = None, send: Send | None = None,
                senders: Tensor | None = None) -> Float[Tensor, "batch pos d_vocab"]:
        """Run the stages from ``start`` on the residual ``x``; return the logits.

        Args:
            x: the residual stream entering stage ``start`` (the embeddings for 0).
            receive: ``(stage, residual, senders) -> input`` for the stage's receivers, or
                None to read the residual (heads: ``[batch, pos, 3, head, d_model]``).
            send: ``(stage, output) -> output`` to replace a stage's sender outputs.
            senders: a ``[batch, pos, sender, d_model]`` buffer to record outputs in.
        """
        for stage in self.stages[start:]:
            given = receive(stage, x, senders) if receive is not None else None
            given = x if given is None else given
            if stage.kind == "logits":
                return self.unembed(given)
            out = (self.head_outputs(stage.layer, self.qkv(stage.layer, given))
                   if stage.kind == "attn" else self.mlp(stage.layer, given))
            if send is not None:
                out = send(stage, out)
            if senders is not None:
                senders[:, :, self.sender_slots(stage)] = out if out.ndim == 4 else out[:, :, None]
            x = x + (out.sum(2) + self.w["b_O"][stage.layer] if stage.kind == "attn" else out)
        raise AssertionError("the stages end with the logits")

    def sender_slots(self, stage: Stage) -> slice:
        """The senders a stage writes, as a slice of :attr:`graph.senders`."""
        if stage.kind == "attn":
            first = self.slots[Node(stage.layer, "head", 0)]
            return slice(first, first + self.cfg.n_heads)
        index = self.slots[Node(stage.layer, "mlp")]
        return slice(index, index + 1)

    def n_senders(self, stage: Stage) -> int:
        """How many senders the receivers of ``stage`` read (a prefix of the senders)."""
        if stage.kind == "logits":
            return len(self.graph.senders)
        return self.sender_slots(stage).start  # an MLP also reads its own layer's heads

    def edge_block(self, stage: Stage) -> slice:
        """The edges into ``stage``'s receivers, a slice of ``graph.edges``.

        For an attention stage they are ordered ``[head, channel (q k v), sender]``.
        """
        graph = self.graph
        if stage.kind == "attn":
            first = graph.edges_into(Node(stage.layer, "head", 0), CHANNELS[0])
            last = graph.edges_into(Node(stage.layer, "head", self.cfg.n_heads - 1), CHANNELS[-1])
            return slice(first.start, last.stop)
        node = Node(stage.layer, "mlp") if stage.kind == "mlp" else graph.nodes[-1]
        return graph.edges_into(node)

    def _run_state(self, tokens: Tensor) -> RunState:
        """Run ``tokens`` through the model (to read its embeddings and check our logits)
        and through this forward pass, caching what patching needs."""
        rotary = self.cfg.positional_embedding_type == "rotary"
        names = [hook_name("embed")]
        if not rotary and hook_name("pos_embed") in self.model.hook_dict:
            names.append(hook_name("pos_embed"))
        angles = ["blocks.0.attn.hook_cos", "blocks.0.attn.hook_sin"] if rotary else []
        if any(name not in self.model.hook_dict for name in angles):
            raise ValueError("this rotary model does not expose its rotary angles "
                             "(blocks.0.attn.hook_cos/hook_sin); edge-level methods need them")
        logits, cache = run_cached(self.model, tokens, names + angles)
        self.rotary = tuple(cache[name][:, :, None].detach() for name in angles) or None
        state = self._cache_run(sum(cache[name] for name in names).detach())
        gap = (state.logits - logits).abs().max().item() / max(1.0, logits.abs().max().item())
        if gap > LOGIT_TOLERANCE:
            raise ValueError(f"the edge-level forward pass does not reproduce this model's logits "
                             f"(relative difference {gap:.2g} > {LOGIT_TOLERANCE}); its "
                             f"architecture needs support in mi_helpers.circuits.edge_model")
        return state

    @torch.no_grad()
    def _cache_run(self, embed: Tensor) -> RunState:
        batch, n_pos, d_model = embed.shape
        senders = embed.new_zeros(batch, n_pos, len(self.graph.senders), d_model)
        senders[:, :, 0] = embed
        resid_pre, resid_mid, qkv = [], [], []

        def record(stage, x, _senders):
            if stage.kind == "attn":
                resid_pre.append(x)
                qkv.append(self.qkv(stage.layer, x))
            elif stage.kind == "mlp":
                resid_mid.append(x)
            else:
                finals.append(x)

        finals: list[Tensor] = []
        logits = self.forward(embed, receive=record, senders=senders)
        return RunState(embed, senders, resid_pre, resid_mid, qkv, finals[0], logits)

    # ---- many edges patched at once, differently in each copy -------------------------------

    def start_stage(self, removed: Tensor) -> int:
        """The first stage whose receivers have a patched edge in any copy (earlier stages
        run exactly as in the clean run, so a pass can start there)."""
        touched = removed.any(0)
        for index, stage in enumerate(self.stages):
            if touched[self.edge_block(stage)].any():
                return index
        return len(self.stages) - 1

    def entering(self, state: RunState, index: int) -> Tensor:
        """The residual stream of ``state`` as it enters stage ``index``."""
        stage = self.stages[index]
        if stage.kind == "attn":
            return state.resid_pre[stage.layer]
        return state.resid_mid[stage.layer] if stage.kind == "mlp" else state.final

    @torch.no_grad()
    def patched_logits(self, removed: Float[Tensor, "copy edge"]
                       ) -> Float[Tensor, "copy_batch pos d_vocab"]:
        """The clean run with, in copy ``c``, every edge ``e`` patched by ``removed[c, e]``.

        ``removed[c, e] = 1`` makes the receiver read the sender's *corrupted* output (or
        zeros, see :attr:`replacement`) in place of its output in this copy's run (0:
        untouched; in between: a mix).
        Downstream of a patched receiver everything is recomputed, so a sender's output
        in a copy may differ from its clean one. Copy ``c`` is rows ``c * batch`` to
        ``(c + 1) * batch`` of the result.
        """
        removed = removed.to(self.clean.embed.dtype)
        n_copies, batch = len(removed), self.batch
        start = self.start_stage(removed)
        senders = self.clean.senders.repeat(n_copies, 1, 1, 1)  # later stages overwrite theirs
        replacement = self.replacement

        def receive(stage: Stage, x: Tensor, live: Tensor) -> Tensor | None:
            block = removed[:, self.edge_block(stage)]
            if not block.any():
                return None
            n = self.n_senders(stage)
            diff = replacement[:, :, :n] - live[:, :, :n].unflatten(0, (n_copies, batch))
            diff = diff.transpose(-1, -2).reshape(n_copies, -1, n)  # copy (batch pos d) sender
            inputs = len(CHANNELS) * self.cfg.n_heads if stage.kind == "attn" else 1
            weights = block.view(n_copies, inputs, n).transpose(1, 2)  # copy sender input
            delta = torch.bmm(diff, weights).view(n_copies * batch, *x.shape[1:], inputs)
            if stage.kind != "attn":
                return x + delta[..., 0]
            delta = delta.unflatten(-1, (self.cfg.n_heads, len(CHANNELS))).permute(0, 1, 4, 3, 2)
            return x[:, :, None, None] + delta  # copy_batch pos channel head d_model

        x = self.entering(self.clean, start).repeat(n_copies, 1, 1)
        return self.forward(x, start=start, receive=receive, senders=senders)
