# %% [markdown]
# # 04 · Interpreting features: dashboards and automatic explanations
#
# Notebook 03 trained sparse autoencoders; their latents are candidate *features*. To
# interpret one we look at a **dashboard**: the contexts where it fires most (and, to
# avoid flattering it, contexts from lower activation bands), how often it fires, which
# tokens its output direction promotes, and what happens when we add that direction to
# the residual stream. Then we let an **explainer** name the unit from its contexts and
# score the explanation by **simulation** (Bills et al., 2023): predict the unit's
# activation on every token from the explanation alone and correlate with the truth,
# and by **detection**: does the explanation tell contexts where it fires from contexts
# where it does not?
#
# The default explainer is offline (no model service): it names the tokens most
# over-represented where the unit fires. Any OpenAI-compatible chat endpoint can be
# used instead (`ChatExplainer`), e.g. a local server.
#
# **What we expect to see** (asserted below):
# 1. the statistics pass keeps only the top activations and a fixed-size sample per
#    unit, and a dashboard exported as a standalone HTML page stays under 300 KB;
# 2. each explanation scores higher on its own unit than on other units' activations
#    (a shuffled baseline), for SAE latents and for neurons alike;
# 3. the measured answer to "are SAE latents more interpretable than neurons?", by mean
#    simulation score over the same number of units of each kind.


# %% [markdown]
# **Learning objectives.** After this notebook you can
# * build and read a feature dashboard: top and quantile contexts, density, logit
#   effects, steering;
# * find a unit's top activations and the tokens a direction promotes by hand (exercises);
# * explain a unit automatically and score the explanation by simulation and detection,
#   against a shuffled baseline;
# * compare the interpretability of SAE latents and neurons with a number, not an impression.
#
# **Prerequisites:** notebooks 00 and 03 (SAEs); Pearson correlation.
# **Time:** about 45 min to read and run, plus 25 min of exercises.

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
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from IPython.display import display

from mi_helpers import load_model
from mi_helpers.core import collect_activations, hook_name
from mi_helpers.datasets import corpus_sentences, token_chunks
from mi_helpers.features.autointerp import TokenExplainer, score_explanation, simulation_score
from mi_helpers.features.dashboards import (DashboardWidget, NeuronReader, SAELatentReader,
                                            StaticHTML, build_dashboard, collect_statistics,
                                            export_html, random_contexts, render_html)
from mi_helpers.features.sae import SAES_DIR, ActivationBuffer, build_sae, load_sae, train_sae

