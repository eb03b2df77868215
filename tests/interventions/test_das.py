"""DAS and IIA on a model where the variable is planted in a known subspace."""

from types import SimpleNamespace

import pytest
import torch
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

from mi_helpers.features.sae import build_sae
from mi_helpers.interventions.bases import random_basis
from mi_helpers.interventions.comparison import compare_bases, mean_ci, summarise
from mi_helpers.interventions.das import (CounterfactualPairs, class_scores, iia,
                                          task_accuracy, train_das)
from mi_helpers.interventions.subspaces import orthonormal_basis, principal_angles

D, N_CLASSES, N_VALUE_TOKENS = 16, 4, 40
CORNERS = torch.tensor([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]])


class Planted(HookedRootModule):
    """Tokens ``N_CLASSES..`` carry a value in 0..3, written in a planted 2-D subspace
    ``U`` of ``hook_resid`` (plus large noise outside it); the output reads only ``U``:
    the logit of answer token ``j`` is ``-|x @ U - corner_j|^2``."""

    def __init__(self, seed: int = 123):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.U = orthonormal_basis(torch.randn(D, 2, generator=gen))
        self.values = torch.arange(N_VALUE_TOKENS) % N_CLASSES
        noise = torch.randn(N_VALUE_TOKENS, D, generator=gen) * 3.0
        noise = noise - (noise @ self.U) @ self.U.T  # outside the planted subspace
        embed = torch.zeros(N_CLASSES + N_VALUE_TOKENS, D)
        embed[N_CLASSES:] = CORNERS[self.values] @ self.U.T + noise
        self.embed = torch.nn.Parameter(embed)
        self.hook_resid = HookPoint()
        self.cfg = SimpleNamespace(d_vocab=len(embed), n_ctx=4, device="cpu", d_model=D,
                                   n_layers=1)
        self.setup()

    def forward(self, tokens):
        x = self.hook_resid(self.embed[tokens])  # batch pos d_model
        coords = x @ self.U.to(x.dtype)  # batch pos 2
        logits = torch.full((*tokens.shape, self.cfg.d_vocab), -30.0)
        logits[..., :N_CLASSES] = -(coords[..., None, :] - CORNERS).pow(2).sum(-1)
        return logits


def planted_pairs(model, n, seed):
    gen = torch.Generator().manual_seed(seed)
    base = torch.randint(N_CLASSES, model.cfg.d_vocab, (n, 1), generator=gen)
    source = torch.randint(N_CLASSES, model.cfg.d_vocab, (n, 1), generator=gen)
    base_values = model.values[base[:, 0] - N_CLASSES]
    source_values = model.values[source[:, 0] - N_CLASSES]
    zeros = torch.zeros(n, dtype=torch.long)
    answers = torch.arange(N_CLASSES).expand(n, -1)[..., None]
    return CounterfactualPairs(base, source, zeros, zeros, zeros, answers,
                               targets=source_values, base_labels=base_values,
                               base_values=(base_values >= 2).long(),
                               source_values=(source_values >= 2).long(), variable="value")


@pytest.fixture(scope="module")
def planted():
    model = Planted().eval()
    return model, planted_pairs(model, 400, seed=1)


def test_das_recovers_the_planted_subspace(planted):
    model, pairs = planted
    train, test = pairs.split(0.5, seed=0)
    assert task_accuracy(model, pairs) == 1.0
    result = train_das(model, train, "hook_resid", n_dims=2, epochs=30, lr=0.05,
                       batch_size=50, seed=0, progress=False)
    angles = principal_angles(result.basis, model.U)
    assert angles.max() < 10, angles
    assert iia(model, test, "hook_resid", result.basis) > 0.95
    assert result.losses[-1] < result.losses[0]
    # a random plane, and DAS with one direction too few, do not
    assert iia(model, test, "hook_resid", random_basis(D, 2, seed=3)) < 0.6
    one = train_das(model, train, "hook_resid", n_dims=1, epochs=30, lr=0.05, batch_size=50,
                    progress=False)
    assert iia(model, test, "hook_resid", one.basis) < 0.8


