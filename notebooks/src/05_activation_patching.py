# %% [markdown]
# # 05 · Locating behaviour: activation patching
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mi-roadmap/mi-roadmap/blob/main/notebooks/05_activation_patching.ipynb)
#
# Direct effects (notebook 01) show which components *write* an answer; patching asks
# which activations the model actually *uses*. We run the model on a **clean** prompt
# and on a **corrupted** one that removes the information, score both with a metric,
# and then rerun with a single activation taken from the other run.
#
# * **Denoising**: run corrupted, patch in one clean activation. Recovering the clean
#   metric means that activation is *sufficient* to carry the information.
# * **Noising**: run clean, patch in one corrupted activation. Losing the metric means
#   the activation is *necessary*.
#
# Scores are normalised: 0 = the corrupted metric, 1 = the clean one.
#
# The task is indirect object identification
# ([IOI, Wang et al. 2022](https://arxiv.org/abs/2211.00593)): "When Mary and John went to the
# store, John gave a drink to" → " Mary". The metric is the logit difference
# $\text{logit}(IO) - \text{logit}(S)$ at the last token. The corruption is IOI's
# "ABC" distribution: the three names replaced by three other names, so the sentence
# keeps its shape but no longer says who the answer is.
#
# **What we expect to see** (asserted below):
# 1. in the residual stream the information sits at the name positions in the first
#    layer and has moved to the last token by the last layer;
# 2. a few components (layers, heads) carry most of it, and noising and denoising agree
#    on which;
# 3. mean and resample ablations of single heads agree with patching from the
#    corrupted prompts on the most important heads, while zero ablation exaggerates
#    effects (it moves activations off their usual range);
# 4. causal tracing (Gaussian noise on the name embeddings instead of a second prompt)
#    finds the same route.


# %% [markdown]
# **Learning objectives.** After this notebook you can
# * set up clean and corrupted prompts and a metric, and normalise patching results;
# * tell denoising (sufficiency) from noising (necessity) and read both maps;
# * write a head-patching hook and an activation-patching loop by hand (exercises);
# * compare zero, mean and resample ablation, and causal tracing with embedding noise.
#
# **Prerequisites:** notebooks 00 and 01 (hooks, the IOI task, logit differences).
# **Time:** about 45 min to read and run, plus 45 min of exercises.

# %% tags=["parameters"]
MODEL = "zoo-4l"  # any zoo model offline, or a hub model such as "gpt2" on Colab

# %%
# Colab set-up (the same cell in every notebook; safe to run again): on Colab, clone
# the project and install its helpers. Elsewhere this cell does nothing.
import sys

if "google.colab" in sys.modules:
    import subprocess
    from pathlib import Path

    REPO = "https://github.com/mi-roadmap/mi-roadmap"  # from pyproject.toml [project.urls]
    HERE = Path("/content/mi-roadmap")
    if not (HERE / "pyproject.toml").is_file():
        done = subprocess.run(["git", "clone", "--depth=1", REPO, str(HERE)],
                              capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"could not clone {REPO}: {done.stderr.strip()[-300:]}\nSet "
                               f"REPO to the project's repository (or a fork of it).")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", str(HERE)], check=True)
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))

# %%
import matplotlib.pyplot as plt
import torch

from mi_helpers import load_model
from mi_helpers.circuits import (abc_corruption, ablation_patching, activation_patching,
                                 causal_tracing, ioi_dataset)
from mi_helpers.core import top_heads
from mi_helpers.datasets import IOI_HELDOUT_TEMPLATES
from mi_helpers.viz import heatmap

torch.manual_seed(0)
model = load_model(MODEL)
n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
print(f"{MODEL}: {n_layers} layers, {n_heads} heads per layer")

# %% [markdown]
# ## 1. Clean and corrupted prompts
# One held-out template (never seen in training), so every prompt has the same word at
# each position and per-position results can be averaged over prompts.

# %%
clean = ioi_dataset(model, 40, seed=0, templates=IOI_HELDOUT_TEMPLATES[:1])
corrupted = abc_corruption(clean, model, seed=1)
print("clean:    ", clean.prompts[0], "->", clean.io[0])
print("corrupted:", corrupted.prompts[0])
labels = [f"{i}:{t}" for i, t in enumerate(model.to_str_tokens(clean.tokens[0]))]
with torch.no_grad():
    clean_metric = clean.metric(model(clean.tokens)).item()
    corrupted_metric = clean.metric(model(corrupted.tokens)).item()
