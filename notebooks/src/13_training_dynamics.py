# %% [markdown]
# # 13 · Training dynamics: watch circuits form
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mi-roadmap/mi-roadmap/blob/main/notebooks/13_training_dynamics.ipynb)
#
# The other notebooks take a trained model apart. Here we watch mechanisms appear while a
# model trains, and measure them at each step:
#
# * **Induction heads form in a phase change.** A 2-layer transformer trained on
#   sequences with repeated spans sits on a plateau, then in a short window a
#   previous-token head and an induction head appear *together*, and the model starts to
#   use its context ([Olsson et al. 2022](https://arxiv.org/abs/2209.11895)). We record
#   the loss, the in-context-learning (ICL) score and every head's scores during training,
#   and then break the induction head by ablating the previous-token head it reads.
# * **A one-layer transformer groks modular addition.** Trained on 30% of the table of
#   `(a + b) mod p` with weight decay, it memorises the training pairs first; long after,
#   its test accuracy jumps ([Power et al. 2022](https://arxiv.org/abs/2201.02177)). The
#   general solution embeds each number as waves of a few *key frequencies*
#   ([Nanda et al. 2023](https://arxiv.org/abs/2301.05217)); we watch the embedding
#   concentrate on them.
# * **The local learning coefficient (LLC)**, estimated by SGLD
#   ([Lau et al. 2023](https://arxiv.org/abs/2308.12108)), is a number per checkpoint that
#   developmental interpretability uses to find such transitions
#   ([Hoogland et al. 2024](https://arxiv.org/abs/2402.02364)).
#
# The runs take minutes of CPU, more than this notebook's budget, so by default we load
# their records (and the induction run's last checkpoint), committed under
# `data/dynamics/` and written by the commands printed below; `TRAIN_HERE = True` trains
# them here instead, and the step counts make them longer. This notebook trains its own
# models: it has no `MODEL` parameter.
#
# **What we expect to see** (asserted below):
# 1. the induction score of the best layer-1 head (minimum over two repeat lengths)
#    crosses 0.8 within the run; the best layer-0 previous-token head rises in the same
#    window, and the ICL score falls from about 0 to clearly negative there;
# 2. after the change, mean-ablating that previous-token head drops every induction
#    head's score below half its clean value and puts the loss on repeated tokens back near
#    chance, while ablating any other layer-0 head leaves the induction heads working;
# 3. the control run, same model on text without repeated random spans, forms no
#    induction head;
# 4. with weight decay, test accuracy is at most 0.2 when train accuracy first reaches
#    1.0 and at least 0.95 at the end; the weight norm falls from its peak and the
#    embedding's Fourier spectrum becomes sparse;
# 5. the control without weight decay memorises but does not generalise in the same
#    number of steps;
# 6. the LLC grows much faster across the induction phase change than on the plateau.

# %% [markdown]
# **Learning objectives.** After this notebook you can
# * read a training run's records (loss, ICL score, every head's scores) and locate a
#   phase change in them; compute the ICL score and the step of a first crossing by hand
#   (exercises);
# * test a mechanism at a checkpoint by ablation (the induction head needs the
#   previous-token head), against a control run;
# * tell memorisation from generalisation in a grokking run, and measure an embedding's
#   Fourier spectrum yourself (exercise);
# * read LLC estimates across a transition, and say what they depend on.
#
# **Prerequisites:** notebooks 00 and 07 (induction heads, previous-token heads,
# ablation); notebook 09 for comparing models.
# **Time:** about 35 min to read and run, plus 40 min of exercises.

# %% tags=["parameters"]
TRAIN_HERE = False  # True: train every run here (about 3 + 2 x 1.5 min of CPU) instead of loading it
INDUCTION_STEPS = 1500  # with TRAIN_HERE: e.g. 3000 for a longer induction run
GROKKING_STEPS = 2000  # with TRAIN_HERE: e.g. 5000 to watch the clean-up go on

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
import dataclasses
import json
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from transformers.utils import logging as hf_logging

from mi_helpers import load_model
from mi_helpers.circuits import head_ablation_hooks, head_means, offset_score
from mi_helpers.core import Head
from mi_helpers.core.activations import run_cached
from mi_helpers.core.hooks import layer_hooks
from mi_helpers.core.metrics import per_token_loss
from mi_helpers.datasets import repeated_random_tokens
from mi_helpers.dynamics import (RUNS_DIR, GrokkingConfig, Recorder, first_crossing,
                                 induction_spec, spec_probes, train_grokking)
