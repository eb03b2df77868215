"""The suite's SAE benchmarks: a training step against plain matrix products, and our
trainer against SAELens' on the same activations and architecture.

One training step of a ReLU (or TopK) SAE does five ``B x d_in x d_sae`` matrix products
(forward: encoder, decoder; backward: the decoder's gradient, the latents' gradient,
the encoder's gradient), ``10 * B * d_in * d_sae`` FLOPs. The baseline runs exactly
those five ``torch.mm`` calls with the same shapes, so ``time(five products) /
time(step)`` is the step's fraction of the machine's matmul FLOP/s.

SAELens pins ``transformer-lens<4``, so its trainer runs in its own virtual environment
(``benchmarks/saelens_trainer.py``, in a subprocess with the same torch threads); the
two trainers take turns, each timing its own ``fit`` on the same saved activations, and
report tokens per second.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from mi_helpers.features.sae import build_sae, train_sae
from mi_helpers.features.sae.training import SAETrainConfig, TrainHistory, _LoopState, _train_step

from .measure import ROOT, Row, alternate, profile_summary, ratios

__all__ = ["SAELENS_PYTHON", "matmul_row", "saelens_row"]

#: The SAELens environment's interpreter (``make saelens-env`` creates it), or $SAELENS_PYTHON.
SAELENS_PYTHON = Path(os.environ.get("SAELENS_PYTHON", ROOT / ".venv-saelens" / "bin" / "python"))
ARCH_KWARGS = {"relu": {}, "topk": {"k": 32}}
LR, L1 = 3e-4, 1.0


def _products(batch: int, d_in: int, d_sae: int):
    """The five products of one step, with the step's shapes and layouts."""
    x, grad_out = torch.randn(batch, d_in), torch.randn(batch, d_in)
    latents, grad_pre = torch.randn(batch, d_sae), torch.randn(batch, d_sae)
    W_enc, W_dec = torch.randn(d_in, d_sae), torch.randn(d_sae, d_in)
    pairs = [(x, W_enc), (latents, W_dec), (latents.T, grad_out), (grad_out, W_dec.T),
             (x.T, grad_pre)]

    def run():
        for a, b in pairs:
            torch.mm(a, b)
    return run


def _step(arch: str, batch: int, d_in: int, d_sae: int):
    """One real training step of our trainer (forward, losses, checks, backward, Adam)."""
    sae = build_sae(d_in=d_in, d_sae=d_sae, architecture=arch, **ARCH_KWARGS[arch])
    state = _LoopState(sae, SAETrainConfig(lr=LR), contextlib.nullcontext)
    x, history = torch.randn(batch, d_in), TrainHistory()
    return lambda: _train_step(state, x, 1.0, 0, history)


def matmul_row(arch: str, batch: int, d_in: int, d_sae: int, n_repeats: int) -> Row:
    """A training step's fraction of the matmul FLOP/s (target 0.5)."""
    step = _step(arch, batch, d_in, d_sae)
    times, _ = alternate({"step": step, "mm": _products(batch, d_in, d_sae)}, n_repeats)
    ratio, low, high = ratios(times["mm"], times["step"])
    gflop = 10 * batch * d_in * d_sae / 1e9
    med = sorted(times["step"])[len(times["step"]) // 2]
    row = Row("sae", f"{arch} SAE training step vs its 5 matmuls", "-",
              f"batch {batch}, d_in {d_in}, d_sae {d_sae}; {gflop / med:.0f} GFLOP/s",
              med, "5 x torch.mm, same shapes", sorted(times["mm"])[len(times["mm"]) // 2],
              ratio, low, high, 0.5, note="ratio = fraction of matmul FLOP/s")
    if row.met is False:
        row.profile = profile_summary(step)
    return row


def _activations(folder: Path, n_rows: int, d_in: int) -> Path:
    """Activations both trainers read: a fixed random low-rank-plus-noise sample."""
    gen = torch.Generator().manual_seed(0)
    basis = torch.randn(d_in // 4, d_in, generator=gen)
    acts = torch.randn(n_rows, d_in // 4, generator=gen) @ basis + 0.1 * torch.randn(
        n_rows, d_in, generator=gen)
    path = folder / "activations.safetensors"
    save_file({"acts": acts.contiguous()}, path)
    return path


def _ours(path: Path, arch: str, batch: int, d_sae: int, steps: int) -> float:
    """Seconds of our ``train_sae`` over ``steps`` batches (after a 2-step warm-up)."""
    from safetensors.torch import load_file

    acts = load_file(path)["acts"]

    def batches():
        while True:
            yield from acts.split(batch)

    def fit(n):
        sae = build_sae(d_in=acts.shape[1], d_sae=d_sae, architecture=arch, **ARCH_KWARGS[arch])
        start = time.perf_counter()
        train_sae(sae, batches(), steps=n, lr=LR, progress=False, b_dec_init=None,
                  log_every=n)
        return time.perf_counter() - start

    fit(2)
    return fit(steps)


def _saelens(path: Path, arch: str, batch: int, d_sae: int, steps: int) -> tuple[float, str]:
    """Seconds of SAELens' ``SAETrainer.fit`` over ``steps`` batches, and its version."""
    script = ROOT / "benchmarks" / "saelens_trainer.py"
    done = subprocess.run([str(SAELENS_PYTHON), str(script), str(path), arch, str(batch),
                           str(d_sae), str(steps), str(LR), str(L1), str(torch.get_num_threads())],
                          capture_output=True,
                          text=True, env={**os.environ, "WANDB_MODE": "disabled"})
    if done.returncode != 0:
        raise RuntimeError(f"SAELens trainer failed:\n{done.stderr[-2000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return out["seconds"], out["version"]


def saelens_row(arch: str, batch: int, d_in: int, d_sae: int, steps: int,
                n_repeats: int) -> Row | None:
    """Our trainer's tokens per second against SAELens' (target 1), or None without the
    SAELens environment."""
    if not SAELENS_PYTHON.exists():
        return None
    ours, theirs, version = [], [], "?"
    with tempfile.TemporaryDirectory() as folder:
        path = _activations(Path(folder), batch * 4, d_in)
        for _ in range(n_repeats):  # taking turns, so a busy moment slows both
            ours.append(_ours(path, arch, batch, d_sae, steps))
            seconds, version = _saelens(path, arch, batch, d_sae, steps)
            theirs.append(seconds)
    ratio, low, high = ratios(theirs, ours)
    tokens = steps * batch
    med_ours, med_theirs = sorted(ours)[len(ours) // 2], sorted(theirs)[len(theirs) // 2]
    return Row("sae", f"{arch} SAE training vs SAELens' trainer", "-",
               f"batch {batch}, d_in {d_in}, d_sae {d_sae}, {steps} steps; ours "
               f"{tokens / med_ours:,.0f} tokens/s, SAELens {tokens / med_theirs:,.0f}",
               med_ours, f"sae-lens {version} SAETrainer.fit", med_theirs, ratio, low, high,
               1.0, note="ratio = our tokens/s over SAELens'")
