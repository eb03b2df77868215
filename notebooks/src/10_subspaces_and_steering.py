# %% [markdown]
# # 10 · Beyond neurons: subspaces (DAS), Patchscope and steering, with honest baselines
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mi-roadmap/mi-roadmap/blob/main/notebooks/10_subspaces_and_steering.ipynb)
#
# Probes (notebook 02) say a variable is *readable* from a direction; patching (05) says a
# *whole* activation matters. In between sits the question the field's newer tools ask:
# **which subspace carries a variable the model uses?**
#
# * An **interchange intervention** runs the model on a *base* prompt with the activation's
#   coordinates inside a subspace taken from a *source* prompt. If the output then follows
#   what a high-level causal model predicts for "the base with the variable set to the
#   source's value", the subspace carries that variable ([Geiger et al.,
#   2021](https://arxiv.org/abs/2106.02997)). The **interchange-intervention accuracy (IIA)**
#   is how often it does.
# * **Distributed alignment search (DAS)** *learns* that subspace: an orthonormal basis
#   trained by gradient descent to maximise IIA ([Geiger et al.,
#   2023](https://arxiv.org/abs/2303.02536)). A learned subspace can also *create* the
#   effect it was trained for ([Makelov et al., 2023](https://arxiv.org/abs/2311.17030)),
#   so every number is read against baselines: the difference of class means (DiffMean,
#   strong and cheap in [AxBench](https://arxiv.org/abs/2501.17148)), a probe's direction,
#   PCA, SAE latents, single neurons, a random subspace, and DAS on a randomly initialised
#   model. In the causal-variable track of [MIB](https://arxiv.org/abs/2504.13151), DAS
#   localised variables best and SAE latents did no better than neurons; we measure
#   our own case.
# * A **Patchscope** ([Ghandeharioun et al., 2024](https://arxiv.org/abs/2401.06102))
#   decodes a hidden state by patching it into another prompt and letting the model
#   finish; we compare it with the logit lens and the tuned lens ([Belrose et al.,
#   2023](https://arxiv.org/abs/2303.08112)) layer by layer.
# * **Steering** adds a direction to the residual stream ([Turner et al.,
#   2023](https://arxiv.org/abs/2308.10248); contrastive activation addition, [Rimsky et
#   al., 2024](https://arxiv.org/abs/2312.06681)). A useful steering direction changes the
#   target behaviour *more than it breaks unrelated text*: we draw that cost curve.
#
# **What we expect to see** (asserted below):
# 1. *Language* (zoo-2l, residual after block 0 at a name that ends an English or French
#    clause): DAS with **one** direction reaches IIA ≥ 0.9, close to swapping the whole
#    residual, while a random direction stays near chance (0.5); DiffMean and the probe
#    direction come within 0.1 of DAS; the best single neuron and the best single SAE
#    latent stay near chance; with four dimensions, SAE latents beat neurons (by more
#    than 0.1) but not one DAS direction; the same DAS training on a random-weights model
#    stays near chance.
# 2. *IOI* (zoo-4l, residual after block 0 at the last token): the whole residual carries
#    "which name is the indirect object", but no subspace of 4 or fewer dimensions does
#    (DAS IIA < 0.8); DAS needs 8 dimensions to pass 0.9, because the variable is a
#    *name*; one-dimensional DiffMean and probe directions and a random subspace of 16
#    dimensions stay near chance, and so does DAS on a random-weights model.
# 3. *Patchscope*: an identity-style target prompt agrees with the model's final
#    prediction more often than the logit lens at every layer but the last (where both
#    are the model's output), and within 0.15 of a trained tuned lens, without any
#    training; a source shuffled between prompts agrees at chance level.
# 4. *Steering* English prompts towards French: at the same side-effect cost, DiffMean
#    moves the French preference further than the probe direction and the SAE latent's
#    decoder direction; a random direction does not move it towards French.

