"""Tracr: transformers compiled from RASP programs, whose circuits are known by construction.

Tracr (Lindner et al., 2023) compiles a RASP program into transformer weights. Which
head or MLP computes each operation, which residual dimensions carry each variable, and
so which edges of the circuit graph carry information, is known exactly: ground truth
against which circuit-discovery methods can be scored (as ACDC, Conmy et al. 2023, and
InterpBench, Gupta et al. 2024, do).

* :mod:`.files`: load a committed model into a ``TransformerBridge`` (no JAX needed);
* :mod:`.interpreter`: run the RASP program itself, with interventions;
* :mod:`.ground_truth`: the true edges, read from which dimensions each node uses;
* :mod:`.methods`: node and path patching as sweeps over the graph, and the metric the
  methods share; the edge-level methods (exact edge patching with zero or resample
  ablation, EAP, EAP-IG, ACDC) are the package's own (:mod:`mi_helpers.circuits`), whose
  edge engine runs Tracr's LayerNorm-free, bidirectional models;
* :mod:`.recovery`: score any method's node or edge scores against a known circuit;
* :mod:`.plot`: draw a circuit's edges, coloured by what a method found;
* :mod:`.interchange`: interchange interventions on residual subspaces (IIA);
* :mod:`.programs`, :mod:`.compile`: the RASP library and its compilation (need the
  optional extra ``pip install .[tracr]``; not imported here).
"""

from .files import TRACR_DIR, TracrModel, load_tracr, tracr_names

__all__ = ["TRACR_DIR", "TracrModel", "load_tracr", "tracr_names"]