print(f"logit difference: clean {clean_metric:.2f}, corrupted {corrupted_metric:.2f}")

# %%
if MODEL == "zoo-4l" or MODEL == "gpt2":  # model card; Wang et al. (2022): 3.56 on gpt2
    assert clean_metric > 2 and clean_metric - corrupted_metric > 2, "the corruption should matter"
else:
    print(f"no expectation for {MODEL}")

# %% [markdown]
# ### Exercise 05.1: the metric, for prompts of different lengths
# **Difficulty** 1/5 · **Importance** 4/5 · **Time** about 10 min
#
# Patching needs one number per run. Write `logit_diff(logits, ends, correct, wrong)`:
# `logits` is `[batch, pos, d_vocab]`, and for each prompt `ends[b]` is its last real
# position (prompts are right-padded, so it is not always `-1`), `correct[b]` and
# `wrong[b]` are token ids. Return the mean over prompts of
# $\text{logit}(\text{correct}) - \text{logit}(\text{wrong})$ at each prompt's end, as a
# scalar tensor.
#
# <details><summary>Hint 1</summary>
#
# `rows = torch.arange(len(logits))`; `logits[rows, ends]` is `[batch, d_vocab]`, one
# row per prompt at its own end.
# </details>

# %%
import torch
from torch import Tensor


def logit_diff(logits: Tensor, ends: Tensor, correct: Tensor, wrong: Tensor) -> Tensor:
    """Mean over prompts of logit(correct) - logit(wrong) at each prompt's end."""
    # BEGIN SOLUTION
    rows = torch.arange(len(logits), device=logits.device)
    final = logits[rows, ends]
    return (final[rows, correct] - final[rows, wrong]).mean()
    # END SOLUTION
    # STUB raise NotImplementedError("read each prompt's end, then the two logits")

# %%
from mi_helpers.exercises import check_logit_diff

check_logit_diff(logit_diff)

# %% [markdown]
# ## 2. The residual stream, layer by layer and position by position (denoising)

# %%
resid = activation_patching(model, clean.tokens, corrupted.tokens, clean.metric,
                            "resid_pre", per_position=True)
heatmap(resid.score, "denoising the residual stream (1 = clean restored)", xlabel="position",
        ylabel="layer (resid_pre)", xticklabels=labels, kind="score")
plt.show()
pos = {name: int(clean.word_positions[name][0]) for name in ("IO", "S1", "S2", "end")}
first, last = resid.score[0], resid.score[-1]


def shown(x):
    """2 decimals for printing, -0.00 as 0.00 (a sign that small is rounding noise)."""
    return round(float(x), 2) + 0.0


print(f"layer 0: IO {shown(first[pos['IO']]):.2f}, S1 {shown(first[pos['S1']]):.2f}, "
      f"S2 {shown(first[pos['S2']]):.2f}, end {shown(first[pos['end']]):.2f}")
print(f"layer {n_layers - 1}: end {shown(last[pos['end']]):.2f}, "
      f"best other position {shown(last[:pos['end']].max()):.2f}")

# %%
name_slots = [pos["IO"], pos["S1"], pos["S2"]]
others = [p for p in range(len(labels)) if p not in name_slots]
print(f"layer 0: best name slot {shown(first[name_slots].max()):.2f}, "
      f"best other position {shown(first[others].max()):.2f}")
if MODEL == "zoo-4l":
    assert first[name_slots].max() > 0.5 and first[others].max() < 0.1, "at layer 0, the names"
    assert last[pos["end"]] > 0.9 and last[:pos["end"]].max() < 0.2, "by the last layer, the end token"
else:
    print(f"no expectation for {MODEL}")

# %% [markdown]
# ### Exercise 05.2: an activation-patching loop
# **Difficulty** 3/5 · **Importance** 5/5 · **Time** about 25 min
#
# Write by hand one row of the heatmap above. `patch_residual_by_position(model,
# clean_tokens, corrupted_tokens, metric, layer)` returns a `[pos]` tensor: for each
# position, the metric of the *corrupted* run in which the residual stream entering
# block `layer` (`blocks.{layer}.hook_resid_pre`) at that one position is replaced by
# its value in the *clean* run (denoising). `metric` maps logits to a scalar tensor.
# The check runs your function on this notebook's model and compares it with
# `activation_patching`.
#
# <details><summary>Hint 1</summary>
#
# Cache the clean run once: `model.run_with_cache(clean_tokens, names_filter=hook)`.
# </details>
#
# <details><summary>Hint 2</summary>
#
# A hook is `fn(activation, hook) -> activation`; run it with
# `model.run_with_hooks(corrupted_tokens, fwd_hooks=[(hook, fn)])`. Bind the position
# as a default argument (`def patch(resid, hook, pos=pos)`) so that each hook keeps its
# own.
# </details>

