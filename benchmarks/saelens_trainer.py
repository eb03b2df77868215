"""SAELens' own trainer on saved activations, timed (run in SAELens' environment).

SAELens pins ``transformer-lens<4``, so this script runs in its own virtual environment
(``make saelens-env``), called by :func:`benchmarks.bench_sae.saelens_row`:

    SAELENS_PYTHON benchmarks/saelens_trainer.py ACTS ARCH BATCH D_SAE STEPS LR L1 THREADS

It builds SAELens' training SAE of the same architecture as ours (``relu``: SAELens'
``standard``, an L1 penalty weighted by decoder norms; ``topk``: k = 32), feeds
``SAETrainer`` the batches of the saved activations in order, runs a 2-step fit to warm
up, then times ``fit()`` over ``STEPS`` batches and prints one JSON line:
``{"seconds": ..., "version": ...}``. No wandb, no checkpoints, no evaluator.
"""

from __future__ import annotations

import json
import sys
import time

import torch
from safetensors.torch import load_file


def build(arch: str, d_in: int, d_sae: int, l1: float):
    from sae_lens.saes.standard_sae import StandardTrainingSAE, StandardTrainingSAEConfig
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig

    if arch == "relu":
        return StandardTrainingSAE(StandardTrainingSAEConfig(d_in=d_in, d_sae=d_sae,
                                                             l1_coefficient=l1))
    if arch == "topk":
        return TopKTrainingSAE(TopKTrainingSAEConfig(d_in=d_in, d_sae=d_sae, k=32))
    raise ValueError(f"unknown architecture {arch!r}")


def fit(acts: torch.Tensor, arch: str, batch: int, d_sae: int, steps: int, lr: float,
        l1: float) -> float:
    from sae_lens.config import SAETrainerConfig
    from sae_lens.training.sae_trainer import SAETrainer

    def batches():
        while True:
            yield from acts.split(batch)

    sae = build(arch, acts.shape[1], d_sae, l1)
    cfg = SAETrainerConfig(total_training_samples=steps * batch, train_batch_size_samples=batch,
                           lr=lr, lr_end=lr / 10, device="cpu")  # the runner sets lr_end
    trainer = SAETrainer(cfg, sae, batches())
    start = time.perf_counter()
    trainer.fit()
    return time.perf_counter() - start


def main() -> None:
    path, arch, batch, d_sae, steps, lr, l1, threads = sys.argv[1:9]
    torch.set_num_threads(int(threads))
    acts = load_file(path)["acts"]
    args = (arch, int(batch), int(d_sae))
    fit(acts, *args, 2, float(lr), float(l1))  # warm-up
    seconds = fit(acts, *args, int(steps), float(lr), float(l1))
    import sae_lens

    print(json.dumps({"seconds": seconds, "version": sae_lens.__version__}))


if __name__ == "__main__":
    main()
