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
scores (:func:`mi_helpers.circuits.head_scores`) model by model.
"""

from .alignment import latent_centroids, map_quality, mapped_direction_similarity, residual_map
from .baselines import random_like
from .matching import (best_matches, check_same_tokenizer, correlation_matrix, fraction_above,
                       neuron_hooks, recurring_heads, shared_activations)

__all__ = [
    "check_same_tokenizer", "shared_activations", "correlation_matrix", "best_matches",
    "fraction_above", "neuron_hooks", "recurring_heads", "random_like",
    "residual_map", "map_quality", "mapped_direction_similarity", "latent_centroids",
]
