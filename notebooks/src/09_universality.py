# %% [markdown]
# # 09 · Universality: the same features and circuits across seeds and sizes?
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mi-roadmap/mi-roadmap/blob/main/notebooks/09_universality.ipynb)
#
# The roadmap's third question: does what we find in one model recur in others? We
# compare the zoo's three seeds of the 2-layer model (same data, same architecture,
# different random initialisation), its 4-layer model, and a *randomly initialised*
# 2-layer model as the baseline that every match has to beat.
#
# * **Circuits**: which heads are previous-token and induction heads in each model?
# * **Neurons**: for each MLP neuron of seed 0, its best activation correlation with
#   any neuron of another model, on the same tokens.
# * **SAE latents**: the same matching for the latents of a sparse autoencoder trained
#   on each model's residual stream, and for their decoder directions after a linear map
#   between the two residual streams.
#
# **What we expect to see** (asserted below):
# 1. every trained zoo model has a previous-token head and a later induction head
#    (scores > 0.8); the random model has neither;
# 2. neurons of different seeds match better than neurons of the random model, but few
#    match closely;
# 3. SAE latents match across seeds more often than neurons do.


# %% [markdown]
# **Learning objectives.** After this notebook you can
# * compare circuits across models by per-head scores, and neurons by activation
#   correlation on shared tokens (by hand in the exercises);
# * read every match against a randomly initialised baseline;
# * match SAE latents across models, and test whether one linear map aligns two residual streams.
#
# **Prerequisites:** notebooks 03 and 07; Pearson correlation, least squares.
# **Time:** about 45 min to read and run, plus 30 min of exercises.

# %% tags=["parameters"]
MODEL = "zoo-2l"  # the reference model
OTHERS = None  # models of the same architecture from other seeds (None: the defaults below)
OTHER_SIZE = None  # a model of another size with the same tokenizer (None: the default)

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
from mi_helpers.circuits import head_scores
from mi_helpers.core import collect_activations, hook_name
from mi_helpers.datasets import corpus_sentences, token_chunks
from mi_helpers.features.sae import ActivationBuffer, build_sae, sae_metrics, train_sae
from mi_helpers.universality import (best_matches, check_same_tokenizer, fraction_above,
                                     latent_centroids, map_quality, mapped_direction_similarity,
                                     random_like, recurring_heads, residual_map)
from mi_helpers.viz import heatmap


def token_acts(model, tokens, hook):
    """One row per token (BOS left out) of ``hook``'s activations."""
    return collect_activations(model, tokens, [hook], drop_bos=True)[hook]

# Models that share MODEL's tokenizer. Stanford CRFM trained GPT-2 small from several seeds
# (the models the universality papers compared); OpenAI's gpt2 shares their architecture and
# tokenizer but not their data, so for a true seed comparison set MODEL to one of the three.
STANFORD = ["stanford-crfm/alias-gpt2-small-x21", "stanford-crfm/battlestar-gpt2-small-x49",
            "stanford-crfm/caprica-gpt2-small-x81"]
DEFAULT_COMPARISONS = {
    "zoo-2l": (["zoo-2l-seed1", "zoo-2l-seed2"], "zoo-4l"),
    "gpt2": (STANFORD[:2], "gpt2-medium"),
    **{name: ([s for s in STANFORD if s != name], "gpt2-medium") for name in STANFORD},
}
if OTHERS is None or OTHER_SIZE is None:
    if MODEL not in DEFAULT_COMPARISONS:
        raise ValueError(f"no default comparison models for {MODEL!r}: set OTHERS (same "
                         f"architecture, other seeds) and OTHER_SIZE in the parameters cell")
    default_others, default_size = DEFAULT_COMPARISONS[MODEL]
    OTHERS = default_others if OTHERS is None else OTHERS
    OTHER_SIZE = default_size if OTHER_SIZE is None else OTHER_SIZE

torch.manual_seed(0)
models = {name: load_model(name) for name in [MODEL, *OTHERS, OTHER_SIZE]}
models["random"] = random_like(models[MODEL], seed=0)
reference = models[MODEL]
for name, model in models.items():
    check_same_tokenizer(reference, model)
    print(f"{name:>13}: {model.cfg.n_layers} layers x {model.cfg.n_heads} heads, "
          f"d_model {model.cfg.d_model}, d_mlp {model.cfg.d_mlp}")

