# %% [markdown]
# # 01 · Observing features: the logit lens and the tuned lens
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mi-roadmap/mi-roadmap/blob/main/notebooks/01_logit_lens.ipynb)
#
# The residual stream is a running sum that the unembedding reads at the very end
# (notebook 00). The **logit lens** reads it *early*: apply the final layer norm and
# the unembedding to the residual after layer $l$ and ask what the model would predict
# if it stopped there. The same trick applied to a single head's or MLP's output shows
# which components push which tokens (the survey's "residual stream, head and FF"
# projections). Early layers may use a basis the unembedding does not read, so the
# **tuned lens** learns one small affine *translator* per layer, trained to make the
# lens distribution match the final one.
#
# **What we expect to see** (asserted below):
# 1. at the last layer the logit lens *is* the model's output;
# 2. on IOI prompts the correct name becomes the top prediction only in late layers; the
#    direct contributions of every head, MLP, embedding and bias add up exactly to the
#    model's logit difference, and in `zoo-4l` one MLP writes a large share of it;
# 3. the tuned lens is closer to the final distribution (lower KL) than the raw logit
#    lens at every layer but the last, on text it was not trained on.


# %% [markdown]
# **Learning objectives.** After this notebook you can
# * decode any layer's residual stream with the logit lens, and say what it can and cannot show;
# * track when the answer to a task appears, by rank and probability per layer;
# * attribute a logit difference to single heads and MLPs (direct logit attribution), by
#   hand in an exercise;
# * train a tuned lens and compare it with the logit lens by KL to the final distribution.
#
# **Prerequisites:** notebook 00 (the residual stream, the final layer norm, hooks).
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
from mi_helpers.core.metrics import logit_difference
from mi_helpers.datasets import (corpus_sentences, ioi_split, is_single_token, single_token_ids,
                                 token_chunks, tokenize_prompts)
from mi_helpers.features import lens_kl, lens_logits, top_tokens, train_tuned_lens
from mi_helpers.features.attribution import logit_difference_attribution
from mi_helpers.viz import CMAPS, heatmap

torch.manual_seed(0)
model = load_model(MODEL)
n_layers = model.cfg.n_layers
print(f"{MODEL}: {n_layers} layers, {model.cfg.n_heads} heads per layer")

# %% [markdown]
# ## 1. What does each layer "think" comes next?
# We decode the residual stream after every layer at every position of one prompt and
# show the top token, shaded by its probability.

# %%
prompt = "When Mary and John went to the store , John gave a drink to"
tokens = model.to_tokens(prompt)
str_tokens = model.to_str_tokens(prompt)
layer_logits = lens_logits(model, tokens)  # layer batch pos d_vocab
assert torch.allclose(layer_logits[-1], model(tokens), atol=1e-4), "last layer != model output"

top1 = top_tokens(model, layer_logits[:, 0], n=1)
top1_prob = layer_logits[:, 0].softmax(-1).max(-1).values  # layer pos
fig, ax = plt.subplots(figsize=(12, 0.6 * n_layers + 1.2))
ax.imshow(top1_prob.detach().cpu(), cmap=CMAPS["score"], vmin=0, vmax=1, aspect="auto")
for layer in range(n_layers):
    for pos in range(len(str_tokens)):
        ax.text(pos, layer, top1[layer][pos][0].strip(), ha="center", va="center", fontsize=7)
ax.set_xticks(range(len(str_tokens)), str_tokens, rotation=60, fontsize=8)
ax.set_yticks(range(n_layers), [f"after L{layer}" for layer in range(n_layers)])
ax.set_title("Logit lens: top next-token guess per layer (shade = probability)")
plt.show()
print("final-layer guess after the last token:", repr(top1[-1][-1][0]))