from mi_helpers.zoo.train import train_model

torch.manual_seed(0)
hf_logging.disable_progress_bar()  # no "Loading weights" bar for the checkpoint
plt.rcParams["figure.dpi"] = 72  # small figures keep the committed notebook small

# %% [markdown]
# ## 1. An induction head forms
# The run: the zoo-2l recipe (Pythia-style, 2 layers of 4 heads, d_model 64, context 64,
# AdamW with warm-up and cosine decay) trained only on blocks `r + gap + r` of random
# tokens, with `r` of 6 to 24 tokens. Every 25 steps a recorder measures, on held-out
# data, the loss and the ICL score (loss at the last quarter of the context minus loss
# at positions 4 to 7), and every head's previous-token and induction score on
# `BOS + r + r` at repeat lengths 10 and 25.

# %%
spec = induction_spec(steps=INDUCTION_STEPS)
print("training command: python -m mi_helpers.dynamics --threads 1 induction "
      f"--steps {spec.steps} --keep {spec.steps}")
if TRAIN_HERE:
    run_dir = Path(tempfile.mkdtemp(prefix="induction-"))
    recorder = Recorder(spec_probes(spec), every=25)
    train_model(spec, run_dir / "final", progress=False, checkpoint_every=100,
                checkpoints=run_dir, recorder=recorder)
else:
    run_dir = RUNS_DIR / spec.name
    recorder = Recorder.load(run_dir / "record.json")
    training = recorder.metadata["training"]
    print(f"loaded {len(recorder.records)} records; the run took {training['cpu_time_s']:.0f} s "
          f"of CPU time on {training['threads']} thread(s)")
steps = recorder.steps


def fair_scores(rec: Recorder, kind: str) -> torch.Tensor:
    """[record, layer, head] score, the minimum over the two repeat lengths."""
    return torch.minimum(rec.series(f"{kind}@10"), rec.series(f"{kind}@25"))


prev_scores, ind_scores = fair_scores(recorder, "previous_token"), fair_scores(recorder, "induction")
final_ind = ind_scores[-1]
induction_head = Head(1, int(final_ind[1].argmax()))
prev_head = Head(0, int(prev_scores[-1, 0].argmax()))
induction_heads = [Head(1, h) for h in range(final_ind.shape[1]) if final_ind[1, h] > 0.8]
print(f"at step {int(steps[-1])}: previous-token head {prev_head.label} "
      f"{prev_scores[-1][prev_head]:.2f}; induction heads (> 0.8) "
      f"{ {h.label: round(final_ind[h].item(), 2) for h in induction_heads} }")

# %%
assert len(induction_heads) >= 1, "an induction head above 0.8 by the end of the run"
assert prev_head.layer < induction_head.layer

# %% [markdown]
# The phase change: the loss leaves its plateau, the ICL score falls, and both heads'
# scores rise, in the same window. We mark where each score first passes half-way (0.5).

# %%
ind_curve = ind_scores[:, induction_head.layer, induction_head.head]
prev_curve = prev_scores[:, prev_head.layer, prev_head.head]
icl = recorder.series("icl_score")
ind_half = first_crossing(steps, ind_curve, 0.5)
prev_half = first_crossing(steps, prev_curve, 0.5)
ind_crosses = first_crossing(steps, ind_curve, 0.8)
icl_half = first_crossing(steps, icl, icl[-1].item() / 2, below=True)

fig, axes = plt.subplots(1, 3, figsize=(12, 3), sharex=True)
axes[0].plot(steps, recorder.series("loss"), label="held-out loss")
axes[0].set_ylabel("loss (nats/token)")
axes[1].plot(steps, icl, color="C2")
axes[1].axhline(0, color="grey", lw=0.5)
axes[1].set_ylabel("ICL score (late - early loss)")
for layer, kind, scores, style in ((0, "previous-token", prev_scores, "-"),
                                   (1, "induction", ind_scores, "--")):
    for head in range(scores.shape[2]):
        axes[2].plot(steps, scores[:, layer, head], style, lw=1,
                     label=f"L{layer}H{head} {kind}")