# %% [markdown]
# ## 1. Do the induction circuits recur?

# %%
scores = {name: head_scores(model, rep_len=20, n_seqs=32, seed=0) for name, model in models.items()}
fig, axes = plt.subplots(2, len(models), figsize=(3.2 * len(models), 5))
for col, name in enumerate(models):
    for row, kind in enumerate(("previous_token", "induction")):
        heatmap(scores[name][kind], f"{name}\n{kind.replace('_', '-')}", ax=axes[row, col],
                kind="score", xlabel="head", ylabel="layer")
plt.tight_layout()
plt.show()
prev = recurring_heads({n: s["previous_token"] for n, s in scores.items()}, 0.8)
induction = recurring_heads({n: s["induction"] for n, s in scores.items()}, 0.8)
for name in models:
    print(f"{name:>13}: previous-token heads {[h.label for h in prev[name]]}, induction heads "
          f"{[h.label for h in induction[name]]}")

# %%
if MODEL in DEFAULT_COMPARISONS:  # model cards; Olsson et al. (2022) for the GPT-2 family
    for name in models:
        if name == "random":
            continue
        assert prev[name] and induction[name], f"{name} should have both kinds of head"
        assert min(h.layer for h in prev[name]) < max(h.layer for h in induction[name]), \
            "previous-token first"
else:
    print(f"no expectation for {MODEL} and its comparison models")
assert not prev["random"] and not induction["random"], "a random model has neither"

# %% [markdown]
# ## 2. Do neurons match across seeds?
# All models read the same 15k tokens of held-out zoo text (BOS positions left out; half
# as many sentences on a hub model, where 12 layers of 3,072 neurons take 2 GB per model
# at 15k tokens). For each MLP neuron of the reference model we take its best Pearson
# correlation with any neuron of the same layer in the other model.

# %%
del models[OTHER_SIZE]  # only section 1 compares sizes (gpt2-medium holds 4 GB once loaded)
n_sentences = 1200 if reference.cfg.d_mlp <= 1024 else 600
tokens = token_chunks(reference, corpus_sentences(n_sentences, seed=11), 64)
same_shape = [*OTHERS, "random"]
neuron_hooks = [hook_name("mlp_post", layer) for layer in range(reference.cfg.n_layers)]
reference_neurons = collect_activations(reference, tokens, neuron_hooks, drop_bos=True)  # 1 pass
best_by_model = {}
for name in same_shape:
    theirs = collect_activations(models[name], tokens, neuron_hooks, drop_bos=True)
    best_by_model[name] = [best_matches(reference_neurons[hook], theirs[hook])[0]
                           for hook in neuron_hooks]
    del theirs
neuron_best = {(name, layer): best_by_model[name][layer]
               for layer in range(reference.cfg.n_layers) for name in same_shape}
print(f"{tokens.numel() - len(tokens):,} tokens; {reference.cfg.d_mlp} neurons per layer")
print(f"{'other model':>13} {'layer':>5} {'mean best r':>12} {'> 0.5':>7} {'> 0.7':>7} {'> 0.9':>7}")
for (name, layer), best in neuron_best.items():
    print(f"{name:>13} {layer:>5} {best.mean():>12.3f} {fraction_above(best, 0.5):>7.1%} "
          f"{fraction_above(best, 0.7):>7.1%} {fraction_above(best, 0.9):>7.1%}")

# %%
fig, axes = plt.subplots(1, reference.cfg.n_layers, figsize=(5 * reference.cfg.n_layers, 3))
for layer, ax in enumerate(axes):
    for name in same_shape:
        ax.hist(neuron_best[name, layer].numpy(), bins=40, range=(0, 1), histtype="step", label=name)
    ax.set_title(f"MLP neurons, layer {layer}")
    ax.set_xlabel("best correlation with any neuron of the other model")
axes[0].set_ylabel("neurons")
axes[0].legend()
plt.tight_layout()
plt.show()

# %%
if MODEL in DEFAULT_COMPARISONS:  # model cards; Gurnee et al. (2024) for GPT-2's seeds
    for layer in range(reference.cfg.n_layers):
        for name in OTHERS:
            assert neuron_best[name, layer].mean() > neuron_best["random", layer].mean()
            if MODEL == "zoo-2l":
                assert fraction_above(neuron_best[name, layer], 0.5) > 3 * fraction_above(neuron_best["random", layer], 0.5)