# %% [markdown]
# ### Exercise 01.1: the logit lens on one layer
# **Difficulty** 2/5 · **Importance** 5/5 · **Time** about 10 min
#
# Write `logit_lens(resid, w_ln, b_ln, W_U, b_U, eps)`: read a residual stream
# `[batch, pos, d_model]` as the model's last step would, returning `[batch, pos,
# d_vocab]` logits. `w_ln`, `b_ln` are the final layer norm's weight and bias
# (`[d_model]`), `W_U` is `[d_model, d_vocab]` and `b_U` is `[d_vocab]`.
#
# <details><summary>Hint 1</summary>
#
# The last step is the final layer norm (centre, divide by $\sqrt{\text{mean of squares}
# + \epsilon}$, times `w_ln`, plus `b_ln`), then the unembedding.
# </details>
#
# <details><summary>Hint 2</summary>
#
# `normalised @ W_U + b_U`: `W_U` maps `d_model` to `d_vocab`, so it is on the right.
# </details>

# %%
import torch
from torch import Tensor


def logit_lens(resid: Tensor, w_ln: Tensor, b_ln: Tensor, W_U: Tensor, b_U: Tensor,
               eps: float = 1e-5) -> Tensor:
    """The final layer norm and the unembedding applied to any residual stream."""
    # BEGIN SOLUTION
    centred = resid - resid.mean(-1, keepdim=True)
    normalised = centred / (centred.pow(2).mean(-1, keepdim=True) + eps).sqrt()
    return (normalised * w_ln + b_ln) @ W_U + b_U
    # END SOLUTION
    # STUB raise NotImplementedError("layer norm, then the unembedding")

# %%
from mi_helpers.exercises import check_logit_lens

check_logit_lens(logit_lens)

# %% [markdown]
# ## 2. When does the right name appear?
# Over held-out IOI prompts (templates and name pairs the zoo never trained on) we
# track the rank (0 = top) of the indirect object at the last position, layer by layer.
# Only the last position is read: the whole vocabulary at every position and layer would be
# `layers x prompts x positions x d_vocab` numbers (4 GB for gpt2).

# %%
sentences = [s for s in ioi_split(100, seed=1, heldout=True)
             if is_single_token(model, s.io) and is_single_token(model, s.s)]
ioi_tokens, ends = tokenize_prompts(model, [s.prompt for s in sentences])
io_ids = single_token_ids(model, [s.io for s in sentences])
s_ids = single_token_ids(model, [s.s for s in sentences])
last_logits = lens_logits(model, ioi_tokens, positions=ends)  # layer batch d_vocab
rows = torch.arange(len(sentences))
io_rank = (last_logits > last_logits[:, rows, io_ids][..., None]).sum(-1)  # layer batch
io_top1 = (io_rank == 0).float().mean(-1)
for layer in range(n_layers):
    print(f"after L{layer}: IO is the top guess in {io_top1[layer]:.0%} of prompts, "
          f"median rank {io_rank[layer].median().item()}")

# %%
fig, ax = plt.subplots(figsize=(6, 3))
ax.boxplot([io_rank[layer].cpu().numpy() + 1 for layer in range(n_layers)])
ax.set_yscale("log")
ax.set_xticks(range(1, n_layers + 1), [f"L{layer}" for layer in range(n_layers)])
ax.set_xlabel("residual stream after layer")
ax.set_ylabel("rank of IO + 1 (log)")
ax.set_title(f"Logit lens on {len(sentences)} held-out IOI prompts")
plt.show()

# %% [markdown]
# What to expect depends on the model: the zoo's `zoo-4l` was trained on IOI sentences and
# names IO in every held-out prompt by the last layer (its model card); gpt2 does IOI too
# ([Wang et al., 2022](https://arxiv.org/abs/2211.00593)), though on these templates its
# top guess need not be the name. In both, layer 0 cannot know the answer yet.

# %%
if MODEL == "zoo-4l":
    assert io_top1[-1] >= 0.9, "zoo-4l names the indirect object at the last layer"
if MODEL in ("zoo-4l", "gpt2"):
    assert io_top1[0] < 0.5, "layer 0 should not yet know the answer"
    assert io_top1[-1] > io_top1[0], "the answer should appear in later layers"
else:
    print(f"no expectation for {MODEL}: IO top-1 {io_top1[0]:.0%} after L0, "
          f"{io_top1[-1]:.0%} after the last layer")

