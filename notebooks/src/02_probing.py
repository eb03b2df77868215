# %% [markdown]
# # 02 · Targeted probing: is this text French? Then: does the model use it?
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mi-roadmap/mi-roadmap/blob/main/notebooks/02_probing.ipynb)
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
# depends on it (*in, near* … vs *dans, sur, et* …). Two confounds remain, and each gets a
# control: the word right before the name is a verb of one language (a head that copies
# the previous word would be enough), and French prompts are longer.
#
# **What we expect to see** (asserted below, for `zoo-2l`):
# 1. at the embedding (before any attention) a probe on the name does no better than
#    chance, since the token is the same in both languages;
# 2. after the first layer a linear probe reads the language with F1 ≥ 0.95, and it still
#    does on prompts matched for length, on previous words it never saw in training, and
#    on prompts where the word before the name is "." in both languages; a randomly
#    initialised model of the same shape reads it far worse;
# 3. as in [Gurnee et al. (2023)](https://arxiv.org/abs/2305.01610), a sparse probe on a
#    few MLP **neurons** nearly matches the dense probe;
# 4. projecting the probe's direction out of the residual stream moves the model's
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
MODEL = "zoo-2l"  # any zoo model offline, or a hub model such as "gpt2" on Colab

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
from mi_helpers.core import collect_activations, hook_name
from mi_helpers.datasets import (EN_PREP, FR_PREP, is_single_token, language_prompts,
                                 length_matched, logits_at, single_token_ids, tokenize_prompts)
from mi_helpers.features import probe_rows, probe_sweep
from mi_helpers.features.probing import group_splits, probe_with_control, train_probe
from mi_helpers.interventions import causal_effect
from mi_helpers.universality import random_like

torch.manual_seed(0)
model = load_model(MODEL)
n_layers = model.cfg.n_layers

# %% [markdown]
# ## 1. A labelled dataset
# 400 English and 400 French clauses, each cut right after a name in object position.

# %%
data = language_prompts(400, seed=0)
labels = torch.tensor(data.labels)
tokens, ends = tokenize_prompts(model, data.prompts)
print(f"{len(data)} prompts, {int(labels.sum())} French; e.g.")
for i in (0, 1, 400, 401):
    print(f"  {'FR' if labels[i] else 'EN'}  {data.prompts[i]!r}")
for label, name in ((0, "English"), (1, "French")):
    lengths = [n for n, lab in zip(data.lengths, data.labels) if lab == label]
    print(f"{name} prompts: {min(lengths)}-{max(lengths)} words, mean {sum(lengths) / len(lengths):.1f}")

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
# is trained on shuffled labels: the gap between the two (the *selectivity*,
# [Hewitt & Liang, 2019](https://arxiv.org/abs/1909.03368)) is what the activations really
# tell. (With the threshold tuned for F1, a probe that knows nothing still scores about
# 0.67 F1 on balanced classes; read accuracy too.)

# %%
hooks = [hook_name("resid_pre", 0)] + [hook_name("resid_post", l) for l in range(n_layers)]
names = ["embed"] + [f"after L{l}" for l in range(n_layers)]
at_names = collect_activations(model, tokens, hooks, positions=ends)  # {hook: [prompt, d_model]}
dense = probe_rows(at_names, labels)  # one pass over the data, two kinds of probe
sparse = probe_rows(at_names, labels, n_dims=8)
print(f"{'':10s} {'F1':>6s} {'prec':>6s} {'recall':>6s} {'acc':>6s} {'control acc':>12s} {'8-dim F1':>9s}")
for name, row, srow in zip(names, dense, sparse):
    print(f"{name:10s} {row['f1']:6.3f} {row['precision']:6.3f} {row['recall']:6.3f} "
          f"{row['accuracy']:6.3f} {row['control_accuracy']:12.3f} {srow['f1']:9.3f}")

# %%
fig, ax = plt.subplots(figsize=(6, 3))
x = range(len(names))
ax.plot(x, [r["f1"] for r in dense], "o-", label="dense probe")
ax.plot(x, [r["f1"] for r in sparse], "s--", label="8-dimension probe")
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
if MODEL.startswith("zoo"):
    assert dense[0]["accuracy"] < 0.65, "the name's embedding alone should not tell the language"
    assert dense[best]["f1"] >= 0.95, "a linear probe should read the language after attention"
else:
    print(f"no expectation for {MODEL}")

# %% [markdown]
# ## 3. Controls: is it the language, or something that comes with it?
# Four ways the probe could succeed without the model representing the language:
# * **length**: French prompts are longer. We keep a subset where both languages have the
#   same length distribution;
# * **the previous word**: the word before the name is an English or a French verb, so a
#   head that copies the previous word would do. We train on half of those words and test
#   on prompts whose previous word the probe never saw, and compare with a probe on the
#   previous word's *embedding* alone;
# * **the local context**: prompts whose name starts a new sentence, right after ".", the
#   same token in both languages, so the language must come from further back;
# * **the probe, not the model**: the same probe on a randomly initialised model of the
#   same shape (its attention still mixes the context's tokens, which differ by language).

