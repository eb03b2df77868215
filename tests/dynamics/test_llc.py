"""The SGLD estimate of the local learning coefficient on losses whose LLC is known."""

import pytest
import torch

from mi_helpers.dynamics.llc import estimate_llc


class Point(torch.nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(d))  # the minimum w* = 0


def _estimate(loss_fn, d, **kwargs):
    settings = dict(steps=2000, burn_in=300, step_size=5e-4, gamma=0.1, n_beta=100.0,
                    n_chains=2, seed=0)
    return estimate_llc(Point(d), loss_fn, lambda: iter([None]), n=10_000, **{**settings, **kwargs})


# The LLC of a sum of losses of separate parameters is the sum of their LLCs, so many
# copies of a small problem in one chain give a precise estimate of a known total.

def test_quadratic_minimum_counts_half_per_parameter():
    """L = sum h_i w_i^2 / 2 at 0 in 200 dimensions: all quadratic, so the LLC is 100."""
    h = torch.linspace(0.5, 2.0, 200)
    estimate = _estimate(lambda m, _: 0.5 * (h * m.w ** 2).sum(), d=200)
    assert estimate.llc == pytest.approx(100.0, rel=0.05)
    assert estimate.init_loss == 0.0 and estimate.losses.shape == (2, 2000)


def test_degenerate_minimum_counts_less():
    """L = sum x_i^2 / 2 + y_i^4 over 100 pairs: a quartic direction counts 1/4, so the
    LLC is 75, not the 100 of a parameter count."""
    estimate = _estimate(lambda m, _: 0.5 * (m.w[::2] ** 2).sum() + (m.w[1::2] ** 4).sum(),
                         d=200, step_size=1e-3)
    assert estimate.llc == pytest.approx(75.0, rel=0.05)


def test_the_model_is_left_unchanged_and_bad_settings_fail():
    model = Point(3)
    estimate_llc(model, lambda m, _: (m.w ** 2).sum(), lambda: iter([None]), n=100, steps=5,
                 burn_in=1)
    assert torch.equal(model.w, torch.zeros(3))
    with pytest.raises(ValueError, match="leaves no steps"):
        estimate_llc(model, lambda m, _: m.w.sum(), lambda: iter([None]), n=100, steps=5, burn_in=5)
    with pytest.raises(ValueError, match="returned no batch"):
        estimate_llc(model, lambda m, _: m.w.sum(), lambda: iter([]), n=100, steps=5, burn_in=1)
    with pytest.raises(FloatingPointError, match="diverged"):
        estimate_llc(model, lambda m, _: (m.w ** 2).sum(), lambda: iter([None]), n=100,
                     steps=200, burn_in=1, step_size=10.0, gamma=0.0, n_beta=1e4)
