# %% [markdown]
# # 00 · Transformer primer: the residual stream, heads, MLPs and hooks
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mi-roadmap/mi-roadmap/blob/main/notebooks/00_primer.ipynb)
#
# A GPT-style transformer keeps one vector per token position, the **residual stream**,
# and every layer only *adds* to it:
#
# $$h_0 = \text{token embedding} \;(+\ \text{position embedding}), \qquad h_l = h_{l-1} + a_l + f_l$$
#
# where $a_l$ is the output of layer $l$'s attention (the sum of its heads) and $f_l$ the
# output of its MLP. GPT-2 adds a learned position embedding to $h_0$; the zoo's models
# and Pythia use *rotary* positions, which act inside attention, so their $h_0$ is the
# token embedding alone. The logits are the final layer norm of $h_L$ times the unembedding
# matrix $W_U$. In this notebook we check both facts numerically, learn to read any
# intermediate activation with **hooks**, and look at attention patterns.
#
# **What we expect to see** (asserted below):
# 1. the final residual stream equals the sum of the embeddings and every attention and
#    MLP output, to floating-point precision (true of any model: asserted for every model);
# 2. unembedding that final residual reproduces the model's logits (also exact);
# 3. on repeated random tokens, some head is an **induction head** (score > 0.8), as
#    [Olsson et al. (2022)](https://arxiv.org/abs/2209.11895) found in trained models; a
#    randomly initialised model of the same shape has none (the control).


# %% [markdown]
# **Learning objectives.** After this notebook you can
# * load a model with `load_model`, run it with a cache and find any activation by its hook name;
# * show numerically that the residual stream is a sum of embeddings, attention and MLP
#   outputs, and that the final layer norm and $W_U$ turn it into the logits;
# * compute a next-token loss, a layer norm and an attention pattern by hand (exercises);
# * read attention patterns and recognise an induction head.
#
# **Prerequisites:** Python and PyTorch tensors (indexing, `einsum`, broadcasting); what a
# transformer language model is. **Time:** about 45 min to read and run, plus 35 min of
# exercises.

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
from mi_helpers.circuits import head_scores
from mi_helpers.core import hook_name, residual_components, run_cached, top_heads, unembed
from mi_helpers.datasets import repeated_random_tokens
from mi_helpers.universality import random_like
from mi_helpers.viz import attention_heads, heatmap, plot_attention

torch.manual_seed(0)
model = load_model(MODEL)
cfg = model.cfg
print(f"{MODEL}: {cfg.n_layers} layers, {cfg.n_heads} heads per layer, d_model={cfg.d_model}, "
      f"d_mlp={cfg.d_mlp}, vocabulary of {cfg.d_vocab} tokens, context {cfg.n_ctx}")

# %% [markdown]
# ## 1. Run the model and cache every activation
# `run_with_cache` returns the logits and an `ActivationCache`: a dictionary from hook
# names to activations. Every hook name follows one scheme, e.g.
# `blocks.0.attn.hook_pattern` is layer 0's attention pattern.

# %%
prompt = "le petit chat voit Mary dans la"  # French: after "la" comes a feminine noun
tokens = model.to_tokens(prompt)
str_tokens = model.to_str_tokens(prompt)
logits, cache = model.run_with_cache(tokens)
print(f"{len(str_tokens)} tokens:", str_tokens)
print(f"{len(cache)} cached activations, for example:")
for name in list(cache.keys())[:8]:
    print(f"  {name:32s} {tuple(cache[name].shape)}")

# %%
probs = logits[0, -1].softmax(-1)
top = probs.topk(5)
print("Most likely next tokens:")
for p, i in zip(top.values, top.indices):
    print(f"  {model.to_string(i.unsqueeze(0))!r:12s} {p.item():.3f}")
top3 = [model.to_string(i.unsqueeze(0)).strip() for i in top.indices[:3]]

