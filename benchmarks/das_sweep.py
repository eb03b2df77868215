"""IIA of every basis family, over subspace dimensions and seeds, for notebook 10.

The IOI variable "which of the two names is the indirect object" (zoo-4l, residual after
block 0 at the last token; :func:`mi_helpers.interventions.ioi_pairs`) needs more
dimensions than a notebook can afford to train DAS for, so the sweep runs here and its
rows are committed to ``data/interventions/das_sweep.json``; the notebook loads them and
re-measures one setting live.

For each seed: 1024 pairs split in half (train / test, stratified), every fixed family
(:func:`~mi_helpers.interventions.fixed_bases`) and DAS at n_dims 1, 2, 4, 8, 16; the
whole residual (``full``); the same DAS training on a randomly initialised model of the
same shape (``random_like``), the control for "DAS finds a subspace in any network".

Usage: ``python benchmarks/das_sweep.py [--threads 1] [--out data/interventions]``.
About 10 minutes on one loaded CPU core.
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
from transformers.utils import logging as hf_logging  # noqa: E402

from mi_helpers import load_model  # noqa: E402
from mi_helpers.core import hook_name  # noqa: E402
from mi_helpers.interventions import compare_bases, ioi_pairs  # noqa: E402
from mi_helpers.universality import random_like  # noqa: E402

SETTINGS = {"model": "zoo-4l", "hook": hook_name("resid_post", 0), "n_pairs": 1024,
            "pairs_seed": 0, "seeds": [0, 1, 2], "n_dims": [1, 2, 4, 8, 16],
            "random_model_n_dims": [4, 16], "test_fraction": 0.5,
            "das": {"epochs": 10, "lr": 0.03, "batch_size": 64}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "data" / "interventions"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    hf_logging.disable_progress_bar()
    s = SETTINGS
    start = time.time()
    model = load_model(s["model"], device="cpu")
    pairs = ioi_pairs(model, s["n_pairs"], seed=s["pairs_seed"])
    common = {"seeds": s["seeds"], "das_kwargs": s["das"], "test_fraction": s["test_fraction"]}
    rows = compare_bases(model, pairs, s["hook"], n_dims=s["n_dims"], **common)
    random_model = random_like(model, seed=0)
    control = compare_bases(random_model, pairs, s["hook"], n_dims=s["random_model_n_dims"],
                            **common)
    rows += [{**row, "family": f"{row['family']} (random model)"} for row in control
             if row["family"] in ("das", "full", "random")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"settings": s, "rows": rows, "seconds": round(time.time() - start, 1),
              "threads": args.threads, "torch": torch.__version__}
    (out / "das_sweep.json").write_text(json.dumps(result, indent=1) + "\n")
    for row in rows:
        print(f"{row['family']:>24s} n_dims {row['n_dims']:>2d} seed {row['seed']}: "
              f"IIA {row['iia']:.3f}")
    print(f"{time.time() - start:.0f} s, written to {out / 'das_sweep.json'}")


if __name__ == "__main__":
    main()
