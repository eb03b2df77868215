"""Matching units across models: correlate their activations on the same tokens.

For each unit of model A (a neuron, an SAE latent), its best Pearson correlation with
any unit of model B, over the same tokens (Li et al., 2015). A high best correlation
can be chance when B has many units, so read every figure against a baseline
(:func:`mi_helpers.universality.baselines.random_like`).
"""

from __future__ import annotations

from collections.abc import Sequence

from jaxtyping import Float, Int
from torch import Tensor

from ..core.activations import collect_activations
from ..core.checks import check_model, check_type
from ..core.heads import Head, heads_above
from ..core.hooks import hook_name

__all__ = ["check_same_tokenizer", "shared_activations", "correlation_matrix", "best_matches",
           "fraction_above", "neuron_hooks", "recurring_heads"]


def check_same_tokenizer(model_a, model_b) -> None:
    """Raise ``ValueError`` unless both models map every token string to the same id."""
    check_model(model_a, "model_a", needs=("tokenizer",))
    check_model(model_b, "model_b", needs=("tokenizer",))
    vocab_a, vocab_b = model_a.tokenizer.get_vocab(), model_b.tokenizer.get_vocab()
    if vocab_a != vocab_b:
        only_a = sorted(set(vocab_a) - set(vocab_b))[:5]
        moved = sorted(t for t in set(vocab_a) & set(vocab_b) if vocab_a[t] != vocab_b[t])[:5]
        raise ValueError(f"the two models have different tokenizers (e.g. tokens only in A: "
                         f"{only_a}, tokens with other ids: {moved}); comparing activations "
                         f"token by token needs the same tokenizer")


def shared_activations(model_a, model_b, tokens: Int[Tensor, "batch pos"], hook: str,
                       drop_bos: bool = True, batch_size: int = 64
                       ) -> tuple[Float[Tensor, "n unit_a"], Float[Tensor, "n unit_b"]]:
    """Both models' activations at ``hook`` on the same tokens, one row per token (BOS
    dropped by default), as float32 on the CPU. The tokenizers must be the same."""
    check_same_tokenizer(model_a, model_b)
    return tuple(collect_activations(m, tokens, [hook], drop_bos=drop_bos,
                                     batch_size=batch_size)[hook].float()
                 for m in (model_a, model_b))


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
    """Fraction of units whose best correlation exceeds ``threshold``.

    Raises:
        ValueError: ``best`` is not one finite value per unit (e.g. the whole correlation
            matrix instead of :func:`best_matches`' first output), or is empty.
    """
    best = check_type("best", best, Tensor, "the first output of best_matches(acts_a, acts_b)")
    if best.ndim != 1 or len(best) == 0 or not best.isfinite().all():
        raise ValueError(f"best must be one finite correlation per unit (from best_matches), "
                         f"got shape {tuple(best.shape)}"
                         + ("" if best.isfinite().all() else " with NaN or inf"))
    return (best > threshold).float().mean().item()


def neuron_hooks(model, layers: Sequence[int] | None = None) -> list[str]:
    """The MLP neuron hooks (site ``mlp_post``) of the given layers (default: all)."""
    layers = range(model.cfg.n_layers) if layers is None else layers
    return [hook_name("mlp_post", layer) for layer in layers]


def recurring_heads(scores_by_model: dict[str, Float[Tensor, "layer head"]], threshold: float
                    ) -> dict[str, list[Head]]:
    """The heads scoring above ``threshold`` in each model."""
    check_type("scores_by_model", scores_by_model, dict,
               "map each model's name to its [layer, head] scores")
    return {name: heads_above(scores, threshold) for name, scores in scores_by_model.items()}