# %% [markdown]
# **Learning objectives.** After this notebook you can
# * run an interchange intervention on a subspace, and write one by hand (exercise);
# * measure the interchange-intervention accuracy (IIA) from a model's outputs
#   (exercise) and read it against baselines: DiffMean, a probe, PCA, SAE latents,
#   neurons, a random subspace, and DAS on a random-weights model;
# * tell a variable that lives in one direction from one spread over many (DAS at
#   growing dimension);
# * decode hidden states with a Patchscope and compare it with the logit and tuned lenses;
# * steer with a hook you write (exercise), and judge a steering direction by its cost
#   curve.
#
# **Prerequisites:** notebooks 02 (probes, DiffMean, projecting out), 05 (activation
# patching) and 06 (the IOI task); notebooks 01 (the logit and tuned lenses) and 03
# (SAEs) for their sections.
# **Time:** about 45 min to read and run, plus 40 min of exercises.

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
import json

import matplotlib.pyplot as plt
import torch
from transformers.utils import logging as hf_logging

from mi_helpers import load_model
from mi_helpers.core import ZOO_DIR, collect_activations, hook_name
from mi_helpers.datasets import (corpus_sentences, language_prompts, logits_at, single_token_ids,
                                 token_chunks, tokenize_prompts)
from mi_helpers.features.lens import lens_logits, train_tuned_lens
from mi_helpers.features.sae import SAES_DIR, load_sae
from mi_helpers.interventions import (best_within_cost, compare_bases, contrastive_vector,
                                      generate, identity_prompt, iia, ioi_pairs, language_pairs,
                                      language_words, patchscope_logits, probe_basis,
                                      random_basis, steering_sweep, summarise, task_accuracy,
                                      top1_agreement, top_sae_latents, train_das)
from mi_helpers.universality import random_like

torch.manual_seed(0)
hf_logging.disable_progress_bar()
plt.rcParams["figure.dpi"] = 80  # keeps the committed notebook small
IOI_MODEL = "zoo-4l" if MODEL.startswith("zoo") else MODEL  # IOI needs the 4-layer zoo model
model, ioi_model = load_model(MODEL), load_model(IOI_MODEL)
random_model = random_like(model, seed=0)  # the random-weights control
d_model = model.cfg.d_model
print(f"{MODEL}: {model.cfg.n_layers} layers, d_model {d_model}; IOI on {IOI_MODEL}: "
      f"{ioi_model.cfg.n_layers} layers")

# %% [markdown]
# ## 1. The language variable: which subspace makes the model "think French"?
# Each pair is a base and a source clause cut after a name, e.g. "the old dog follows
# **Mary**" / "le chat voit **Paul**"; for half the pairs the source is in the other
# language. The output is the model's choice, right after the name, between English
# function words (*in, near, …*) and French ones (*dans, sur, et, …*); the causal model
# says that after the interchange the model should choose the *source's* language. We
# intervene at the name in the residual stream after block 0 (where notebook 02's probe
# already reads the language, and where the zoo's SAEs are trained).

# %%
HOOK = hook_name("resid_post", 0)
# a hub model's 50,257-token unembedding makes every pass ~100x costlier on a CPU: fewer pairs
N_PAIRS = 384 if MODEL.startswith("zoo") else 128
pairs = language_pairs(model, N_PAIRS, seed=0)
english, french = language_words(model)


def decode(tokens, end):
    return model.tokenizer.decode(tokens[1:int(end) + 1].tolist())


print(f"{len(pairs)} pairs; output classes: English {english} vs French {french}")
for k in (0, 3):
    print(f"  base {decode(pairs.base[k], pairs.base_pos[k])!r:34} source "
          f"{decode(pairs.source[k], pairs.source_pos[k])!r:34} -> class "
          f"{['English', 'French'][int(pairs.targets[k])]}")
language_task = task_accuracy(model, pairs)
print(f"without intervention, {MODEL} chooses the base's language in {language_task:.1%} of pairs")

# %% [markdown]
# Every family of bases, fitted on the training half of the pairs and measured on the
# other half, for three seeds (each seed: a new split, DAS initialisation and random
# basis). One dimension for all; four for the families that have more than one.

# %%
# NBVAL_IGNORE_OUTPUT
# (DAS and the probe are trained: last digits depend on the CPU)
saes = {}
if MODEL == "zoo-2l":
    saes = {name: load_sae(SAES_DIR / "zoo-2l" / name) for name in ("topk-k16", "relu-l1")}
else:
    print(f"the committed SAEs are for zoo-2l: no SAE family for {MODEL}")
DAS_SETTINGS = {"epochs": 8, "lr": 0.03, "batch_size": 32}
rows = compare_bases(model, pairs, HOOK, n_dims=(1,), saes=saes, das_kwargs=DAS_SETTINGS,
                     progress=False)
