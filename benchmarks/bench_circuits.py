"""The suite's circuit benchmarks: patching sweeps against ``transformer_lens.patching`` and
a naive loop, EAP against exact edge patching, and what a names filter saves a cache.

Every benchmark runs ours and the reference on the same model and inputs in this one
process, alternating (:func:`benchmarks.measure.alternate`). TransformerLens is called
at its fastest: under ``torch.no_grad()``, caching only the hooks its sweep patches.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from statistics import median

import torch
from transformer_lens import patching as tl_patching

from mi_helpers import load_model
from mi_helpers.circuits import (abc_corruption, activation_patching, edge_attribution,
                                 edge_patching, ioi_dataset, path_patching)
from mi_helpers.core.activations import run_cached
from mi_helpers.core.hooks import hook_name, layer_hooks
from mi_helpers.datasets import repeats

from .measure import ROOT, Row, alternate, profile_summary, ratios

__all__ = ["Task", "zoo_task", "gpt2_small_shaped", "head_patching", "residual_patching",
           "path_patching_rows", "edge_rows", "cache_memory"]

THEIR_SWEEPS = {("z", False): tl_patching.get_act_patch_attn_head_out_all_pos,
                ("z", True): tl_patching.get_act_patch_attn_head_out_by_pos,
                ("resid_pre", True): tl_patching.get_act_patch_resid_pre}


class Task:
    """A model, clean and corrupted tokens, a metric and a label for the table."""

    def __init__(self, model, label: str, clean, corrupted, metric, description: str,
                 end=None):
        self.model, self.label, self.description = model, label, description
        self.clean, self.corrupted, self.metric = clean, corrupted, metric
        self.end = end  # IOI: each prompt's last position

    @property
    def setting(self) -> str:
        batch, n_pos = self.clean.shape
        return f"{self.description}, {batch} prompts x {n_pos} tokens"


def zoo_task(name: str, n_prompts: int, model=None) -> Task:
    """zoo-4l: IOI prompts and their ABC corruption; zoo-2l: induction (``BOS r r``)."""
    model = model or load_model(name, device="cpu")
    if name == "zoo-4l":
        data = ioi_dataset(model, n_prompts, seed=0)
        abc = abc_corruption(data, model, seed=1)
        return Task(model, name, data.tokens, abc.tokens, data.metric, "IOI",
                    data.word_positions["end"])
    clean, corrupted, metric = repeats.induction_pair(model, rep_len=8, n_seqs=n_prompts, seed=0)
    return Task(model, name, clean, corrupted, metric, "induction")


def gpt2_small_shaped(n_prompts: int, n_tokens: int) -> Task:
    """A random GPT-2 of gpt2-small's shape (12 layers, d_model 768, 12 heads, GPT-2's
    tokenizer), built locally, on random tokens with a logit-difference metric."""
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import save_random_gpt2  # the tests' builder: no download

    with tempfile.TemporaryDirectory() as folder:
        model = load_model(str(save_random_gpt2(Path(folder), 12, 768, 12)), device="cpu")
    gen = torch.Generator().manual_seed(0)
    clean = torch.randint(1, model.cfg.d_vocab, (n_prompts, n_tokens), generator=gen)
    corrupted = clean.clone()
    corrupted[:, 1:3] = torch.randint(1, model.cfg.d_vocab, (n_prompts, 2), generator=gen)
    right, wrong = torch.randint(1, model.cfg.d_vocab, (2, n_prompts), generator=gen)
    rows = torch.arange(n_prompts)

    def metric(logits):
        return (logits[rows, -1, right] - logits[rows, -1, wrong]).mean()

    return Task(model, "gpt2-small-shaped (random)", clean, corrupted, metric, "random tokens")


def _theirs(task: Task, site: str, per_position: bool):
    sweep = THEIR_SWEEPS[site, per_position]
    names = set(layer_hooks(task.model, site))

    def run():
        with torch.no_grad():
            _, cache = task.model.run_with_cache(task.clean, names_filter=lambda n: n in names)
            return sweep(task.model, task.corrupted, cache, task.metric)
    return run


def _sweep_row(task: Task, site: str, per_position: bool, n_repeats: int, benchmark: str,
               target: float | None) -> Row:
    def ours():
        return activation_patching(task.model, task.clean, task.corrupted, task.metric, site,
                                   per_position=per_position).values

    times, out = alternate({"ours": ours, "theirs": _theirs(task, site, per_position)}, n_repeats)
    ratio, low, high = ratios(times["theirs"], times["ours"])
    row = Row("patching", benchmark, task.label, task.setting, median(times["ours"]),
              "transformer_lens.patching", median(times["theirs"]), ratio, low, high, target,
              max_diff=(out["ours"] - out["theirs"]).abs().max().item())
    if row.met is False:
        row.profile = profile_summary(ours, phases=PHASES)
    return row


#: Where a replayed sweep's time goes (see :mod:`mi_helpers.circuits.replay`).
PHASES = {"setting up the replay": "replay.py:__init__",
          "runs checked against the model (its forward + a replay)": "replay.py:run",
          "runs replayed from the weights": "replay.py:run_from_weights",
          "the patched passes": "patching.py:_sweep"}


def head_patching(task: Task, per_position: bool, n_repeats: int, target: float | None) -> Row:
    """Every head's output ``z`` patched (denoising), at all positions or position by position."""
    what = "by position" if per_position else "all positions"
    return _sweep_row(task, "z", per_position, n_repeats, f"head patching, {what}", target)


