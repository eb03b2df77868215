"""MI Roadmap helpers: small, tested tools for the curriculum's notebooks.

The folders follow the survey's roadmap, so each technique is found from its name:

* :mod:`~mi_helpers.core`: what every technique uses: loading models, hook names,
  reading activations, input checks, heads, sweep results, the residual stream, metrics
  on logits and the circuit graph;
* :mod:`~mi_helpers.features`: lenses, direct logit attribution, probing, sparse
  autoencoders (``features.sae``), dashboards and automatic interpretation;
* :mod:`~mi_helpers.circuits`: activation patching, ablation, causal tracing, path
  patching, circuit evaluation, composition and head scores, the IOI dataset;
* :mod:`~mi_helpers.interventions`: direction ablation and steering, interchange
  interventions on subspaces (DAS), Patchscope;
* :mod:`~mi_helpers.universality`: matching units and aligning models across seeds;
* :mod:`~mi_helpers.datasets`: generated text, repeated tokens, prompt helpers;
* :mod:`~mi_helpers.zoo`: the embedded model zoo (corpus, tokenizer, trainer, cards);
* :mod:`~mi_helpers.exercises`: the checks of the notebooks' exercises, and their build;
* :mod:`~mi_helpers.viz`: figures; :mod:`~mi_helpers.tools`: the notebook runner.

**Vocabulary.** Each word means one thing across the package:

====================  ==============================================================
word                  meaning
====================  ==============================================================
``site``              a layer-independent activation name, e.g. ``"z"``, ``"resid_post"``
``hook``              a concrete hook name, e.g. ``"blocks.3.attn.hook_z"``
``hooks``             a list of hook names (never people's names)
``names``             people's names in prompts (IOI)
``Head``              ``Head(layer, head)``, labelled ``"L3H1"``
``batch_size``        prompts per forward pass of the model
``patches_per_pass``  copies of the prompt batch, each patched differently, per pass of a sweep
``memory_budget``     bytes one pass of a sweep may use (how many patches share it)
``replay``            rerun a sweep's patched passes from a cached run (``False``: model hooks)
``acts_per_batch``    activations (one per token) per SAE training batch
``drop_bos``          leave out position 0 (the BOS token)
``mode``              patching's ``"denoise"`` or ``"noise"``
``direction``         a vector in an activation space (never a patching mode)
``scale``             how far to steer along a direction, in activation units
``k``                 a TopK SAE's active latents per input (only)
``n``, ``n_top``      how many items to return (tokens, contexts, ...)
``n_dims``            how many dimensions a sparse probe or a subspace (basis) has
``noise_scale``       causal tracing's noise, in embedding standard deviations
``metric``            logits ``[batch, pos, d_vocab]`` -> a scalar; a ``PositionMetric``
                      also names the one position per prompt it reads
``stop_early``        a pass that keeps no logits stops after the last block it reads
====================  ==============================================================

**Axis names**, used in every tensor annotation::

    batch      prompts in a batch          pos        token position
    layer      transformer block           head       attention head
    d_model    residual stream width       d_head     one head's width
    d_mlp      MLP hidden width            d_vocab    vocabulary size
    d_sae      SAE dictionary size         dest_pos   attending position (query)
    src_pos    attended-to position (key)  component  a term of a sum
    d_in       an SAE's input width        feature    a ground-truth toy feature
    n          activations (tokens) flattened from batch x pos
    unit       a neuron, latent or direction being compared
    n_dims     a subspace basis's columns  class, word  a causal model's output classes, their words
    edge       an edge of a circuit graph

A scalar is annotated with an empty string, e.g. ``Float[Tensor, ""]``.
"""

from .core.models import default_device, load_model, zoo_names

__all__ = ["default_device", "load_model", "zoo_names"]
__version__ = "0.2.0"