axes[2].set_ylabel("score (min over lengths 10, 25)")
axes[2].legend(fontsize=7, ncol=2)
for ax in axes:
    ax.set_xlabel("step")
    for x in (prev_half, ind_half):
        if x is not None:
            ax.axvline(x, color="grey", ls=":", lw=1)
plt.tight_layout()
plt.show()
print(f"{induction_head.label} induction score passes 0.5 at step {ind_half}, 0.8 at step {ind_crosses}")
print(f"{prev_head.label} previous-token score passes 0.5 at step {prev_half}")
print(f"ICL score passes half its final value ({icl[-1]:.2f}) at step {icl_half}")

# %%
assert ind_crosses is not None, "the induction score crosses 0.8 within the run"
assert prev_half is not None and ind_half is not None, "both heads appear"
assert abs(prev_half - ind_half) <= 150, "...in the same window"
assert icl_half is not None and abs(icl_half - ind_half) <= 150, "the ICL score falls then too"
before = steps < ind_half - 150
assert icl[before].min() > -0.1 and icl[-1] < -0.5, "ICL score: about 0 before, negative after"

# %% [markdown]
# ### Exercise 13.1: the in-context-learning score
# **Difficulty** 1/5 · **Importance** 4/5 · **Time** about 10 min
#
# Write `icl_from_logits(logits, tokens, early, late)`: `logits` `[batch, pos, d_vocab]`
# and `tokens` `[batch, pos]` of held-out sequences, `early` and `late` two `range`s of
# positions (the recorder uses positions 4 to 7 and the last quarter of the context).
# Return the ICL score as a scalar: the mean next-token loss at the late positions minus
# the mean at the early ones. Position `i` predicts token `i + 1`.
#
# <details><summary>Hint 1</summary>
#
# The loss at position `i` is `-log_softmax(logits[:, i])[tokens[:, i + 1]]`: the last
# position predicts nothing.
# </details>
#
# <details><summary>Hint 2</summary>
#
# `losses = -logits[:, :-1].log_softmax(-1).gather(-1, tokens[:, 1:, None]).squeeze(-1)`,
# then `losses[:, late.start:late.stop].mean() - losses[:, early.start:early.stop].mean()`.
# </details>

# %%
from torch import Tensor


def icl_from_logits(logits: Tensor, tokens: Tensor, early: range, late: range) -> Tensor:
    """Mean next-token loss at ``late`` positions minus at ``early`` ones (a scalar)."""
    # BEGIN SOLUTION
    log_probs = logits[:, :-1].log_softmax(-1)
    losses = -log_probs.gather(-1, tokens[:, 1:, None]).squeeze(-1)  # batch pos-1
    return losses[:, late.start:late.stop].mean() - losses[:, early.start:early.stop].mean()
    # END SOLUTION
    # STUB raise NotImplementedError("per-position losses, then late minus early")

# %%
from mi_helpers.exercises import check_icl_from_logits

check_icl_from_logits(icl_from_logits)

# %% [markdown]
# ### Exercise 13.2: when does a curve first cross a threshold?
# **Difficulty** 1/5 · **Importance** 3/5 · **Time** about 10 min
#
# The phase-change steps above come from the helper `first_crossing`. Write it yourself:
# `crossing_step(steps, values, threshold, below=False)`, with `steps` `[record]` the
# training step of each record and `values` `[record]` a recorded score. Return the first
# training step at which `values >= threshold` (with `below=True`, `values <= threshold`)
# as an `int`, or `None` if that never happens in the run.
#
# <details><summary>Hint 1</summary>
#
# `(values >= threshold).nonzero()` lists the records past the threshold, in order.
# </details>
#
# <details><summary>Hint 2</summary>
#
# Return the *step* of the first such record, `int(steps[i])`, not its index `i`: the
# recorder logs every 25 steps.
# </details>

# %%
from torch import Tensor


def crossing_step(steps: Tensor, values: Tensor, threshold: float, below: bool = False
                  ) -> int | None:
    """The first step with ``values >= threshold`` (``<=`` with ``below``), else None."""
    # BEGIN SOLUTION
    passed = values <= threshold if below else values >= threshold
    hits = passed.nonzero()
    return int(steps[hits[0, 0]]) if len(hits) else None
    # END SOLUTION
    # STUB raise NotImplementedError("the step of the first record past the threshold")