# %% [markdown]
# The zoo models learned French from a small generated grammar, so after *la* they should
# expect one of its feminine nouns. (The zoo's 2-layer models cannot do the "indirect
# object" task of notebooks 05 and 06; `zoo-4l` can.)

# %%
if MODEL.startswith("zoo"):
    from mi_helpers.datasets.text import FR_NOUN_F

    print("top 3:", top3, "| feminine nouns of the zoo's grammar:", FR_NOUN_F)
    assert all(word in FR_NOUN_F for word in top3), "expected feminine nouns after 'la'"
else:
    print(f"no expectation for {MODEL}; its top 3 after 'la': {top3}")

# %% [markdown]
# ### Exercise 00.1: the next-token loss by hand
# **Difficulty** 1/5 · **Importance** 4/5 · **Time** about 10 min
#
# The logits at position $i$ are the model's guess for token $i+1$. Write
# `next_token_loss(logits, tokens)`: for every prompt and every position but the last,
# minus the log-probability the model gave to the token that actually came next.
# `logits` is `[batch, pos, d_vocab]`, `tokens` is `[batch, pos]`; return `[batch, pos - 1]`.
#
# <details><summary>Hint 1</summary>
#
# `logits[:, :-1]` predicts `tokens[:, 1:]`.
# </details>
#
# <details><summary>Hint 2</summary>
#
# Use `log_softmax(-1)` (not `softmax(-1).log()`: large logits overflow), then
# `gather(-1, tokens[:, 1:, None])` picks one log-probability per position.
# </details>

# %%
import torch
from torch import Tensor


def next_token_loss(logits: Tensor, tokens: Tensor) -> Tensor:
    """Cross-entropy of predicting tokens[:, 1:] from logits[:, :-1]: [batch, pos - 1]."""
    # BEGIN SOLUTION
    log_probs = logits[:, :-1].log_softmax(-1)
    return -log_probs.gather(-1, tokens[:, 1:, None]).squeeze(-1)
    # END SOLUTION
    # STUB raise NotImplementedError("minus the log-probability of each next token")

# %%
from mi_helpers.exercises import check_next_token_loss

check_next_token_loss(next_token_loss)

# %% [markdown]
# ## 2. The residual stream is a sum
# `residual_components` stacks everything ever added to the stream: the token and
# position embeddings, then each layer's attention output and MLP output. Their sum
# should be the residual stream after the last block.

# %%
components, labels = residual_components(cache, cfg.n_layers)
final_resid = cache[hook_name("resid_post", cfg.n_layers - 1)]
sum_error = (components.sum(dim=0) - final_resid).abs().max().item()
scale = final_resid.abs().max().item()
print("components:", labels)
print(f"largest entry of the final residual: {scale:.2f}")
print(f"sum of components == final residual, to 1e-5 of that: {sum_error < 1e-5 * scale}")

# %%
assert sum_error < 1e-5 * scale, "the residual stream is not the sum of its components"

# %% [markdown]
# How much does each component contribute at each position? The norm of each term tells
# which parts of the model write the most into the stream. Position 0 (the BOS token) is
# left out: in most models its stream is far larger than any other and would wash out the
# colour scale (its norms are printed instead).

# %%
norms = components[:, 0].norm(dim=-1)  # component pos
heatmap(norms[:, 1:], "norm of each residual-stream component (BOS left out)",
        xticklabels=str_tokens[1:], yticklabels=labels, kind="matters", colorbar_label="norm")
plt.show()
print("at BOS:", {label: round(v, 1) for label, v in zip(labels, norms[:, 0].tolist())})

# %% [markdown]
# ## 3. Unembedding the final residual gives the logits
# The model's last step is the final layer norm and the unembedding $W_U$ (plus a bias).
# Applying them to the final residual should reproduce the logits.

# %%
logits_from_resid = unembed(model, final_resid)
unembed_error = (logits_from_resid - logits).abs().max().item()
matches = unembed_error < 1e-4 * logits.abs().max().item()
print(f"unembed(final residual) == logits, to 1e-4 of their scale: {matches}")
assert matches

