"""Precompute notebook 08's slow sweeps: exact edge patching, faithfulness curves, ACDC.

On zoo-4l IOI (32 prompts on held-out templates, ABC corruption), scores every edge of
the circuit graph (1519 edges) with exact edge patching (noising and denoising), EAP
and EAP-IG (inputs and activations), times each in this one run, compares their
rankings (Spearman), builds MIB faithfulness curves at edge budgets for every method
(CPR, CMD) and runs ACDC at a few thresholds. A randomly initialised zoo-4l on the same
prompts is the control. (zoo-2l induction is small enough for the notebook to run live.)

Writes ``data/automated_discovery/results.json`` (scalars, curves, ACDC circuits) and
``data/automated_discovery/zoo-4l-ioi-edges.safetensors`` (each method's edge effects),
which notebook 08 loads.

Usage: ``python benchmarks/automated_discovery.py [--threads 1]`` (about 10 minutes on
one busy CPU core). Timings are medians of three runs, the methods taking turns; they
depend on the machine's load, which the file records.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from mi_helpers import load_model  # noqa: E402
from mi_helpers.circuits import (abc_corruption, acdc, circuit_metrics, edge_attribution,  # noqa: E402
                                 edge_effects, edge_patching, faithfulness_curves,
                                 ioi_dataset, spearman)
from mi_helpers.universality import random_like  # noqa: E402

OUT = ROOT / "data" / "automated_discovery"
SETTINGS = {"ioi_prompts": 32, "ioi_seed": 0, "abc_seed": 1, "ig_steps": 10,
            "acdc_taus": [0.003, 0.01, 0.03]}
EXACT = ("exact (noise)", "exact (denoise)")


def ioi_task(model):
    """zoo-4l's IOI prompts on held-out templates, their ABC corruption and the metric."""
    dataset = ioi_dataset(model, SETTINGS["ioi_prompts"], seed=SETTINGS["ioi_seed"])
    abc = abc_corruption(dataset, model, seed=SETTINGS["abc_seed"])
    return dataset.tokens, abc.tokens, dataset.metric, dataset


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def score_edges(model, clean, corrupted, metric, repeats: int = 3) -> tuple[dict, dict]:
    """Every method's edge sweep (SweepResult) and its time in seconds: the median of
    ``repeats`` runs, the methods taking turns (the load of a shared CPU drifts)."""
    steps = SETTINGS["ig_steps"]
    runs = {
        "exact (noise)": lambda: edge_patching(model, clean, corrupted, metric),
        "exact (denoise)": lambda: edge_patching(model, clean, corrupted, metric, mode="denoise"),
        "EAP": lambda: edge_attribution(model, clean, corrupted, metric),
        "EAP-IG inputs": lambda: edge_attribution(model, clean, corrupted, metric,
                                                  ig_steps=steps),
        "EAP-IG activations": lambda: edge_attribution(model, clean, corrupted, metric,
                                                       ig_steps=steps, variant="activations"),
    }
    results, times = {}, {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            results[name], spent = timed(run)
            times[name].append(spent)
    seconds = {name: statistics.median(spent) for name, spent in times.items()}
    for name, spent in times.items():
        print(f"  {name}: median {seconds[name]:.1f} s of {[round(t, 1) for t in spent]}",
              flush=True)
    return results, seconds


def agreement(results: dict) -> dict:
    """Spearman of each method against each exact definition: signed, magnitudes, and on
    the edges whose exact effect is at least 1% of the clean-corrupted gap."""
    out = {}
    for exact in EXACT:
        reference = edge_effects(results[exact])
        gap = abs(results[exact].clean - results[exact].corrupted)
        big = reference.abs() >= 0.01 * gap
        for name, result in results.items():
            if name == exact:
                continue
            effects = edge_effects(result)
            out[f"{name} vs {exact}"] = {
                "signed": spearman(effects, reference),
                "magnitude": spearman(effects.abs(), reference.abs()),
                "signed_big": spearman(effects[big], reference[big]),
                "n_big": int(big.sum()),
                "pearson": torch.corrcoef(torch.stack([effects, reference]))[0, 1].item(),
            }
    return out


def curves(model, clean, corrupted, metric, results: dict) -> dict:
    out = {}
    for selection in ("top", "greedy"):
        found = faithfulness_curves(model, clean, corrupted, metric, list(results.values()),
                                    selection=selection)
        out[selection] = {name: {"budgets": c.budgets, "n_edges": c.n_edges,
                                 "faithfulness": c.faithfulness, "cpr": c.cpr, "cmd": c.cmd}
                          for name, c in zip(results, found)}
    return out


def acdc_runs(model, clean, corrupted, metric, dataset, seconds_exact: float) -> list[dict]:
    runs = []
    clean_m, corrupted_m = metric(model(clean)).item(), metric(model(corrupted)).item()
    for tau in SETTINGS["acdc_taus"]:
        circuit, seconds = timed(acdc, model, clean, corrupted, "kl", tau=tau,
                                 positions=dataset.word_positions["end"], progress=False)
        value = circuit_metrics(model, clean, corrupted, metric, [circuit]).item()
        runs.append({"tau": tau, "metric": "kl", "n_edges": len(circuit),
                     "fraction": len(circuit) / len(circuit.graph.edges),
                     "logit_diff": value, "kept": value / clean_m,
                     "faithfulness": (value - corrupted_m) / (clean_m - corrupted_m),
                     "seconds": seconds, "time_vs_exact": seconds / seconds_exact,
                     "edges": sorted(e.name for e in circuit.edges)})
        print(f"  ACDC tau={tau}: {len(circuit)} edges, keeps {value / clean_m:.1%} of the "
              f"logit difference, {seconds:.0f} s", flush=True)
    return runs


def study(model, clean, corrupted, metric, repeats: int = 3) -> tuple[dict, dict]:
    results, seconds = score_edges(model, clean, corrupted, metric, repeats)
    summary = {"clean": results["EAP"].clean, "corrupted": results["EAP"].corrupted,
               "n_edges": len(results["EAP"].coords["edge"]), "seconds": seconds,
               "time_vs_exact": {k: v / seconds["exact (noise)"] for k, v in seconds.items()},
               "agreement": agreement(results),
               "curves": curves(model, clean, corrupted, metric, results)}
    return summary, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    OUT.mkdir(parents=True, exist_ok=True)
    report = {"settings": SETTINGS, "command": "python benchmarks/automated_discovery.py",
              "machine": {"torch": torch.__version__, "threads": args.threads,
                          "platform": platform.platform(),
                          "load_average": os.getloadavg()}}
    print("zoo-4l IOI", flush=True)
    model = load_model("zoo-4l", device="cpu")
    clean, corrupted, metric, dataset = ioi_task(model)
    report["ioi"], results = study(model, clean, corrupted, metric)
    report["ioi"]["acdc"] = acdc_runs(model, clean, corrupted, metric, dataset,
                                      report["ioi"]["seconds"]["exact (noise)"])
    save_file({name: edge_effects(r).float().contiguous() for name, r in results.items()},
              OUT / "zoo-4l-ioi-edges.safetensors")
    print("random-weights zoo-4l, same prompts", flush=True)
    control = random_like(model, seed=0)
    report["ioi_random"], _ = study(control, clean, corrupted, metric, repeats=1)
    report["machine"]["load_average_end"] = os.getloadavg()
    (OUT / "results.json").write_text(json.dumps(report, indent=1))
    print(f"wrote {OUT / 'results.json'}")


if __name__ == "__main__":
    main()
