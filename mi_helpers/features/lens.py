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

Layer ``l`` is the residual after block ``l`` (site ``resid_post``). At the last layer
both lenses return the model's own logits, exactly. The logit lens can read another
residual too: ``Lens(model, site="resid_mid")`` reads each block between its attention
and its MLP. Reading a single head's or MLP's output through the unembedding is direct
logit attribution (:mod:`mi_helpers.features.attribution`).

To compare lenses, :func:`kl_to_final` gives each layer's mean ``KL(final || lens)``;
:func:`top_tokens` and :func:`target_rank_and_prob` show what a layer predicts.
:func:`train_tuned_lens` fits the translators (Adam, on residuals cached once), and a
tuned lens is saved as safetensors plus a JSON config.

The compatibility mode of the bridge folds the final layer norm's weight and bias into
``W_U`` and ``b_U``, so ``ln_final`` only centres and divides; we still multiply by its
weight, which is all ones there.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from jaxtyping import Float, Int
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..core.activations import run_cached
from ..core.checks import (check_layer, check_pos, check_positions, check_positive, check_tokens,
                           check_type)
from ..core.hooks import layer_hooks
from ..core.metrics import kl_divergence, kl_from_log_probs
from ..core.residual import unembed
from ..core.training import TrainingGuard, frozen

__all__ = ["Lens", "TunedLens", "lens_logits", "lens_kl", "residual_stack", "kl_to_final",
           "top_tokens",
           "target_rank_and_prob", "train_tuned_lens"]

WEIGHTS_FILE = "tuned_lens.safetensors"
CONFIG_FILE = "tuned_lens.json"
#: :func:`lens_kl` sizes its passes so one pass's lens logits take about this many bytes.
LENS_PASS_BYTES = 2**28