def test_das_is_seeded_and_restores_the_model(planted):
    model, pairs = planted
    model.embed.requires_grad_(True)
    a = train_das(model, pairs, "hook_resid", 2, epochs=2, seed=5, progress=False)
    b = train_das(model, pairs, "hook_resid", 2, epochs=2, seed=5, progress=False)
    assert torch.equal(a.basis, b.basis) and a.losses == b.losses
    assert model.embed.requires_grad and model.embed.grad is None
    assert torch.allclose(a.basis.T @ a.basis, torch.eye(2), atol=1e-5)


def test_iia_counts_the_counterfactual_labels(planted):
    model, pairs = planted
    # the whole space swaps the value: every pair gets the source's class
    assert iia(model, pairs, "hook_resid", torch.eye(D)) == 1.0
    # the planted subspace's orthogonal complement changes nothing: IIA = pairs whose
    # source value equals the base's
    complement = orthonormal_basis(torch.linalg.svd(torch.eye(D) - model.U @ model.U.T)[0][:, :D - 2])
    same = (pairs.targets == pairs.base_labels).float().mean().item()
    assert iia(model, pairs, "hook_resid", complement) == pytest.approx(same)


def test_class_scores_sum_over_each_class_words():
    logits = torch.log(torch.tensor([[[0.1, 0.2, 0.3, 0.4]]]))
    pairs = CounterfactualPairs(
        base=torch.zeros(1, 1).long(), source=torch.zeros(1, 1).long(),
        base_pos=torch.zeros(1).long(), source_pos=torch.zeros(1).long(),
        answer_pos=torch.zeros(1).long(), answers=torch.tensor([[[0, 1], [3, -1]]]),
        targets=torch.zeros(1).long(), base_labels=torch.zeros(1).long(),
        base_values=torch.zeros(1).long(), source_values=torch.zeros(1).long())
    scores = class_scores(logits, pairs)
    assert torch.allclose(scores.exp(), torch.tensor([[0.3, 0.4]]))


def test_pairs_check_their_fields_and_split_stratified(planted):
    model, pairs = planted
    with pytest.raises(ValueError, match="rows"):
        CounterfactualPairs(**{**pairs.__dict__, "targets": pairs.targets[:3]})
    with pytest.raises(ValueError, match="class indices"):
        CounterfactualPairs(**{**pairs.__dict__, "targets": pairs.targets + 10})
    train, test = pairs.split(0.25, seed=0)
    assert len(train) + len(test) == len(pairs)
    change = lambda p: (p.targets != p.base_labels).float().mean().item()  # noqa: E731
    assert abs(change(train) - change(test)) < 0.02


def test_train_das_errors(planted):
    model, pairs = planted
    with pytest.raises(ValueError, match="n_dims=17"):
        train_das(model, pairs, "hook_resid", n_dims=D + 1, progress=False)
    with pytest.raises(KeyError, match="no hook named"):
        train_das(model, pairs, "hook_nowhere", n_dims=2, progress=False)


def test_compare_bases_ranks_the_planted_model(planted):
    model, pairs = planted
    rows = compare_bases(model, pairs, "hook_resid", n_dims=(2,), seeds=(0, 1),
                         das_kwargs={"epochs": 30, "lr": 0.05, "batch_size": 50},
                         progress=False)
    table = summarise(rows)
    assert table["full", D]["mean"] == 1.0
    assert table["das", 2]["mean"] > 0.95
    assert table["random", 2]["mean"] < 0.6
    assert {family for family, _ in table} == {"full", "das", "pca", "neurons", "random"}
    sae = build_sae(d_in=D, d_sae=32, architecture="relu", hook_name="blocks.0.hook_resid_post")
    with pytest.raises(ValueError, match="reads blocks.0.hook_resid_post"):
        compare_bases(model, pairs, "hook_resid", saes={"other site": sae}, progress=False)


def test_mean_ci():
    mean, half = mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.303 / 3 ** 0.5, rel=1e-3)
    assert mean_ci([0.5])[1] != mean_ci([0.5])[1]  # nan: no spread from one seed
    with pytest.raises(ValueError):
        mean_ci([])