# %%
site = hooks[best]
at_name = at_names[site]  # collected in section 2
matched = length_matched(data.lengths, data.labels, seed=0)
length_control = probe_with_control(at_name[matched], labels[matched])["accuracy"]
english = sorted({w for w, lab in zip(data.previous, data.labels) if lab == 0})
french_words = sorted({w for w, lab in zip(data.previous, data.labels) if lab == 1})
held_out = set(english[::2] + french_words[::2])
unseen_words = group_splits(data.previous, labels, held_out, seed=0)
transfer = train_probe(at_name, labels, unseen_words)[1]["accuracy"]
previous_ids = tokens[torch.arange(len(tokens)), ends - 1]
previous_embedding = model.W_E[previous_ids].detach()
embedding_transfer = train_probe(previous_embedding, labels, unseen_words)[1]["accuracy"]
after = language_prompts(400, seed=1, where="after_sentence")
after_tokens, after_ends = tokenize_prompts(model, after.prompts)
after_rows = probe_sweep(model, after_tokens, torch.tensor(after.labels), [hooks[0], site],
                         pos=after_ends, progress=False)
random_model = random_like(model, seed=0)
random_rows = probe_sweep(random_model, tokens, labels, hooks, pos=ends, progress=False)
random_best = max(r["accuracy"] for r in random_rows)
print(f"probe at the name, {names[best]} (accuracy on held-out prompts):")
print(f"  all prompts                              {dense[best]['accuracy']:.3f}")
print(f"  {len(matched)} length-matched prompts              {length_control:.3f}")
print(f"  previous words never seen in training    {transfer:.3f} "
      f"(the previous word's embedding alone: {embedding_transfer:.3f})")
print(f"  name after '.' (embedding / {names[best]})      "
      f"{after_rows[0]['accuracy']:.3f} / {after_rows[1]['accuracy']:.3f}")
print(f"  random model of the same shape, best layer {random_best:.3f}")

# %%
if MODEL.startswith("zoo"):
    assert length_control >= 0.95, "length does not explain the probe"
    assert transfer >= 0.95, "the direction generalises to previous words it never saw"
    assert after_rows[0]["accuracy"] < 0.65 and after_rows[1]["accuracy"] >= 0.85, \
        "the language is read from beyond the previous token"
    assert random_best < dense[best]["accuracy"] - 0.15, "a random model reads it far worse"

# %% [markdown]
# Read the previous-word row carefully: the embeddings of the two languages' verbs are
# themselves linearly separable (their probe transfers too), so copying the previous word
# would already put a "language direction" at the name. The after-"." prompts rule that
# out as the whole story: there the previous token is the same in both languages, and the
# language is still readable after the first layer, so attention brings it from further
# back in the sentence.
#
# ## 4. Sparse probing on neurons
# [Gurnee et al. (2023)](https://arxiv.org/abs/2305.01610) probe MLP **neurons**
# (`mlp.hook_post`), selecting the few that best separate the classes. A neuron is a
# basis direction the model privileges (the nonlinearity acts on it), unlike an arbitrary
# residual-stream dimension.

# %%
neuron_hooks = [hook_name("mlp_post", l) for l in range(n_layers)]
neuron_acts = collect_activations(model, tokens, neuron_hooks, positions=ends)
neuron_rows = {n_dims: probe_rows(neuron_acts, labels, n_dims=n_dims) for n_dims in (1, 8, None)}
print(f"{'':8s} {'1 neuron':>9s} {'8 neurons':>10s} {'all':>6s}   (F1 on held-out prompts)")
for layer in range(n_layers):
    f1s = [neuron_rows[k][layer]["f1"] for k in (1, 8, None)]
    print(f"MLP{layer:<5d} {f1s[0]:9.3f} {f1s[1]:10.3f} {f1s[2]:6.3f}")
best_neuron_layer = max(range(n_layers), key=lambda l: neuron_rows[1][l]["f1"])
top_neuron = int(neuron_rows[1][best_neuron_layer]["probe"].dims[0])
print(f"best single neuron: L{best_neuron_layer}.{top_neuron}, "
      f"F1 {neuron_rows[1][best_neuron_layer]['f1']:.3f}")

# %%
if MODEL.startswith("zoo"):
    best_dense = max(r["f1"] for r in neuron_rows[None])
    assert max(r["f1"] for r in neuron_rows[8]) >= best_dense - 0.05, "8 neurons nearly suffice"

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
# ## 5. Does the model use this direction?
# The behaviour: right after the name, how much more does the model expect a French
# function word than an English one? We measure
# $\log\sum_{w \in FR} p(w) - \log\sum_{w \in EN} p(w)$ on the French prompts, then
# project the best probe's direction out of the residual stream at the name and measure
# again. As a baseline we remove random directions of the same norm. (On a hub model,
# whose every pass computes 50,257 logits per token, the first 100 French prompts.)

# %%
fr_words = [w for w in FR_PREP + ["et"] if is_single_token(model, w)]
en_words = [w for w in EN_PREP if is_single_token(model, w)]
fr_ids, en_ids = single_token_ids(model, fr_words), single_token_ids(model, en_words)
french = torch.nonzero(labels == 1).squeeze(1)
french = french if model.cfg.d_vocab < 10_000 else french[:100]  # 50k-token logits: 100 prompts


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
if MODEL.startswith("zoo"):
    assert effect["effect"] < 0, "removing the French direction should lower the French preference"
    assert abs(effect["effect"]) > 5 * effect["random_abs_effect"], "a random direction should do far less"
else:
    print(f"no expectation for {MODEL}")

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
#   the first layer, not before: attention moved it there. It survives matching lengths,
#   previous words the probe never saw, and a shared previous token ("."), and a random
#   model of the same shape reads it far worse (section 3's printout).
# * What the probe reads is not only "the previous word": the word's embedding alone would
#   do on object-position prompts, but not after ".", where the language is still there.
# * A few MLP neurons carry most of it (section 4), as Gurnee et al. found for features of
#   this kind in larger models; a single neuron is not enough.
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