rows += compare_bases(model, pairs, HOOK, n_dims=(4,), saes=saes, das=False, full=False,
                      progress=False)
control = compare_bases(random_model, pairs, HOOK, n_dims=(1,), das_kwargs=DAS_SETTINGS,
                        progress=False)
rows += [{**row, "family": row["family"] + " (random model)"} for row in control
         if row["family"] in ("das", "full")]
language = summarise(rows)
print(f"{'family':>22s} {'n_dims':>6s}   IIA (mean ± 95% CI over 3 seeds)")
for (family, n), s in sorted(language.items(), key=lambda kv: (kv[0][1], -kv[1]["mean"])):
    print(f"{family:>22s} {n:6d}   {s['mean']:.3f} ± {s['ci']:.3f}")

# %%
fig, ax = plt.subplots(figsize=(9, 3.2))
keys = sorted(language, key=lambda key: (key[1], -language[key]["mean"]))
ax.bar(range(len(keys)), [language[k]["mean"] for k in keys],
       yerr=[language[k]["ci"] for k in keys], color=["C0" if "random" not in k[0] else "C7"
                                                     for k in keys])
ax.set_xticks(range(len(keys)), [f"{f}\n{n}d" for f, n in keys], rotation=60, fontsize=7)
ax.axhline(0.5, color="k", ls=":", lw=1, label="chance")
ax.set_ylabel("IIA on held-out pairs")
ax.set_ylim(0, 1.05)
ax.set_title(f"Language variable at {HOOK} ({MODEL})")
ax.legend()
plt.show()

# %%
iia_of = {key: value["mean"] for key, value in language.items()}
if MODEL == "zoo-2l":
    assert language_task >= 0.9, "the model should choose the base's language"
    assert iia_of["das", 1] >= 0.9, "one learned direction should carry the language"
    assert iia_of["das", 1] >= iia_of["full", d_model] - 0.05, "...about as well as everything"
    for n in (1, 4):
        assert abs(iia_of["random", n] - 0.5) < 0.1, "a random subspace stays near chance"
    assert iia_of["das", 1] - iia_of["diffmean", 1] < 0.1, "DiffMean comes close"
    assert iia_of["das", 1] - iia_of["probe", 1] < 0.1, "the probe direction comes close"
    assert iia_of["neurons", 1] < 0.65, "one neuron is not enough"
    for name in saes:
        assert iia_of[f"sae {name}", 1] < 0.65, "one SAE latent is not enough"
        assert iia_of[f"sae {name}", 4] > iia_of["neurons", 4] + 0.1, "4 latents beat 4 neurons"
        assert iia_of[f"sae {name}", 4] < iia_of["das", 1], "...but not one learned direction"
    assert iia_of["das (random model)", 1] < 0.65, "DAS finds no such direction in a random model"
else:
    print(f"no expectation for {MODEL}")

# %% [markdown]
# ### Exercise 10.1: an interchange intervention on a subspace
# **Difficulty** 2/5 · **Importance** 5/5 · **Time** about 15 min
#
# Write `interchange_subspace(base, source, basis)`: `base` and `source` are activations
# `[batch, d_model]` at the intervention site (one base/source pair per row), `basis` an
# orthonormal `[d_model, n_dims]` basis of the subspace (one direction per column).
# Return the base activations with their coordinates *inside* the subspace taken from the
# source and kept *outside* it, `[batch, d_model]`: what every family above does at
# `resid_post 0` before the model runs on.
#
# <details><summary>Hint 1</summary>
#
# The component of `x` in the subspace is `x @ basis @ basis.T` (coordinates, then back
# to `d_model`); the rest, `x - x @ basis @ basis.T`, is orthogonal to it.
# </details>
#
# <details><summary>Hint 2</summary>
#
# Keep the base's rest and take the source's component: `base - base @ B @ B.T + source
# @ B @ B.T`, i.e. `base + (source - base) @ B @ B.T`.
# </details>

# %%
from torch import Tensor


def interchange_subspace(base: Tensor, source: Tensor, basis: Tensor) -> Tensor:
    """The base with its subspace coordinates replaced by the source's: [batch d_model]."""
    # BEGIN SOLUTION
    return base + (source - base) @ basis @ basis.T
    # END SOLUTION
    # STUB raise NotImplementedError("swap the component inside the subspace")

