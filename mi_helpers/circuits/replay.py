"""Replaying a forward pass from cached activations: sweeps that start where the patch is.

A sweep runs the same prompts many times, each time with one activation changed. Two
things make that cheap:

* **stacking**: the runs are *copies* of the prompt batch along the batch axis, copy
  ``i`` patched by patch ``i``, so ``N`` patches cost about ``N / copies`` passes (how
  many copies fit is decided in :mod:`.edge_memory`);
* **starting late**: a patch at layer ``L`` changes nothing before ``L``, so a run can
  start from the residual stream entering ``L``, cached once. A patch of an
  attention output (``z``, ``attn_out``) does not even rerun that layer's attention:
  the residual after it is ``resid_pre + attn_out(patched z)``.

TransformerLens' hooks (:mod:`.patching` falls back on them) do the first but not the
second: a ``TransformerBridge``'s ``start_at_layer`` still runs the earlier blocks.
:class:`Replay` runs the layers itself from the model's weights, as
:class:`~.edge_model.EdgeModel` does (compatibility mode: ``W_Q``, ``W_O``, ``ln1`` ...),
and checks its logits against the model's own on every run it caches, so an
architecture it does not reproduce fails loudly (:func:`replay_unsupported` says which
ones it does not try). The model's own hooks never run in a replayed pass.

The patched activation is the model's: ``q k v`` before rotary embeddings, ``z`` before
``W_O``, ``pattern`` after the softmax, ``attn_out`` and ``mlp_out`` with their biases,
as at the hooks of :data:`~mi_helpers.core.hooks.SITES` (tested against them).
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from ..core.activations import FwdHook, run_cached
from ..core.graph import CircuitGraph
from ..core.hooks import hook_name
from . import edge_model
from .edge_model import CHANNELS, EdgeModel, Stage, _unsupported

__all__ = ["Replay", "ReplayState", "REPLAY_SITES", "EMBEDDING_SITES", "replay_unsupported",
           "replayer"]

#: The sites a replayed sweep can patch (every patching target).
REPLAY_SITES = ("resid_pre", "resid_post", "attn_out", "mlp_out", "z", "q", "k", "v", "pattern")
#: Forward hooks at these sites (e.g. causal tracing's noise) act before the first layer,
#: so a replay starts from their result.
EMBEDDING_SITES = ("embed", "pos_embed")
#: model -> (fingerprint of its weights, prompt shape, rotary angles) of its last checked
#: run: a later sweep on the same weights and shape needs no model forward pass at all.
_VOUCHED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


#: Models with more parameter bytes than this are not fingerprinted: hashing them would
#: cost more than the forward pass the check needs (which is then run on every sweep).
FINGERPRINT_MAX_BYTES = 2**26


def _fingerprint(model) -> bytes | None:
    """A hash of every parameter's bytes (None off the CPU, where it would cost a copy, or
    above ``FINGERPRINT_MAX_BYTES``): any change to the weights, in place or through
    ``.data``, changes it."""
    params = list(model.parameters())
    if (any(p.device.type != "cpu" for p in params)
            or sum(p.numel() * p.element_size() for p in params) > FINGERPRINT_MAX_BYTES):
        return None
    digest = hashlib.blake2b(digest_size=16)
    for param in params:
        digest.update(memoryview(param.detach().contiguous().view(-1).view(torch.uint8)
                                 .numpy()))
    return digest.digest()


@dataclass
class ReplayState:
    """One run of the prompts, cached per layer (each ``[batch, pos, ...]``).

    Attributes:
        embed: the residual stream entering layer 0 (token plus learned position).
        resid_pre, resid_mid: per layer, the residual before attention and before the MLP.
        attn_out, mlp_out: per layer, what attention and the MLP add to the residual.
        qkv: per layer, ``[batch, pos, 3, head, d_head]`` queries, keys, values (pre-rotary).
        z: per layer, ``[batch, pos, head, d_head]`` the heads' outputs before ``W_O``.
        final: the residual the logits read; logits: ``[batch, pos, d_vocab]``.
    """

    embed: Tensor
    resid_pre: list[Tensor]
    resid_mid: list[Tensor]
    attn_out: list[Tensor]
    mlp_out: list[Tensor]
    qkv: list[Tensor]
    z: list[Tensor]
    final: Tensor | None = None
    logits: Tensor | None = None


def replay_unsupported(model, fwd_hooks: Sequence[FwdHook] = (), site: str = "resid_pre"
                       ) -> str | None:
    """Why a sweep of ``site`` with ``fwd_hooks`` on ``model`` cannot be replayed, or None."""
    if site not in REPLAY_SITES:
        return f"site {site!r} is not one of {REPLAY_SITES}"
    embedding = {hook_name(s) for s in EMBEDDING_SITES}
    others = [name for name, _ in fwd_hooks if not (isinstance(name, str) and name in embedding)]
    if others:
        return f"forward hooks at {others} (only hooks at {sorted(embedding)} can be replayed)"
    return _unsupported(model)


def replayer(model, fwd_hooks: Sequence[FwdHook] = (), site: str = "resid_pre",
             replay: bool = True) -> Replay | None:
    """A :class:`Replay` of ``model`` if ``replay`` is asked for and possible, else None."""
    if not replay or replay_unsupported(model, fwd_hooks, site):
        return None
    return Replay(model)


class Replay(EdgeModel):
    """The model's forward pass from its weights, startable at any stage, over copies.

    Shares :class:`~.edge_model.EdgeModel`'s layers (weights, norms, rotary, MLP) but
    holds no prompt pair: :meth:`run` caches any run, :meth:`activation` reads one of
    its activations, :meth:`logits_after` replays copies patched at one site.

    Raises:
        ValueError: an architecture this forward pass does not reproduce.
    """

    def __init__(self, model):
        why = _unsupported(model)
        if why:
            raise ValueError(f"cannot replay this model's forward pass from its weights ({why}); "
                             f"run the sweep with replay=False (through the model's hooks)")
        self.model, self.cfg = model, model.cfg
        self.graph = CircuitGraph.from_model(model)
        kinds = ("attn", "mlp") if self.graph.mlps else ("attn",)
        self.stages = [Stage(kind, layer) for layer in range(self.cfg.n_layers) for kind in kinds]
        self.stages.append(Stage("logits", self.cfg.n_layers))
        self.index = {stage: i for i, stage in enumerate(self.stages)}
        self.rotary = None
        self._weights()
        self._linear_weights()
        self._fingerprint = _fingerprint(model)
        vouched = _VOUCHED.get(model) if self._fingerprint is not None else None
        if vouched is not None and vouched[0] == self._fingerprint:
            self._checked, self.rotary = (True, vouched[1]), vouched[2]

    def _linear_weights(self) -> None:
        """Each product as one ``F.linear`` (weights ``[out, in]``), heads side by side."""
        w, (n_layers, d_model) = self.w, (self.cfg.n_layers, self.cfg.d_model)
        self.lin = {
            "qkv": w["W_qkv"].permute(0, 1, 2, 4, 3).reshape(n_layers, -1, d_model).contiguous(),
            "b_qkv": w["b_qkv"].reshape(n_layers, -1),
            "O": w["W_O"].flatten(1, 2).transpose(1, 2).contiguous(),
            "U": w["W_U"].T.contiguous()}
        if self.graph.mlps:
            self.lin["in"] = w["W_in"].transpose(1, 2).contiguous()
            self.lin["out"] = w["W_out"].transpose(1, 2).contiguous()

    # ---- the pieces of a layer, on [batch, pos, d_model] residuals ------------------------

    def qkv(self, layer: int, x: Tensor) -> Float[Tensor, "batch pos 3 head d_head"]:
        h = self.norm(x, self.ln1[layer])
        out = F.linear(h, self.lin["qkv"][layer], self.lin["b_qkv"][layer])
        return out.unflatten(-1, (len(CHANNELS), self.cfg.n_heads, -1))

    def pattern(self, layer: int, qkv: Tensor) -> Float[Tensor, "batch head dest_pos src_pos"]:
        """The attention pattern (after the softmax) from queries and keys."""
        q, k = self._rotated(qkv)[:2]
        scores = q @ k.transpose(-1, -2) / self.attn_scale
        if getattr(self, "causal", True):
            n_pos = scores.shape[-1]
            causal = torch.ones(n_pos, n_pos, dtype=torch.bool, device=scores.device).tril()
            scores = scores.masked_fill(~causal, float("-inf"))
        return scores.softmax(-1)

    def attend(self, layer: int, qkv: Tensor, pattern: Tensor | None = None
               ) -> Float[Tensor, "batch pos head d_head"]:
        """The heads' outputs ``z``, attending with ``pattern`` if given."""
        q, k, v = self._rotated(qkv)
        if pattern is None:
            z = F.scaled_dot_product_attention(q, k, v, is_causal=getattr(self, "causal", True),
                                               scale=1 / self.attn_scale)
        else:
            z = pattern.to(v.dtype) @ v
        return z.transpose(1, 2)

    def _rotated(self, qkv: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Queries, keys (rotated, in a rotary model) and values, ``[batch, head, pos, d_head]``."""
        q, k, v = qkv.unbind(2)
        if self.rotary is not None:
            q, k = self._rotate(q), self._rotate(k)
        return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)

    def attn_out(self, layer: int, z: Tensor) -> Float[Tensor, "batch pos d_model"]:
        """What attention adds to the residual: ``sum_h z_h @ W_O[h] + b_O``."""
        return F.linear(z.flatten(-2), self.lin["O"][layer], self.w["b_O"][layer])

    def mlp(self, layer: int, x: Tensor) -> Float[Tensor, "batch pos d_model"]:
        h = self.norm(x, self.ln2[layer])
        hidden = self.act(F.linear(h, self.lin["in"][layer], self.w["b_in"][layer]))
        return F.linear(hidden, self.lin["out"][layer], self.w["b_out"][layer])

    def unembed(self, x: Tensor) -> Float[Tensor, "batch pos d_vocab"]:
        """The logits (only at :attr:`read_positions` when set, NaN elsewhere)."""
        return self.read_logits(x, lambda h: F.linear(self.norm(h, self.ln_final),
                                                      self.lin["U"], self.w["b_U"]))

    # ---- passes -------------------------------------------------------------------------------

    @torch.no_grad()
    def forward(self, x: Float[Tensor, "batch pos d_model"], *, start: int = 0,
                stop: int | None = None, replace: Callable[[Stage], Tensor | None] | None = None,
                edit_qkv: Callable[[Stage, Tensor], Tensor] | None = None,
                record: Callable[[Stage, Tensor], None] | None = None) -> Tensor:
        """Run stages ``start`` to ``stop`` (default: to the logits) on the residual ``x``.

        Args:
            x: the residual stream entering stage ``start``.
            stop: return the residual entering this stage instead of the logits.
            replace: ``stage -> output`` to add instead of computing the stage (or None).
            edit_qkv: ``(stage, qkv) -> qkv``, applied before attention.
            record: ``(stage, residual)``, called as each stage is entered.
        """
        stop = len(self.stages) if stop is None else stop
        for stage in self.stages[start:stop]:
            if record is not None:
                record(stage, x)
            if stage.kind == "logits":
                return self.unembed(x)
            out = None if replace is None else replace(stage)
            if out is None and stage.kind == "attn":
                qkv = self.qkv(stage.layer, x)
                qkv = qkv if edit_qkv is None else edit_qkv(stage, qkv)
                out = self.attn_out(stage.layer, self.attend(stage.layer, qkv))
            elif out is None:
                out = self.mlp(stage.layer, x)
            x = x + out
        return x

    def run(self, tokens: Int[Tensor, "batch pos"], fwd_hooks: Sequence[FwdHook] = (),
            hooks: Sequence[str] = ()) -> tuple[ReplayState, Tensor, dict[str, Tensor]]:
        """Run ``tokens`` through the model (with ``fwd_hooks``, which may only act on the
        embeddings) and cache the replay of that run.

        Returns:
            The cached :class:`ReplayState`, the model's logits and its activations at
            ``hooks``.

        Raises:
            ValueError: the replay's logits differ from the model's (unsupported architecture).
        """
        embedding = [hook_name("embed")]
        rotary = self.cfg.positional_embedding_type == "rotary"
        if not rotary and hook_name("pos_embed") in self.model.hook_dict:
            embedding.append(hook_name("pos_embed"))
        angles = ["blocks.0.attn.hook_cos", "blocks.0.attn.hook_sin"] if rotary else []
        if any(name not in self.model.hook_dict for name in angles):
            raise ValueError("this rotary model does not expose its rotary angles "
                             "(blocks.0.attn.hook_cos/hook_sin); run with replay=False")
        logits, cache = run_cached(self.model, tokens, [*hooks, *embedding, *angles], fwd_hooks)
        self.rotary = tuple(cache[name][:, :, None].detach() for name in angles) or None
        embed = sum(cache[name] for name in embedding).detach()
        state = self._cache(embed)
        gap = (state.logits - logits).abs().max().item() / max(1.0, logits.abs().max().item())
        if gap > edge_model.LOGIT_TOLERANCE:
            raise ValueError(f"the replayed forward pass does not reproduce this model's logits "
                             f"(relative difference {gap:.2g}); run with replay=False")
        own = None if fwd_hooks else self._embed(tokens)
        self._checked = (own is not None and own.shape == embed.shape
                         and torch.allclose(own, embed, atol=1e-6), tuple(tokens.shape))
        if self._checked[0] and self._fingerprint is not None:
            _VOUCHED[self.model] = (self._fingerprint, self._checked[1], self.rotary)
        return state, logits, {name: cache[name] for name in hooks if name in cache}

    def start(self, tokens: Int[Tensor, "batch pos"], fwd_hooks: Sequence[FwdHook] = ()
              ) -> tuple[ReplayState, Tensor]:
        """A run to patch, and its logits: from the weights where a checked run of these
        weights vouches for it (:meth:`run_from_weights`), else checked (:meth:`run`)."""
        state = None if fwd_hooks else self.run_from_weights(tokens)
        if state is None:
            state, logits, _ = self.run(tokens, fwd_hooks)
            return state, logits
        return state, state.logits

    def run_from_weights(self, tokens: Int[Tensor, "batch pos"]) -> ReplayState | None:
        """Another run of prompts shaped like the last checked run's (:meth:`run`, in this
        sweep or an earlier one on the same weights), replayed from the weights alone (the
        model's own forward pass, and so its check, is skipped), or None where that run
        cannot vouch for this one (it had forward hooks, its embeddings differ from the
        weights', or its prompts had another shape): run :meth:`run` then."""
        if getattr(self, "_checked", None) != (True, tuple(tokens.shape)):
            return None
        return self._cache(self._embed(tokens))

    @torch.no_grad()
    def _embed(self, tokens: Tensor) -> Tensor | None:
        """The residual entering layer 0 from the embedding weights (None: not readable)."""
        try:
            x = self.model.W_E[tokens.to(self.model.W_E.device)]
            if self.cfg.positional_embedding_type != "rotary":
                x = x + self.model.W_pos[:tokens.shape[1]]
        except (AttributeError, IndexError):
            return None
        return x

    @torch.no_grad()
    def _cache(self, embed: Tensor) -> ReplayState:
        state = ReplayState(embed, [], [], [], [], [], [])
        x = embed
        for stage in self.stages:
            if stage.kind == "logits":
                state.final, state.logits = x, self.unembed(x)
                break
            if stage.kind == "attn":
                qkv = self.qkv(stage.layer, x)
                z = self.attend(stage.layer, qkv)
                out = self.attn_out(stage.layer, z)
                state.resid_pre.append(x)
                state.qkv.append(qkv)
                state.z.append(z)
                state.attn_out.append(out)
            else:
                out = self.mlp(stage.layer, x)
                state.resid_mid.append(x)
                state.mlp_out.append(out)
            x = x + out
        return state

    # ---- patched at one site --------------------------------------------------------------------

    def activation(self, state: ReplayState, site: str, layer: int) -> Tensor:
        """The run's activation at ``site`` and ``layer``, laid out as at its hook."""
        if site in CHANNELS:
            return state.qkv[layer][:, :, CHANNELS.index(site)]
        if site == "pattern":
            return self.pattern(layer, state.qkv[layer])
        if site == "resid_post":
            return state.resid_pre[layer + 1] if layer + 1 < self.cfg.n_layers else state.final
        return getattr(state, site)[layer]

    @torch.no_grad()
    def logits_after(self, state: ReplayState, site: str, layer: int,
                     acts: Tensor) -> Float[Tensor, "copy_batch pos d_vocab"]:
        """The logits of copies of ``state``'s run, copy ``i``'s activation at ``site`` and
        ``layer`` replaced by rows ``i * batch`` to ``(i + 1) * batch`` of ``acts``."""
        copies = len(acts) // len(state.embed)

        def repeated(t: Tensor) -> Tensor:
            return t.repeat(copies, *[1] * (t.ndim - 1))

        attn = self.index[Stage("attn", layer)]
        after = attn + 2 if self.graph.mlps else attn + 1  # the next layer (or the logits)
        if site == "resid_pre":
            return self.forward(acts, start=attn)
        if site == "resid_post":
            return self.forward(acts, start=after)
        if site == "mlp_out":
            return self.forward(repeated(state.resid_mid[layer]) + acts, start=after)
        if site == "attn_out":
            out = acts
        elif site == "z":
            out = self.attn_out(layer, acts)
        elif site == "pattern":
            out = self.attn_out(layer, self.attend(layer, repeated(state.qkv[layer]), acts))
        else:  # q, k, v
            qkv = repeated(state.qkv[layer])
            qkv[:, :, CHANNELS.index(site)] = acts
            out = self.attn_out(layer, self.attend(layer, qkv))
        return self.forward(repeated(state.resid_pre[layer]) + out, start=attn + 1)
