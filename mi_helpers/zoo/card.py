"""Model cards: a JSON record and a Markdown summary beside each zoo model's weights."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from .specs import ZooSpec

ARCHITECTURES = {"gpt_neox": "GPTNeoXForCausalLM", "gpt2": "GPT2LMHeadModel"}


def write_card(out_dir: Path, spec: ZooSpec, training: dict, behaviours: dict) -> None:
    """Write ``model_card.json`` and ``README.md`` into ``out_dir``."""
    card = {"name": spec.name, "purpose": spec.purpose,
            "architecture": ARCHITECTURES[spec.architecture], "spec": asdict(spec),
            "training": training, "behaviours": behaviours}
    (out_dir / "model_card.json").write_text(json.dumps(card, indent=2) + "\n")
    (out_dir / "README.md").write_text(card_markdown(card))


def card_markdown(card: dict) -> str:
    """A human-readable summary of a card (every number read from the card)."""
    spec, tr, beh = card["spec"], card["training"], card["behaviours"]
    heads = beh["heads"]
    lines = [
        f"# {card['name']}", "", card["purpose"], "",
        f"`{card['architecture']}`: {spec['n_layer']} layers, d_model {spec['d_model']}, "
        f"{spec['n_head']} heads, context {spec['n_ctx']}.",
        f"Trained from scratch with seed {tr['seed']}: {tr['steps']} steps of "
        f"{tr['batch_size']} sequences ({tr['tokens_seen']:,} tokens) in "
        f"{tr['wall_time_s']} s wall clock on {tr['threads']} CPU thread(s)"
        + (f" ({tr['cpu_time_s']} s of CPU time)." if "cpu_time_s" in tr else "."),
        "", "## Measured behaviours", "",
        f"Head scores are the minimum over repeat lengths {beh['rep_lens']}.", "",
        "| behaviour | head | score |", "|---|---|---|",
    ]
    for kind, h in heads.items():
        lines.append(f"| {kind.replace('_', '-')} | L{h['layer']}H{h['head']} | {h['score']:.3f} |")
    lines += ["", "| IOI split | logit diff | IO beats S | top-1 accuracy |", "|---|---|---|---|"]
    for split, m in beh["ioi"].items():
        lines.append(f"| {split} | {m['logit_diff']:.2f} | {m['io_beats_s']:.3f} | "
                     f"{m['top1_accuracy']:.3f} |")
    lines += ["", "Reproduce: `python -m mi_helpers.zoo train " + card["name"] + "`.", ""]
    return "\n".join(lines)


def zoo_table(zoo_dir: Path) -> str:
    """A Markdown table of every model card under ``zoo_dir`` (numbers read from cards)."""
    rows = ["| model | shape | trained (wall clock / CPU time) | induction | previous-token "
            "| IOI held-out: logit diff / top-1 |", "|---|---|---|---|---|---|"]
    for card_path in sorted(zoo_dir.glob("*/model_card.json")):
        card = json.loads(card_path.read_text())
        spec, tr, beh = card["spec"], card["training"], card["behaviours"]
        ind, prev = beh["heads"]["induction"], beh["heads"]["previous_token"]
        ioi = beh["ioi"]["heldout"]
        rows.append(
            f"| `{card['name']}` | {spec['n_layer']}L, d_model {spec['d_model']}, "
            f"{spec['n_head']} heads | {tr['tokens_seen'] / 1e6:.1f}M tokens, "
            f"{tr['wall_time_s'] / 60:.1f} / {tr['cpu_time_s'] / 60:.1f} min | "
            f"L{ind['layer']}H{ind['head']} "
            f"{ind['score']:.2f} | L{prev['layer']}H{prev['head']} {prev['score']:.2f} | "
            f"{ioi['logit_diff']:.2f} / {ioi['top1_accuracy']:.2f} |")
    return "\n".join(rows)