# %%
from mi_helpers.exercises import check_interchange_subspace

check_interchange_subspace(interchange_subspace)

# %% [markdown]
# ### Exercise 10.2: interchange-intervention accuracy
# **Difficulty** 2/5 · **Importance** 4/5 · **Time** about 15 min
#
# Write `interchange_accuracy(logits, answer_pos, class_words, targets)`: `logits`
# `[batch, pos, d_vocab]` are the model's outputs on the base prompts *with* the
# intervention, `answer_pos` `[batch]` the position where each pair's answer is read,
# `class_words` a list of lists of token ids (the output classes, e.g. the English and
# the French function words), and `targets` `[batch]` the class the causal model
# predicts. Return the IIA, a float: how often the class with the most probability at
# `answer_pos` is the target.
#
# <details><summary>Hint 1</summary>
#
# A class's probability is the sum of its words' probabilities: in log space, the
# `logsumexp` of their log-probabilities (take `log_softmax` over the vocabulary first).
# </details>
#
# <details><summary>Hint 2</summary>
#
# `log_probs = logits[torch.arange(len(logits)), answer_pos].log_softmax(-1)`; stack
# `log_probs[:, words].logsumexp(-1)` over the classes, `argmax(-1)`, compare with
# `targets` and take the mean.
# </details>

# %%
import torch
from torch import Tensor


def interchange_accuracy(logits: Tensor, answer_pos: Tensor, class_words: list[list[int]],
                         targets: Tensor) -> float:
    """The fraction of pairs whose output class at ``answer_pos`` is ``targets``."""
    # BEGIN SOLUTION
    log_probs = logits[torch.arange(len(logits)), answer_pos].log_softmax(-1)
    scores = torch.stack([log_probs[:, words].logsumexp(-1) for words in class_words], -1)
    return (scores.argmax(-1) == targets).float().mean().item()
    # END SOLUTION
    # STUB raise NotImplementedError("class scores at answer_pos, then accuracy against targets")

# %%
from mi_helpers.exercises import check_interchange_accuracy

check_interchange_accuracy(interchange_accuracy)

# %% [markdown]
# ## 2. The IOI variable: "which name is the indirect object?"
# The base "When Lisa and Oscar visited the hotel, Oscar handed a computer to" answers
# *Lisa*. Each source has the same two names in the same order, another place and
# object, and a second subject drawn from the two names: half the sources keep the IO,
# half swap it, and after the interchange the model should name the *source's* IO.
# Notebook 06 found layer-0 heads that move the subject's name to the last token, so we
# intervene there, after block 0.
#
# Training DAS for every dimension and seed takes minutes, so
# `benchmarks/das_sweep.py` ran the sweep (1,024 pairs, 3 seeds, n_dims 1 to 16, every
# family, and DAS on a random-weights model) and committed its rows; we load them and
# re-measure two settings live on fewer pairs.

# %%
IOI_HOOK = hook_name("resid_post", 0)
sweep = json.loads((ZOO_DIR.parent / "interventions" / "das_sweep.json").read_text())
ioi_table = summarise(sweep["rows"])
print(f"committed sweep: {sweep['settings']['model']}, {sweep['settings']['hook']}, "
      f"{sweep['settings']['n_pairs']} pairs, seeds {sweep['settings']['seeds']}")
print(f"{'family':>24s} " + " ".join(f"{n:>13d}" for n in sweep["settings"]["n_dims"]))
for family in ("das", "pca", "neurons", "random", "diffmean", "probe", "das (random model)",
               "random (random model)"):
    cells = [ioi_table.get((family, n)) for n in sweep["settings"]["n_dims"]]
    print(f"{family:>24s} " + " ".join(f"{c['mean']:.2f} ± {c['ci']:.2f}".rjust(13) if c
                                       else " " * 13 for c in cells))
for family in ("full", "full (random model)"):
    print(f"{family:>24s} {ioi_table[family, 64]['mean']:.2f} (the whole residual)")

