"""Time head-output patching: ``mi_helpers.patching`` against ``transformer_lens.patching``.

Builds a random GPT-2-shaped model locally (4 layers, d_model 256, 8 heads; no
download), makes ~20 clean prompts of 20 tokens and corrupted copies, then times both
libraries on the same work, alternating them on each repeat:

* every head's output ``hook_z`` over all positions (``[layer, head]``);
* every head's output at every position (``[layer, pos, head]``).

Each side's time includes the clean run it needs (TransformerLens: ``run_with_cache``;
ours: the clean and corrupted runs behind the normalised score). TransformerLens is
called under ``torch.no_grad()``, its fastest setting; ours always runs without
gradients. Prints the median times, the ratio ours/theirs and the largest difference
between the two results.

Usage: ``python benchmarks/patching_speed.py [--repeats 3] [--threads 1] [--write-readme]``;
``--write-readme`` puts the table into README.md between the ``patching-benchmark`` markers. On a CPU
shared with other jobs, ``--threads 1`` avoids thread oversubscription, which inflates
the fixed cost of every forward pass (and so favours batching).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")  # transformer_lens.patching shows a progress bar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402
from transformer_lens import patching as tl_patching  # noqa: E402

from mi_helpers.models import load_model  # noqa: E402
from mi_helpers.patching import activation_patching  # noqa: E402
from mi_helpers.zoo.tokenizer import build_tokenizer  # noqa: E402


def build_model(folder: Path, n_layers: int, d_model: int, n_heads: int):
    """A random GPT-2 with the zoo tokenizer, saved locally and loaded as a bridge."""
    tokenizer = build_tokenizer()
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=d_model,
                        n_layer=n_layers, n_head=n_heads, resid_pdrop=0.0, embd_pdrop=0.0,
                        attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    GPT2LMHeadModel(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return load_model(str(folder), device="cpu")


def make_prompts(model, n_prompts: int, n_tokens: int):
    """Random clean tokens, corrupted copies with 3 tokens changed, and a logit-diff metric."""
    gen = torch.Generator().manual_seed(0)
    clean = torch.randint(1, model.cfg.d_vocab, (n_prompts, n_tokens), generator=gen)
    corrupted = clean.clone()
    corrupted[:, [2, 5, 9]] = torch.randint(1, model.cfg.d_vocab, (n_prompts, 3), generator=gen)
    right, wrong = torch.randint(1, model.cfg.d_vocab, (2, n_prompts), generator=gen)
    rows = torch.arange(n_prompts)

    def metric(logits):
        return (logits[rows, -1, right] - logits[rows, -1, wrong]).mean()

    return clean, corrupted, metric


def ours(model, clean, corrupted, metric, per_position: bool) -> torch.Tensor:
    return activation_patching(model, clean, corrupted, metric, "z",
                               per_position=per_position).values


def theirs(model, clean, corrupted, metric, per_position: bool) -> torch.Tensor:
    sweep = (tl_patching.get_act_patch_attn_head_out_by_pos if per_position
             else tl_patching.get_act_patch_attn_head_out_all_pos)
    with torch.no_grad():
        _, clean_cache = model.run_with_cache(clean)
        return sweep(model, corrupted, clean_cache, metric)


def timed(fn, *args) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--prompts", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's own choice)")
    parser.add_argument("--write-readme", action="store_true",
                        help="write the results into README.md (patching-benchmark markers)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        model = build_model(Path(folder), n_layers=4, d_model=256, n_heads=8)
    clean, corrupted, metric = make_prompts(model, args.prompts, args.tokens)
    setting = (f"model: 4 layers, d_model 256, 8 heads; {args.prompts} prompts x {args.tokens} "
               f"tokens; {args.repeats} repeats; {os.cpu_count()} CPU cores, torch "
               f"{torch.__version__}, {torch.get_num_threads()} threads, {platform.machine()}")
    print(setting)
    print(f"{'sweep':<22}{'ours (s)':>10}{'theirs (s)':>12}{'ours/theirs':>13}{'max |diff|':>12}")
    rows = ["| sweep | ours (s) | transformer_lens.patching (s) | ours / theirs | max abs diff |",
            "|---|---|---|---|---|"]
    for per_position, label in ((False, "head out, all pos"), (True, "head out, by pos")):
        times = {"ours": [], "theirs": []}
        for _ in range(args.repeats):  # alternate, so a busy machine slows both alike
            t_ours, v_ours = timed(ours, model, clean, corrupted, metric, per_position)
            t_theirs, v_theirs = timed(theirs, model, clean, corrupted, metric, per_position)
            times["ours"].append(t_ours)
            times["theirs"].append(t_theirs)
        ours_s, theirs_s = statistics.median(times["ours"]), statistics.median(times["theirs"])
        diff = (v_ours - v_theirs).abs().max().item()
        print(f"{label:<22}{ours_s:>10.2f}{theirs_s:>12.2f}{ours_s / theirs_s:>13.2f}{diff:>12.1e}")
        rows.append(f"| {label} | {ours_s:.2f} | {theirs_s:.2f} | {ours_s / theirs_s:.2f} | "
                    f"{diff:.1e} |")
    if args.write_readme:
        from mi_helpers.tools.markers import replace_between_markers

        body = "\n".join(rows) + (f"\n\n{setting}. Measured by `python "
                                  f"benchmarks/patching_speed.py {' '.join(sys.argv[1:])}`.")
        readme = ROOT / "README.md"
        readme.write_text(replace_between_markers(readme.read_text(), "patching-benchmark", body))


if __name__ == "__main__":
    main()
