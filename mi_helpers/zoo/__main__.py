"""``python -m mi_helpers.zoo train NAME`` | ``list`` | ``measure NAME``."""

from __future__ import annotations

import argparse
import json
import sys

import torch

from ..models import ZOO_DIR, load_model
from .behaviours import measure_behaviours
from .card import write_card
from .specs import ZOO_SPECS
from .train import train_model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mi_helpers.zoo",
                                     description="Train and inspect the model zoo.")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train a zoo model from scratch and save it")
    train.add_argument("name", choices=sorted(ZOO_SPECS))
    train.add_argument("--steps", type=int, default=None, help="override the step count")
    train.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    train.add_argument("--out", default=None, help="output folder (default data/zoo/NAME)")
    sub.add_parser("list", help="list the zoo specs")
    measure = sub.add_parser("measure", help="print a saved model's behaviours")
    measure.add_argument("name")
    args = parser.parse_args(argv)

    if args.command == "list":
        for name, spec in ZOO_SPECS.items():
            print(f"{name:14s} {spec.purpose}")
    elif args.command == "measure":
        print(json.dumps(measure_behaviours(load_model(args.name, device="cpu")), indent=2))
    else:
        from pathlib import Path
        if args.threads:
            torch.set_num_threads(args.threads)
        spec = ZOO_SPECS[args.name]
        out_dir = Path(args.out) if args.out else ZOO_DIR / spec.name
        training = train_model(spec, out_dir, steps=args.steps)
        behaviours = measure_behaviours(load_model(str(out_dir), device="cpu"))
        write_card(out_dir, spec, training, behaviours)
        print(json.dumps(behaviours, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
