"""The logit lens and the tuned lens: reading each layer's residual stream as a guess.

The model's logits are ``unembed(ln_final(h))`` of the last residual stream ``h``. The
**logit lens** (nostalgebraist, 2020) applies the same final layer norm and unembedding
to an *earlier* residual ``h_l`` and asks: what would the model predict if it stopped
after layer ``l``? Early layers often use a basis the unembedding does not read, so the
logit lens can look like noise there even when the information is present. The **tuned
lens** (Belrose et al., 2023) first sends ``h_l`` through a learned affine *translator*
``h_l + A_l h_l + b_l``, trained so the lens distribution matches the model's final one
(it minimises ``KL(final || lens)``). With ``A_l = 0`` and ``b_l = 0`` the translator is
the identity and the tuned lens *is* the logit lens. So :class:`Lens` is the logit lens,
and :class:`TunedLens` is a small subclass that only adds translators.

Layer ``l`` is the residual after block ``l`` (``blocks.{l}.hook_resid_post``). At the
last layer both lenses return the model's own logits, exactly. The logit lens can read
another residual too: ``Lens(model, hook="blocks.{layer}.hook_resid_mid")`` reads each
block between its attention and its MLP.

The unembedding can also read a single *component* that writes into the residual
stream (the survey's "RS, head and FF" projections): one head's output ``z_h @ W_O[h]``
(:func:`head_logits`) or one MLP output (:func:`mlp_logits`). A component has no layer
norm of its own, so we centre it as the final layer norm centres, and divide by the
final layer norm's scale of the *full* residual at that position (``ln_final.hook_scale``,
cached from the same run). This is direct logit attribution: the projections of every
component, plus the bias terms (embeddings, ``b_O``, ``b_U``) that belong to no head or
MLP, add up to the final logits. Dividing a component by its own norm instead would
make a tiny component look as confident as the whole stream.

To compare lenses, :func:`kl_to_final` gives each layer's mean ``KL(final || lens)``;
:func:`top_k_tokens` and :func:`target_rank_and_prob` show what a layer predicts.
:func:`train_tuned_lens` fits the translators (Adam, on residuals cached once), and a
tuned lens is saved as safetensors plus a JSON config.

The compatibility mode of the bridge folds the final layer norm's weight and bias into
``W_U`` and ``b_U``, so ``ln_final`` only centres and divides; we still multiply by its
weight, which is all ones there.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from jaxtyping import Float, Int
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from tqdm.auto import tqdm

from .cache import check_hook_names, run_with_hooks_cached, unembed

RESID_HOOK = "blocks.{layer}.hook_resid_post"
SCALE_HOOK = "ln_final.hook_scale"
WEIGHTS_FILE = "tuned_lens.safetensors"
CONFIG_FILE = "tuned_lens.json"


def check_layer(model, layer: int) -> int:
    """Return ``layer`` as an index in ``[0, n_layers)`` (negative counts from the end).

    Raises:
        IndexError: the layer does not exist (the message gives the valid range).
    """
    n_layers = model.cfg.n_layers
    if not -n_layers <= layer < n_layers:
        raise IndexError(f"layer {layer} is out of range: this model has {n_layers} layers, "
                         f"so use 0..{n_layers - 1} (or -{n_layers}..-1 from the end)")
    return layer % n_layers


def check_pos(pos: int, n_pos: int) -> int:
    """Return ``pos`` as an index in ``[0, n_pos)`` (negative counts from the end).

    Raises:
        IndexError: the position is beyond the prompt (the message gives its length).
    """
    if not -n_pos <= pos < n_pos:
        raise IndexError(f"position {pos} is beyond the prompt: it has {n_pos} positions, "
                         f"so use 0..{n_pos - 1} (or -{n_pos}..-1 from the end)")
    return pos % n_pos


def layer_hook_names(model, hook: str) -> list[str]:
    """``hook`` (a template with ``{layer}``) for every layer, checked to exist.

    Raises:
        ValueError: no ``{layer}`` in the template. KeyError: a hook does not exist (the
            message names similar ones that do).
    """
    if "{layer}" not in hook:
        raise ValueError(f"hook {hook!r} must contain '{{layer}}', e.g. {RESID_HOOK!r}")
    return check_hook_names(model, [hook.format(layer=layer)
                                    for layer in range(model.cfg.n_layers)])


class Lens(nn.Module):
    """The logit lens: decode a layer's residual stream with the model's own unembedding.

    Subclasses change only :meth:`translate`, the map applied to the residual before
    the final layer norm and unembedding; here it is the identity.

    Args:
        model: a TransformerLens model (or a bridge in compatibility mode).
        hook: which residual the lens reads, as a template; e.g.
            ``"blocks.{layer}.hook_resid_mid"`` reads between attention and MLP.
    """

    def __init__(self, model, hook: str = RESID_HOOK):
        super().__init__()
        self.__dict__["model"] = model  # kept out of parameters() and state_dict()
        layer_hook_names(model, hook)  # fail now if the hooks do not exist
        self.hook = hook
        self.n_layers = model.cfg.n_layers
        self.d_model = model.cfg.d_model

    def translate(self, resid: Float[Tensor, "... d_model"], layer: int
                  ) -> Float[Tensor, "... d_model"]:
        """Map layer ``layer``'s residual into the last layer's basis (here: unchanged)."""
        return resid

    def forward(self, resid: Float[Tensor, "... d_model"], layer: int
                ) -> Float[Tensor, "... d_vocab"]:
        """Next-token logits read from layer ``layer``'s residual stream."""
        layer = check_layer(self.model, layer)
        return unembed(self.model, self.translate(resid, layer))