# %%
fig, ax = plt.subplots(figsize=(6, 3.2))
dims = sweep["settings"]["n_dims"]
for family, style in (("das", "o-"), ("pca", "s--"), ("neurons", "^:"), ("random", "x:"),
                      ("das (random model)", "o:")):
    have = [n for n in dims if (family, n) in ioi_table]
    ax.errorbar(have, [ioi_table[family, n]["mean"] for n in have],
                yerr=[ioi_table[family, n]["ci"] for n in have], fmt=style, label=family,
                capsize=3)
ax.axhline(ioi_table["full", 64]["mean"], color="k", lw=1, label="whole residual")
ax.set_xscale("log", base=2)
ax.set_xticks(dims, [str(n) for n in dims])
ax.set_xlabel("n_dims of the subspace")
ax.set_ylabel("IIA on held-out pairs")
ax.set_title("IOI: which name is the IO? (zoo-4l, after block 0, last token)")
ax.legend(fontsize=7)
plt.show()

# %%
ioi_iia = {key: value["mean"] for key, value in ioi_table.items()}
smallest = min((n for n in dims if ioi_iia["das", n] >= 0.9), default=None)
print(f"smallest n_dims where DAS reaches IIA 0.9: {smallest}")
assert ioi_iia["full", 64] >= 0.95, "the whole residual carries the variable"
assert max(ioi_iia["das", n] for n in dims if n <= 4) < 0.8, "no small subspace does"
assert smallest == 8, "DAS needs 8 dimensions"
assert ioi_iia["random", 16] < 0.6, "a random 16-dimensional subspace does not"
assert max(ioi_iia["diffmean", 1], ioi_iia["probe", 1]) < 0.6, "one direction sees nothing"
assert ioi_iia["das (random model)", 16] < 0.7, "DAS finds no such subspace in a random model"

# %% [markdown]
# Live, on 256 new pairs of the same kind: the whole residual, DAS with 4 and with 16
# dimensions, and random subspaces of the same sizes.

# %%
# NBVAL_IGNORE_OUTPUT
# (DAS is trained: last digits depend on the CPU)
ioi = ioi_pairs(ioi_model, 256, seed=1)
ioi_train, ioi_test = ioi.split(0.5, seed=0)
ioi_task = task_accuracy(ioi_model, ioi)
live = {"full": iia(ioi_model, ioi_test, IOI_HOOK, torch.eye(ioi_model.cfg.d_model))}
for n in (4, 16):
    das = train_das(ioi_model, ioi_train, IOI_HOOK, n, **sweep["settings"]["das"], progress=False)
    live["das", n] = iia(ioi_model, ioi_test, IOI_HOOK, das.basis)
    live["random", n] = iia(ioi_model, ioi_test, IOI_HOOK,
                            random_basis(ioi_model.cfg.d_model, n, seed=0))
print(f"{IOI_MODEL} names the IO in {ioi_task:.1%} of base prompts")
for key, value in live.items():
    print(f"live {key}: IIA {value:.3f}")

# %%
if IOI_MODEL == "zoo-4l":
    assert ioi_task >= 0.95, "zoo-4l solves IOI"
    assert live["full"] >= 0.95 and live["das", 16] >= 0.85, "the live run reproduces the sweep"
    assert live["das", 4] < 0.8 and live["random", 16] < 0.65
else:
    print(f"no expectation for {IOI_MODEL}")

# %% [markdown]
# ## 3. Patchscope vs the logit lens and the tuned lens
# For 192 positions in generated text, we read the hidden state after each block of
# the IOI model and ask what it predicts next, three ways: the **logit lens**
# (unembed it), the **tuned lens** (a learned affine map first, trained here on other
# text), and a **Patchscope**: patch it into the same layer of an identity-style
# target prompt ("cat cat . dog dog . …"), at its last position, and let the model
# finish. Score: how often the top token matches the model's own final prediction at
# that position. Control: the same Patchscope with the sources shuffled between
# positions.

# %%
lens_tokens = token_chunks(ioi_model, corpus_sentences(1500, seed=1), 32)
# a hub model's 50,257-token unembedding: fewer positions per step (as in notebook 01),
# drawn from fewer sequences
LENS_STEPS = {"steps": 200} if IOI_MODEL.startswith("zoo") else {"steps": 100, "tokens_per_step": 32}
lens_tokens = lens_tokens if IOI_MODEL.startswith("zoo") else lens_tokens[:128]
tuned, _ = train_tuned_lens(ioi_model, lens_tokens, **LENS_STEPS, progress=False)
source = token_chunks(ioi_model, corpus_sentences(500, seed=2), 24)[:192]
gen = torch.Generator().manual_seed(0)
positions = torch.randint(4, source.shape[1], (len(source),), generator=gen)
logit_lens = lens_logits(ioi_model, source, positions=positions)  # layer batch d_vocab
with torch.no_grad():
    tuned_lens = lens_logits(ioi_model, source, tuned, positions=positions)
