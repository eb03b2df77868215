"""SAE training-step throughput against plain matrix multiplication on the same machine.

One training step of ``mi_helpers.sae`` (the very step ``train_sae`` runs: forward,
losses, NaN check, parameter snapshot, backward, decoder-norm handling, fused Adam,
dead-latent bookkeeping) does five matrix products of ``B x d_in x d_sae`` each:

* forward: ``x @ W_enc`` and ``latents @ W_dec``;
* backward: ``latents.T @ grad_out`` (for ``W_dec``), ``grad_out @ W_dec.T`` (for the
  latents) and ``x.T @ grad_pre`` (for ``W_enc``); ``x`` needs no gradient.

So a step costs ``10 * B * d_in * d_sae`` FLOPs (the "6 N" rule of thumb counts a
gradient for the input too; a gated SAE does more products than these five, so its
ratio understates it). The baseline runs exactly those five ``torch.mm`` calls with the
same shapes and memory layouts: as plain calls, and writing into preallocated outputs
(stricter: a CPU pays page faults for every large fresh tensor). Since both count the
same FLOPs, the ratio of FLOP/s is ``time(five matmuls) / time(one step)``: the fraction
of the step spent doing useful matrix arithmetic. Everything else (ReLU / TopK, the
loss terms, Adam, bookkeeping) is overhead.

Usage: ``python benchmarks/sae_throughput.py [--batch 4096] [--d-in 512] [--d-sae 4096]
[--arch relu topk ...] [--threads 1] [--repeats 5]``. The baseline and the steps take
turns within each repeat, and the printed ratio is the median of the per-repeat ratios;
on a machine shared with other jobs the seconds are noisy, the ratios less so.
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


def interleaved_times(fns: dict, steps: int, repeats: int) -> dict[str, list[float]]:
    """Per repeat, the mean time of ``steps`` calls of each function, the functions taking
    turns within each repeat so that a noisy neighbour slows them alike."""
    for fn in fns.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(steps):
                fn()
            times[name].append((time.perf_counter() - start) / steps)
    return times


def matmul_baseline(batch: int, d_in: int, d_sae: int, preallocated: bool):
    """The five products of one step, with the step's shapes and layouts: plain
    ``torch.mm`` calls (each allocating its output, as in the step), or writing into
    preallocated outputs (no allocation: a stricter baseline)."""
    x, grad_out = torch.randn(batch, d_in), torch.randn(batch, d_in)
    latents, grad_pre = torch.randn(batch, d_sae), torch.randn(batch, d_sae)
    W_enc, W_dec = torch.randn(d_in, d_sae), torch.randn(d_sae, d_in)
    out_bs, out_bd = torch.empty(batch, d_sae), torch.empty(batch, d_in)
    out_sd, out_ds = torch.empty(d_sae, d_in), torch.empty(d_in, d_sae)
    products = [(x, W_enc, out_bs),                # forward: encoder
                (latents, W_dec, out_bd),          # forward: decoder
                (latents.T, grad_out, out_sd),     # backward: grad W_dec
                (grad_out, W_dec.T, out_bs),       # backward: grad latents
                (x.T, grad_pre, out_ds)]           # backward: grad W_enc

    def run():
        for a, b, out in products:
            torch.mm(a, b, out=out) if preallocated else torch.mm(a, b)
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
    parser.add_argument("--write-readme", action="store_true",
                        help="write the results into README.md (sae-throughput markers)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    B, D, S = args.batch, args.d_in, args.d_sae
    flops = 10 * B * D * S
    setting = (f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
               f"{args.threads} thread(s); batch {B}, d_in {D}, d_sae {S}; "
               f"{flops / 1e9:.1f} GFLOP per step")
    print(setting)
    lines = []
    fns = {"5 x torch.mm": matmul_baseline(B, D, S, preallocated=False),
           "5 x mm(out=)": matmul_baseline(B, D, S, preallocated=True)}
    fns.update({f"{arch} step": sae_step(arch, B, D, S) for arch in args.arch})
    times = interleaved_times(fns, args.steps, args.repeats)
    baselines = {name: times.pop(name) for name in ("5 x torch.mm", "5 x mm(out=)")}
    for name, step in {**baselines, **times}.items():
        line = (f"{name:>16}: {statistics.median(step) * 1e3:8.1f} ms "
                f"{flops / statistics.median(step) / 1e9:7.1f} GFLOP/s")
        if name in times:  # ratios within each repeat (same neighbours), then the median
            for label, base in (("vs torch.mm", baselines["5 x torch.mm"]),
                                ("vs mm(out=)", baselines["5 x mm(out=)"])):
                ratios = [b / s for b, s in zip(base, step)]
                line += (f"  ratio {label} {statistics.median(ratios):.2f} "
                         f"({min(ratios):.2f}-{max(ratios):.2f})")
        print(line)
        lines.append(line)
    if args.write_readme:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from mi_helpers.tools.markers import replace_between_markers

        readme = Path(__file__).resolve().parent.parent / "README.md"
        body = ("```\n" + setting + "\n" + "\n".join(lines) + "\n```\n\nMeasured by `python "
                f"benchmarks/sae_throughput.py {' '.join(sys.argv[1:])}`.")
        readme.write_text(replace_between_markers(readme.read_text(), "sae-throughput", body))


if __name__ == "__main__":
    main()