# %%
from mi_helpers.exercises import check_crossing_step

check_crossing_step(crossing_step)

# %% [markdown]
# ## 2. The induction head needs the previous-token head (K-composition, measured)
# At the end of the run, we mean-ablate one layer-0 head at a time (replace its output
# by its mean over these sequences, position by position) and measure every layer-1 head's
# induction score and the loss on the repeated half of `BOS + r + r`. If the induction
# heads find "the token after the earlier copy" through keys written by the
# previous-token head, removing that head alone should break them.

# %%
after_dir = run_dir / f"step-{spec.steps:06d}"  # the last checkpoint
model = load_model(str(after_dir), device="cpu")
REP_LEN = 25
tokens = repeated_random_tokens(model, rep_len=REP_LEN, n_seqs=64, seed=2)
means = head_means(model, tokens)
pattern_hooks = layer_hooks(model, "pattern")


def with_ablated(heads):
    """Layer-1 induction scores and the loss on the repeated half, ``heads`` mean-ablated."""
    hooks = head_ablation_hooks(model, heads, means) if heads else []
    logits, cache = run_cached(model, tokens, pattern_hooks, fwd_hooks=hooks)
    patterns = torch.stack([cache[name] for name in pattern_hooks])
    scores = offset_score(patterns, range(REP_LEN + 1, 2 * REP_LEN + 1), REP_LEN - 1)[1]
    loss = per_token_loss(logits, tokens)[:, REP_LEN + 1:2 * REP_LEN].mean().item()
    return scores, loss


clean_scores, clean_loss = with_ablated([])
ablations = {"none": (clean_scores, clean_loss)}
for head in range(model.cfg.n_heads):
    ablations[f"L0H{head}"] = with_ablated([(0, head)])
others = [(0, h) for h in range(model.cfg.n_heads) if h != prev_head.head]
ablations["all other L0 heads"] = with_ablated(others)
chance = torch.log(torch.tensor(float(model.cfg.d_vocab - 2))).item()
print(f"loss on the repeated half; chance (uniform over {model.cfg.d_vocab - 2} tokens) "
      f"{chance:.2f}")
for name, (scores, loss) in ablations.items():
    print(f"ablated {name:>18}: induction scores {[round(s, 2) for s in scores.tolist()]}, "
          f"loss {loss:.2f}")

# %%
broken_scores, broken_loss = ablations[prev_head.label]
for h in induction_heads:
    assert broken_scores[h.head] < 0.5 * clean_scores[h.head], f"{h.label} stops working"
    for name, (scores, _) in ablations.items():
        if name not in ("none", prev_head.label):
            assert scores[h.head] > 0.8 * clean_scores[h.head], f"{h.label} survives {name}"
assert broken_loss > chance - 0.5 and clean_loss < chance - 2, "loss back near chance"

# %% [markdown]
# ## 3. Control: the same model on text, without repeated random spans
# The same recipe on the zoo's generated sentences only (English, French, IOI-style,
# arithmetic), recorded the same way. Names and words do recur in these sentences, but
# not as long copied spans.

# %%
print("training command: python -m mi_helpers.dynamics --threads 1 induction --text-only")
control = Recorder.load(RUNS_DIR / induction_spec(repeats=False).name / "record.json")
control_ind, control_prev = fair_scores(control, "induction"), fair_scores(control, "previous_token")
fig, ax = plt.subplots(figsize=(5.5, 3))
ax.plot(steps, ind_curve, label=f"repeats: best induction ({induction_head.label})")
ax.plot(control.steps, control_ind[:, 1].max(-1).values, label="text: best layer-1 induction")
ax.plot(control.steps, control_prev[:, 0].max(-1).values, ls="--",
        label="text: best layer-0 previous-token")
ax.set_xlabel("step")
ax.set_ylabel("score (min over lengths)")
ax.legend(fontsize=8)
plt.show()
print(f"text run: best induction score at any step {control_ind.max():.2f}, best previous-token "
      f"{control_prev.max():.2f}; final held-out loss {control.records[-1]['loss']:.2f}")

# %%
assert control_ind.max() < 0.3, "no induction head forms without repeated spans"

