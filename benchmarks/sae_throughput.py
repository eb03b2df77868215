"""SAE training-step throughput against plain matrix multiplication on the same machine.

One training step of ``mi_helpers.sae`` (the very step ``train_sae`` runs: forward,
losses, NaN check, parameter snapshot, backward, decoder-norm handling, fused Adam,
dead-latent bookkeeping) does five matrix products of ``B x d_in x d_sae`` each:

* forward: ``x @ W_enc`` and ``latents @ W_dec``;
* backward: ``latents.T @ grad_out`` (for ``W_dec``), ``grad_out @ W_dec.T`` (for the
  latents) and ``x.T @ grad_pre`` (for ``W_enc``); ``x`` needs no gradient.

So a step costs ``10 * B * d_in * d_sae`` FLOPs (the "6 N" rule of thumb counts a
gradient for the input too). The baseline runs exactly those five ``torch.mm`` calls,
with the same shapes and memory layouts, on preallocated tensors. Since both count the
same FLOPs, the ratio of FLOP/s is ``time(five matmuls) / time(one step)``: the fraction
of the step spent doing useful matrix arithmetic. Everything else (ReLU / TopK, the
loss terms, Adam, bookkeeping) is overhead.

Usage: ``python benchmarks/sae_throughput.py [--batch 4096] [--d-in 512] [--d-sae 4096]
[--arch relu topk ...] [--threads 1] [--repeats 5]``. Timings are medians over repeats;
on a machine shared with other jobs they are noisy, so compare ratios, not seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from mi_helpers.sae import build_sae  # noqa: E402
from mi_helpers.sae.training import _LoopState, _train_step  # noqa: E402

ARCH_KWARGS = {"relu": {}, "topk": {"k": 32}, "jumprelu": {}, "gated": {},
               "matryoshka": {"k": 32}}


def median_time(fn, steps: int, repeats: int) -> float:
    """Median over ``repeats`` of the mean time of ``steps`` calls (after one warm-up)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            fn()
        times.append((time.perf_counter() - start) / steps)
    return statistics.median(times)


def matmul_baseline(batch: int, d_in: int, d_sae: int):
    """The five products of one step, on preallocated tensors with the step's layouts."""
    x, grad_out = torch.randn(batch, d_in), torch.randn(batch, d_in)
    latents, grad_pre = torch.randn(batch, d_sae), torch.randn(batch, d_sae)
    W_enc, W_dec = torch.randn(d_in, d_sae), torch.randn(d_sae, d_in)
    out_bs, out_bd = torch.empty(batch, d_sae), torch.empty(batch, d_in)
    out_sd, out_ds = torch.empty(d_sae, d_in), torch.empty(d_in, d_sae)

    def run():
        torch.mm(x, W_enc, out=out_bs)                # forward: encoder
        torch.mm(latents, W_dec, out=out_bd)          # forward: decoder
        torch.mm(latents.T, grad_out, out=out_sd)     # backward: grad W_dec
        torch.mm(grad_out, W_dec.T, out=out_bs)       # backward: grad latents
        torch.mm(x.T, grad_pre, out=out_ds)           # backward: grad W_enc
    return run


def sae_step(arch: str, batch: int, d_in: int, d_sae: int):
    """One real training step of an SAE of ``arch`` on a fixed batch."""
    kwargs = dict(ARCH_KWARGS[arch])
    if arch == "matryoshka":
        kwargs["matryoshka_widths"] = [d_sae // 4, d_sae // 2, d_sae]
    sae = build_sae(d_in=d_in, d_sae=d_sae, architecture=arch, **kwargs)
    state = _LoopState(sae, lr=1e-4, seed=0, dead_after=1000,
                       autocast_context=contextlib.nullcontext)
    x = torch.randn(batch, d_in)
    return lambda: _train_step(state, x, 1.0, 0, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--d-in", type=int, default=512)
    parser.add_argument("--d-sae", type=int, default=4096)
    parser.add_argument("--arch", nargs="+", default=["relu", "topk"], choices=ARCH_KWARGS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3, help="steps per timed repeat")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    B, D, S = args.batch, args.d_in, args.d_sae
    flops = 10 * B * D * S
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{args.threads} thread(s); batch {B}, d_in {D}, d_sae {S}; "
          f"{flops / 1e9:.1f} GFLOP per step")
    matmul = median_time(matmul_baseline(B, D, S), args.steps, args.repeats)
    print(f"{'5 x torch.mm':>14}: {matmul * 1e3:8.1f} ms  {flops / matmul / 1e9:7.1f} GFLOP/s")
    for arch in args.arch:
        step = median_time(sae_step(arch, B, D, S), args.steps, args.repeats)
        print(f"{arch + ' step':>14}: {step * 1e3:8.1f} ms  {flops / step / 1e9:7.1f} GFLOP/s"
              f"  ratio {matmul / step:.2f}")


if __name__ == "__main__":
    main()