# %%
import torch
from torch import Tensor


def patch_residual_by_position(model, clean_tokens: Tensor, corrupted_tokens: Tensor,
                               metric, layer: int) -> Tensor:
    """Denoise resid_pre of `layer` one position at a time: [pos] metric values."""
    # BEGIN SOLUTION
    hook = f"blocks.{layer}.hook_resid_pre"
    with torch.no_grad():
        _, clean_cache = model.run_with_cache(clean_tokens, names_filter=hook)
    clean_resid = clean_cache[hook]
    results = torch.zeros(clean_tokens.shape[1])
    for pos in range(clean_tokens.shape[1]):
        def patch(resid, hook, pos=pos):
            resid[:, pos] = clean_resid[:, pos]
            return resid

        with torch.no_grad():
            logits = model.run_with_hooks(corrupted_tokens, fwd_hooks=[(hook, patch)])
        results[pos] = metric(logits)
    return results
    # END SOLUTION
    # STUB raise NotImplementedError("cache the clean run, then one patched run per position")

# %%
from mi_helpers.exercises import check_patching_loop

check_patching_loop(patch_residual_by_position, model)

# %% [markdown]
# ## 3. Attention and MLP outputs, both directions

# %%
blocks = {}
for target in ("attn_out", "mlp_out"):
    for mode in ("denoise", "noise"):
        blocks[target, mode] = activation_patching(
            model, clean.tokens, corrupted.tokens, clean.metric, target, mode=mode).score
fig, axes = plt.subplots(1, 2, figsize=(10, 3), sharey=True)
for ax, target in zip(axes, ("attn_out", "mlp_out")):
    x = torch.arange(n_layers)
    ax.bar(x - 0.2, blocks[target, "denoise"], 0.4, label="denoise: clean patched into corrupted")
    ax.bar(x + 0.2, 1 - blocks[target, "noise"], 0.4, label="noise: 1 - score when corrupted")
    ax.set_xticks(x, [f"L{layer}" for layer in range(n_layers)])
    ax.set_title(target)
axes[0].legend(fontsize=7)
plt.tight_layout()
plt.show()
for target in ("attn_out", "mlp_out"):
    print(target, "denoise", [round(v, 2) for v in blocks[target, "denoise"].tolist()],
          "| noise", [round(v, 2) for v in blocks[target, "noise"].tolist()])

# %%
necessity = torch.cat([1 - blocks["attn_out", "noise"], 1 - blocks["mlp_out", "noise"]])
sufficiency = torch.cat([blocks["attn_out", "denoise"], blocks["mlp_out", "denoise"]])
agreement = torch.corrcoef(torch.stack([necessity, sufficiency]))[0, 1].item()
print(f"correlation of necessity and sufficiency over the {len(necessity)} blocks: {agreement:.2f}")
if MODEL == "zoo-4l":
    assert agreement > 0.5, "noising and denoising should point at the same blocks"
else:
    print(f"no expectation for {MODEL}")

# %% [markdown]
# ## 4. Every head (noising), and three ablations
# Noising asks which heads the clean run *needs*: patch each head's output `z` (all
# positions) with its corrupted value. Ablations replace it with zeros, with its mean
# over the ABC prompts, or with its value on a different clean prompt (resampling).

# %%
heads_noise = activation_patching(model, clean.tokens, corrupted.tokens, clean.metric, "z",
                                  mode="noise")
ablations = {kind: ablation_patching(model, clean.tokens, clean.metric, "z", ablation=kind,
                                     reference=None if kind == "zero" else corrupted.tokens)
             for kind in ("zero", "mean", "resample")}
drop = {"corrupted patch": 1 - heads_noise.score}  # layer head; red = the head matters
drop.update({kind: r.drop for kind, r in ablations.items()})
shared_scale = max(d.abs().max().item() for d in drop.values())
fig, axes = plt.subplots(1, 4, figsize=(16, 3))
for ax, (kind, d) in zip(axes, drop.items()):
    heatmap(d, f"{kind}: drop / clean", xlabel="head", ylabel="layer", ax=ax, kind="signed",
            vmax=shared_scale)