# %% [markdown]
# ## 4. Grokking modular addition
# A one-layer transformer (d_model 64, 4 heads, ReLU MLP of 256, no layer norm) reads
# `a b =` and predicts `(a + b) mod 113`. It is trained full-batch with AdamW (learning
# rate 3e-3, weight decay 3) on 30% of the 12,769 pairs; the other 70% are the test set.
# Every 25 steps the recorder logs both accuracies, the weight norm, and the norm of the
# embedding at each Fourier frequency `k` (its projection on `cos(2 pi k a / p)` and
# `sin(2 pi k a / p)`). The control is the same run without weight decay.

# %%
config = GrokkingConfig(steps=GROKKING_STEPS)
plain_config = dataclasses.replace(config, weight_decay=0.0)
runs = RUNS_DIR / "grokking"
print("training commands: python -m mi_helpers.dynamics --threads 1 grokking --out "
      "data/dynamics/grokking/weight_decay.json\n  and the same with --weight-decay 0 --out "
      "data/dynamics/grokking/no_weight_decay.json")
if TRAIN_HERE:
    _, grok, _ = train_grokking(config, progress=False)
    _, plain, _ = train_grokking(plain_config, progress=False)
else:
    grok = Recorder.load(runs / "weight_decay.json")
    plain = Recorder.load(runs / "no_weight_decay.json")
    assert grok.metadata["config"] == dataclasses.asdict(config), "the committed run's settings"
    assert plain.metadata["config"] == dataclasses.asdict(plain_config)
train_acc, test_acc = grok.series("train_accuracy"), grok.series("test_accuracy")
memorised = first_crossing(grok.steps, train_acc, 1.0)
grokked = first_crossing(grok.steps, test_acc, 0.95)
test_at_memorised = test_acc[grok.steps == memorised].item() if memorised is not None else None

fig, axes = plt.subplots(1, 3, figsize=(12, 3), sharex=True)
axes[0].plot(grok.steps, train_acc, label="train")
axes[0].plot(grok.steps, test_acc, label="test")
axes[0].set_ylabel("accuracy")
axes[0].legend()
axes[1].semilogy(grok.steps, grok.series("train_loss"), label="train")
axes[1].semilogy(grok.steps, grok.series("test_loss"), label="test")
axes[1].set_ylabel("loss")
axes[1].legend()
axes[2].plot(grok.steps, grok.series("weight_norm"), color="C3")
axes[2].set_ylabel("weight norm", color="C3")
twin = axes[2].twinx()
twin.plot(grok.steps, grok.series("effective_frequencies"), color="C4")
twin.set_ylabel("effective number of frequencies", color="C4")
for ax in axes:
    ax.set_xlabel("step")
plt.tight_layout()
plt.show()

# %%
print(f"train accuracy first 1.0 at step {memorised}, test accuracy then "
      f"{'-' if test_at_memorised is None else round(test_at_memorised, 3)}")
print(f"test accuracy first >= 0.95 at step {grokked}; at the end {test_acc[-1]:.3f}")

# %%
norm = grok.series("weight_norm")
peak = int(norm.argmax())
print(f"weight norm: {norm[0]:.1f} at step 0, peak {norm[peak]:.1f} at step {int(grok.steps[peak])}, "
      f"{norm[-1]:.1f} at the end")

# %%
assert memorised is not None and test_at_memorised <= 0.2, "memorised first"
assert test_acc[-1] >= 0.95, "then generalised"
assert norm[-1] < 0.8 * norm[peak], "weight decay shrank the memorising solution"

# %% [markdown]
# **The key-frequency picture.** The embedding's norm at each frequency, at the start and
# at the end, and over training: a few frequencies take over (Nanda et al. found five in
# their model).

# %%
freq = grok.series("frequency_norms")  # record freq
fig, axes = plt.subplots(1, 2, figsize=(12, 3), gridspec_kw={"width_ratios": [1, 2]})
k = torch.arange(1, freq.shape[1] + 1)
axes[0].bar(k - 0.2, freq[0], width=0.4, label="step 0")
axes[0].bar(k + 0.2, freq[-1], width=0.4, label=f"step {int(grok.steps[-1])}")
axes[0].set_xlabel("frequency k")
axes[0].set_ylabel("embedding norm")
axes[0].legend()
image = axes[1].imshow(freq.T, aspect="auto", origin="lower", cmap="viridis",
                       interpolation="nearest",
                       extent=(0, int(grok.steps[-1]), 0.5, freq.shape[1] + 0.5))
