"""Composition scores on planted weights: Q-, K- and V-composition differ by construction.

A layer-0 head writes along ``e1``. In layer 1, head 0 reads ``e1`` through its query
only, head 1 through its key only, head 2 through its value only, and head 3 reads
nothing of it. Each weight is scaled differently, so a score that is not normalised
by both norms exceeds 1, and K-composition computed like Q (the key reader not
transposed) gives head 0's score to head 1.
"""

from types import SimpleNamespace

import pytest
import torch

from mi_helpers.circuits.composition import composition_baseline, composition_scores

D_MODEL, D_HEAD = 6, 2


def e(i):
    return torch.eye(D_MODEL)[i]


def head(q, k, v, o):
    """Weights of one head; each argument a list of d_model vectors (one per d_head column)."""
    q, k, v, o = (torch.stack(vs, dim=-1) for vs in (q, k, v, o))  # d_model d_head
    return q, k, v, o.T  # W_O: d_head d_model


def planted_model():
    zero = torch.zeros(D_MODEL)
    writer = head([e(0), e(5)], [e(0), e(5)], [3 * e(2), zero], [e(1), zero])  # writes e1
    readers = [
        head([2 * e(1), zero], [e(3), zero], [e(4), zero], [e(4), zero]),  # query reads e1
        head([e(3), zero], [0.5 * e(1), zero], [e(4), zero], [e(4), zero]),  # key reads e1
        head([e(3), zero], [e(3), zero], [4 * e(1), zero], [e(4), zero]),  # value reads e1
        head([e(3), zero], [e(4), zero], [e(5), zero], [e(4), zero]),  # reads nothing of it
    ]
    heads = [[writer] * 4, readers]
    W_Q, W_K, W_V, W_O = (torch.stack([torch.stack([h[i] for h in layer]) for layer in heads])
                          for i in range(4))
    cfg = SimpleNamespace(d_model=D_MODEL, d_head=D_HEAD, n_layers=2, n_heads=4)
    return SimpleNamespace(W_Q=W_Q, W_K=W_K, W_V=W_V, W_O=W_O, cfg=cfg)


@pytest.mark.parametrize("kind, reader", [("Q", 0), ("K", 1), ("V", 2)])
def test_each_kind_finds_its_planted_reader(kind, reader):
    scores = composition_scores(planted_model(), kind)
    assert scores.shape == (2, 4, 2, 4)
    assert scores[1].isnan().all() and scores[:, :, 0].isnan().all()
    # rank-1 writer and reader that meet along e1: |OV R| = |OV| |R|, so the score is 1
    expected = torch.zeros(4)
    expected[reader] = 1.0
    assert torch.allclose(scores[0, 0, 1], expected, atol=1e-6), scores[0, 0, 1]


def test_scores_agree_with_the_formula_on_random_weights():
    gen = torch.Generator().manual_seed(0)
    model = planted_model()
    for name in ("W_Q", "W_K", "W_V", "W_O"):
        setattr(model, name, torch.randn(getattr(model, name).shape, generator=gen))
    for kind in ("Q", "K", "V"):
        scores = composition_scores(model, kind)
        ov = model.W_V[0, 1] @ model.W_O[0, 1]
        qk = model.W_Q[1, 2] @ model.W_K[1, 2].T
        reader = {"Q": qk, "K": qk.T, "V": model.W_V[1, 2] @ model.W_O[1, 2]}[kind]
        expected = torch.linalg.matrix_norm(ov @ reader) / (
            torch.linalg.matrix_norm(ov) * torch.linalg.matrix_norm(reader))
        assert scores[0, 1, 1, 2].item() == pytest.approx(expected.item(), rel=1e-5), kind
        assert 0 < scores[0, :, 1].min() and scores[0, :, 1].max() < 1


def test_baseline_is_the_mean_score_of_random_heads():
    model = planted_model()
    gen = torch.Generator().manual_seed(1)
    values = []
    for _ in range(400):
        ov, reader = (torch.randn(D_MODEL, D_HEAD, generator=gen)
                      @ torch.randn(D_HEAD, D_MODEL, generator=gen) for _ in range(2))
        values.append((torch.linalg.matrix_norm(ov @ reader)
                       / (torch.linalg.matrix_norm(ov) * torch.linalg.matrix_norm(reader))).item())
    independent = sum(values) / len(values)
    ours = composition_baseline(model, "K", n_samples=400)
    assert ours == pytest.approx(independent, abs=0.02)
    assert 0.2 < ours < 0.8
    assert composition_baseline(model, "Q", n_samples=5, seed=3) == \
        composition_baseline(model, "Q", n_samples=5, seed=3)
