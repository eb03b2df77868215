# %% [markdown]
# # 02 · Targeted probing: is this text French? Then: does the model use it?
#
# The survey's first case study asks whether a model represents "this text is French".
# A **probe** is a small classifier trained on the model's activations: if a linear
# probe can read the label, the information is *linearly present* there. Presence is
# not use, so we finish with a **causal check**: remove the probe's direction from the
# residual stream and see whether the model's French behaviour changes.
#
# The design matters. If we probed a French *word*, the token itself would give the
# answer away. So every prompt ends on a **name** in object position, the same token in
# both languages ("the old dog follows **Mary**" / "le chat voit **Mary**"): at that
# position the model can only know the language from the context. What comes next
# depends on it (*in, near* … vs *dans, sur, et* …).
#
# **What we expect to see** (asserted below):
# 1. at the embedding (before any attention) a probe on the name does no better than
#    chance, since the token is the same in both languages;
# 2. after the first attention layer a linear probe reads the language with F1 ≥ 0.95,
#    and a probe on 8 residual dimensions (k-sparse) does nearly as well;
# 3. projecting the probe's direction out of the residual stream moves the model's
#    French-vs-English next-word preference far more than a random direction of the
#    same norm.


# %% [markdown]
# **Learning objectives.** After this notebook you can
# * design a probing dataset whose label the probed token cannot give away;
# * train dense and k-sparse linear probes per layer and read F1, precision, recall and
#   accuracy against a shuffled-label control;
# * compute a probe direction and an F1 score by hand, and project a direction out (exercises);
# * test whether the model *uses* a probed direction, against random directions.
#
# **Prerequisites:** notebook 00; logistic regression; precision and recall.
# **Time:** about 40 min to read and run, plus 30 min of exercises.

# %% tags=["parameters"]
MODEL = "zoo-2l"  # any zoo model offline, or a hub model such as "gpt2-small" on Colab

# %%
# Colab set-up: install the project's helpers there; elsewhere this does nothing.
import sys

if "google.colab" in sys.modules:
    import subprocess

    REPO = "https://github.com/mi-roadmap/mi-roadmap"  # change if you use a fork
    subprocess.run(["git", "clone", "--depth=1", REPO, "/content/mi-roadmap"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "/content/mi-roadmap"], check=True)
    sys.path.insert(0, "/content/mi-roadmap")

# %%
import matplotlib.pyplot as plt
import torch

from mi_helpers import load_model
from mi_helpers.core import hook_name
from mi_helpers.datasets import (EN_PREP, FR_PREP, is_single_token, language_prompts, logits_at,
                                 single_token_ids, tokenize_prompts)
from mi_helpers.features import probe_sweep
from mi_helpers.interventions import causal_effect

torch.manual_seed(0)
model = load_model(MODEL)
n_layers = model.cfg.n_layers

# %% [markdown]
# ## 1. A labelled dataset
# 400 English and 400 French clauses, each cut right after a name in object position.

# %%
prompts, labels = language_prompts(400, seed=0)
labels = torch.tensor(labels)
tokens, ends = tokenize_prompts(model, prompts)
print(f"{len(prompts)} prompts, {int(labels.sum())} French; e.g.")
for i in (0, 1, 400, 401):
    print(f"  {'FR' if labels[i] else 'EN'}  {prompts[i]!r}")

# %% [markdown]
# ### Exercise 02.1: the simplest probe direction
# **Difficulty** 1/5 · **Importance** 4/5 · **Time** about 10 min
#
# Before training anything, the difference of the class means is a probe direction
# (the "mass-mean" probe). Write `mean_difference_direction(acts, labels)`: `acts` is
# `[n, d_model]`, `labels` is a `[n]` bool tensor (True = French); return the unit
# vector pointing from the mean English activation to the mean French one, `[d_model]`.
#
# <details><summary>Hint 1</summary>
#
# `acts[labels].mean(0)` is the French mean; `acts[~labels].mean(0)` the English one.
# </details>
#
# <details><summary>Hint 2</summary>
#
# Means, not sums: the classes need not be the same size. Divide by the norm at the end.
# </details>

# %%
import torch
from torch import Tensor


