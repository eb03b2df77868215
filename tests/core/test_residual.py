import pytest
import torch

from mi_helpers.core.activations import run_cached
from mi_helpers.core.residual import residual_components, unembed


def test_residual_is_sum_of_components(tiny_model):
    tokens = tiny_model.to_tokens("the old dog follows Mary near the park .")
    logits, cache = tiny_model.run_with_cache(tokens)
    parts, labels = residual_components(cache, tiny_model.cfg.n_layers)
    assert labels == ["embed", "pos_embed", "L0 attn", "L0 mlp", "L1 attn", "L1 mlp"]
    final = cache[f"blocks.{tiny_model.cfg.n_layers - 1}.hook_resid_post"]
    assert torch.allclose(parts.sum(0), final, atol=1e-5)
    assert torch.allclose(unembed(tiny_model, final), logits, atol=1e-4)


def test_cache_only_named_hooks(tiny_model):
    tokens = tiny_model.to_tokens("Mary likes the cat .")
    _, cache = run_cached(tiny_model, tokens, ["blocks.0.attn.hook_pattern"])
    assert list(cache.keys()) == ["blocks.0.attn.hook_pattern"]


def test_unknown_hook_suggests_real_ones(tiny_model):
    with pytest.raises(KeyError, match="blocks.0.attn.hook_pattern"):
        run_cached(tiny_model, tiny_model.to_tokens("a"), ["blocks.0.attn.hook_patern"])