axes[1].set_xlabel("step")
axes[1].set_ylabel("frequency k")
plt.colorbar(image, ax=axes[1], label="embedding norm")
plt.tight_layout()
plt.show()
eff = grok.series("effective_frequencies")
key_frequencies = sorted(torch.topk(freq[-1], 5).indices.add(1).tolist())

# %%
print(f"effective number of frequencies: {eff[0]:.1f} at step 0, {eff[-1]:.1f} at the end")
print(f"the five largest frequencies at the end: {key_frequencies}")

# %%
assert eff[-1] < 0.5 * eff[0], "the embedding concentrates on a few frequencies"

# %% [markdown]
# ### Exercise 13.3: an embedding's norm at each Fourier frequency
# **Difficulty** 2/5 · **Importance** 4/5 · **Time** about 20 min
#
# Write `fourier_norms(embedding)`, the quantity in the figure above: `embedding` is
# `[p, d_model]`, one row per number `0 .. p - 1`. For each frequency `k = 1 .. p // 2`
# return the norm of the embedding's component along the unit vectors `cos(2 pi k x /
# p)` and `sin(2 pi k x / p)` over `x = 0 .. p - 1`, the two parts together: `[p // 2]`.
# The constant (k = 0) is not a frequency.
#
# <details><summary>Hint 1</summary>
#
# Divide each cosine and sine vector by its own norm (about `sqrt(p / 2)`); projecting
# is then `w @ embedding`, a `[d_model]` vector.
# </details>
#
# <details><summary>Hint 2</summary>
#
# The norm at `k` is `sqrt(|cos part|^2 + |sin part|^2)`. For even `p`, `k = p / 2` has
# only a cosine: `sin(pi x)` is zero at every integer, so skip it rather than dividing by
# its norm.
# </details>

# %%
import math

import torch
from torch import Tensor


