"""The core every technique stands on: models, hook names, reading activations, input
checks, heads, sweep results, the residual stream and the circuit graph.

Model-specific calls (TransformerLens hooks and caches) stay behind this core, so a
second backend can plug in here later.
"""

from .activations import FwdHook, collect_activations, iter_activations, run_cached, token_rows
from .checks import as_tokens, check_layer, check_pos, check_tokens
from .graph import Circuit, CircuitGraph, Edge, Node
from .heads import Head, all_heads, heads_above, top_heads
from .hooks import SITES, check_hook_names, hook_name, layer_hooks
from .models import ZOO_DIR, default_device, load_model, zoo_names
from .residual import frozen_final_ln, residual_components, unembed
from .results import SweepResult, normalised_score

__all__ = [
    "load_model", "zoo_names", "default_device", "ZOO_DIR",
    "SITES", "hook_name", "layer_hooks", "check_hook_names",
    "FwdHook", "run_cached", "iter_activations", "collect_activations", "token_rows",
    "as_tokens", "check_tokens", "check_layer", "check_pos",
    "Head", "all_heads", "top_heads", "heads_above",
    "SweepResult", "normalised_score",
    "residual_components", "unembed", "frozen_final_ln",
    "Node", "Edge", "CircuitGraph", "Circuit",
]