plt.tight_layout()
plt.show()
top = {kind: set(top_heads(d, 3)) for kind, d in drop.items()}
for kind, d in drop.items():
    print(f"{kind:>16}: top heads {[h.label for h in top_heads(d, 3)]}, largest drop "
          f"{d.max():.0%}, mean |drop| {d.abs().mean():.1%}")

# %%
shared = top["mean"] & top["resample"] & top["corrupted patch"]
print("heads in the top 3 of mean, resample and corrupted patching alike:",
      [h.label for h in sorted(shared)])
if MODEL == "zoo-4l":
    assert len(shared) >= 2, "the ablations should agree on the most important heads"
    assert drop["zero"].abs().mean() > drop["mean"].abs().mean(), "zero ablation is the harshest"
else:
    print(f"no expectation for {MODEL}")

# %% [markdown]
# ### Exercise 05.3: a hook that patches one head
# **Difficulty** 2/5 · **Importance** 5/5 · **Time** about 10 min
#
# Head patching replaces one head's output `z` (`blocks.L.attn.hook_z`, shape `[batch,
# pos, head, d_head]`) with its value from another run. Write the hook
# `patch_head_hook(z, hook, head, source)`: return `z` with head `head` taken from
# `source` (same shape), every other head unchanged. It is used as
# `partial(patch_head_hook, head=h, source=corrupted_z)`; the check runs it on tensors
# and then inside this notebook's model.
#
# <details><summary>Hint 1</summary>
#
# Heads are axis 2: `z[:, :, head] = source[:, :, head]`, then return `z`.
# </details>

# %%
from torch import Tensor


def patch_head_hook(z: Tensor, hook, head: int, source: Tensor) -> Tensor:
    """z with head `head` replaced by source's: [batch, pos, head, d_head]."""
    # BEGIN SOLUTION
    z[:, :, head] = source[:, :, head]
    return z
    # END SOLUTION
    # STUB raise NotImplementedError("replace one head's slice of z")

# %%
from mi_helpers.exercises import check_patch_head_hook

check_patch_head_hook(patch_head_hook, model)

# %% [markdown]
# ## 5. Causal tracing: noise instead of a second prompt
# [Meng et al. (2022)](https://arxiv.org/abs/2202.05262) corrupt the clean prompt itself: Gaussian noise (3x the embedding std) on
# the embeddings of the names, then restore one clean residual activation at a time.

# %%
tracing = causal_tracing(model, clean.tokens, clean.metric, noise_positions=name_slots)
heatmap(tracing.score, "causal tracing: restoring the residual stream", xlabel="position",
        ylabel="layer (resid_pre)", xticklabels=labels, kind="score")
plt.show()
print(f"clean {tracing.clean:.2f}, noised names {tracing.corrupted:.2f}")
print(f"restoring the last token at the last layer: {tracing.score[-1, pos['end']]:.2f}")
similarity = torch.nn.functional.cosine_similarity(tracing.score.flatten(), resid.score.flatten(), dim=0)
print(f"cosine similarity of the tracing and the ABC-patching maps: {similarity:.2f}")

# %%
if MODEL == "zoo-4l":
    assert tracing.score[-1, pos["end"]] > 0.9
    assert similarity > 0.7, "noise and ABC corruption should trace the same route"
else:
    print(f"no expectation for {MODEL}")

# %% [markdown]
# ## Summary
# * The IOI information starts at the name tokens and ends at the last token; patching
#   the residual stream shows *where* and *when* it moves.
# * Blocks and heads that are necessary (noising) are also sufficient (denoising) here;
#   that need not hold in general: a redundant pair of heads is sufficient one at a
#   time but neither is necessary.
# * Ablations differ: zero ablation pushes a head far outside its normal range, so its
#   "effects" are larger everywhere, and its top heads need not be the heads the other
#   three methods find (compare the printout of section 4); mean and resample ablation
#   stay on the data distribution and agree with patching from the corrupted prompts.
# * Notebook 06 follows the route head by head with *path* patching and evaluates the
#   circuit it finds.

# %% [markdown]
# ## Further reading
# * [Meng et al. (2022), *Locating and Editing Factual Associations in GPT*](https://arxiv.org/abs/2202.05262): causal tracing.
# * [Vig et al. (2020), *Causal Mediation Analysis for Interpreting Neural NLP*](https://arxiv.org/abs/2004.12265).
# * [Zhang & Nanda (2023), *Towards Best Practices of Activation Patching in Language Models: Metrics and Methods*](https://arxiv.org/abs/2309.16042).
# * [Heimersheim & Nanda (2024), *How to use and interpret activation patching*](https://arxiv.org/abs/2404.15255).
