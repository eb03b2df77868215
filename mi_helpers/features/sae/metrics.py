"""How good is an SAE? Sparsity, reconstruction, and what the model thinks of it.

* **L0**: the mean number of active latents per input (lower = sparser).
* **FVU**, fraction of variance unexplained: ``sum ||x - x_hat||^2 / sum ||x - mean(x)||^2``.
  0 is a perfect reconstruction; 1 is no better than predicting the mean activation.
* **CE loss recovered**: splice the reconstruction into the model at the SAE's hook and
  compare the next-token cross-entropy with the clean run and with the activation
  zero-ablated: ``(ce_zero - ce_sae) / (ce_zero - ce_clean)``. 1 = the model loses
  nothing, 0 = as bad as deleting the activation. Small reconstruction errors can matter
  a lot downstream, so this is the number to watch.
* **Feature density**: how often each latent fires. *Dead* latents never fire (wasted
  capacity), *dense* ones fire on more than ~10% of inputs (rarely interpretable). A
  histogram of ``log10(density)`` is the usual picture.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ...core.checks import check_tokens
from ...core.hooks import check_hook_names
from .base import SAE

__all__ = ["l0", "fvu", "feature_density", "dead_fraction", "dense_fraction", "sae_metrics",
           "ce_loss_recovered"]


def l0(latents: Float[Tensor, "batch d_sae"]) -> Float[Tensor, ""]:
    """Mean number of non-zero latents per input."""
    return (latents != 0).sum(-1).float().mean()


def fvu(x: Float[Tensor, "batch d_in"], reconstruction: Float[Tensor, "batch d_in"]
        ) -> Float[Tensor, ""]:
    """Fraction of variance unexplained: residual sum of squares over total (about the
    batch mean)."""
    x, reconstruction = x.float(), reconstruction.float()
    total = (x - x.mean(0)).pow(2).sum()
    if total == 0:
        raise ValueError("the activations do not vary across the batch, so FVU is undefined")
    return (x - reconstruction).pow(2).sum() / total


def feature_density(latents: Float[Tensor, "batch d_sae"]) -> Float[Tensor, "d_sae"]:
    """Fraction of inputs on which each latent is non-zero."""
    return (latents != 0).float().mean(0)


def dead_fraction(density: Float[Tensor, "d_sae"]) -> float:
    """Fraction of latents that never fired (density 0)."""
    return (density == 0).float().mean().item()


def dense_fraction(density: Float[Tensor, "d_sae"], threshold: float = 0.1) -> float:
    """Fraction of latents firing on more than ``threshold`` of the inputs."""
    return (density > threshold).float().mean().item()


@torch.no_grad()
def sae_metrics(sae: SAE, acts: Float[Tensor, "batch d_in"], chunk_size: int = 4096,
                dense_threshold: float = 0.1) -> dict:
    """L0, FVU, MSE, dead / dense fractions and per-latent density over ``acts``.

    Computed in chunks of ``chunk_size`` rows (the latents of all of ``acts`` are never
    held at once).

    Returns:
        ``{"l0", "fvu", "mse", "dead_fraction", "dense_fraction"}`` as floats and
        ``"density"``, a ``[d_sae]`` tensor (see :func:`feature_density`).
    """
    sae.check_input(acts)
    acts = acts.reshape(-1, sae.cfg.d_in)
    n = len(acts)
    counts = torch.zeros(sae.cfg.d_sae, device=acts.device)
    squared_error = 0.0
    for start in range(0, n, chunk_size):
        x = acts[start:start + chunk_size].to(sae.W_enc.device, sae.W_enc.dtype)
        latents = sae.encode(x)
        squared_error += (sae.decode(latents) - x).float().pow(2).sum().item()
        counts += (latents != 0).sum(0).to(counts.device)
    x = acts.float()
    total = (x - x.mean(0)).pow(2).sum().item()
    density = counts / n
    return {"l0": counts.sum().item() / n, "fvu": squared_error / total,
            "mse": squared_error / n, "dead_fraction": dead_fraction(density),
            "dense_fraction": dense_fraction(density, dense_threshold), "density": density.cpu()}


@torch.no_grad()
def ce_loss_recovered(model, sae: SAE, tokens: Int[Tensor, "batch pos"],
                      hook_name: str | None = None, drop_bos: bool | None = None,
                      batch_size: int = 32) -> dict[str, float]:
    """Next-token cross-entropy with the SAE's reconstruction spliced in at its hook.

    Args:
        model: a TransformerLens model.
        sae: the SAE; ``sae.cfg.hook_name`` is where it splices unless ``hook_name``.
        tokens: the evaluation tokens.
        hook_name: overrides ``sae.cfg.hook_name``.
        drop_bos: leave position 0 untouched (default ``sae.cfg.drop_bos``), in
            both the spliced and the zero-ablated run.
        batch_size: prompts per forward pass.

    Returns:
        ``{"ce_clean", "ce_sae", "ce_zero", "ce_recovered"}``, losses averaged over all
        predicted tokens; ``ce_recovered = (ce_zero - ce_sae) / (ce_zero - ce_clean)``.
    """
    hook_name = hook_name or sae.cfg.hook_name
    (hook_name,) = check_hook_names(model, [hook_name])
    tokens = check_tokens(model, tokens)
    first = 1 if (sae.cfg.drop_bos if drop_bos is None else drop_bos) else 0

    def splice(act, hook):
        out = act.clone()
        inputs = act[:, first:].to(sae.W_enc.device, sae.W_enc.dtype)
        out[:, first:] = sae.reconstruct(inputs).to(act.device, act.dtype)
        return out

    def zero(act, hook):
        out = act.clone()
        out[:, first:] = 0.0
        return out

    device = next(model.parameters()).device
    totals = {"ce_clean": 0.0, "ce_sae": 0.0, "ce_zero": 0.0}
    for start in range(0, len(tokens), batch_size):
        rows = tokens[start:start + batch_size].to(device)
        for key, hooks in (("ce_clean", []), ("ce_sae", [(hook_name, splice)]),
                           ("ce_zero", [(hook_name, zero)])):
            loss = model.run_with_hooks(rows, return_type="loss", loss_per_token=True,
                                        fwd_hooks=hooks)
            totals[key] += loss.sum().item()
    n_predicted = tokens.shape[0] * (tokens.shape[1] - 1)
    result = {key: value / n_predicted for key, value in totals.items()}
    gap = result["ce_zero"] - result["ce_clean"]
    result["ce_recovered"] = (result["ce_zero"] - result["ce_sae"]) / gap if gap else float("nan")
    return result
