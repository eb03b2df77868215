"""Circuits: locate the components that carry a behaviour, name their roles, evaluate them.

* :mod:`.patching`: activation patching (denoise / noise), by layer, position and head;
* :mod:`.ablation`: zero, mean and resample ablation; ablating chosen heads;
* :mod:`.tracing`: causal tracing with embedding noise;
* :mod:`.path_patching`: sender heads -> receivers, everything else frozen;
* :mod:`.evaluation`: faithfulness, completeness, minimality of a circuit;
* :mod:`.composition`: Q/K/V composition scores from the weights;
* :mod:`.head_scores`: previous-token, duplicate-token and induction scores;
* :mod:`.ioi`: the IOI dataset, its ABC corruption and metrics;
* circuits at scale, on the edges of :class:`~mi_helpers.core.graph.CircuitGraph`:
  :mod:`.edge_model` (the forward pass over the graph; :mod:`.edge_memory`, how much a
  pass holds; it also runs Tracr's LayerNorm-free, bidirectional models),
  :mod:`.edge_patching` (exact edge patching, the oracle, with resample or zero ablation),
  :mod:`.attribution` (attribution patching, EAP, EAP-IG), :mod:`.acdc` (ACDC),
  :mod:`.edge_circuits` (choosing circuits, faithfulness curves, MIB's CPR and CMD).
"""

from .ablation import ablation_patching, head_ablation_hooks, head_means
from .acdc import acdc
from .attribution import edge_attribution, node_attribution
from .composition import composition_baseline, composition_scores
from .edge_circuits import (MIB_BUDGETS, FaithfulnessCurve, cpr_cmd, edge_effects, edges_above,
                            faithfulness_curves, greedy_circuit, select_circuit, spearman,
                            top_edges)
from .edge_model import EdgeModel
from .edge_patching import circuit_metrics, edge_differences, edge_patching
from .evaluation import (CircuitEvaluator, completeness, faithfulness, minimality,
                         random_head_sets)
from .head_scores import attention_patterns, head_scores, offset_score
from .ioi import IOIDataset, abc_corruption, evaluate_ioi, ioi_dataset
from .path_patching import path_patching
from .patching import PatchTarget, activation_patching, patch_sweep
from .tracing import causal_tracing, embedding_noise_hook

__all__ = [
    "activation_patching", "patch_sweep", "PatchTarget",
    "ablation_patching", "head_ablation_hooks", "head_means",
    "causal_tracing", "embedding_noise_hook",
    "path_patching",
    "CircuitEvaluator", "faithfulness", "completeness", "minimality", "random_head_sets",
    "composition_scores", "composition_baseline",
    "head_scores", "attention_patterns", "offset_score",
    "IOIDataset", "ioi_dataset", "abc_corruption", "evaluate_ioi",
    "EdgeModel", "edge_patching", "circuit_metrics", "edge_differences",
    "edge_attribution", "node_attribution", "acdc",
    "edge_effects", "top_edges", "edges_above", "greedy_circuit", "select_circuit",
    "FaithfulnessCurve", "faithfulness_curves", "cpr_cmd", "spearman", "MIB_BUDGETS",
]
