"""Interchange interventions: agreement with transformer-lens 4.3, the algebra, errors, no leaks."""

import pytest
import torch
from transformer_lens.tools.analysis import interchange as tl

from mi_helpers.core import hook_name, load_model
from mi_helpers.interventions.bases import diffmean_basis, random_basis
from mi_helpers.interventions.subspaces import (check_basis, interchange, interchange_logits,
                                                orthonormal_basis, principal_angles,
                                                source_activations)

BASE = ["When Mary and John went to the store , John gave a drink to",
        "the old dog follows Mary in the house",
        "le chat voit Mary dans la maison et"]
SOURCE = ["When Anna and Paul went to the store , Anna gave a drink to",
          "le chat voit Paul sur la table",
          "the big cat sees John near the garden"]


@pytest.fixture(scope="module", params=["zoo", "gpt2"])
def model(request, tiny_model):
    return load_model("zoo-2l", device="cpu") if request.param == "zoo" else tiny_model


def _pairs(model):
    tokens = model.to_tokens(BASE + SOURCE)  # right-padded to one length
    ends = torch.tensor([len(model.to_tokens(p)[0]) - 1 for p in BASE + SOURCE])
    n = len(BASE)
    return tokens[:n], tokens[n:], ends[:n], ends[n:]


def _tl_logits(model, hook, intervention, base, source, base_end, source_end):
    def task(tokens):  # last-token logits of the rows of ``base`` being run
        return model(tokens)[torch.arange(len(tokens)), base_end[:len(tokens)]]

    acts = tl.collect_activations(model, hook, source, task, positions=source_end)
    return tl.intervened_logits(model, hook, intervention, base, acts, task, positions=base_end)


@pytest.mark.parametrize("layer", [0, 1])
def test_interchange_agrees_with_transformer_lens(model, layer):
    base, source, base_end, source_end = _pairs(model)
    hook = hook_name("resid_post", layer)
    basis = random_basis(model.cfg.d_model, 3, seed=1)
    ours = interchange_logits(model, base, source, hook, basis, positions=base_end,
                              source_positions=source_end)[torch.arange(len(base)), base_end]
    theirs = _tl_logits(model, hook, tl.SubspaceInterchange(basis), base, source, base_end,
                        source_end)
    assert torch.allclose(ours, theirs, atol=1e-6)
    # and the intervention did something (a no-op would agree with a no-op)
    with torch.no_grad():
        plain = model(base)[torch.arange(len(base)), base_end]
    assert (ours - plain).abs().max() > 1e-2


def test_norm_matched_placebo_agrees_with_transformer_lens(model):
    base, source, base_end, source_end = _pairs(model)
    hook = hook_name("resid_post", 0)
    acts = source_activations(model, torch.cat([base, source]), hook,
                              torch.cat([base_end, source_end]))[hook]
    reference = diffmean_basis(acts, torch.tensor([0, 0, 1, 0, 1, 0]))
    placebo = random_basis(model.cfg.d_model, 1, seed=2)
    ours = interchange_logits(model, base, source, hook, placebo, positions=base_end,
                              source_positions=source_end, match_norm_of=reference)
    ours = ours[torch.arange(len(base)), base_end]
    theirs = _tl_logits(model, hook,
                        tl.NormMatchedPlacebo(tl.SubspaceInterchange(reference), placebo),
                        base, source, base_end, source_end)
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_full_basis_is_activation_patching():
    model = load_model("zoo-2l", device="cpu")
    base, source = model.to_tokens(BASE[:1]), model.to_tokens(SOURCE[:1])
    eye = torch.eye(model.cfg.d_model)
    # every position of the last residual swapped: exactly the source's logits
    out = interchange_logits(model, base, source, hook_name("resid_post", 1), eye)
    with torch.no_grad():
        assert torch.allclose(out, model(source), atol=1e-5)
    # an empty move (strength 0) leaves the base alone
    out = interchange_logits(model, base, source, hook_name("resid_post", 0), eye, strength=0.0)
    with torch.no_grad():
        assert torch.allclose(out, model(base), atol=1e-6)


def test_interchange_edits_only_the_subspace():
    model = load_model("zoo-2l", device="cpu")
    base, source = model.to_tokens(BASE[:1]), model.to_tokens(SOURCE[:1])
    hook = hook_name("resid_post", 0)
    basis = random_basis(model.cfg.d_model, 2, seed=0)
    seen = {}
    src = source_activations(model, source, hook, positions=-1)
    with interchange(model, hook, basis, src, positions=-1):
        model.run_with_hooks(base, fwd_hooks=[(hook_name("resid_pre", 1),
                                               lambda a, hook: seen.setdefault("x", a.clone()))])
    _, cache = model.run_with_cache(base)
    before = cache[hook][0]
    after = seen["x"][0]
    assert torch.allclose(after[:-1], before[:-1])  # other positions untouched
    assert torch.allclose(after[-1] @ basis, src[hook][0] @ basis, atol=1e-5)  # inside: source
    outside = torch.eye(model.cfg.d_model) - basis @ basis.T
    assert torch.allclose(after[-1] @ outside, before[-1] @ outside, atol=1e-5)  # outside: base