# %% [markdown]
# ### Exercise 00.2: layer norm
# **Difficulty** 2/5 · **Importance** 3/5 · **Time** about 10 min
#
# The final layer norm is the only non-linear step between the residual stream and the
# logits. Write `layer_norm(x, w, b, eps)` for `x` of shape `[batch, pos, d_model]`:
# centre each vector over `d_model`, divide it by $\sqrt{\text{mean of squares} +
# \epsilon}$, then multiply by `w` and add `b` (both `[d_model]`).
#
# <details><summary>Hint 1</summary>
#
# Everything is over the last axis with `keepdim=True`, so the shapes broadcast back.
# </details>
#
# <details><summary>Hint 2</summary>
#
# The variance is the *biased* one (divide by `d_model`, not `d_model - 1`), and
# $\epsilon$ goes inside the square root.
# </details>

# %%
import torch
from torch import Tensor


def layer_norm(x: Tensor, w: Tensor, b: Tensor, eps: float = 1e-5) -> Tensor:
    """LayerNorm over the last axis: centre, scale to unit RMS, then * w + b."""
    # BEGIN SOLUTION
    centred = x - x.mean(-1, keepdim=True)
    scale = (centred.pow(2).mean(-1, keepdim=True) + eps).sqrt()
    return centred / scale * w + b
    # END SOLUTION
    # STUB raise NotImplementedError("centre, divide by the RMS, then w and b")

# %%
from mi_helpers.exercises import check_layer_norm

check_layer_norm(layer_norm)

# %% [markdown]
# ## 4. Hooks: cache only what you need
# Caching everything is convenient but costs memory on big models. `run_cached`
# caches only the hooks you name, and a misspelt name fails with suggestions. `hook_name`
# writes a hook's name from its *site* and layer, e.g. `hook_name("pattern", 0)`.

# %%
pattern_hooks = [hook_name("pattern", layer) for layer in range(cfg.n_layers)]
_, small_cache = run_cached(model, tokens, pattern_hooks)
print(list(small_cache.keys()))
try:
    run_cached(model, tokens, ["blocks.0.attn.hook_patern"])
except KeyError as err:
    print("KeyError:", str(err)[:110], "...")

# %% [markdown]
# ## 5. Attention patterns and an induction head
# An *induction head* completes repeated text: on `... A B ... A`, it attends from the
# second `A` to the `B` that followed the first one, and predicts `B`. We feed the model
# a block of random tokens repeated twice, and look at where each head attends.