# %% [markdown]
# ### Exercise 01.2: the rank of the answer
# **Difficulty** 1/5 · **Importance** 3/5 · **Time** about 5 min
#
# Write `answer_rank(logits, answers)`: `logits` is `[batch, d_vocab]` (one position per
# prompt), `answers` is `[batch]` token ids; return each answer's rank, the number of
# tokens with a strictly larger logit (0 = the top guess), as `[batch]`.
#
# <details><summary>Hint 1</summary>
#
# `logits.gather(-1, answers[:, None])` is each prompt's answer logit, `[batch, 1]`;
# compare every logit with it and count.
# </details>

# %%
import torch
from torch import Tensor


def answer_rank(logits: Tensor, answers: Tensor) -> Tensor:
    """How many tokens have a strictly larger logit than each prompt's answer: [batch]."""
    # BEGIN SOLUTION
    own = logits.gather(-1, answers[:, None])
    return (logits > own).sum(-1)
    # END SOLUTION
    # STUB raise NotImplementedError("count the tokens above the answer")

# %%
from mi_helpers.exercises import check_answer_rank

check_answer_rank(answer_rank)

# %% [markdown]
# ## 3. Which heads and MLPs write the answer?
# Freeze the final layer norm's scale at its value on the whole residual stream: then the
# logit difference $\text{logit}(IO) - \text{logit}(S)$ is an exact **sum** of terms, one
# for everything written into the stream: the embeddings, each head's output $z_h W_O^h$,
# each attention layer's bias $b_O$, each MLP's output and the unembedding bias $b_U$
# (*direct logit attribution*). Nothing is left over, so the terms must add up to the
# model's logit difference.

# %%
terms, term_labels = logit_difference_attribution(model, ioi_tokens, io_ids, s_ids, ends)
mean_terms = dict(zip(term_labels, terms.mean(-1).tolist()))  # label -> mean over prompts
head_dla = torch.tensor([[mean_terms[f"L{l}H{h}"] for h in range(model.cfg.n_heads)]
                         for l in range(n_layers)])  # layer head
mlp_dla = torch.tensor([mean_terms[f"MLP{l}"] for l in range(n_layers)])
rest = {"embeddings": sum(v for k, v in mean_terms.items() if "embed" in k),
        "attention biases b_O": sum(v for k, v in mean_terms.items() if k.endswith("b_O")),
        "unembedding bias b_U": mean_terms["b_U"]}
with torch.no_grad():
    full_diff = logit_difference(model(ioi_tokens)[rows, ends], io_ids, s_ids).mean().item()

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3), gridspec_kw={"width_ratios": [3, 1]})
heatmap(head_dla, "direct effect of each head on logit(IO) - logit(S)", xlabel="head",
        ylabel="layer", ax=ax1)
ax2.barh([f"MLP{layer}" for layer in range(n_layers)], mlp_dla)
ax2.invert_yaxis()
ax2.set_xlabel("direct effect")
ax2.set_title("MLPs")
plt.tight_layout()
plt.show()
components = {**{f"L{l}H{h}": head_dla[l, h].item() for l in range(n_layers)
                 for h in range(model.cfg.n_heads)},
              **{f"MLP{l}": mlp_dla[l].item() for l in range(n_layers)}}
top_name = max(components, key=components.get)
print(f"mean logit difference of the model: {full_diff:.2f}")
print(f"sum of every term:                  {terms.sum(0).mean().item():.2f}")
print(f"  heads {head_dla.sum().item():.2f}, MLPs {mlp_dla.sum().item():.2f}, "
      + ", ".join(f"{k} {v:.2f}" for k, v in rest.items()))
print(f"largest writer: {top_name}, {components[top_name]:.2f} "
      f"({components[top_name] / full_diff:.0%} of the logit difference)")

# %%
assert abs(terms.sum(0).mean().item() - full_diff) < 1e-3 * max(1.0, abs(full_diff)), \
    "the terms of direct logit attribution must add up to the logit difference"
if MODEL == "zoo-4l":
    assert top_name.startswith("MLP") and components[top_name] > 0.3 * full_diff, \
        "in zoo-4l an MLP writes most of the answer"