else:
    print(f"no expectation for {MODEL} and its comparison models")

# %% [markdown]
# ### Exercise 09.1: neuron-matching correlations
# **Difficulty** 2/5 · **Importance** 5/5 · **Time** about 15 min
#
# Write `neuron_correlations(acts_a, acts_b)`: two models' neuron activations on the
# same tokens, `[n, unit_a]` and `[n, unit_b]`; return the Pearson correlation of every
# neuron of A with every neuron of B, `[unit_a, unit_b]`. A neuron that never varies
# (a dead one) correlates 0 with everything, not NaN.
#
# <details><summary>Hint 1</summary>
#
# Centre each column over the tokens and divide it by its norm; then `a.T @ b` is the
# matrix of correlations.
# </details>
#
# <details><summary>Hint 2</summary>
#
# A dead neuron's centred column is all zeros: divide by `norm.clamp_min(1e-12)`
# instead of the norm. Float64 keeps long sums accurate.
# </details>

# %%
from torch import Tensor


def neuron_correlations(acts_a: Tensor, acts_b: Tensor) -> Tensor:
    """Pearson correlation of every unit of A with every unit of B: [unit_a, unit_b]."""
    # BEGIN SOLUTION
    a = acts_a.double() - acts_a.double().mean(0)
    b = acts_b.double() - acts_b.double().mean(0)
    a = a / a.norm(dim=0).clamp_min(1e-12)
    b = b / b.norm(dim=0).clamp_min(1e-12)
    return (a.T @ b).float()
    # END SOLUTION
    # STUB raise NotImplementedError("centre, normalise each column, then A^T B")

# %%
from mi_helpers.exercises import check_neuron_correlations

check_neuron_correlations(neuron_correlations)

# %% [markdown]
# ### Exercise 09.2: each neuron's best partner
# **Difficulty** 1/5 · **Importance** 3/5 · **Time** about 5 min
#
# Write `best_partner(corr)` for a `[unit_a, unit_b]` correlation matrix: return
# `(values, indices)`, both `[unit_a]`: for each neuron of A, its highest correlation
# with any neuron of B and that neuron's index. A strong *negative* correlation is not a
# match.
#
# <details><summary>Hint 1</summary>
#
# One row per neuron of A: the maximum over axis 1 (`corr.max(dim=1)` returns both).
# </details>

# %%
from torch import Tensor


def best_partner(corr: Tensor) -> tuple[Tensor, Tensor]:
    """For each row, its largest entry and that entry's column: ([unit_a], [unit_a])."""
    # BEGIN SOLUTION
    best = corr.max(dim=1)
    return best.values, best.indices
    # END SOLUTION
    # STUB raise NotImplementedError("the maximum of each row, and where it is")

# %%
from mi_helpers.exercises import check_best_partner

check_best_partner(best_partner)

# %% [markdown]
# ## 3. Do SAE latents match better?
# A TopK SAE (256 latents, k = 8) on each model's residual stream after layer 0, trained
# live on 12k tokens (a few seconds each), then the same matching on held-out tokens.
# Latents that never fire on the held-out tokens are left out.

# %%
# NBVAL_IGNORE_OUTPUT
# (trained SAEs: the last digits differ between CPUs; the claims are asserted below)
HOOK = hook_name("resid_post", 0)
STEPS = 1000
train_tokens = token_chunks(reference, corpus_sentences(3000, seed=0), 64)
saes, latents, resid = {}, {}, {}
for name in [MODEL, *same_shape]:
    sae = build_sae(d_in=models[name].cfg.d_model, d_sae=256, architecture="topk", k=8,
                    hook_name=HOOK)
    acts = token_acts(models[name], train_tokens, HOOK)
    train_sae(sae, ActivationBuffer.from_tensor(acts, acts_per_batch=512, seed=0), steps=STEPS,
              lr=3e-3, progress=False, seed=0)
    resid[name] = token_acts(models[name], tokens, HOOK)
    m = sae_metrics(sae, resid[name])
    with torch.no_grad():
        latents[name] = sae.encode(resid[name])
    saes[name] = sae
    print(f"{name:>13}: L0 {m['l0']:.1f}, FVU {m['fvu']:.3f}, dead {m['dead_fraction']:.1%}")