class TunedLens(Lens):
    """The tuned lens: one affine translator ``h + h @ A_l + b_l`` per layer but the last.

    ``A_l`` and ``b_l`` start at zero, so an untrained tuned lens equals the logit lens.
    It reads ``blocks.{layer}.hook_resid_post``; the last layer keeps the identity, since
    there the lens already is the model's output. Train with :func:`train_tuned_lens`;
    save with :meth:`save`, reload with :meth:`load`.
    """

    def __init__(self, model):
        super().__init__(model, RESID_HOOK)
        n, d = self.n_layers - 1, self.d_model
        device = model.cfg.device
        self.weight = nn.Parameter(torch.zeros(n, d, d, device=device))  # layer d_model d_model
        self.bias = nn.Parameter(torch.zeros(n, d, device=device))  # layer d_model

    def translate(self, resid: Float[Tensor, "... d_model"], layer: int
                  ) -> Float[Tensor, "... d_model"]:
        """Add the learned correction ``resid @ A_l + b_l`` (none at the last layer)."""
        if layer == self.n_layers - 1:
            return resid
        return resid + resid @ self.weight[layer] + self.bias[layer]

    def save(self, directory: str | Path) -> Path:
        """Write the translators (safetensors) and a small JSON config into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file({"weight": self.weight.detach().cpu().contiguous(),
                   "bias": self.bias.detach().cpu().contiguous()}, str(directory / WEIGHTS_FILE))
        config = {"kind": "TunedLens", "n_layers": self.n_layers, "d_model": self.d_model,
                  "hook": RESID_HOOK, "model_name": getattr(self.model.cfg, "model_name", None)}
        (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        return directory

    @classmethod
    def load(cls, directory: str | Path, model) -> TunedLens:
        """Load a lens written by :meth:`save`, checking that it fits ``model``.

        Raises:
            FileNotFoundError: a file is missing. ValueError: the shapes do not match.
        """
        directory = Path(directory)
        for name in (CONFIG_FILE, WEIGHTS_FILE):
            if not (directory / name).is_file():
                raise FileNotFoundError(f"no tuned lens here: {directory / name} is missing")
        config = json.loads((directory / CONFIG_FILE).read_text())
        ours = {"n_layers": model.cfg.n_layers, "d_model": model.cfg.d_model}
        if any(config.get(key) != value for key, value in ours.items()):
            raise ValueError(f"this tuned lens was trained for {config} but the model has {ours}")
        lens = cls(model)
        tensors = load_file(str(directory / WEIGHTS_FILE), device=str(model.cfg.device))
        with torch.no_grad():
            lens.weight.copy_(tensors["weight"])
            lens.bias.copy_(tensors["bias"])
        return lens


def residual_stack(model, tokens: Int[Tensor, "batch pos"], hook: str = RESID_HOOK
                   ) -> tuple[Float[Tensor, "batch pos d_vocab"],
                              Float[Tensor, "layer batch pos d_model"]]:
    """Run the model once, caching only one residual hook per layer.

    Args:
        model: a TransformerLens model.
        tokens: input token ids.
        hook: a template such as ``"blocks.{layer}.hook_resid_post"`` (the default).

    Returns:
        The model's logits and the hook's activations stacked over layers.
    """
    names = layer_hook_names(model, hook)
    logits, cache = run_with_hooks_cached(model, tokens, names)
    return logits, torch.stack([cache[name] for name in names])


def lens_logits(model, tokens: Int[Tensor, "batch pos"], lens: Lens | None = None
                ) -> Float[Tensor, "layer batch pos d_vocab"]:
    """A lens's next-token logits at every layer and position.

    Args:
        model: a TransformerLens model.
        tokens: input token ids.
        lens: the lens to read with; default the logit lens, ``Lens(model)``.

    Returns:
        Logits per layer; at the default hook the last layer's are the model's logits.
    """
    lens = Lens(model) if lens is None else lens
    _, resid = residual_stack(model, tokens, lens.hook)
    with torch.no_grad():
        return torch.stack([lens(resid[layer], layer) for layer in range(len(resid))])


def frozen_final_ln(model, x: Float[Tensor, "... batch pos d_model"],
                    scale: Float[Tensor, "batch pos 1"]) -> Float[Tensor, "... batch pos d_model"]:
    """The final layer norm as a *linear* map: centre ``x``, divide by a given scale.

    ``scale`` is ``ln_final.hook_scale`` of the full residual, so summing this over all
    components of the residual gives exactly ``ln_final`` of the residual (minus its bias).
    """
    ln = model.ln_final
    if not getattr(ln, "uses_rms_norm", False):
        x = x - x.mean(-1, keepdim=True)
    weight = getattr(ln, "weight", None)
    return x / scale * (1.0 if weight is None else weight)


def head_logits(model, tokens: Int[Tensor, "batch pos"]
                ) -> Float[Tensor, "layer head batch pos d_vocab"]:
    """Each head's output ``z_h @ W_O[h]``, read through the unembedding.

    The final layer norm is frozen at the full residual's scale (see the module
    docstring); ``b_O`` belongs to no head and ``b_U`` to no component, so neither is
    included.
    """
    n_layers = model.cfg.n_layers
    names = [f"blocks.{layer}.attn.hook_z" for layer in range(n_layers)]
    _, cache = run_with_hooks_cached(model, tokens, names + [SCALE_HOOK])
    z = torch.stack([cache[name] for name in names])  # layer batch pos head d_head
    with torch.no_grad():
        out = torch.einsum("lbphd,lhdm->lhbpm", z, model.W_O)  # layer head batch pos d_model
        return frozen_final_ln(model, out, cache[SCALE_HOOK]) @ model.W_U


def mlp_logits(model, tokens: Int[Tensor, "batch pos"]
               ) -> Float[Tensor, "layer batch pos d_vocab"]:
    """Each MLP's output (``blocks.{l}.hook_mlp_out``) read through the unembedding,
    with the final layer norm frozen at the full residual's scale; no ``b_U``."""
    names = [f"blocks.{layer}.hook_mlp_out" for layer in range(model.cfg.n_layers)]
    _, cache = run_with_hooks_cached(model, tokens, names + [SCALE_HOOK])
    out = torch.stack([cache[name] for name in names])  # layer batch pos d_model
    with torch.no_grad():
        return frozen_final_ln(model, out, cache[SCALE_HOOK]) @ model.W_U