final = logit_lens[-1]  # the last layer's lens is the model's output
words = ["cat", "dog", "Mary", "house", "table"]
target = ioi_model.to_tokens(identity_prompt(ioi_model, words) + " " + words[0])
scope = patchscope_logits(ioi_model, source, target, source_pos=positions)
shuffle = torch.randperm(len(source), generator=gen)
shuffled = patchscope_logits(ioi_model, source[shuffle], target, source_pos=positions[shuffle])
agreement = {"logit lens": top1_agreement(logit_lens, final),
             "Patchscope": top1_agreement(scope, final),
             "shuffled Patchscope": top1_agreement(shuffled, final)}
print(f"{len(source)} source positions; target prompt:",
      repr(ioi_model.tokenizer.decode(target[0, 1:].tolist())))
print(f"{'agreement with the final top-1':>32s} " + " ".join(
    f"after L{layer}" for layer in range(ioi_model.cfg.n_layers)))
for name, values in agreement.items():
    print(f"{name:>32s} " + " ".join(f"{v:8.2f}" for v in values.tolist()))

# %%
# NBVAL_IGNORE_OUTPUT
# (the tuned lens is trained: last digits depend on the CPU)
agreement["tuned lens"] = top1_agreement(tuned_lens, final)
print(f"{'tuned lens':>32s} " + " ".join(f"{v:8.2f}" for v in agreement["tuned lens"].tolist()))
early = slice(0, ioi_model.cfg.n_layers - 1)  # the last layer is the output for every method
gap = (agreement["Patchscope"][early] - agreement["tuned lens"][early]).abs().max().item()
print(f"largest gap between Patchscope and the tuned lens before the last layer: {gap:.2f}")

# %%
fig, ax = plt.subplots(figsize=(6, 3))
layers = range(ioi_model.cfg.n_layers)
for (name, values), style in zip(agreement.items(), ("s--", "o-", "x:", "^-")):
    ax.plot(layers, values, style, label=name)
ax.set_xticks(list(layers), [f"L{layer}" for layer in layers])
ax.set_xlabel("hidden state after block")
ax.set_ylabel("top-1 agreement with the output")
ax.set_ylim(0, 1.05)
ax.legend(fontsize=8)
ax.set_title(f"Decoding hidden states ({IOI_MODEL})")
plt.show()

# %%
assert agreement["Patchscope"][-1] == 1.0 and agreement["logit lens"][-1] == 1.0  # the output
if IOI_MODEL == "zoo-4l":
    assert (agreement["Patchscope"][early] > agreement["logit lens"][early]).all(), \
        "Patchscope beats the logit lens before the last layer"
    assert (agreement["shuffled Patchscope"][early] < 0.15).all(), "shuffled sources: chance"
    assert gap < 0.15, "an untrained Patchscope does about as well as a trained tuned lens"
else:
    print(f"no expectation for {IOI_MODEL}")

# %% [markdown]
# ## 4. Steering English towards French, and what it costs
# Four unit directions in the residual stream after block 0, added at every position
# with a growing `scale`: **DiffMean** (mean activation at the name on French prompts
# minus English ones: a contrastive steering vector), the **probe** direction, the
# decoder direction of the **SAE latent** that best separates French from English
# (among those more active on French), and a **random** direction. Behaviour: on
# held-out *English* prompts, the log-probability of French function words after the
# name minus that of English ones. Cost: the increase of the next-token loss on
# unrelated text (arithmetic sentences).

# %%
language = language_prompts(300, seed=0)
prompts, labels = language.prompts, language.labels
labels = torch.tensor(labels)
tokens, ends = tokenize_prompts(model, prompts)
acts = collect_activations(model, tokens, [HOOK], positions=ends)[HOOK]
is_fr = labels == 1
directions = {"DiffMean": contrastive_vector(model, tokens[is_fr], tokens[~is_fr], HOOK,
                                             ends[is_fr], ends[~is_fr]),
              "probe": probe_basis(acts, labels)[:, 0]}
