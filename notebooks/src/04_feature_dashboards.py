# %% [markdown]
# # 04 · Interpreting features: dashboards and automatic explanations
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mi-roadmap/mi-roadmap/blob/main/notebooks/04_feature_dashboards.ipynb)
#
# Notebook 03 trained sparse autoencoders; their latents are candidate *features*. To
# interpret one we look at a **dashboard**: the contexts where it fires most (and, to
# avoid flattering it, contexts from lower activation bands), how often it fires, which
# tokens its output direction promotes, and what happens when we add that direction to
# the residual stream. Then we let an **explainer** name the unit from its contexts and
# score the explanation by **simulation**
# ([Bills et al., 2023](https://openaipublic.blob.core.windows.net/neuron-explainer/paper/index.html)):
# predict the unit's
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
#    simulation score over the same number of units of each kind, at the same site (an
#    SAE on the MLP's neurons), with the same comparison on a randomly initialised model
#    as the control.


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
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from IPython.display import display

from mi_helpers import load_model
from mi_helpers.core import collect_activations, hook_name
from mi_helpers.datasets import corpus_sentences, token_chunks
from mi_helpers.features.autointerp import TokenExplainer
from mi_helpers.features.dashboards import (DashboardWidget, NeuronReader, SAELatentReader,
                                            StaticHTML, build_dashboard, collect_statistics,
                                            export_html, interpretability, render_html)
from mi_helpers.features.sae import SAES_DIR, ActivationBuffer, build_sae, load_sae, train_sae
from mi_helpers.universality import random_like