# %% [markdown]
# Which kind of component writes the answer is a property of the model, not of the
# method: in gpt2-small the IOI paper found *heads* (name movers 9.9, 9.6, 10.0) doing
# it. Direct attribution is exact for the **direct** path only: a component whose output
# is read by later heads or MLPs can matter a great deal and still have a small direct
# term (notebook 06 finds such heads). Patching (notebook 05) measures total effects.

# %% [markdown]
# ### Exercise 01.3: direct logit attribution of heads
# **Difficulty** 3/5 · **Importance** 5/5 · **Time** about 20 min
#
# Write `head_logit_attribution(z, W_O, scale, W_U, correct, wrong)`, the per-head
# numbers of the heatmap above, at one position per prompt:
# * `z` `[batch, head, d_head]`: each head's output before $W_O$ (`hook_z` at that position);
# * `W_O` `[head, d_head, d_model]`: one layer's output matrices;
# * `scale` `[batch, 1]`: the final layer norm's scale there (`ln_final.hook_scale`);
# * `W_U` `[d_model, d_vocab]`, `correct` and `wrong` `[batch]` token ids.
#
# Return `[batch, head]`: how much each head's output, passed through the frozen final
# layer norm, raises logit(correct) - logit(wrong). (The layer norm's weight is folded
# into `W_U` here.)
#
# <details><summary>Hint 1</summary>
#
# A head writes `z_h @ W_O[h]` into the residual stream:
# `torch.einsum("bhd,hdm->bhm", z, W_O)`.
# </details>
#
# <details><summary>Hint 2</summary>
#
# Frozen, the layer norm is linear: subtract the mean over `d_model`, divide by `scale`.
# Then dot with the direction `W_U[:, correct] - W_U[:, wrong]` (`[d_model, batch]`, one
# column per prompt).
# </details>

# %%
import torch
from torch import Tensor


def head_logit_attribution(z: Tensor, W_O: Tensor, scale: Tensor, W_U: Tensor,
                           correct: Tensor, wrong: Tensor) -> Tensor:
    """Each head's direct effect on logit(correct) - logit(wrong): [batch, head]."""
    # BEGIN SOLUTION
    written = torch.einsum("bhd,hdm->bhm", z, W_O)
    written = (written - written.mean(-1, keepdim=True)) / scale[:, :, None]
    direction = W_U[:, correct] - W_U[:, wrong]  # d_model batch
    return torch.einsum("bhm,mb->bh", written, direction)
    # END SOLUTION
    # STUB raise NotImplementedError("write, freeze the layer norm, project on the direction")

# %%
from mi_helpers.exercises import check_head_logit_attribution

check_head_logit_attribution(head_logit_attribution)

# %% [markdown]
# ## 4. The tuned lens
# [Belrose et al. (2023)](https://arxiv.org/abs/2303.08112) train one affine translator per
# layer so that each layer's lens matches the final distribution. We train it on text from
# the zoo corpus (English, French, IOI and arithmetic sentences), then compare
# $\mathrm{KL}(\text{final} \,\|\, \text{lens})$ per layer on *held-out* text for the raw and
# the tuned lens. Each position's KL costs work in proportion to the vocabulary, so on a hub
# model (50,257 tokens) fewer positions are drawn per step, from fewer training sequences,
# and the KL is measured on fewer held-out sequences; the README's hub-shape table gives
# the time this takes on a CPU.

# %%
seq_len = min(64, model.cfg.n_ctx)
small_vocab = model.cfg.d_vocab < 10_000
train_tokens = token_chunks(model, corpus_sentences(2500, seed=0), seq_len)
test_tokens = token_chunks(model, corpus_sentences(1000, seed=1), seq_len)
per_step = 1024 if small_vocab else 32
if not small_vocab:  # 150 steps of 32 positions: 80 sequences hold enough positions
    train_tokens, test_tokens = train_tokens[:80], test_tokens[:24]
print(f"training on {train_tokens.numel():,} tokens ({per_step} per step), testing on "
      f"{test_tokens.numel():,}")
tuned, losses = train_tuned_lens(model, train_tokens, steps=150, tokens_per_step=per_step,
                                 seed=0, progress=False)