# %%
# NBVAL_IGNORE_OUTPUT
# (matches between trained SAEs: CPU-dependent last digits; asserted below)
alive = latents[MODEL].gt(0).any(0)
latent_best, latent_pair = {}, {}
for name in same_shape:
    best, pair = best_matches(latents[MODEL][:, alive], latents[name])
    latent_best[name], latent_pair[name] = best, pair
print(f"\n{'other model':>13} {'mean best r':>12} {'> 0.5':>7} {'> 0.7':>7} {'> 0.9':>7}   (SAE latents)")
for name, best in latent_best.items():
    print(f"{name:>13} {best.mean():>12.3f} {fraction_above(best, 0.5):>7.1%} "
          f"{fraction_above(best, 0.7):>7.1%} {fraction_above(best, 0.9):>7.1%}")

# %% [markdown]
# Matched latents should also *point the same way*. The two residual streams use
# different bases, so directions cannot be compared as they are: first map one stream onto
# the other. Plain least squares is the obvious map, and the wrong one here: one direction
# of the zoo's residual stream has almost no variance (a layer norm's output), and least
# squares puts a huge weight on it, which swamps every mapped direction. A **ridge** map
# (least squares with a small penalty) and an **orthogonal Procrustes** map (a rotation:
# it cannot stretch any direction) are well defined. Each map is fit on half of the tokens
# and its R² measured on the other half; the baseline for a decoder cosine is the same
# cosine with a *shuffled* partner. We also compare each latent's partner direction with
# the **centroid** of the tokens the latent fires on, in the other model's space: no map
# needed.

# %%
# NBVAL_IGNORE_OUTPUT
# (cosines between trained SAEs' decoders: CPU-dependent last digits; asserted below)
direction_similarity, mapped_cosines = {}, {}
half = len(resid[MODEL]) // 2
shuffle = torch.randperm(int(alive.sum()), generator=torch.Generator().manual_seed(0))
for name in same_shape:
    close = latent_best[name] > 0.7
    dirs_a, dirs_b = saes[MODEL].W_dec.detach()[alive], saes[name].W_dec.detach()
    row = {}
    for method in ("lstsq", "ridge", "procrustes"):
        mapping = residual_map(resid[MODEL][:half], resid[name][:half], method=method)
        fit = map_quality(resid[MODEL][half:], resid[name][half:], mapping)
        cos = mapped_direction_similarity(dirs_a, dirs_b, mapping, latent_pair[name])
        shuffled = mapped_direction_similarity(dirs_a, dirs_b, mapping, latent_pair[name][shuffle])
        row[method] = (fit, cos[close].mean().item(), shuffled[close].mean().item())
    mapped_cosines[name] = row
    centroids = latent_centroids(latents[MODEL][:, alive], resid[name])
    direction_similarity[name] = torch.nn.functional.cosine_similarity(
        centroids, dirs_b[latent_pair[name]], dim=-1)
    print(f"{name}: {int(close.sum())} latents matched with r > 0.7; centroid cosine "
          f"{direction_similarity[name][close].mean():.2f}")
    for method, (fit, cos, shuffled) in row.items():
        print(f"   {method:>10} map: held-out R^2 {fit:6.2f}, decoder cosine {cos:5.2f} "
              f"(shuffled partners {shuffled:5.2f})")

# %%
fig, ax = plt.subplots(figsize=(6, 3))
for name in OTHERS:
    ax.hist(neuron_best[name, 0].numpy(), bins=40, range=(0, 1), histtype="step",
            label=f"neurons L0 vs {name}")
    ax.hist(latent_best[name].numpy(), bins=40, range=(0, 1), histtype="stepfilled", alpha=0.3,
            label=f"SAE latents vs {name}")
ax.set_xlabel("best correlation with the other model")
ax.legend(fontsize=7)
plt.show()

# %%
# NBVAL_IGNORE_OUTPUT
# (fractions from trained SAEs: CPU-dependent last digits; the assertions hold the claims)
summary = {name: {"neurons > 0.9": max(fraction_above(neuron_best[name, layer], 0.9)
                                      for layer in range(reference.cfg.n_layers)),
                  "latents > 0.9": fraction_above(latent_best[name], 0.9),
                  "random latents > 0.9": fraction_above(latent_best["random"], 0.9)}
           for name in OTHERS}