def top_k_tokens(model, logits: Float[Tensor, "layer pos d_vocab"], k: int = 5
                 ) -> list[list[list[str]]]:
    """The ``k`` most likely tokens at every layer and position of one prompt.

    Args:
        model: the model whose tokenizer decodes the ids.
        logits: one prompt's lens logits, e.g. ``lens_logits(model, tokens)[:, 0]``.
        k: how many tokens per position.

    Returns:
        ``result[layer][pos]`` is a list of ``k`` strings, most likely first.
    """
    if logits.ndim != 3:
        raise ValueError(f"expected one prompt's logits [layer, pos, d_vocab], got shape "
                         f"{tuple(logits.shape)}; select a prompt first, e.g. logits[:, 0]")
    top = logits.topk(k, dim=-1).indices  # layer pos k
    decode = model.tokenizer.decode
    return [[[decode([i]) for i in row] for row in layer] for layer in top.tolist()]


def target_rank_and_prob(logits: Float[Tensor, "layer batch pos d_vocab"],
                         target: int | Int[Tensor, "batch"], pos: int = -1
                         ) -> tuple[Int[Tensor, "layer batch"], Float[Tensor, "layer batch"]]:
    """Rank (0 = top) and probability of a target token at one position, per layer.

    Args:
        logits: lens logits from :func:`lens_logits`.
        target: one token id, or one per prompt.
        pos: the position to read (``-1``: the last).

    Returns:
        The rank and the probability of the target, each of shape ``[layer, batch]``.
    """
    pos = check_pos(pos, logits.shape[2])
    at_pos = logits[:, :, pos]  # layer batch d_vocab
    target = torch.as_tensor(target, device=logits.device).expand(at_pos.shape[1])
    index = target[None, :, None].expand(at_pos.shape[0], -1, 1)
    target_logit = at_pos.gather(-1, index)  # layer batch 1
    rank = (at_pos > target_logit).sum(-1)
    prob = at_pos.softmax(-1).gather(-1, index).squeeze(-1)
    return rank, prob


