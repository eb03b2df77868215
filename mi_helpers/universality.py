"""Universality: do different models learn the same neurons, features and heads?

Run two models on the **same tokens** and compare units by their activations: for each
unit of model A, its best Pearson correlation with any unit of model B (Li et al.,
2015; Gurnee et al., 2024 found only a few percent of GPT-2 neurons matched across seeds).
A high best correlation could be chance when B has many units, so every figure is
read against a **baseline**: the same matching against a randomly initialised model of
B's shape (:func:`random_like`).

The same matching applies to SAE latents (train an SAE on each model, compare latent
activations) and, after a least-squares map between the two residual streams, to their
decoder directions (:func:`mapped_direction_similarity`). For circuits, compare per-head
scores (:func:`mi_helpers.head_scores.head_scores`) model by model.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor

from .patching import cached_run

MLP_POST_HOOK = "blocks.{layer}.mlp.hook_post"


def check_same_tokenizer(model_a, model_b) -> None:
    """Raise ``ValueError`` unless both models map every token string to the same id."""
    vocab_a, vocab_b = model_a.tokenizer.get_vocab(), model_b.tokenizer.get_vocab()
    if vocab_a != vocab_b:
        only_a = sorted(set(vocab_a) - set(vocab_b))[:5]
        moved = sorted(t for t in set(vocab_a) & set(vocab_b) if vocab_a[t] != vocab_b[t])[:5]
        raise ValueError(f"the two models have different tokenizers (e.g. tokens only in A: "
                         f"{only_a}, tokens with other ids: {moved}); comparing activations "
                         f"token by token needs the same tokenizer")


def unit_activations(model, tokens: Int[Tensor, "batch pos"], hook: str, *,
                     skip_first: bool = True, batch_size: int = 64) -> Float[Tensor, "n unit"]:
    """Activations at ``hook`` for every token, flattened to ``[n_tokens, units]``.

    Args:
        hook: e.g. ``MLP_POST_HOOK.format(layer=0)`` (neurons) or ``"blocks.0.hook_resid_post"``.
        skip_first: drop position 0 (BOS), whose activations are outliers in most models.
    """
    rows = []
    for start in range(0, len(tokens), batch_size):
        _, cache = cached_run(model, tokens[start:start + batch_size], [hook])
        act = cache[hook]
        rows.append((act[:, 1:] if skip_first else act).reshape(-1, act.shape[-1]).float().cpu())
    return torch.cat(rows)


def shared_activations(model_a, model_b, tokens: Int[Tensor, "batch pos"], hook: str,
                       **kwargs) -> tuple[Float[Tensor, "n unit_a"], Float[Tensor, "n unit_b"]]:
    """Both models' activations at ``hook`` on the same tokens (same tokenizer required)."""
    check_same_tokenizer(model_a, model_b)
    return unit_activations(model_a, tokens, hook, **kwargs), unit_activations(model_b, tokens, hook, **kwargs)


def correlation_matrix(acts_a: Float[Tensor, "n unit_a"], acts_b: Float[Tensor, "n unit_b"]
                       ) -> Float[Tensor, "unit_a unit_b"]:
    """Pearson correlation of every unit of A with every unit of B over the same rows.

    A unit that never varies (e.g. a dead neuron) correlates 0 with everything.
    """
    if acts_a.shape[0] != acts_b.shape[0]:
        raise ValueError(f"the activations cover {acts_a.shape[0]} and {acts_b.shape[0]} tokens; "
                         f"collect both on the same tokens")
    a = acts_a.double() - acts_a.double().mean(0)
    b = acts_b.double() - acts_b.double().mean(0)
    a = a / a.norm(dim=0).clamp_min(1e-12)
    b = b / b.norm(dim=0).clamp_min(1e-12)
    return (a.T @ b).float()


def best_matches(acts_a: Float[Tensor, "n unit_a"], acts_b: Float[Tensor, "n unit_b"]
                 ) -> tuple[Float[Tensor, "unit_a"], Int[Tensor, "unit_a"]]:
    """For each unit of A, its best correlation with any unit of B and that unit's index."""
    best = correlation_matrix(acts_a, acts_b).max(dim=1)
    return best.values, best.indices


