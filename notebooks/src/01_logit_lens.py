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

# %% tags=["parameters"]
MODEL = "zoo-4l"  # any zoo model offline, or a hub model such as "gpt2-small" on Colab

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
# ## 4. The tuned lens
# [Belrose et al. (2023)](https://arxiv.org/abs/2303.08112) train one affine translator per
# layer so that each layer's lens matches the final distribution. We train it on text from
# the zoo corpus (English, French, IOI and arithmetic sentences), then compare
# $\mathrm{KL}(\text{final} \,\|\, \text{lens})$ per layer on *held-out* text for the raw and
# the tuned lens. With a 50k-token vocabulary each step costs far more, so fewer positions
# are drawn per step there.

# %%
seq_len = min(64, model.cfg.n_ctx)
train_tokens = token_chunks(model, corpus_sentences(2500, seed=0), seq_len)
test_tokens = token_chunks(model, corpus_sentences(1000, seed=1), seq_len)
per_step = 1024 if model.cfg.d_vocab < 10_000 else 128
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
assert (tuned_kl[:-1] < raw_kl[:-1]).all(), "the tuned lens should beat the logit lens"

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