if "topk-k16" in saes:
    latent = top_sae_latents(saes["topk-k16"], acts, labels, 1, positive=True)
    directions["SAE latent"] = saes["topk-k16"].W_dec[latent[0]].detach()
directions["random"] = random_basis(d_model, 1, seed=0)[:, 0]
held_out = language_prompts(100, seed=1)
test_prompts, test_labels = held_out.prompts, held_out.labels
english_prompts = [p for p, label in zip(test_prompts, test_labels) if label == 0]
behaviour_tokens, behaviour_ends = tokenize_prompts(model, english_prompts)
en_ids, fr_ids = single_token_ids(model, english), single_token_ids(model, french)


def french_preference(logits):
    """Mean log P(French function word) - log P(English one) after the name."""
    logprobs = logits_at(logits, behaviour_ends).log_softmax(-1)
    return (logprobs[:, fr_ids].logsumexp(-1) - logprobs[:, en_ids].logsumexp(-1)).mean()


unrelated = token_chunks(model, corpus_sentences(300, kinds=["arithmetic"], seed=3), 32)[:64]
print(f"mean residual norm at the name: {acts.norm(dim=-1).mean():.2f} (scales are in these units)")

# %%
# NBVAL_IGNORE_OUTPUT
# (the probe direction is trained: last digits depend on the CPU)
SCALES = [0, 0.5, 1, 1.5, 2, 3, 4, 6, 8]
steering = steering_sweep(model, HOOK, directions, SCALES, behaviour_tokens, french_preference,
                          unrelated, progress=False)