def mean_difference_direction(acts: Tensor, labels: Tensor) -> Tensor:
    """Unit vector from the negative-class mean to the positive-class mean: [d_model]."""
    # BEGIN SOLUTION
    difference = acts[labels].mean(0) - acts[~labels].mean(0)
    return difference / difference.norm()
    # END SOLUTION
    # STUB raise NotImplementedError("difference of the class means, normalised")

# %%
from mi_helpers.exercises import check_mean_difference_direction

check_mean_difference_direction(mean_difference_direction)

# %% [markdown]
# ## 2. Probe every layer
# We probe the residual stream at the name: at the embedding (`blocks.0.hook_resid_pre`)
# and after every block. Each probe is trained on 60% of the prompts, its decision
# threshold tuned on 20% and its scores measured on the last 20%. A **control** probe
# is trained on shuffled labels: the gap between the two (the *selectivity*) is what
# the activations really tell. (With the threshold tuned for F1, a probe that knows
# nothing still scores about 0.67 F1 on balanced classes; read accuracy too.)

# %%
hooks = [hook_name("resid_pre", 0)] + [hook_name("resid_post", l) for l in range(n_layers)]
names = ["embed"] + [f"after L{l}" for l in range(n_layers)]
dense = probe_sweep(model, tokens, labels, hooks, pos=ends, progress=False)
sparse = probe_sweep(model, tokens, labels, hooks, pos=ends, n_dims=8, progress=False)
print(f"{'':10s} {'F1':>6s} {'prec':>6s} {'recall':>6s} {'acc':>6s} {'control acc':>12s} {'8-sparse F1':>12s}")
for name, row, srow in zip(names, dense, sparse):
    print(f"{name:10s} {row['f1']:6.3f} {row['precision']:6.3f} {row['recall']:6.3f} "
          f"{row['accuracy']:6.3f} {row['control_accuracy']:12.3f} {srow['f1']:12.3f}")

# %%
fig, ax = plt.subplots(figsize=(6, 3))
x = range(len(names))
ax.plot(x, [r["f1"] for r in dense], "o-", label="dense probe")
ax.plot(x, [r["f1"] for r in sparse], "s--", label="8-sparse probe")
ax.plot(x, [r["control_f1"] for r in dense], "x:", label="control (shuffled labels)")
ax.set_xticks(x, names)
ax.set_ylabel("F1 on held-out prompts")
ax.set_ylim(0, 1.05)
ax.legend()
ax.set_title("Is the text French? Probing the residual stream at a name")
plt.show()

# %%
best = max(range(1, len(hooks)), key=lambda i: dense[i]["f1"])
print(f"best layer: {names[best]} (F1 {dense[best]['f1']:.3f}); "
      f"embedding accuracy {dense[0]['accuracy']:.3f}")
assert dense[0]["accuracy"] < 0.65, "the name's embedding alone should not tell the language"
assert dense[best]["f1"] >= 0.95, "a linear probe should read the language after attention"
assert sparse[best]["f1"] >= 0.9, "a few dimensions should nearly suffice"

# %% [markdown]
# ### Exercise 02.2: a probe's F1 score
# **Difficulty** 1/5 · **Importance** 4/5 · **Time** about 10 min
#
# Write `f1_score(predictions, labels)` for two `[n]` bool tensors, returning a float:
# the harmonic mean of precision (how many predicted French prompts are French) and
# recall (how many French prompts were found). When nothing is predicted French,
# precision is undefined; return 0.0 then, not NaN.
#
# <details><summary>Hint 1</summary>
#
# Count true positives `(predictions & labels).sum()`, false positives
# `(predictions & ~labels).sum()` and false negatives `(~predictions & labels).sum()`.
# </details>
#
# <details><summary>Hint 2</summary>
#
# $F_1 = \frac{2PR}{P + R} = \frac{TP}{TP + (FP + FN)/2}$, and 0 when $TP = 0$.
# </details>

# %%
import torch
from torch import Tensor


def f1_score(predictions: Tensor, labels: Tensor) -> float:
    """F1 of bool predictions against bool labels; 0.0 when there is no true positive."""
    # BEGIN SOLUTION
    tp = (predictions & labels).sum().item()
    fp = (predictions & ~labels).sum().item()
    fn = (~predictions & labels).sum().item()
    return 0.0 if tp == 0 else tp / (tp + (fp + fn) / 2)
    # END SOLUTION
    # STUB raise NotImplementedError("2 * precision * recall / (precision + recall)")