raw_kl = lens_kl(model, test_tokens).detach()
tuned_kl = lens_kl(model, test_tokens, lens=tuned).detach()
for layer in range(n_layers):
    print(f"after L{layer}: KL raw {raw_kl[layer]:.3f}   tuned {tuned_kl[layer]:.3f}")

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3))
ax1.plot(losses)
ax1.set_xlabel("step")
ax1.set_ylabel("mean KL (nats)")
ax1.set_title("tuned-lens training")
ax2.plot(raw_kl.cpu(), "o-", label="logit lens")
ax2.plot(tuned_kl.cpu(), "o-", label="tuned lens")
ax2.set_xticks(range(n_layers), [f"L{layer}" for layer in range(n_layers)])
ax2.set_xlabel("residual stream after layer")
ax2.set_ylabel("KL(final || lens), held-out")
ax2.legend()
plt.tight_layout()
plt.show()

# %%
if MODEL.startswith("zoo") or MODEL == "gpt2":  # measured; Belrose et al. (2023) for gpt2
    assert (tuned_kl[:-1] < raw_kl[:-1]).all(), "the tuned lens should beat the logit lens"
else:
    print(f"no expectation for {MODEL}: the tuned lens beats the logit lens at "
          f"{int((tuned_kl[:-1] < raw_kl[:-1]).sum())} of {n_layers - 1} layers")

# %% [markdown]
# ### Exercise 01.4: how far is a lens from the model?
# **Difficulty** 2/5 · **Importance** 3/5 · **Time** about 10 min
#
# Write `kl_final_vs_lens(lens_logits, final_logits)`, both `[batch, pos, d_vocab]`:
# return $\mathrm{KL}(\text{final} \,\|\, \text{lens})$ in nats at every position,
# `[batch, pos]`: the extra surprise of predicting with the lens when the model's final
# distribution is the truth.
#
# <details><summary>Hint 1</summary>
#
# $\sum_w p_\text{final}(w) \,(\log p_\text{final}(w) - \log p_\text{lens}(w))$, with
# `log_softmax(-1)` for both log-probabilities.
# </details>
#
# <details><summary>Hint 2</summary>
#
# KL is not symmetric: the final distribution weights the sum.
# </details>

# %%
import torch
from torch import Tensor


def kl_final_vs_lens(lens_logits: Tensor, final_logits: Tensor) -> Tensor:
    """KL(final || lens) at every position, in nats: [batch, pos]."""
    # BEGIN SOLUTION
    final = final_logits.log_softmax(-1)
    lens = lens_logits.log_softmax(-1)
    return (final.exp() * (final - lens)).sum(-1)
    # END SOLUTION
    # STUB raise NotImplementedError("KL(final || lens) per position")

# %%
from mi_helpers.exercises import check_kl_final_vs_lens

check_kl_final_vs_lens(kl_final_vs_lens)

# %% [markdown]
# ## Summary
# * The logit lens turns every layer into a (rough) next-token guess; at the last layer
#   it is exactly the model.
# * On IOI the answer appears late. Direct logit attribution splits the logit difference
#   exactly into what each head, MLP, embedding and bias writes (the printout says which
#   component writes most for the model you loaded): the starting point for notebook 06.
# * Direct attribution measures the direct path only; a component acting through later
#   layers has an indirect effect it cannot see. Patching (notebook 05) measures both.
# * The tuned lens corrects each layer's basis and tracks the final distribution more
#   closely than the raw lens at every earlier layer (held-out text, printed above).
# %% [markdown]
# ## Further reading
# * [nostalgebraist (2020), *interpreting GPT: the logit lens*](https://www.lesswrong.com/posts/AcKRB8wDpdaN6v6ru/interpreting-gpt-the-logit-lens): the original logit lens.
# * [Belrose et al. (2023), *Eliciting Latent Predictions from Transformers with the Tuned Lens*](https://arxiv.org/abs/2303.08112).
# * [Geva et al. (2022), *Transformer Feed-Forward Layers Build Predictions by Promoting Concepts in the Vocabulary Space*](https://arxiv.org/abs/2203.14680):
#   projecting components onto the vocabulary.
# * [Wang et al. (2022), *Interpretability in the Wild: a Circuit for Indirect Object Identification in GPT-2 small*](https://arxiv.org/abs/2211.00593):
#   the IOI task of sections 2 and 3.
