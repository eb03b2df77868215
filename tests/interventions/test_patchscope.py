"""Patchscope: patched hidden states decide the target's output as they should."""

import pytest
import torch

from mi_helpers.core import load_model
from mi_helpers.features.lens import lens_logits
from mi_helpers.interventions.patchscope import (identity_prompt, patchscope, patchscope_logits,
                                                 top1_agreement)

SOURCE = "the old dog follows Mary in the house"
OTHER = "le chat voit Paul sur la table"


@pytest.fixture(scope="module", params=["zoo", "gpt2"])
def model(request, tiny_model):
    return load_model("zoo-2l", device="cpu") if request.param == "zoo" else tiny_model


def test_last_layer_patch_reads_out_the_source(model):
    source, target = model.to_tokens([SOURCE]), model.to_tokens([OTHER])
    last = model.cfg.n_layers - 1
    out = patchscope(model, source, last, target, source_pos=3, target_pos=-1)
    with torch.no_grad():
        assert torch.allclose(out, model(source)[:, 3], atol=1e-5)  # nothing runs after it
        assert not torch.allclose(out, model(target)[:, -1], atol=1e-2)
    # and there it is exactly the logit lens
    assert torch.allclose(patchscope_logits(model, source, target, 3)[-1],
                          lens_logits(model, source)[-1, :, 3], atol=1e-5)


def test_patch_into_a_prompt_that_differs_only_at_that_position(model):
    """The target is the source with its last token changed; patching layer 0's residual
    at that position gives back the source's own output (later layers see the same
    context and the same state), while the unpatched target differs."""
    source = model.to_tokens([SOURCE])
    target = source.clone()
    target[0, -1] = source[0, 2]
    out = patchscope(model, source, 0, target, source_pos=-1, target_pos=-1)
    with torch.no_grad():
        assert torch.allclose(out, model(source)[:, -1], atol=1e-4)
        assert not torch.allclose(model(target)[:, -1], model(source)[:, -1], atol=1e-2)


def test_one_target_per_source_and_errors(model):
    source = model.to_tokens([SOURCE, OTHER])
    target = model.to_tokens(["the cat", "le chat"])
    assert patchscope(model, source, 0, target).shape == (2, model.cfg.d_vocab)
    with pytest.raises(ValueError, match="one per source"):
        patchscope(model, source, 0, model.to_tokens(["a", "b", "c"]))
    with pytest.raises(IndexError, match="layer 7"):
        patchscope(model, source, 7, target)
    with pytest.raises(ValueError, match="site"):
        patchscope(model, source, 0, target, site="z")
    with pytest.raises(IndexError, match="beyond the prompt"):
        patchscope(model, source, 0, target, target_pos=40)


def test_identity_prompt_and_agreement(model):
    assert identity_prompt(model, ["cat", "dog"]) == "cat cat . dog dog ."
    with pytest.raises(ValueError, match="two single-token"):
        identity_prompt(model, ["cat", "notawordinthevocabularyatall"])
    logits = torch.tensor([[[0.0, 1.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]]])  # layer batch
    reference = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    assert torch.equal(top1_agreement(logits, reference), torch.tensor([0.5, 1.0]))
    with pytest.raises(ValueError, match="same batch"):
        top1_agreement(logits, reference[:1])