# %%
from mi_helpers.exercises import check_f1_score

check_f1_score(f1_score)

# %% [markdown]
# ## 3. Does the model use this direction?
# The behaviour: right after the name, how much more does the model expect a French
# function word than an English one? We measure
# $\log\sum_{w \in FR} p(w) - \log\sum_{w \in EN} p(w)$ on the French prompts, then
# project the best probe's direction out of the residual stream at the name and measure
# again. As a baseline we remove random directions of the same norm.

# %%
fr_words = [w for w in FR_PREP + ["et"] if is_single_token(model, w)]
en_words = [w for w in EN_PREP if is_single_token(model, w)]
fr_ids, en_ids = single_token_ids(model, fr_words), single_token_ids(model, en_words)
french = labels == 1


def french_preference(logits: torch.Tensor) -> torch.Tensor:
    """Mean log-probability mass on French minus English function words at the name."""
    logprobs = logits_at(logits, ends[french]).log_softmax(-1)
    return (logprobs[:, fr_ids].logsumexp(-1) - logprobs[:, en_ids].logsumexp(-1)).mean()


direction = dense[best]["probe"].direction
effect = causal_effect(model, tokens[french], hooks[best], direction, french_preference,
                       n_random=10, seed=0)
print(f"French preference on French prompts: {effect['clean']:.2f} nats")
print(f"after projecting out the probe direction: {effect['intervened']:.2f} "
      f"(change {effect['effect']:+.2f})")
print(f"after projecting out random directions: mean |change| {effect['random_abs_effect']:.3f}")

# %%
assert effect["effect"] < 0, "removing the French direction should lower the French preference"
assert abs(effect["effect"]) > 5 * effect["random_abs_effect"], "a random direction should do far less"

# %% [markdown]
# ### Exercise 02.3: project a direction out
# **Difficulty** 2/5 · **Importance** 4/5 · **Time** about 10 min
#
# The causal check above removes the probe's direction from the residual stream. Write
# `project_out(acts, direction)`: `acts` is `[..., d_model]` (any leading axes),
# `direction` is `[d_model]` of any length; return `acts` with its component along the
# direction removed, so that every result is orthogonal to it.
#
# <details><summary>Hint 1</summary>
#
# Normalise first: `u = direction / direction.norm()`.
# </details>
#
# <details><summary>Hint 2</summary>
#
# `acts @ u` is each vector's coordinate along `u` (`[...]`); subtract
# `(acts @ u)[..., None] * u`.
# </details>

# %%
import torch
from torch import Tensor


def project_out(acts: Tensor, direction: Tensor) -> Tensor:
    """acts minus their component along direction (any length): same shape as acts."""
    # BEGIN SOLUTION
    unit = direction / direction.norm()
    return acts - (acts @ unit)[..., None] * unit
    # END SOLUTION
    # STUB raise NotImplementedError("subtract the component along the unit direction")

# %%
from mi_helpers.exercises import check_project_out

check_project_out(project_out)

# %% [markdown]
# ## Summary
# * The language of the context is linearly present at a language-neutral token after
#   the first attention layer, not before: attention moved it there.
# * A probe on 8 of the residual stream's dimensions does nearly as well as a dense one.
# * Removing the probe's direction changes what the model predicts next, and a random
#   direction of the same norm barely does: the model *uses* this direction. (A probe
#   alone would only have shown that the information is there.)

# %% [markdown]
# ## Further reading
# * [Alain & Bengio (2016), *Understanding intermediate layers using linear classifier probes*](https://arxiv.org/abs/1610.01644).
# * [Hewitt & Liang (2019), *Designing and Interpreting Probes with Control Tasks*](https://arxiv.org/abs/1909.03368): selectivity.
# * [Belinkov (2022), *Probing Classifiers: Promises, Shortcomings, and Advances*](https://arxiv.org/abs/2102.12452).
# * [Gurnee et al. (2023), *Finding Neurons in a Haystack: Case Studies with Sparse Probing*](https://arxiv.org/abs/2305.01610).
# * [Elazar et al. (2021), *Amnesic Probing*](https://arxiv.org/abs/2006.00995): removing a direction to test its use.
