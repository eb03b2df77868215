"""``python -m mi_helpers.zoo train NAME`` | ``list`` | ``measure NAME``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import torch

from ..core.models import ZOO_DIR, load_model
from .behaviours import measure_behaviours
from ..tools.markers import replace_between_markers
from .card import card_markdown, write_card, zoo_table
from .specs import ZOO_SPECS
from .train import train_model


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mi_helpers.zoo",
                                     description="Train and inspect the model zoo.")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train a zoo model from scratch and save it")
    train.add_argument("name", choices=sorted(ZOO_SPECS))
    train.add_argument("--steps", type=int, default=None, help="override the step count")
    train.add_argument("--arch", choices=("gpt_neox", "gpt2"), default=None,
                       help="override the architecture (to compare GPT-2 with the zoo's)")
    train.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    train.add_argument("--out", default=None, help="output folder (default data/zoo/NAME)")
    sub.add_parser("list", help="list the zoo specs")
    measure = sub.add_parser("measure", help="print a saved model's behaviours")
    measure.add_argument("name")
    measure.add_argument("--write-card", action="store_true",
                         help="re-measure and rewrite the model card (keeps its training record)")
    table = sub.add_parser("table", help="print the zoo table from the model cards")
    table.add_argument("--write-readme", action="store_true", help="update README.md")
    return parser


def _list(args) -> None:
    for name, spec in ZOO_SPECS.items():
        print(f"{name:14s} {spec.purpose}")


def _table(args) -> None:
    text = zoo_table(ZOO_DIR)
    print(text)
    for card_path in sorted(ZOO_DIR.glob("*/model_card.json")):  # refresh summaries
        card_path.with_name("README.md").write_text(card_markdown(json.loads(card_path.read_text())))
    if args.write_readme:
        readme = ZOO_DIR.parent.parent / "README.md"
        readme.write_text(replace_between_markers(readme.read_text(), "zoo-table", text))


def _measure(args) -> None:
    behaviours = measure_behaviours(load_model(args.name, device="cpu"))
    print(json.dumps(behaviours, indent=2))
    if args.write_card:
        training = json.loads((ZOO_DIR / args.name / "model_card.json").read_text())["training"]
        write_card(ZOO_DIR / args.name, ZOO_SPECS[args.name], training, behaviours)


def _train(args) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    spec = ZOO_SPECS[args.name]
    if args.arch:
        spec = dataclasses.replace(spec, architecture=args.arch)
    out_dir = Path(args.out) if args.out else ZOO_DIR / spec.name
    training = train_model(spec, out_dir, steps=args.steps)
    behaviours = measure_behaviours(load_model(str(out_dir), device="cpu"))
    write_card(out_dir, spec, training, behaviours)
    print(json.dumps(behaviours, indent=2))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    {"list": _list, "table": _table, "measure": _measure, "train": _train}[args.command](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