torch.manual_seed(0)
model = load_model(MODEL)
HOOK = hook_name("resid_post", model.cfg.n_layers // 2 - 1)
committed = SAES_DIR / MODEL / "topk-k16"
if committed.is_dir():
    sae = load_sae(committed)
    print(f"loaded the SAE saved for notebook 03: {committed.relative_to(SAES_DIR.parent.parent)}")
else:  # a hub model: train a small one here (notebook 03 shows how to do it well)
    sae = build_sae(d_in=model.cfg.d_model, d_sae=8 * model.cfg.d_model, architecture="topk",
                    k=16, hook_name=HOOK)
    sae_tokens = token_chunks(model, corpus_sentences(3000, seed=0), 64)
    acts = collect_activations(model, sae_tokens, [HOOK], drop_bos=True)[HOOK]
    train_sae(sae, ActivationBuffer.from_tensor(acts, acts_per_batch=1024), steps=500, lr=3e-3,
              progress=False)
latents = SAELatentReader(sae, label="TopK SAE")
neurons = NeuronReader(model, layer=model.cfg.n_layers // 2 - 1)
print(f"{latents.n_units} SAE latents on {latents.hook}; {neurons.n_units} neurons on {neurons.hook}")

# %% [markdown]
# ## 1. One streaming pass over a dataset
# Held-out zoo text (sentences never used to train the SAE). For every unit at once we
# keep its 20 largest activations, an exact firing count and a uniform sample of 4,096
# positions.

# %%
tokens = token_chunks(model, corpus_sentences(2000, seed=3), 64)
stats = {"latent": collect_statistics(model, latents, tokens, n_top=20, n_sample=4096, progress=False),
         "neuron": collect_statistics(model, neurons, tokens, n_top=20, n_sample=4096, progress=False)}
readers = {"latent": latents, "neuron": neurons}
for kind, s in stats.items():
    print(f"{kind}s: {s.n_tokens:,} tokens; kept top {tuple(s.top_values.shape)}, sample "
          f"{tuple(s.sample_values.shape)}; median density {s.density.median():.2%}, "
          f"dead {(s.fire_count == 0).float().mean():.1%}")

# %%
fig, ax = plt.subplots(figsize=(7, 3))
for kind, s in stats.items():
    alive = s.density[s.density > 0]
    ax.hist(torch.log10(alive).numpy(), bins=40, histtype="step", label=f"{kind}s")
ax.set_xlabel("log10(fraction of tokens the unit fires on)")
ax.set_ylabel("units")
ax.legend()
plt.show()

# %% [markdown]
# ### Exercise 04.1: where does a unit fire most?
# **Difficulty** 2/5 · **Importance** 4/5 · **Time** about 10 min
#
# The first panel of a dashboard. Write `top_activations(acts, n)`: `acts` is one
# unit's activation on every token, `[batch, pos]`; return `(values, where)`: the `n`
# largest activations, largest first (`[n]`), and for each its prompt and position
# (`[n, 2]`, each row `(batch, pos)`).
#
# <details><summary>Hint 1</summary>
#
# `acts.flatten().topk(n)` gives values and *flat* indices.
# </details>
#
# <details><summary>Hint 2</summary>
#
# Rows are laid out one after another: flat index `i` is prompt `i // n_pos`, position
# `i % n_pos`, with `n_pos = acts.shape[1]`.
# </details>

# %%
import torch
from torch import Tensor


def top_activations(acts: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """The n largest entries of a [batch, pos] tensor and their (batch, pos) indices."""
    # BEGIN SOLUTION
    top = acts.flatten().topk(n)
    n_pos = acts.shape[1]
    where = torch.stack([top.indices // n_pos, top.indices % n_pos], dim=1)
    return top.values, where
    # END SOLUTION
    # STUB raise NotImplementedError("topk over every token, then unravel the indices")

# %%
from mi_helpers.exercises import check_top_activations

check_top_activations(top_activations)

# %% [markdown]
# ## 2. Dashboards
# For each kind, the unit that fires most often among those firing on 0.5-5% of tokens
# (frequent enough to show, rare enough to be specific). Hover over a token to see its
# activation.

# %%
def pick(kind, low=0.005, high=0.05):
    density = stats[kind].density
    candidates = ((density > low) & (density < high)).nonzero().flatten()
    return int(candidates[density[candidates].argmax()]) if len(candidates) else 0


latent_id = pick("latent")
steer_prompt = "When Mary and John went to the store , John gave a drink to"
dash_latent = build_dashboard(model, latents, stats["latent"], tokens, latent_id,
                              steering_prompt=steer_prompt)
display(StaticHTML(render_html(dash_latent)))

# %%
neuron_id = pick("neuron")
dash_neuron = build_dashboard(model, neurons, stats["neuron"], tokens, neuron_id,
                              steering_prompt=steer_prompt)
display(StaticHTML(render_html(dash_neuron)))

# %%
with tempfile.TemporaryDirectory() as folder:
    size = export_html(dash_latent, Path(folder) / "latent.html")
print(f"standalone HTML for one dashboard: {size / 1024:.1f} KB")
assert size < 300 * 1024

# %% [markdown]
# The interactive version: move the slider or type a unit number (in a live kernel; a
# saved notebook shows only the widget's last state).

# %%
# NBVAL_IGNORE_OUTPUT (a live widget's state is not part of the committed results)
widget = DashboardWidget(model, latents, stats["latent"], tokens, start=latent_id)
display(widget.view)

# %% [markdown]
# ### Exercise 04.2: which tokens does a direction promote?
# **Difficulty** 1/5 · **Importance** 4/5 · **Time** about 5 min
#
# The dashboard's logit panel. Write `promoted_tokens(direction, W_U, n)`: a unit's
# output direction (e.g. a row of the SAE's `W_dec`), `[d_model]`, and the unembedding
# `[d_model, d_vocab]`; return `(top_ids, bottom_ids)`: the `n` tokens whose logits the
# direction raises most (largest first) and the `n` it lowers most (most negative
# first), ignoring the final layer norm.
#
# <details><summary>Hint 1</summary>
#
# `direction @ W_U` is one number per token; `topk(n)` and `topk(n, largest=False)`.
# </details>

# %%
import torch
from torch import Tensor


def promoted_tokens(direction: Tensor, W_U: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """Ids of the n tokens direction @ W_U raises most, and of the n it lowers most."""
    # BEGIN SOLUTION
    effects = direction @ W_U
    return effects.topk(n).indices, effects.topk(n, largest=False).indices
    # END SOLUTION
    # STUB raise NotImplementedError("project on the unembedding, then the two ends")

# %%
from mi_helpers.exercises import check_promoted_tokens

check_promoted_tokens(promoted_tokens)

# %% [markdown]
# ## 3. Automatic explanations and their scores
# For the same number of SAE latents and neurons (those firing on at least 0.2% of
# tokens, chosen at random with a fixed seed), the offline explainer names each unit
# from half of its top contexts, then each explanation is scored on contexts it has not
# seen: the other half of the top contexts, contexts from the lower activation bands,
# and contexts around random positions (where the unit is mostly silent).

# %%
N_UNITS = 24
explainer = TokenExplainer()
gen = torch.Generator().manual_seed(0)
results = {}
for kind in ("latent", "neuron"):
    alive = (stats[kind].density > 0.002).nonzero().flatten()
    chosen = alive[torch.randperm(len(alive), generator=gen)[:N_UNITS]].tolist()
    rows = []
    for unit in chosen:
        dash = build_dashboard(model, readers[kind], stats[kind], tokens, unit, n_top=12)
        train_ctx, test_ctx = dash.top_contexts[0::2], dash.top_contexts[1::2]
        band_ctx = [c for ctxs in dash.quantile_contexts.values() for c in ctxs]
        random_ctx = random_contexts(model, readers[kind], stats[kind], tokens, unit, n=12, seed=unit)
        explanation = explainer.explain(train_ctx)
        scores = score_explanation(explanation, test_ctx + band_ctx, random_ctx)
        rows.append({"unit": unit, "explanation": explanation,
                     "test": test_ctx + band_ctx + random_ctx, **scores})
    results[kind] = rows
    print(f"\n{kind}s: three examples")
    for r in rows[:3]:
        print(f"  {kind} {r['unit']}: {r['explanation'].text[:80]!r} -> simulation "
              f"{r['simulation']:.2f}, detection {r['detection']:.2f}")

# %% [markdown]
# A baseline: score each explanation on the *next* unit's contexts. An explanation that
# says something true about its unit should score clearly better on its own.

# %%
summary = {}
for kind, rows in results.items():
    own = torch.tensor([r["simulation"] for r in rows])
    shuffled = torch.tensor([simulation_score(r["explanation"], rows[(i + 1) % len(rows)]["test"])
                             for i, r in enumerate(rows)])
    detection = torch.tensor([r["detection"] for r in rows])
    summary[kind] = {"simulation": own.mean().item(), "shuffled": shuffled.mean().item(),
                     "detection": detection.nanmean().item(), "sem": (own.std() / len(own) ** 0.5).item()}
    print(f"{kind + 's':>8}: simulation {own.mean():.2f} ± {summary[kind]['sem']:.2f} (s.e.m.), "
          f"shuffled {shuffled.mean():.2f}, detection {detection.nanmean():.2f}")

fig, ax = plt.subplots(figsize=(5, 3))
ax.boxplot([[r["simulation"] for r in results[k]] for k in results], tick_labels=["SAE latents", "neurons"])
ax.set_ylabel("simulation score (correlation)")
plt.show()

# %%
for kind in results:
    assert summary[kind]["simulation"] > summary[kind]["shuffled"] + 0.1, f"{kind}: beat the baseline"
gap = summary["latent"]["simulation"] - summary["neuron"]["simulation"]
margin = 2 * (summary["latent"]["sem"] ** 2 + summary["neuron"]["sem"] ** 2) ** 0.5
verdict = ("SAE latents are more interpretable" if gap > margin else
           "neurons are more interpretable" if gap < -margin else "no clear difference")
print(f"difference (latents - neurons): {gap:+.2f}, twice its standard error {margin:.2f}: {verdict} "
      f"by this explainer and score")
if MODEL == "zoo-2l":
    assert verdict == "SAE latents are more interpretable", "the measured answer for the zoo model"

# %% [markdown]
# ### Exercise 04.3: the simulation score
# **Difficulty** 2/5 · **Importance** 3/5 · **Time** about 10 min
#
# A simulation score is the correlation between the activations an explanation
# predicts and the true ones. Write `activation_correlation(simulated, true)` for two
# `[n]` tensors, returning their Pearson correlation as a float; when either side is
# constant (e.g. the explanation names no token that occurs), return 0.0, not NaN.
#
# <details><summary>Hint 1</summary>
#
# Centre both (subtract their means), then `(a @ b) / (a.norm() * b.norm())`.
# </details>
#
# <details><summary>Hint 2</summary>
#
# Without centring you would get a cosine similarity: activations are mostly positive,
# so the cosine of two unrelated units is far from 0.
# </details>

# %%
import torch
from torch import Tensor


def activation_correlation(simulated: Tensor, true: Tensor) -> float:
    """Pearson correlation of two [n] tensors; 0.0 if either is constant."""
    # BEGIN SOLUTION
    a, b = simulated.double() - simulated.double().mean(), true.double() - true.double().mean()
    if a.norm() == 0 or b.norm() == 0:
        return 0.0
    return ((a @ b) / (a.norm() * b.norm())).item()
    # END SOLUTION
    # STUB raise NotImplementedError("centre, then cosine; 0.0 for a constant side")

# %%
from mi_helpers.exercises import check_activation_correlation

check_activation_correlation(activation_correlation)

# %% [markdown]
# ## Summary
# * A dashboard is several views of one unit; the quantile samples and the density
#   keep the top activations from telling the whole story.
# * Explanations are hypotheses, and simulation turns them into a number that can be
#   compared with a baseline. The offline explainer only names tokens, so it favours
#   units that respond to tokens; an LLM explainer (`ChatExplainer`) can name contexts.
# * On zoo-2l, by this explainer and score, **SAE latents are more interpretable than
#   neurons**: the printout above gives the two mean simulation scores and the gap
#   against twice its standard error (asserted). The survey reports the same direction
#   for larger language models; this is how to check such a claim on a model of your
#   own (with `MODEL` changed, the printout gives that model's answer).

# %% [markdown]
# ## Further reading
# * [Bills et al. (2023), *Language models can explain neurons in language models*](https://openaipublic.blob.core.windows.net/neuron-explainer/paper/index.html): simulation scoring.
# * [Bricken et al. (2023), *Towards Monosemanticity*](https://transformer-circuits.pub/2023/monosemantic-features/index.html): feature dashboards.
# * [Paulo et al. (2024), *Automatically Interpreting Millions of Features in Large Language Models*](https://arxiv.org/abs/2410.13928): detection and other scores.