class Lens(nn.Module):
    """The logit lens: decode a layer's residual stream with the model's own unembedding.

    Subclasses change only :meth:`translate`, the map applied to the residual before
    the final layer norm and unembedding; here it is the identity.

    Args:
        model: a TransformerLens model (or a bridge in compatibility mode).
        site: which residual the lens reads: ``"resid_post"`` (after each block),
            ``"resid_mid"`` (between attention and MLP) or ``"resid_pre"``.
    """

    def __init__(self, model, site: str = "resid_post"):
        super().__init__()
        self.__dict__["model"] = model  # kept out of parameters() and state_dict()
        if site not in ("resid_pre", "resid_mid", "resid_post"):
            raise ValueError(f"a lens reads the residual stream: site must be 'resid_pre', "
                             f"'resid_mid' or 'resid_post', not {site!r}")
        layer_hooks(model, site)  # fail now if the hooks do not exist
        self.site = site
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
    It reads ``resid_post``; the last layer keeps the identity, since
    there the lens already is the model's output. Train with :func:`train_tuned_lens`;
    save with :meth:`save`, reload with :meth:`load`.
    """

    def __init__(self, model):
        super().__init__(model, "resid_post")
        n, d = self.n_layers - 1, self.d_model
        like = {"device": model.cfg.device, "dtype": model.cfg.dtype}
        self.weight = nn.Parameter(torch.zeros(n, d, d, **like))  # layer d_model d_model
        self.bias = nn.Parameter(torch.zeros(n, d, **like))  # layer d_model

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
                  "site": self.site, "model_name": getattr(self.model.cfg, "model_name", None)}
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
        try:
            config = json.loads((directory / CONFIG_FILE).read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{directory / CONFIG_FILE} is not valid JSON ({err})") from err
        ours = {"n_layers": model.cfg.n_layers, "d_model": model.cfg.d_model}
        if any(config.get(key) != value for key, value in ours.items()):
            raise ValueError(f"this tuned lens was trained for {config} but the model has {ours}")
        lens = cls(model)
        tensors = load_file(str(directory / WEIGHTS_FILE), device=str(model.cfg.device))
        with torch.no_grad():
            lens.weight.copy_(tensors["weight"])
            lens.bias.copy_(tensors["bias"])
        return lens


def residual_stack(model, tokens: Int[Tensor, "batch pos"], site: str = "resid_post"
                   ) -> tuple[Float[Tensor, "batch pos d_vocab"],
                              Float[Tensor, "layer batch pos d_model"]]:
    """Run the model once, caching only one residual hook per layer.

    Args:
        model: a TransformerLens model.
        tokens: input token ids.
        site: ``"resid_post"`` (the default), ``"resid_mid"`` or ``"resid_pre"``.

    Returns:
        The model's logits and the site's activations stacked over layers.
    """
    names = layer_hooks(model, site)
    logits, cache = run_cached(model, tokens, names)
    return logits, torch.stack([cache[name] for name in names])


def _residuals(model, tokens: Int[Tensor, "batch pos"], site: str = "resid_post"
               ) -> Float[Tensor, "layer batch pos d_model"]:
    """:func:`residual_stack` without the logits: the pass stops before the unembedding."""
    names = layer_hooks(model, site)
    _, cache = run_cached(model, tokens, names, stop_early=True)
    return torch.stack([cache[name] for name in names])


def lens_logits(model, tokens: Int[Tensor, "batch pos"], lens: Lens | None = None,
                positions: int | Int[Tensor, "batch"] | None = None
                ) -> Float[Tensor, "layer batch *pos d_vocab"]:
    """A lens's next-token logits at every layer, at every position or at chosen ones.

    Memory grows with ``layer x batch x pos x d_vocab`` (4 GB for 100 prompts of 17 tokens
    on gpt2): read only the positions you need, or use :func:`lens_kl` for a KL over a dataset.

    Args:
        model: a TransformerLens model.
        tokens: input token ids.
        lens: the lens to read with; default the logit lens, ``Lens(model)``.
        positions: ``None`` for every position (``[layer, batch, pos, d_vocab]``); an int or
            one position per prompt for ``[layer, batch, d_vocab]``.

    Returns:
        Logits per layer; at the default site the last layer's are the model's logits.
    """
    lens = _check_lens(model, lens)
    resid = _residuals(model, tokens, lens.site)  # layer batch pos d_model
    if positions is not None:
        where = check_positions(positions, *resid.shape[1:3]).to(resid.device)
        resid = resid[:, torch.arange(resid.shape[1], device=resid.device), where]
    with torch.no_grad():
        return torch.stack([lens(resid[layer], layer) for layer in range(len(resid))])


def _check_lens(model, lens: Lens | None) -> Lens:
    """``lens`` (default the logit lens), checked to read this model's residual stream."""
    if lens is None:
        return Lens(model)
    check_type("lens", lens, Lens, "e.g. Lens(model), or a tuned lens from train_tuned_lens")
    other = lens.model
    if other is not model and (other.cfg.d_model != model.cfg.d_model
                               or other.cfg.n_layers != model.cfg.n_layers
                               or not torch.equal(other.W_U.to(model.W_U.device), model.W_U)):
        raise ValueError(f"this lens was built for another model ({other.cfg.n_layers} layers, "
                         f"d_model {other.cfg.d_model}, another unembedding); build or load the "
                         f"lens with this model")
    return lens


