"""Train the committed SAEs of zoo-2l and write them to ``data/saes/zoo-2l/<name>/``.

Both read the residual stream after block 0 (``blocks.0.hook_resid_post``, d_in 64) with
a dictionary of 512 latents (8x): a TopK SAE and a ReLU SAE with an L1 penalty. Data:
sentences of every kind from the zoo corpus (``corpus_sentences``, seed 0), cut into
rows of 64 tokens with BOS first (``token_chunks``); the BOS position is left out, as in
training the zoo's SAEs always exclude it. Activations are collected once through an
``ActivationBuffer`` (shuffled), then each SAE trains on them with ``train_sae``.

Evaluation, on a separate sample of sentences (seed 1): L0, FVU, the fraction of dead
latents (never firing on the evaluation set) and of dense ones (firing on >10%), and the
cross-entropy loss recovered when the reconstruction is spliced into the model (zero
ablation = 0, clean = 1). The numbers and the training settings are stored in each
folder's ``cfg.json`` (``metadata.mi_helpers.extra``) and printed.

Usage: ``python benchmarks/train_zoo_saes.py [--threads 1] [--steps 3000] [--only topk]
[--out data/saes/zoo-2l] [--dry-run]`` (``--dry-run``: train and evaluate, write nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from mi_helpers.models import load_model  # noqa: E402
from mi_helpers.sae import (ActivationBuffer, build_sae, ce_loss_recovered,  # noqa: E402
                            sae_metrics, save_sae, train_sae)
from mi_helpers.text import corpus_sentences, token_chunks  # noqa: E402

MODEL, HOOK, D_SAE, SEQ_LEN = "zoo-2l", "blocks.0.hook_resid_post", 512, 64
# name -> (architecture settings, training settings)
SAES = {
    "topk-k16": ({"architecture": "topk", "k": 16}, {"lr": 2e-3}),
    "relu-l1": ({"architecture": "relu", "l1_coefficient": 0.4}, {"lr": 2e-3}),
}
TRAIN_SENTENCES, EVAL_SENTENCES, CE_ROWS = 40_000, 4_000, 256


def collect(model, tokens, n_rows: int | None = None) -> torch.Tensor:
    """All (or ``n_rows``) non-BOS activations at ``HOOK`` on ``tokens``, shuffled."""
    per_pass = 4096
    buffer = ActivationBuffer.from_model(model, tokens, HOOK, batch_size=per_pass,
                                         buffer_size=per_pass, model_batch_size=64)
    n_rows = n_rows or tokens.shape[0] * (tokens.shape[1] - 1)
    return torch.cat([next(buffer) for _ in range(n_rows // per_pass)])


def train_one(name: str, acts, args) -> tuple:
    arch, training = SAES[name]
    torch.manual_seed(0)
    settings = {"steps": args.steps, "batch_size": args.batch, "lr_warmup_steps": 100,
                "resample_every": args.steps // 6, "dead_after": 300, **training}
    sae = build_sae(d_in=acts.shape[1], d_sae=D_SAE, hook_name=HOOK, model_name=MODEL, **arch)
    batches = ActivationBuffer.from_tensor(acts, batch_size=args.batch, seed=0)
    start = time.perf_counter()
    history = train_sae(sae, batches, args.steps, lr=settings["lr"],
                        lr_warmup_steps=settings["lr_warmup_steps"],
                        resample_every=settings["resample_every"],
                        dead_after=settings["dead_after"], log_every=100,
                        progress=args.progress)
    return sae, history, settings, time.perf_counter() - start


def evaluate(model, sae, eval_acts, eval_tokens) -> dict:
    metrics = sae_metrics(sae, eval_acts)
    ce = ce_loss_recovered(model, sae, eval_tokens)
    keep = ("l0", "fvu", "mse", "dead_fraction", "dense_fraction")
    return {**{k: round(metrics[k], 4) for k in keep},
            **{k: round(v, 4) for k, v in ce.items()}}, metrics["density"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--only", nargs="+", choices=SAES, default=list(SAES))
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "saes" / MODEL)
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    model = load_model(MODEL, device="cpu")
    train_tokens = token_chunks(model, corpus_sentences(TRAIN_SENTENCES, seed=0), SEQ_LEN)
    eval_tokens = token_chunks(model, corpus_sentences(EVAL_SENTENCES, seed=1), SEQ_LEN)
    acts, eval_acts = collect(model, train_tokens), collect(model, eval_tokens)
    eval_tokens = eval_tokens[:CE_ROWS]
    print(f"{len(acts)} training and {len(eval_acts)} evaluation activations "
          f"({time.perf_counter() - start:.0f} s)")
    for name in args.only:
        sae, history, settings, seconds = train_one(name, acts, args)
        results, density = evaluate(model, sae, eval_acts, eval_tokens)
        print(f"{name}: trained in {seconds:.0f} s, resampled {history.resampled}\n  "
              + json.dumps(results))
        if not args.dry_run:
            sae.cfg.extra = {"training": {**settings, "data": f"corpus_sentences("
                                          f"{TRAIN_SENTENCES}, seed=0), {SEQ_LEN}-token rows"},
                             "eval": results}
            save_sae(sae, args.out / name, feature_density=density)
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