# %%
rep_len = min(20, (cfg.n_ctx - 1) // 2)
rep_tokens = repeated_random_tokens(model, rep_len=10, n_seqs=1, seed=0)  # short, to read
rep_str = model.to_str_tokens(rep_tokens[0])
_, rep_cache = run_cached(model, rep_tokens, pattern_hooks)
last = cfg.n_layers - 1
fig = plot_attention(rep_cache[pattern_hooks[last]][0], rep_str,
                     head_names=[f"L{last}H{h}" for h in range(cfg.n_heads)])
plt.show()

# %% [markdown]
# The same patterns, interactive (hover over a head, then over a token):

# %%
attention_heads(rep_cache[pattern_hooks[last]][0], rep_str,
                head_names=[f"L{last}H{h}" for h in range(cfg.n_heads)])

# %% [markdown]
# The *induction score* of a head is its mean attention from each token of the second
# copy to the token after its first occurrence; the *previous-token score* is its mean
# attention to the position just before. We average over 64 random sequences.

# %%
scores = head_scores(model, rep_len=rep_len, n_seqs=64, seed=1)
fig, axes = plt.subplots(1, 2, figsize=(10, 2.5))
for ax, kind in zip(axes, ("previous_token", "induction")):
    heatmap(scores[kind], f"{kind.replace('_', '-')} score", xlabel="head", ylabel="layer",
            kind="score", ax=ax)
plt.tight_layout()
plt.show()
(best,) = top_heads(scores["induction"], 1)
best_score = scores["induction"][best].item()
print(f"best induction head: {best.label}, score {best_score:.2f}")

# %%
if MODEL.startswith("zoo") or MODEL == "gpt2":  # model cards; Olsson et al. (2022) for gpt2
    assert best_score > 0.8, "expected an induction head with score > 0.8"
else:
    print(f"no expectation for {MODEL}: best induction score {best_score:.2f}")

# %% [markdown]
# The control: the same scores on a randomly initialised model of the same architecture.
# Attention there is spread out (it has learned nothing), so a high score above could not
# come from the scoring method itself.

# %%
random_scores = head_scores(random_like(model, seed=0), rep_len=rep_len, n_seqs=64, seed=1)
random_best = random_scores["induction"].max().item()
print(f"random model: best induction score {random_best:.2f}, best previous-token score "
      f"{random_scores['previous_token'].max().item():.2f}")
assert random_best < 0.3, "a random model should have no induction head"

# %% [markdown]
# ### Exercise 00.3: an attention pattern from queries and keys
# **Difficulty** 2/5 · **Importance** 5/5 · **Time** about 15 min
#
# Write `attention_pattern(q, k)`: `q` and `k` are `[batch, pos, head, d_head]`; return
# `[batch, head, dest_pos, src_pos]`, each row a probability distribution over the
# positions a token may attend to. (Rotary models such as the zoo's also rotate `q`
# and `k` by their positions before this step, inside the attention layer.)
#
# <details><summary>Hint 1</summary>
#
# Scores: `torch.einsum("bqhd,bkhd->bhqk", q, k) / d_head ** 0.5`.
# </details>
#
# <details><summary>Hint 2</summary>
#
# A token may not look ahead: set scores with `src_pos > dest_pos` to `-inf` (a mask
# from `torch.ones(n, n).triu(1)`), then softmax over the last axis.
# </details>

# %%
import torch
from torch import Tensor


def attention_pattern(q: Tensor, k: Tensor) -> Tensor:
    """Causal softmax(q k^T / sqrt(d_head)): [batch, head, dest_pos, src_pos]."""
    # BEGIN SOLUTION
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / q.shape[-1] ** 0.5
    n_pos = q.shape[1]
    future = torch.ones(n_pos, n_pos, dtype=torch.bool, device=q.device).triu(1)
    return scores.masked_fill(future, float("-inf")).softmax(dim=-1)
    # END SOLUTION
    # STUB raise NotImplementedError("scaled scores, causal mask, softmax over src_pos")

# %%
from mi_helpers.exercises import check_attention_pattern

check_attention_pattern(attention_pattern)

# %% [markdown]
# ## Summary
# * The residual stream is a running sum: embeddings plus every attention and MLP output.
# * The logits are just the unembedded final residual, so any term of the sum can be
#   projected to the vocabulary on its own: the idea behind the **logit lens** (notebook 01).
# * Hooks let us read (and, later, *change*) any intermediate activation.
# * Attention patterns reveal heads with recognisable jobs, such as induction heads, which
#   notebook 07 dissects.

# %% [markdown]
# ## Further reading
# * [Vaswani et al. (2017), *Attention Is All You Need*](https://arxiv.org/abs/1706.03762): the architecture.
# * [Elhage et al. (2021), *A Mathematical Framework for Transformer Circuits*](https://transformer-circuits.pub/2021/framework/index.html):
#   the residual stream as a sum, heads as independent readers and writers.
# * [Rai et al. (2024), *A Practical Review of Mechanistic Interpretability for Transformer-Based Language Models*](https://arxiv.org/abs/2407.02646):
#   the survey this course follows (section 2, the transformer primer).
# * [Olsson et al. (2022), *In-context Learning and Induction Heads*](https://arxiv.org/abs/2209.11895): the heads of section 5.
