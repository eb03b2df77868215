"""Check our SGLD LLC estimator against devinterp's SGLD optimiser, step for step.

devinterp is not a dependency (it pulls in wandb, datasets, zarr, ...); run this in a
separate environment that has it, e.g. ``/work/venvs/issue-20``::

    PYTHONPATH=. /work/venvs/issue-20/bin/python benchmarks/llc_vs_devinterp.py

Both implement ``w <- w - (eps / 2) (n beta grad L + gamma (w - w*)) + sqrt(eps) N(0, 1)``;
fed the same noise, the chains must agree to float precision, and so must the LLC.
"""

import warnings

import torch
from devinterp.optim.sgld import SGLD

from mi_helpers.dynamics.llc import estimate_llc

warnings.filterwarnings("ignore")
EPS, GAMMA, NBETA, STEPS, SEED = 1e-3, 0.1, 100.0, 500, 0


class Point(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(50))


def loss_fn(model, _batch):
    return 0.5 * (model.w[::2] ** 2).sum() + (model.w[1::2] ** 4).sum()


def devinterp_chain():
    model = Point()
    opt = SGLD(model.parameters(), lr=EPS, localization=GAMMA, nbeta=NBETA)
    gen, losses = torch.Generator().manual_seed(SEED), []
    for _ in range(STEPS):
        opt.zero_grad()
        loss = loss_fn(model, None)
        loss.backward()
        losses.append(loss.item())
        opt.step(noise_generator=gen)
    return torch.tensor(losses)


theirs = devinterp_chain()
ours = estimate_llc(Point(), loss_fn, lambda: iter([None]), n=1000, steps=STEPS, burn_in=100,
                    step_size=EPS, gamma=GAMMA, n_beta=NBETA, n_chains=1, seed=SEED)
diff = (ours.losses[0] - theirs).abs().max().item()
llc_theirs = NBETA * theirs[100:].mean().item()
print(f"max |loss difference| over {STEPS} steps: {diff:.1e}")
print(f"LLC ours {ours.llc:.4f}, devinterp's chain {llc_theirs:.4f} "
      "(the true LLC is 25 * 0.75 = 18.75)")
assert diff < 1e-4 and abs(ours.llc - llc_theirs) < 1e-3