def fourier_norms(embedding: Tensor) -> Tensor:
    """The norm of the embedding at each frequency k = 1 .. p // 2: [p // 2]."""
    # BEGIN SOLUTION
    p = len(embedding)
    x = torch.arange(p, dtype=embedding.dtype)
    norms = []
    for k in range(1, p // 2 + 1):
        waves = [torch.cos(2 * math.pi * k * x / p)]
        if 2 * k != p:
            waves.append(torch.sin(2 * math.pi * k * x / p))
        squared = sum(((w / w.norm()) @ embedding).pow(2).sum() for w in waves)
        norms.append(squared.sqrt())
    return torch.stack(norms)
    # END SOLUTION
    # STUB raise NotImplementedError("project on unit cosines and sines, frequency by frequency")

# %%
from mi_helpers.exercises import check_fourier_norms

check_fourier_norms(fourier_norms)

# %% [markdown]
# **Control: no weight decay.** The same run with weight decay 0.

# %%
plain_test = plain.series("test_accuracy")
fig, ax = plt.subplots(figsize=(5.5, 3))
ax.plot(grok.steps, test_acc, label=f"test, weight decay {config.weight_decay:g}")
ax.plot(plain.steps, plain.series("train_accuracy"), ls="--", label="train, no weight decay")
ax.plot(plain.steps, plain_test, label="test, no weight decay")
ax.set_xlabel("step")
ax.set_ylabel("accuracy")
ax.legend(fontsize=8)
plt.show()

# %%
print(f"no weight decay: train accuracy {plain.series('train_accuracy')[-1]:.2f}, test accuracy "
      f"{plain_test[-1]:.2f} at step {int(plain.steps[-1])}")

# %%
assert plain.series("train_accuracy")[-1] == 1.0 and plain_test.max() < 0.5, "memorises only"

# %% [markdown]
# ## 5. The local learning coefficient across the phase change
# At each checkpoint of the committed induction run we sample weights near the checkpoint by SGLD
# and measure how much the loss rises on average: `LLC = n beta (E[L(w)] - L(w*))`.
# Flat directions add little, so a model whose loss does not depend on most of its weights
# has a small LLC. The estimates below were computed by the command printed with them
# (two chains of 200 steps per checkpoint; they depend on the SGLD settings, which are
# the same for every checkpoint).

# %%
llc = json.loads((RUNS_DIR / spec.name / "llc.json").read_text())
committed = Recorder.load(RUNS_DIR / spec.name / "record.json") if TRAIN_HERE else recorder
committed_ind = fair_scores(committed, "induction")[:, induction_head.layer, induction_head.head]
change = first_crossing(committed.steps, committed_ind, 0.5)  # of the run the LLC is for
llc_steps = torch.tensor([e["step"] for e in llc["estimates"]])
llc_values = torch.tensor([e["llc"] for e in llc["estimates"]])
print("computed by: python -m mi_helpers.dynamics llc --checkpoints build/dynamics/"
      f"{spec.name} --out data/dynamics/{spec.name}/llc.json  (settings {llc['settings']})")
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(llc_steps, llc_values, "o-", color="C5")
ax.set_xlabel("step")
ax.set_ylabel("estimated LLC", color="C5")
twin = ax.twinx()
twin.plot(committed.steps, committed_ind, color="C1")
twin.set_ylabel(f"{induction_head.label} induction score", color="C1")
plt.show()
for e in llc["estimates"]:
    print(f"step {e['step']:>5}: LLC {e['llc']:8.1f} (chains {e['llc_per_chain']})")
if change is None:
    print("the induction score of the committed run never passed 0.5: no window to compare")
    change_ratio = plateau_ratio = float("nan")
else:
    before_step = int(llc_steps[llc_steps <= change - 150].max())
    after_step = int(llc_steps[llc_steps >= change + 100].min())
    earlier_step = before_step - (after_step - before_step)  # a window as long, on the plateau
    llc_at = {int(s): v.item() for s, v in zip(llc_steps, llc_values)}
    change_ratio = llc_at[after_step] / llc_at[before_step]
    plateau_ratio = llc_at[before_step] / llc_at[earlier_step]
    print(f"across the phase change: LLC {llc_at[before_step]:.1f} at step {before_step} -> "
          f"{llc_at[after_step]:.1f} at step {after_step} (x{change_ratio:.1f}); the same number "
          f"of steps on the plateau before it: {llc_at[earlier_step]:.1f} -> "
          f"{llc_at[before_step]:.1f} (x{plateau_ratio:.1f})")

# %%
assert change_ratio > 3 * plateau_ratio, "the LLC moves at the transition"

# %% [markdown]
# ## Summary
# * The induction run sat on a plateau, then in one window the previous-token head, the
#   induction heads and the ICL score all moved together (printed in section 1); the
#   induction score crossed 0.8 within the run.
# * After the change, ablating the previous-token head alone switched the induction heads
#   off and put the loss on repeated tokens near chance; ablating the other layer-0 heads
#   did not. The induction heads depend on it, as K-composition says.
# * Trained on text without repeated random spans, the same model formed no induction
#   head in as many steps.
# * With weight decay, the modular-addition model memorised first and generalised
#   hundreds of steps later, while its embedding concentrated on a few Fourier
#   frequencies; without weight decay it memorised and did not generalise in the run.
# * The LLC estimated by SGLD was small on the plateau, rose steeply during the
#   induction phase change and kept rising afterwards, as the loss went on falling. These estimates depend on the SGLD settings (step size,
#   localisation, `n beta`) and are compared between checkpoints, not with other papers.
# * Not measured here: how reliably these grokking settings grok. At `p = 113` both seeds
#   we tried grokked within about 1,000 steps; at `p = 53` only 3 of 11 runs with similar
#   settings did within 3,000 steps, and at `p = 97` one seed did not. Nor the LLC of the
#   grokking run.

# %% [markdown]
# ## Further reading
# * [Olsson et al. (2022), *In-context Learning and Induction Heads*](https://arxiv.org/abs/2209.11895):
#   the phase change and the ICL score.
# * [Power et al. (2022), *Grokking: Generalization Beyond Overfitting on Small Algorithmic Datasets*](https://arxiv.org/abs/2201.02177).
# * [Nanda et al. (2023), *Progress measures for grokking via mechanistic interpretability*](https://arxiv.org/abs/2301.05217):
#   the key frequencies of modular addition.
# * [Lau et al. (2023), *The Local Learning Coefficient: A Singularity-Aware Complexity Measure*](https://arxiv.org/abs/2308.12108).
# * [Hoogland et al. (2024), *The Developmental Landscape of In-Context Learning*](https://arxiv.org/abs/2402.02364):
#   the LLC across a transformer's developmental stages.