torch.manual_seed(0)
model = load_model(MODEL)
HOOK = hook_name("resid_post", model.cfg.n_layers // 2 - 1)
committed = SAES_DIR / MODEL / "topk-k16"
sae_tokens = token_chunks(model, corpus_sentences(3000, seed=0), 64)  # text to train SAEs on
if committed.is_dir():
    sae = load_sae(committed, device=model.cfg.device)
    print(f"loaded the SAE saved for notebook 03: {committed.relative_to(SAES_DIR.parent.parent)}")
else:  # a hub model: train a small one here, briefly (notebook 03 shows how to do it well)
    sae = build_sae(d_in=model.cfg.d_model, d_sae=4 * model.cfg.d_model, architecture="topk",
                    k=16, hook_name=HOOK, device=model.cfg.device)
    acts = collect_activations(model, sae_tokens, [HOOK], drop_bos=True)[HOOK]
    train_sae(sae, ActivationBuffer.from_tensor(acts, acts_per_batch=512), steps=200, lr=3e-3,
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
# NBVAL_IGNORE_OUTPUT
# (a live widget's state is not part of the committed results)
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
# For 24 units of a kind (firing on at least 0.2% of tokens, drawn with a fixed seed), the
# offline explainer names each unit from half of its top contexts; each explanation is then
# scored on contexts it has not seen: the other half of the top contexts, contexts from
# the lower activation bands, and contexts around random positions (where the unit is
# mostly silent). The baseline: each explanation scored on the *next* unit's contexts.
#
# Two comparisons keep the answer honest:
# * **the same site**: an SAE on the residual stream is not comparable with the MLP's
#   neurons, so we also train an SAE on those same neurons' activations (`mlp.hook_post`);
# * **a randomly initialised model** of the same shape, with its own MLP SAE: SAEs on
#   random transformers also find token-like latents
#   ([Heap et al., 2025](https://arxiv.org/abs/2501.17727)), so whatever also holds there
#   is not about what training taught the model.
#
# On a hub model each unit's contexts cost a pass through half of a wide model, so 12
# units of each kind are scored instead of 24.

# %%
# NBVAL_IGNORE_OUTPUT
# (SAEs trained on the MLPs: the last digits differ between CPUs; the claims are asserted below)
mlp_hook = neurons.hook


def mlp_sae(m):
    """A TopK SAE (2 latents per neuron) on one model's MLP neurons, trained briefly; on a
    hub model's wide MLP (3,072 neurons on gpt2) one latent per neuron and a shorter run."""
    acts = collect_activations(m, sae_tokens, [mlp_hook], drop_bos=True)[mlp_hook]
    small = m.cfg.d_mlp <= 1024
    autoencoder = build_sae(d_in=m.cfg.d_mlp, d_sae=(2 if small else 1) * m.cfg.d_mlp,
                            architecture="topk", k=16, hook_name=mlp_hook, device=m.cfg.device)
    train_sae(autoencoder, ActivationBuffer.from_tensor(acts, acts_per_batch=1024 if small else 256),
              steps=300 if small else 100, lr=3e-3, progress=False)
    return autoencoder


def statistics(m, reader):
    """The statistics collected in section 1, or new ones for another model or reader."""
    known = {id(neurons): "neuron", id(latents): "latent"}
    if m is model and id(reader) in known:
        return stats[known[id(reader)]]
    return collect_statistics(m, reader, tokens, progress=False)


random_model = random_like(model, seed=0)
families = {("trained", "neurons"): (model, neurons),
            ("trained", "SAE latents, same site"): (model, SAELatentReader(mlp_sae(model))),
            ("trained", "SAE latents, residual"): (model, latents),
            ("random", "neurons"): (random_model, NeuronReader(random_model, neurons.layer)),
            ("random", "SAE latents, same site"): (random_model,
                                                   SAELatentReader(mlp_sae(random_model)))}
explainer = TokenExplainer()
n_units = 24 if model.cfg.d_mlp <= 1024 else 12
scored = {}
for key, (m, reader) in families.items():
    scored[key] = interpretability(m, reader, statistics(m, reader), tokens, explainer,
                                   n_units=n_units, seed=0)
print(f"{'model':>8} {'units':>24} {'simulation':>16} {'shuffled':>9} {'detection':>10}")
for (which, kind), result in scored.items():
    print(f"{which:>8} {kind:>24} {result.mean:9.2f} ± {result.sem:.2f} "
          f"{result.shuffled.mean():9.2f} {result.detection.nanmean():10.2f}")
example = scored["trained", "SAE latents, same site"]
print("e.g.", repr(example.explanations[0][:80]), "->", f"{example.simulation[0]:.2f}")

# %% [markdown]
# (± is one standard error of the mean. Detection is the balanced accuracy of telling
# firing from quiet contexts; a unit that fires in *every* random context has no quiet
# context to reject, so its detection is undefined (NaN) and it is left out of the mean.)

# %%
fig, ax = plt.subplots(figsize=(8, 3))
ax.boxplot([r.simulation.numpy() for r in scored.values()],
           tick_labels=[f"{w}\n{k}" for w, k in scored])
ax.set_ylabel("simulation score (correlation)")
ax.tick_params(axis="x", labelsize=8)
plt.tight_layout()
plt.show()

# %%
# NBVAL_IGNORE_OUTPUT
# (differences of trained SAEs' scores: CPU-dependent last digits; asserted in this cell)
def gap(which):
    """SAE latents minus neurons at the same site, and twice its standard error."""
    latent, neuron = scored[which, "SAE latents, same site"], scored[which, "neurons"]
    return latent.mean - neuron.mean, 2 * (latent.sem ** 2 + neuron.sem ** 2) ** 0.5


for key, result in scored.items():
    assert result.mean > result.shuffled.mean() + 0.1, f"{key}: beat the shuffled baseline"
for which in ("trained", "random"):
    difference, margin = gap(which)
    print(f"{which} model: SAE latents - neurons = {difference:+.2f} (twice its s.e. {margin:.2f})")
if MODEL == "zoo-2l":
    assert gap("trained")[0] > gap("trained")[1], "latents beat neurons at the same site"
    assert gap("random")[0] > gap("random")[1], "...and on a random model too"

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
# * By this explainer and score, SAE latents beat neurons at the same site, **and they do
#   on a randomly initialised model too** (printed above): an SAE finds token-like latents
#   in any transformer, so "latents are more interpretable than neurons" is, here, mostly a
#   statement about SAEs and token detectors, not about what training taught the model.
#   What differs between the trained and the random model is printed in the table (here,
#   the neurons); claims about learned features need a control like this one.
# %% [markdown]
# ## Further reading
# * [Bills et al. (2023), *Language models can explain neurons in language models*](https://openaipublic.blob.core.windows.net/neuron-explainer/paper/index.html): simulation scoring.
# * [Bricken et al. (2023), *Towards Monosemanticity*](https://transformer-circuits.pub/2023/monosemantic-features/index.html): feature dashboards.
# * [Paulo et al. (2024), *Automatically Interpreting Millions of Features in Large Language Models*](https://arxiv.org/abs/2410.13928): detection and other scores.
