"""MI Roadmap helpers: small, tested tools for the curriculum's notebooks.

One module per concept: :mod:`~mi_helpers.models` (load the zoo or a hub model),
:mod:`~mi_helpers.cache` (caching, residual-stream decomposition),
:mod:`~mi_helpers.head_scores` (previous-token, duplicate-token, induction scores),
:mod:`~mi_helpers.ioi` (IOI prompts and the logit difference),
:mod:`~mi_helpers.lens` (logit lens and tuned lens), :mod:`~mi_helpers.probing`
(linear and sparse probes, causal checks along a probe direction),
:mod:`~mi_helpers.patching` (activation patching, ablations, causal tracing),
:mod:`~mi_helpers.path_patching` (sender -> receiver paths),
:mod:`~mi_helpers.circuits` (run only a circuit; faithfulness, completeness,
minimality; composition scores), :mod:`~mi_helpers.sae` (sparse autoencoders: one file
per architecture, training, metrics, SAELens-format files, toy ground truth),
:mod:`~mi_helpers.universality` (matching units across models),
:mod:`~mi_helpers.text` (text datasets from the zoo corpus for any tokenizer),
:mod:`~mi_helpers.viz` (offline-safe visualisations), :mod:`~mi_helpers.zoo` (the
model zoo) and :mod:`~mi_helpers.runner` (``python -m mi_helpers run``).

Axis names, used in every tensor annotation::

    batch      prompts in a batch          pos        token position
    layer      transformer block           head       attention head
    d_model    residual stream width       d_head     one head's width
    d_mlp      MLP hidden width            d_vocab    vocabulary size
    d_sae      SAE dictionary size         dest_pos   attending position (query)
    src_pos    attended-to position (key)  component  a term of a sum
    d_in       an SAE's input width        feature    a ground-truth toy feature
    n          activations (tokens) flattened from batch x pos
    unit       a neuron, latent or direction being compared

A scalar is annotated with an empty string, e.g. ``Float[Tensor, ""]``.
"""

from .models import default_device, load_model, zoo_names

__all__ = ["default_device", "load_model", "zoo_names"]
__version__ = "0.1.0"