def fraction_above(best: Float[Tensor, "unit"], threshold: float) -> float:
    """Fraction of units whose best correlation exceeds ``threshold``."""
    return (best > threshold).float().mean().item()


def random_like(model, seed: int = 0):
    """A randomly initialised model with ``model``'s architecture and tokenizer (a baseline).

    Saves a fresh Hugging Face model of the same config to a temporary folder (removed
    once loaded) and loads it like any local model, with ``model``'s BOS handling.
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    from .models import load_model

    source = getattr(model.cfg, "model_name", None)
    config = getattr(getattr(model, "original_model", None), "config", None)
    if config is None:
        config = AutoConfig.from_pretrained(source)
    torch.manual_seed(seed)
    fresh = AutoModelForCausalLM.from_config(config).eval()
    with tempfile.TemporaryDirectory(prefix="random-like-") as folder:  # loaded into memory
        fresh.save_pretrained(folder)
        model.tokenizer.save_pretrained(folder)
        baseline = load_model(folder, device=model.cfg.device)
    baseline.cfg.default_prepend_bos = model.cfg.default_prepend_bos
    return baseline


def residual_map(resid_a: Float[Tensor, "n d_model_a"], resid_b: Float[Tensor, "n d_model_b"]
                 ) -> Float[Tensor, "d_model_a d_model_b"]:
    """Least-squares linear map ``M`` with ``resid_a @ M ~ resid_b`` (on centred activations)."""
    a = resid_a.double() - resid_a.double().mean(0)
    b = resid_b.double() - resid_b.double().mean(0)
    return torch.linalg.lstsq(a, b).solution.float()


def mapped_direction_similarity(dirs_a: Float[Tensor, "unit d_model_a"],
                                dirs_b: Float[Tensor, "unit d_model_b"],
                                mapping: Float[Tensor, "d_model_a d_model_b"],
                                pairs: Int[Tensor, "unit"]) -> Float[Tensor, "unit"]:
    """Cosine between A's direction ``i`` mapped into B's space and B's direction ``pairs[i]``."""
    mapped = dirs_a @ mapping
    return torch.nn.functional.cosine_similarity(mapped, dirs_b[pairs], dim=-1)


def recurring_heads(scores_by_model: dict[str, Float[Tensor, "layer head"]], threshold: float
                    ) -> dict[str, list[tuple[int, int]]]:
    """The heads scoring above ``threshold`` in each model, as ``(layer, head)``."""
    return {name: [tuple(int(i) for i in divmod(int(f), s.shape[1]))
                   for f in (s.flatten() > threshold).nonzero().flatten()]
            for name, s in scores_by_model.items()}


def neuron_hooks(model, layers: Sequence[int] | None = None) -> list[str]:
    """The MLP neuron hooks (``mlp.hook_post``) of the given layers (default: all)."""
    layers = range(model.cfg.n_layers) if layers is None else layers
    return [MLP_POST_HOOK.format(layer=layer) for layer in layers]


def latent_centroids(latents_a: Float[Tensor, "n unit"], resid_b: Float[Tensor, "n d_model_b"]
                     ) -> Float[Tensor, "unit d_model_b"]:
    """Where each unit of A fires in B's residual space: B's centred residual, weighted by
    the unit's activation, averaged over tokens (zero for a unit that never fires).

    Compare it with B's matched decoder direction: unlike a linear map between the two
    residual streams, it needs no global alignment, only the shared tokens.
    """
    centred = resid_b.double() - resid_b.double().mean(0)
    weights = latents_a.double().clamp_min(0)
    return ((weights.T @ centred) / weights.sum(0).clamp_min(1e-12)[:, None]).float()


def map_quality(resid_a: Float[Tensor, "n d_model_a"], resid_b: Float[Tensor, "n d_model_b"],
                mapping: Float[Tensor, "d_model_a d_model_b"]) -> float:
    """R^2 of predicting B's centred residual from A's with ``mapping``."""
    a = resid_a.double() - resid_a.double().mean(0)
    b = resid_b.double() - resid_b.double().mean(0)
    return (1 - ((a @ mapping.double() - b) ** 2).sum() / (b ** 2).sum()).item()