COST = 1.0  # nats of extra loss on unrelated text we are willing to pay
best = best_within_cost(steering, COST)
print(f"French preference on English prompts, unsteered: {steering[0]['behaviour']:.2f} nats")
for name, change in best.items():
    print(f"{name:>10s}: largest change at a cost <= {COST} nat: {change:+.2f}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
for name in directions:
    mine = [r for r in steering if r["direction"] == name]
    axes[0].plot(SCALES, [r["behaviour_change"] for r in mine], "o-", label=name)
    axes[1].plot([r["loss_increase"] for r in mine], [r["behaviour_change"] for r in mine], "o-",
                 label=name)
axes[0].set_xlabel("scale (activation units)")
axes[0].set_ylabel("change in French preference (nats)")
axes[1].set_xlabel("loss increase on unrelated text (nats per token)")
axes[1].set_ylabel("change in French preference (nats)")
axes[1].axvline(COST, color="k", ls=":", lw=1)
axes[0].legend()
axes[0].set_title("Target behaviour vs scale")
axes[1].set_title("Cost curve: behaviour vs side effect")
plt.tight_layout()
plt.show()

# %%
if MODEL == "zoo-2l":
    assert best["DiffMean"] > 1.0, "DiffMean steers towards French"
    assert best["DiffMean"] > best["probe"] and best["DiffMean"] > best["SAE latent"], \
        "...further than the probe and the SAE latent at the same cost"
    assert best["random"] < 0.3, "a random direction does not steer towards French"
else:
    print(f"no expectation for {MODEL}")

# %% [markdown]
# ### Exercise 10.3: a steering hook
# **Difficulty** 1/5 · **Importance** 4/5 · **Time** about 10 min
#
# Write the hook `steering_hook(resid, hook, direction, scale)` that the steering above
# runs at `resid_post 0`: `resid` is the residual stream `[batch, pos, d_model]`,
# `direction` a `[d_model]` vector of any norm, `scale` a number in activation units.
# Return the residual with `scale` times the *unit* direction added at every prompt and
# position. The check also runs your hook inside the model (as `model.run_with_hooks(...,
# fwd_hooks=[(name, partial(steering_hook, direction=..., scale=...))])`).
#
# <details><summary>Hint 1</summary>
#
# Normalise first, so that `scale` means the same for every direction: `direction /
# direction.norm()`.
# </details>
#
# <details><summary>Hint 2</summary>
#
# A `[d_model]` vector broadcasts over `[batch, pos, d_model]`; return the new tensor
# (TransformerLens uses what the hook returns).
# </details>

# %%
from torch import Tensor


def steering_hook(resid: Tensor, hook, direction: Tensor, scale: float) -> Tensor:
    """``resid`` plus ``scale`` times the unit ``direction``, at every position."""
    # BEGIN SOLUTION
    return resid + scale * direction / direction.norm()
    # END SOLUTION
    # STUB raise NotImplementedError("add the scaled unit direction")

# %%
from mi_helpers.exercises import check_steering_hook

check_steering_hook(steering_hook, model)

# %% [markdown]
# What steering does to generation: greedy continuations of an English clause, steered
# along DiffMean at growing scales.

# %%
for scale in (0, 2, 4, 8):
    text = generate(model, "the old dog follows Mary", 8, HOOK, directions["DiffMean"], scale)
    print(f"scale {scale}: the old dog follows Mary + {text!r}")

# %% [markdown]
# ## Summary

# %%
# NBVAL_IGNORE_OUTPUT
# (repeats trained numbers from above: last digits depend on the CPU)
print(f"language ({MODEL}): IIA of one DAS direction {iia_of['das', 1]:.2f}, DiffMean "
      f"{iia_of['diffmean', 1]:.2f}, probe {iia_of['probe', 1]:.2f}, random "
      f"{iia_of['random', 1]:.2f}, whole residual {iia_of['full', d_model]:.2f}")
print(f"IOI ({sweep['settings']['model']}): DAS needs {smallest} dimensions for IIA 0.9; "
      f"at 4 it scores {ioi_iia['das', 4]:.2f}")
print("Patchscope vs logit lens, top-1 agreement per layer:",
      [round(v, 2) for v in agreement["Patchscope"].tolist()], "vs",
      [round(v, 2) for v in agreement["logit lens"].tolist()])
print(f"steering at a cost of at most {COST} nat:",
      {name: round(change, 1) for name, change in best.items()})

# %% [markdown]
# * **A binary variable lives in one direction; a name does not.** The language of the
#   clause is carried by a single direction after block 0: DAS finds it, and DiffMean
#   and the probe come close, while a random direction, the best neuron and the best SAE
#   latent do not. Which name is the indirect object is carried by a name's identity,
#   spread over many dimensions: no subspace of 4 dimensions carries it, and DAS needs 8.
# * **The baselines keep DAS honest**: on a random-weights model the same training finds
#   nothing, and a random subspace of the same size stays at chance.
# * **SAE latents vs neurons** (language): neither works alone; with four, SAE latents
#   beat neurons but not one learned (or DiffMean) direction.
# * **Patchscope** reads hidden states better than the logit lens without any training,
#   about as well as a trained tuned lens here.
# * **Steering**: at the same side-effect cost, DiffMean moves the model towards French
#   further than the probe direction or an SAE latent: the cheap baseline wins.

# %% [markdown]
# ## Further reading
# * [Geiger et al. (2021), *Causal Abstractions of Neural Networks*](https://arxiv.org/abs/2106.02997):
#   interchange interventions.
# * [Geiger et al. (2023), *Finding Alignments Between Interpretable Causal Variables and Distributed Neural Representations*](https://arxiv.org/abs/2303.02536):
#   distributed alignment search (DAS).
# * [Makelov, Lange and Nanda (2023), *Is This the Subspace You Are Looking for? An Interpretability Illusion for Subspace Activation Patching*](https://arxiv.org/abs/2311.17030).
# * [Wu et al. (2025), *AxBench: Steering LLMs? Even Simple Baselines Outperform Sparse Autoencoders*](https://arxiv.org/abs/2501.17148).
# * [Mueller et al. (2025), *MIB: A Mechanistic Interpretability Benchmark*](https://arxiv.org/abs/2504.13151):
#   the causal-variable track.
# * [Ghandeharioun et al. (2024), *Patchscopes: A Unifying Framework for Inspecting Hidden Representations of Language Models*](https://arxiv.org/abs/2401.06102).
# * [Belrose et al. (2023), *Eliciting Latent Predictions from Transformers with the Tuned Lens*](https://arxiv.org/abs/2303.08112).
# * [Turner et al. (2023), *Steering Language Models With Activation Engineering*](https://arxiv.org/abs/2308.10248)
#   and [Rimsky et al. (2024), *Steering Llama 2 via Contrastive Activation Addition*](https://arxiv.org/abs/2312.06681).
