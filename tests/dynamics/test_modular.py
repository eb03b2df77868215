"""Modular addition: the data split, the model, the Fourier picture, the grokking trainer."""

import math

import pytest
import torch

from mi_helpers.dynamics import (GrokkingConfig, OneLayerTransformer,
                                 effective_frequencies, first_crossing, fourier_basis,
                                 frequency_norms, modular_addition_data, train_grokking,
                                 weight_norm)


def test_split_covers_the_table_once():
    data = modular_addition_data(7, 0.3, seed=1)
    assert len(data.train_tokens) == int(0.3 * 49) and len(data.test_tokens) == 49 - 14
    pairs = torch.cat([data.train_tokens, data.test_tokens])
    assert len({tuple(r.tolist()) for r in pairs}) == 49 and (pairs[:, 2] == 7).all()
    labels = torch.cat([data.train_labels, data.test_labels])
    assert torch.equal(labels, (pairs[:, 0] + pairs[:, 1]) % 7)
    assert not torch.equal(modular_addition_data(7, 0.3, seed=2).train_tokens, data.train_tokens)
    with pytest.raises(ValueError, match="empty train or test"):
        modular_addition_data(7, 1.0)
    with pytest.raises(ValueError, match="at least 3"):
        modular_addition_data(2, 0.5)


def _full_forward(model, tokens):
    """An independent forward pass over all three positions with a causal mask."""
    x = model.W_E[tokens] + model.W_pos
    B, T, C = x.shape
    H, dh = model.n_heads, C // model.n_heads
    q = model.W_Q(x).view(B, T, H, dh).transpose(1, 2)
    k, v = (w.view(B, T, H, dh).transpose(1, 2) for w in model.W_KV(x).split(C, dim=-1))
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(dh)
    scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    x = x + model.W_O((scores.softmax(-1) @ v).transpose(1, 2).reshape(B, T, C))
    x = x + model.mlp_out(torch.relu(model.mlp_in(x)))
    return (x @ model.W_U)[:, -1]


def test_last_position_model_equals_the_full_model():
    model = OneLayerTransformer(11, d_model=16, n_heads=4, d_mlp=32)
    tokens = modular_addition_data(11, 0.5).train_tokens
    torch.testing.assert_close(model(tokens), _full_forward(model, tokens))
    with pytest.raises(ValueError, match="not divisible"):
        OneLayerTransformer(11, d_model=10, n_heads=4)


def test_fourier_basis_is_orthonormal():
    for p in (7, 8, 53):
        basis = fourier_basis(p)
        torch.testing.assert_close(basis @ basis.T, torch.eye(p), atol=1e-5, rtol=0)


def test_frequency_norms_find_the_frequency_of_a_known_embedding():
    p, x = 13, torch.arange(13.0)
    embedding = torch.zeros(p, 4)
    embedding[:, 0] = 3 * torch.cos(2 * math.pi * 5 * x / p)
    embedding[:, 1] = 3 * torch.sin(2 * math.pi * 5 * x / p)
    embedding[:, 2] = torch.cos(2 * math.pi * 2 * x / p + 0.7)  # phase: cos and sin parts
    embedding[:, 3] = 1.0  # the constant is left out
    norms = frequency_norms(embedding)
    expected = torch.zeros(6)
    expected[4] = 3 * math.sqrt(p)  # k = 5: |cos| = |sin| = sqrt(p / 2) each
    expected[1] = math.sqrt(p / 2)  # k = 2
    torch.testing.assert_close(norms, expected, atol=1e-4, rtol=0)
    assert effective_frequencies(norms) == pytest.approx((18 + 1) ** 2 / (18 ** 2 + 1), rel=1e-4)


def test_effective_frequencies_counts_equal_shares():
    assert effective_frequencies(torch.tensor([0.0, 2.0, 0.0, 2.0, 2.0])) == pytest.approx(3.0)
    assert effective_frequencies(torch.ones(26)) == pytest.approx(26.0)
    with pytest.raises(ValueError, match="zero at every frequency"):
        effective_frequencies(torch.zeros(4))


def test_weight_norm():
    model = torch.nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.fill_(1.0), model.bias.fill_(2.0)
    assert weight_norm(model) == pytest.approx(math.sqrt(4 + 8))


def test_train_grokking_records_and_repeats_itself():
    config = GrokkingConfig(p=7, train_frac=0.5, d_model=8, n_heads=2, d_mlp=16, steps=12,
                            record_every=5)
    model, recorder, data = train_grokking(config, progress=False)
    assert recorder.steps.tolist() == [0, 5, 10, 12]
    assert recorder.series("frequency_norms").shape == (4, 3)
    assert recorder.records[-1]["train_accuracy"] == pytest.approx(
        (model(data.train_tokens).argmax(-1) == data.train_labels).float().mean().item(), abs=1e-4)
    _, again, _ = train_grokking(config, progress=False)
    assert again.records == recorder.records
    assert recorder.metadata["config"]["p"] == 7
    with pytest.raises(ValueError, match="weight_decay must be"):
        GrokkingConfig(weight_decay=-1.0)


def test_train_grokking_stops_on_a_nan_loss_with_the_last_good_weights(monkeypatch):
    """A NaN loss at step 3 (injected) stops training with step 2's weights restored."""
    import types

    import torch.nn.functional as F

    from mi_helpers.core.training import NonFiniteLossError
    from mi_helpers.dynamics import grokking
    calls, weights = [], []

    def flaky(logits, labels):  # the probes measure losses too, under no_grad
        calls.append(1) if torch.is_grad_enabled() else None
        loss = F.cross_entropy(logits, labels)
        return loss * float("nan") if len(calls) == 3 else loss

    monkeypatch.setattr(grokking, "F", types.SimpleNamespace(cross_entropy=flaky))
    real_keep = grokking.TrainingGuard.keep

    def keep(self, step):
        weights.append([p.detach().clone() for p in self.params])
        real_keep(self, step)

    monkeypatch.setattr(grokking.TrainingGuard, "keep", keep)
    config = GrokkingConfig(p=7, train_frac=0.5, d_model=8, n_heads=2, d_mlp=16, steps=12)
    with pytest.raises(NonFiniteLossError, match="modular-addition model") as info:
        train_grokking(config, progress=False)
    assert (info.value.step, info.value.good_step) == (3, 2)
    restored = list(info.value.result.parameters())
    assert all(torch.equal(a, b) for a, b in zip(restored, weights[-1]))


def test_first_crossing():
    steps, acc = torch.tensor([0, 5, 10]), torch.tensor([0.1, 0.6, 1.0])
    assert first_crossing(steps, acc, 0.5) == 5
    assert first_crossing(steps, acc, 1.0) == 10
    assert first_crossing(steps, acc, 1.1) is None
    assert first_crossing(steps, -acc, -0.5, below=True) == 5
    with pytest.raises(ValueError, match="one value per step"):
        first_crossing(steps, acc[:2], 0.5)
