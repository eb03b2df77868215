"""``python -m mi_helpers.dynamics induction | grokking | llc``: the runs notebook 13 loads.

``induction`` trains the zoo-2l recipe on repeat blocks (``--text-only``: on text, the
control), records probes every ``--record-every`` steps, saves resumable checkpoints
under ``--checkpoints`` and copies the weights of the ``--keep`` steps next to the
record (small folders to commit). ``grokking`` trains the modular-addition model and
saves its record. ``llc`` estimates the local learning coefficient at each checkpoint of
an induction run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
from pathlib import Path

import torch

from ..core.models import ZOO_DIR
from ..zoo.train import train_model
from .checkpoints import RUNS_DIR, checkpoint_dir, list_checkpoints
from .grokking import GrokkingConfig, train_grokking
from .induction import induction_spec, lm_loss, spec_batches, spec_probes
from .llc import estimate_llc
from .recorder import Recorder

BUILD_DIR = ZOO_DIR.parents[1] / "build" / "dynamics"
SNAPSHOT_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
LLC_DEFAULTS = {"sgld_steps": 200, "burn_in": 50, "step_size": 1e-5, "gamma": 1e4,
                "n_beta": 1000.0, "chains": 2, "n_batches": 4, "batch_size": 16}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mi_helpers.dynamics",
                                     description="Train the runs of notebook 13.")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    sub = parser.add_subparsers(dest="command", required=True)
    ind = sub.add_parser("induction", help="2-layer model on repeat blocks, recorded")
    ind.add_argument("--steps", type=int, default=1500)
    ind.add_argument("--seed", type=int, default=0)
    ind.add_argument("--text-only", action="store_true", help="the control: no repeat blocks")
    ind.add_argument("--record-every", type=int, default=25)
    ind.add_argument("--checkpoint-every", type=int, default=100)
    ind.add_argument("--keep", default="", help="comma-separated steps whose weights to keep")
    ind.add_argument("--resume", default=None, help="a checkpoint folder of this run")
    ind.add_argument("--out", default=None, help="default data/dynamics/<run name>")
    ind.add_argument("--checkpoints", default=None, help="default build/dynamics/<run name>")
    grok = sub.add_parser("grokking", help="one-layer transformer on (a + b) mod p")
    for field in dataclasses.fields(GrokkingConfig):
        grok.add_argument(f"--{field.name.replace('_', '-')}", type=type(field.default),
                          default=field.default)
    grok.add_argument("--out", required=True, help="the record's JSON file")
    llc = sub.add_parser("llc", help="LLC by SGLD at an induction run's checkpoints")
    llc.add_argument("--checkpoints", required=True, help="folder of step-* checkpoints")
    llc.add_argument("--text-only", action="store_true", help="the run was the text control")
    llc.add_argument("--at", default="", help="comma-separated steps (default: all)")
    for name, default in LLC_DEFAULTS.items():
        llc.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    llc.add_argument("--out", required=True, help="JSON file for the estimates")
    return parser


def _induction(args) -> None:
    spec = induction_spec(args.steps, args.seed, repeats=not args.text_only)
    out = Path(args.out) if args.out else RUNS_DIR / spec.name
    checkpoints = Path(args.checkpoints) if args.checkpoints else BUILD_DIR / spec.name
    recorder = Recorder(spec_probes(spec), every=args.record_every)
    training = train_model(spec, checkpoints / "final", eval_every=args.record_every * 10,
                           checkpoint_every=args.checkpoint_every, checkpoints=checkpoints,
                           resume_from=args.resume, recorder=recorder)
    out.mkdir(parents=True, exist_ok=True)
    recorder.save(out / "record.json", spec=dataclasses.asdict(spec),
                  training={k: v for k, v in training.items() if k != "log"})
    for step in [int(s) for s in args.keep.split(",") if s.strip()]:
        source = checkpoint_dir(checkpoints, step)
        if not source.is_dir():
            raise SystemExit(f"no checkpoint at step {step} (checkpoints every "
                             f"{args.checkpoint_every} steps)")
        target = checkpoint_dir(out, step)
        target.mkdir(exist_ok=True)
        for name in SNAPSHOT_FILES:
            shutil.copy(source / name, target / name)
    print(json.dumps(training["log"][-1]), "->", out)


def _grokking(args) -> None:
    fields = dataclasses.fields(GrokkingConfig)
    config = GrokkingConfig(**{f.name: getattr(args, f.name) for f in fields})
    _, recorder, _ = train_grokking(config)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    recorder.save(args.out)
    print(json.dumps({k: v for k, v in recorder.records[-1].items() if k != "frequency_norms"}))


def _llc(args) -> None:
    from transformers import AutoModelForCausalLM

    spec = induction_spec(repeats=not args.text_only)
    batches = spec_batches(spec, args.n_batches, args.batch_size)
    wanted = {int(s) for s in args.at.split(",") if s.strip()}
    results = []
    for step, folder in list_checkpoints(args.checkpoints).items():
        if wanted and step not in wanted:
            continue
        model = AutoModelForCausalLM.from_pretrained(folder).eval()
        estimate = estimate_llc(model, lm_loss, lambda: iter(batches),
                                n=args.n_batches * args.batch_size, steps=args.sgld_steps,
                                burn_in=args.burn_in, step_size=args.step_size, gamma=args.gamma,
                                n_beta=args.n_beta, n_chains=args.chains)
        results.append({"step": step, "llc": round(estimate.llc, 3),
                        "llc_per_chain": [round(v, 3) for v in estimate.llc_per_chain],
                        "init_loss": round(estimate.init_loss, 4)})
        print(json.dumps(results[-1]), flush=True)
    settings = {name: getattr(args, name) for name in LLC_DEFAULTS}
    Path(args.out).write_text(json.dumps({"settings": settings, "estimates": results}) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    {"induction": _induction, "grokking": _grokking, "llc": _llc}[args.command](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