def test_interchange_never_leaks_hooks():
    model = load_model("zoo-2l", device="cpu")
    base = model.to_tokens(BASE[:1])
    hook = hook_name("resid_post", 0)
    with torch.no_grad():
        clean = model(base)
    src = {hook: torch.zeros(1, model.cfg.d_model)}
    with pytest.raises(RuntimeError, match="boom"):
        with interchange(model, hook, torch.eye(model.cfg.d_model), src, positions=-1):
            raise RuntimeError("boom")
    with torch.no_grad():
        assert torch.equal(model(base), clean)


def test_clear_errors(tiny_model):
    model = tiny_model
    base, source, base_end, source_end = _pairs(model)
    hook, d = hook_name("resid_post", 0), model.cfg.d_model
    basis = random_basis(d, 2)
    with pytest.raises(KeyError, match="no hook named"):
        interchange_logits(model, base, source, "blocks.9.hook_resid_post", basis, base_end)
    with pytest.raises(IndexError, match="beyond the prompt"):
        interchange_logits(model, base, source, hook, basis, positions=base.shape[1] + 3)
    with pytest.raises(ValueError, match="n_dims=65"):
        check_basis(torch.randn(64, 65))
    with pytest.raises(ValueError, match="cannot be orthonormal"):
        interchange_logits(model, base, source, hook, torch.randn(d, d + 1), base_end)
    with pytest.raises(ValueError, match="not orthonormal"):
        interchange_logits(model, base, source, hook, torch.randn(d, 2), base_end)
    with pytest.raises(ValueError, match="width 16"):
        interchange_logits(model, base, source, hook, random_basis(16, 2), base_end)
    short = model.to_tokens(SOURCE[1:])[:, :5]
    longer = model.to_tokens(BASE[1:])
    with pytest.raises(ValueError, match="different lengths"):
        interchange_logits(model, longer, short, hook, basis)
    with pytest.raises(ValueError, match="one source per base"):
        interchange_logits(model, base, source[:2], hook, basis, base_end, source_end[:2])
    with pytest.raises(ValueError, match="positions on axis 1"):
        interchange_logits(model, base, source, hook_name("pattern", 0), basis, base_end)
    with pytest.raises(TypeError, match="float"):
        check_basis(torch.eye(d).long())


def test_pairs_of_different_lengths_work_with_explicit_positions(tiny_model):
    model = tiny_model
    base = model.to_tokens(BASE[1:2])
    source = model.to_tokens(SOURCE[1:2])[:, :4]
    out = interchange_logits(model, base, source, hook_name("resid_post", 0),
                             torch.eye(model.cfg.d_model), positions=-1, source_positions=-1)
    assert out.shape == (1, base.shape[1], model.cfg.d_vocab)


def test_orthonormal_basis_and_principal_angles():
    gen = torch.Generator().manual_seed(0)
    vectors = torch.randn(10, 3, generator=gen)
    basis = orthonormal_basis(vectors)
    assert torch.allclose(basis.T @ basis, torch.eye(3), atol=1e-5)
    assert torch.allclose(basis[:, 0], vectors[:, 0] / vectors[:, 0].norm(), atol=1e-6)
    # the same span in another basis: all angles 0; an orthogonal complement: 90
    rotated = orthonormal_basis(vectors @ torch.randn(3, 3, generator=gen))
    assert principal_angles(basis, rotated).max() < 0.1
    eye = torch.eye(4)
    assert torch.allclose(principal_angles(eye[:, :2], eye[:, 2:]), torch.tensor([90.0, 90.0]))
    tilted = orthonormal_basis(torch.tensor([[1.0], [1.0], [0.0], [0.0]]))
    assert torch.allclose(principal_angles(eye[:, :1], tilted), torch.tensor([45.0]), atol=1e-4)
    with pytest.raises(ValueError, match="linearly dependent"):
        orthonormal_basis(torch.tensor([[1.0, 2.0], [1.0, 2.0], [0.0, 0.0]]))


def test_interchange_on_one_head_of_hook_z():
    """Axes after pos are flattened: a coordinate basis on head 1's slice of ``z`` swaps
    exactly that head's output at that position."""
    model = load_model("zoo-2l", device="cpu")
    base, source = model.to_tokens(BASE[1:2]), model.to_tokens(SOURCE[1:2])
    hook = hook_name("z", 0)
    n_heads, d_head = model.cfg.n_heads, model.cfg.d_head
    basis = torch.eye(n_heads * d_head)[:, d_head:2 * d_head]  # head 1
    src = source_activations(model, source, hook, positions=-1)
    assert src[hook].shape == (1, n_heads * d_head)
    seen = {}
    with interchange(model, hook, basis, src, positions=-1):
        model.run_with_hooks(base, fwd_hooks=[(hook, lambda a, hook: seen.setdefault("z", a.clone()))])
    _, base_cache = model.run_with_cache(base)
    _, source_cache = model.run_with_cache(source)
    after, before = seen["z"][0], base_cache[hook][0]
    assert torch.allclose(after[-1, 1], source_cache[hook][0, -1, 1], atol=1e-6)
    assert torch.allclose(after[-1, [0, 2, 3]], before[-1, [0, 2, 3]])
    assert torch.allclose(after[:-1], before[:-1])