def residual_patching(task: Task, n_repeats: int) -> Row:
    """The residual stream before each layer, position by position."""
    return _sweep_row(task, "resid_pre", True, n_repeats, "residual patching, by position", None)


def path_patching_rows(task: Task, receivers, label: str, n_repeats: int,
                       positions=None) -> Row:
    """Path patching's sender grid against a naive loop: one sender per pass, through the
    model's hooks (``replay=False, patches_per_pass=1``)."""
    def run(**kwargs):
        return lambda: path_patching(task.model, task.clean, task.corrupted, task.metric,
                                     receivers, receiver_positions=positions, **kwargs).values

    times, out = alternate({"ours": run(), "naive": run(replay=False, patches_per_pass=1)},
                           n_repeats)
    ratio, low, high = ratios(times["naive"], times["ours"])
    diff = (out["ours"] - out["naive"]).nan_to_num().abs().max().item()
    return Row("patching", f"path patching, {label}", task.label, task.setting,
               median(times["ours"]), "one sender per pass, model hooks",
               median(times["naive"]), ratio, low, high, max_diff=diff)


def edge_rows(task: Task, n_repeats: int, ig_steps: int) -> list[Row]:
    """EAP and EAP-IG (inputs) against exact edge patching (noising) of every edge."""
    def run(fn, **kwargs):
        return lambda: fn(task.model, task.clean, task.corrupted, task.metric, **kwargs)

    fns = {"exact": run(edge_patching), "EAP": run(edge_attribution),
           f"EAP-IG ({ig_steps} steps)": run(edge_attribution, ig_steps=ig_steps)}
    times, _ = alternate(fns, n_repeats, warmup=False)
    rows = []
    for name, target in (("EAP", 20.0), (f"EAP-IG ({ig_steps} steps)", None)):
        ratio, low, high = ratios(times["exact"], times[name])
        row = Row("edges", f"{name} vs exact edge patching", task.label, task.setting,
                  median(times[name]), "exact edge patching", median(times["exact"]), ratio,
                  low, high, target, note="target: EAP <= 5% of exact" if target else "")
        if row.met is False:
            row.profile = profile_summary(fns[name])
        rows.append(row)
    return rows


def cache_memory(task: Task) -> Row:
    """Bytes cached by ``run_with_cache`` (every hook) and with a names filter (the hooks a
    head sweep needs, as :func:`~mi_helpers.core.activations.run_cached` keeps)."""
    with torch.no_grad():
        _, everything = task.model.run_with_cache(task.clean)
    full = sum(t.numel() * t.element_size() for t in everything.values())
    _, kept = run_cached(task.model, task.clean, layer_hooks(task.model, "z") + [hook_name("embed")])
    filtered = sum(t.numel() * t.element_size() for t in kept.values())
    ratio = full / filtered
    return Row("memory", "cache with a names filter (z + embed)", task.label, task.setting,
               filtered / 2**20, f"run_with_cache, all {len(everything)} hooks", full / 2**20,
               ratio, ratio, ratio, unit="MB")