def kl_divergence(final_logits: Float[Tensor, "... d_vocab"],
                  lens_logits: Float[Tensor, "... d_vocab"]) -> Float[Tensor, "..."]:
    """``KL(final || lens)`` in nats, per position: the extra surprise of predicting
    with the lens when the model's final distribution is the truth."""
    return _kl(final_logits.log_softmax(-1), lens_logits.log_softmax(-1))


def _kl(final_logprobs: Float[Tensor, "... d_vocab"], lens_logprobs: Float[Tensor, "... d_vocab"]
        ) -> Float[Tensor, "..."]:
    return (final_logprobs.exp() * (final_logprobs - lens_logprobs)).sum(-1)


def kl_to_final(logits: Float[Tensor, "layer batch pos d_vocab"]) -> Float[Tensor, "layer"]:
    """Mean over prompts and positions of ``KL(final || layer)`` for each layer.

    The reference is the last layer, which for a lens reading ``hook_resid_post``
    (the default) is the model's output, so its own KL is zero.
    """
    return kl_divergence(logits[-1:], logits).mean(dim=(1, 2))


@contextmanager
def _frozen(model) -> Iterator[None]:
    """Turn off gradients for the model's parameters, restoring them afterwards."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.requires_grad_(False)
    try:
        yield
    finally:
        for param, flag in flags:
            param.requires_grad_(flag)


def _training_data(model, tokens: Int[Tensor, "batch pos"], batch_size: int) -> tuple[
        Float[Tensor, "layer n d_model"], Float[Tensor, "n d_vocab"]]:
    """Residuals of every layer but the last, and the final log-probs, one row for each
    of the ``n = batch * pos`` token positions."""
    resids, finals = [], []
    for start in range(0, len(tokens), batch_size):
        logits, resid = residual_stack(model, tokens[start:start + batch_size])
        resids.append(resid[:-1].flatten(1, 2))  # layer (batch pos) d_model
        finals.append(logits.flatten(0, 1).log_softmax(-1))  # (batch pos) d_vocab
    return torch.cat(resids, dim=1), torch.cat(finals)


def _lens_loss(lens: Lens, resid: Float[Tensor, "layer batch d_model"],
               final_logprobs: Float[Tensor, "batch d_vocab"]) -> Float[Tensor, ""]:
    """Mean over layers (all but the last) and tokens of ``KL(final || lens)``."""
    kls = [_kl(final_logprobs, lens(resid[layer], layer).log_softmax(-1)).mean()
           for layer in range(len(resid))]
    return torch.stack(kls).mean()


def train_tuned_lens(model, tokens: Int[Tensor, "batch pos"], steps: int = 300,
                     lr: float = 1e-2, tokens_per_step: int = 1024, seed: int = 0,
                     batch_size: int = 64, progress: bool = True
                     ) -> tuple[TunedLens, list[float]]:
    """Fit a :class:`TunedLens` so each layer's lens matches the final distribution.

    The residuals and final log-probs are computed once; each Adam step then draws
    ``tokens_per_step`` token positions and minimises the mean over layers of
    ``KL(final || lens)``. Only the translators learn; the model is frozen.

    Args:
        model: a TransformerLens model with at least two layers.
        tokens: training sequences (every position is a training example).
        steps: optimiser steps.
        lr: Adam learning rate.
        tokens_per_step: token positions per step.
        seed: seeds the sampling of positions.
        batch_size: sequences per forward pass while collecting residuals.
        progress: show a tqdm bar.

    Returns:
        The trained lens and the loss (mean KL over layers, in nats) at every step.
    """
    if model.cfg.n_layers < 2:
        raise ValueError("a one-layer model has nothing to tune: its only layer is the output")
    lens = TunedLens(model)
    resid, final = _training_data(model, tokens, batch_size)
    gen = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(lens.parameters(), lr=lr)
    losses = []
    with _frozen(model):
        for _ in tqdm(range(steps), desc="tuned lens", disable=not progress):
            idx = torch.randint(final.shape[0], (tokens_per_step,), generator=gen).to(final.device)
            loss = _lens_loss(lens, resid[:, idx], final[idx])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
    return lens, losses