for name, row in summary.items():
    print(name, {k: f"{v:.1%}" for k, v in row.items()})
for name in OTHERS if MODEL == "zoo-2l" else []:  # measured on the zoo's seeds
    assert summary[name]["latents > 0.9"] > summary[name]["neurons > 0.9"]
    assert summary[name]["latents > 0.9"] > summary[name]["random latents > 0.9"]
    close = latent_best[name] > 0.7
    assert direction_similarity[name][close].mean() > 0.5, "matched latents point alike"
    for method in ("ridge", "procrustes"):
        fit, cos, shuffled = mapped_cosines[name][method]
        assert cos > shuffled + 0.2, f"after a {method} map, matched latents point alike"
if MODEL != "zoo-2l":
    print(f"no expectation for {MODEL}")

# %% [markdown]
# ### Exercise 09.3: mean max cosine similarity
# **Difficulty** 2/5 · **Importance** 3/5 · **Time** about 10 min
#
# How well does one set of directions (e.g. one SAE's decoder rows) cover another?
# Write `mean_max_cosine(dirs_a, dirs_b)`: `[unit_a, d]` and `[unit_b, d]`; return, as a
# float, the mean over A's directions of the largest cosine similarity with any of B's.
# It is 1 when every direction of A has an exact match in B, whatever their lengths.
#
# <details><summary>Hint 1</summary>
#
# Normalise every row of both to unit length first; then `a @ b.T` holds all cosines.
# </details>
#
# <details><summary>Hint 2</summary>
#
# The maximum is over B (axis 1), the mean over A.
# </details>

# %%
from torch import Tensor


def mean_max_cosine(dirs_a: Tensor, dirs_b: Tensor) -> float:
    """Mean over the rows of A of their best cosine similarity with a row of B."""
    # BEGIN SOLUTION
    a = dirs_a / dirs_a.norm(dim=1, keepdim=True)
    b = dirs_b / dirs_b.norm(dim=1, keepdim=True)
    return (a @ b.T).max(dim=1).values.mean().item()
    # END SOLUTION
    # STUB raise NotImplementedError("normalise, all cosines, best per row, mean")

# %%
from mi_helpers.exercises import check_mean_max_cosine

check_mean_max_cosine(mean_max_cosine)

# %% [markdown]
# ## What we measured
# * **Circuits recur**: every trained zoo model, all seeds and both sizes, has a
#   previous-token head feeding a later induction head (section 1), and the random
#   model has neither: the clearest case of universality, as in the survey.
# * **Neurons rarely match closely**: read the table of section 2 for the fraction of
#   neurons above each threshold. Seeds match each other far more than they match a
#   random model (at r > 0.5), but in these small models no neuron, or almost none, has
#   a close (r > 0.9) partner: fewer than the few percent reported for GPT-2's neurons
#   ([Gurnee et al., 2024](https://arxiv.org/abs/2401.12181)).
# * **SAE latents match better than neurons** on the same models (section 3): a larger
#   share of latents has a close partner, and a matched latent's decoder direction
#   points along the centroid of the tokens its partner fires on. A well-posed linear map
#   between the two residual streams (ridge or Procrustes) also aligns matched latents'
#   decoder directions far better than shuffled partners, though it explains only part of
#   the variance (held-out R²): plain least squares would have said the opposite, an
#   artefact of one near-empty direction. A random model's SAE also finds some matches
#   (its residual stream still reflects the token embeddings), which is why the baseline
#   row matters.
# %% [markdown]
# ## Further reading
# * [Li et al. (2015), *Convergent Learning: Do different neural networks learn the same representations?*](https://arxiv.org/abs/1511.07543).
# * [Olah et al. (2020), *Zoom In: An Introduction to Circuits*](https://distill.pub/2020/circuits/zoom-in/): the universality claim.
# * [Gurnee et al. (2024), *Universal Neurons in GPT2 Language Models*](https://arxiv.org/abs/2401.12181).
# * [Chughtai et al. (2023), *A Toy Model of Universality*](https://arxiv.org/abs/2302.03025).