def lens_kl(model, tokens: Int[Tensor, "batch pos"], lens: Lens | None = None,
            batch_size: int | None = None) -> Float[Tensor, "layer"]:
    """Each layer's mean ``KL(final || lens)`` over every position of ``tokens``.

    The same as ``kl_to_final(lens_logits(...))``, but batch by batch, so memory does not
    grow with the dataset (what a 50k-token vocabulary needs).

    Args:
        model: a TransformerLens model.
        tokens: the sequences to score, ``[batch, pos]``.
        lens: the lens to score; default the logit lens.
        batch_size: prompts per pass; default as many as keep one pass's
            ``[layer, batch, pos, d_vocab]`` logits near ``LENS_PASS_BYTES`` (at most 16).

    Returns:
        ``[n_layers]``: the last entry is 0 at the default site (the lens is the output).
    """
    tokens = check_tokens(model, tokens)
    lens = _check_lens(model, lens)
    if batch_size is None:
        row_bytes = (model.cfg.n_layers + 1) * tokens.shape[1] * model.cfg.d_vocab * 4
        batch_size = max(1, min(16, LENS_PASS_BYTES // row_bytes))
    check_positive("batch_size", batch_size, integer=True)
    total = None
    for start in range(0, len(tokens), batch_size):
        rows = tokens[start:start + batch_size]
        part = kl_to_final(lens_logits(model, rows, lens)) * rows.numel()
        total = part if total is None else total + part
    return total / tokens.numel()


def top_tokens(model, logits: Float[Tensor, "layer pos d_vocab"], n: int = 5
               ) -> list[list[list[str]]]:
    """The ``n`` most likely tokens at every layer and position of one prompt.

    Args:
        model: the model whose tokenizer decodes the ids.
        logits: one prompt's lens logits, e.g. ``lens_logits(model, tokens)[:, 0]``.
        n: how many tokens per position.

    Returns:
        ``result[layer][pos]`` is a list of ``n`` strings, most likely first.
    """
    if logits.ndim != 3:
        raise ValueError(f"expected one prompt's logits [layer, pos, d_vocab], got shape "
                         f"{tuple(logits.shape)}; select a prompt first, e.g. logits[:, 0]")
    check_positive("n", n, integer=True)
    top = logits.topk(min(n, logits.shape[-1]), dim=-1).indices  # layer pos n
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


def kl_to_final(logits: Float[Tensor, "layer batch pos d_vocab"]) -> Float[Tensor, "layer"]:
    """Mean over prompts and positions of ``KL(final || layer)`` for each layer.

    The reference is the last layer, which for a lens reading ``hook_resid_post``
    (the default) is the model's output, so its own KL is zero.
    """
    if logits.ndim != 4:
        raise ValueError(f"expected lens logits [layer, batch, pos, d_vocab] (from lens_logits), "
                         f"got shape {tuple(logits.shape)}")
    return kl_divergence(logits[-1:], logits).mean(dim=(1, 2))


def _training_data(model, tokens: Int[Tensor, "batch pos"], batch_size: int
                   ) -> Float[Tensor, "layer n d_model"]:
    """Every layer's residual, one row for each of the ``n = batch * pos`` token positions
    (the final distribution is recomputed from the last layer's, step by step: storing it
    for every position would cost ``n x d_vocab`` floats)."""
    resids = [_residuals(model, tokens[start:start + batch_size]).flatten(1, 2)
              for start in range(0, len(tokens), batch_size)]  # layer (batch pos) d_model
    return torch.cat(resids, dim=1)


def _lens_loss(lens: Lens, resid: Float[Tensor, "layer batch d_model"]) -> Float[Tensor, ""]:
    """Mean over layers (all but the last) and tokens of ``KL(final || lens)``."""
    with torch.no_grad():
        final = lens(resid[-1], len(resid) - 1).log_softmax(-1)  # the model's own output
    kls = [kl_from_log_probs(final, lens(resid[layer], layer).log_softmax(-1)).mean()
           for layer in range(len(resid) - 1)]
    return torch.stack(kls).mean()


def train_tuned_lens(model, tokens: Int[Tensor, "batch pos"], steps: int = 300,
                     lr: float = 1e-2, tokens_per_step: int = 1024, seed: int = 0,
                     batch_size: int = 64, progress: bool = True
                     ) -> tuple[TunedLens, list[float]]:
    """Fit a :class:`TunedLens` so each layer's lens matches the final distribution.

    The residuals are computed once; each Adam step then draws
    ``tokens_per_step`` token positions and minimises the mean over layers of
    ``KL(final || lens)``. Only the translators learn; the model is frozen.

    Args:
        model: a TransformerLens model with at least two layers.
        tokens: training sequences (every position is a training example).
        steps: optimiser steps.
        lr: Adam learning rate.
        tokens_per_step: token positions per step.
        seed: seeds the sampling of positions.
        batch_size: prompts per forward pass while collecting residuals.
        progress: show a tqdm bar.

    Returns:
        The trained lens and the loss (mean KL over layers, in nats) at every step.

    Raises:
        TrainingError: the loss became non-finite or diverged (the lens then holds the
            translators of the last good step).
    """
    if model.cfg.n_layers < 2:
        raise ValueError("a one-layer model has nothing to tune: its only layer is the output")
    for name, value in (("steps", steps), ("tokens_per_step", tokens_per_step)):
        check_positive(name, value, integer=True)
    check_positive("lr", lr)
    lens = TunedLens(model)
    resid = _training_data(model, check_tokens(model, tokens), batch_size)
    gen = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(lens.parameters(), lr=lr)
    losses = []
    guard = TrainingGuard(lens.parameters(), "the tuned lens (error.result)", result=lens)
    with frozen(model):
        for step in tqdm(range(steps), desc="tuned lens", disable=not progress):
            idx = torch.randint(resid.shape[1], (tokens_per_step,), generator=gen).to(resid.device)
            loss = _lens_loss(lens, resid[:, idx])
            guard.check(loss, step)
            guard.keep(step)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
    return lens, losses
