"""Training never fails silently: the guard stops on NaN and divergence and restores the
last good parameters; the tuned lens and the zoo trainer use it."""

import pytest
import torch

from mi_helpers.core.training import (CollapsedError, DivergedError, NonFiniteLossError,
                                      TrainingError, TrainingGuard)


def test_guard_restores_the_last_good_step():
    w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    guard = TrainingGuard([w], "the toy")
    guard.check(torch.tensor(2.0), 0)
    guard.keep(0)
    with torch.no_grad():
        w += 5.0
    guard.check(1999.0, 1)  # below 1000x the first loss: fine
    with pytest.raises(DivergedError, match="step 2.*1000x the first step's 2.*lr") as info:
        guard.check(2001.0, 2)
    assert info.value.good_step == 0 and torch.equal(w.detach(), torch.tensor([1.0, 2.0]))
    with pytest.raises(NonFiniteLossError, match="not finite at step 3"):
        guard.check(float("nan"), 3)
    with pytest.raises(CollapsedError, match="dead"):
        guard.fail(CollapsedError, "everything is dead", "fix it", 4)
    assert issubclass(CollapsedError, TrainingError) and issubclass(TrainingError, FloatingPointError)


def test_tuned_lens_stops_when_its_loss_is_not_finite(tiny_model, monkeypatch):
    """The final layer norm bounds the lens loss, so a failure shows as NaN (here injected
    at step 3): training stops there and the lens keeps the translators that gave step 2."""
    from mi_helpers.features import lens as lens_module
    real, calls, weights = lens_module._lens_loss, [], []

    def flaky(lens, *args):
        calls.append(1)
        weights.append(lens.weight.detach().clone())
        loss = real(lens, *args)
        return loss * float("nan") if len(calls) == 4 else loss

    monkeypatch.setattr(lens_module, "_lens_loss", flaky)
    tokens = tiny_model.to_tokens(["the old dog follows Mary near the park ."] * 4)
    with pytest.raises(NonFiniteLossError, match=r"step 3.*the tuned lens \(error.result\) holds.*step 2") as info:
        lens_module.train_tuned_lens(tiny_model, tokens, steps=10, lr=1e-2, tokens_per_step=16,
                                     progress=False)
    assert info.value.good_step == 2
    assert torch.equal(info.value.result.weight, weights[2])  # the translators of step 2


def test_zoo_training_stops_on_divergence(tmp_path):
    import dataclasses
    from mi_helpers.zoo.specs import ZOO_SPECS
    from mi_helpers.zoo.train import train_model
    spec = dataclasses.replace(ZOO_SPECS["zoo-2l"], d_model=16, n_head=2, n_ctx=16, batch_size=4,
                               lr=1e6, warmup=1)
    with pytest.raises(TrainingError, match="not saved"):
        train_model(spec, tmp_path / "out", steps=30, progress=False)
    assert not (tmp_path / "out").exists()


def test_frozen_turns_gradients_off_and_restores_each_flag_even_after_an_error():
    from mi_helpers.core.training import frozen
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    model[1].bias.requires_grad_(False)  # a parameter that was already frozen stays frozen
    before = [p.requires_grad for p in model.parameters()]
    with pytest.raises(RuntimeError, match="inside"):
        with frozen(model):
            assert not any(p.requires_grad for p in model.parameters())
            raise RuntimeError("inside")
    assert [p.requires_grad for p in model.parameters()] == before == [True, True, True, False]
