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
# 2. on IOI prompts the correct name becomes the top prediction only in late layers;
#    the direct contributions of all heads and MLPs add up to (nearly) the model's logit
#    difference, and a single component writes a large share of it;
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
from mi_helpers.features import (head_logits, kl_to_final, lens_logits, mlp_logits, top_tokens,
                                 train_tuned_lens)

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
ax.imshow(top1_prob.detach().cpu(), cmap="Blues", vmin=0, vmax=1, aspect="auto")
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
# track the rank (0 = top) and probability of the indirect object at the last position,
# layer by layer.

# %%
sentences = [s for s in ioi_split(100, seed=1, heldout=True)
             if is_single_token(model, s.io) and is_single_token(model, s.s)]
ioi_tokens, ends = tokenize_prompts(model, [s.prompt for s in sentences])
io_ids = single_token_ids(model, [s.io for s in sentences])
s_ids = single_token_ids(model, [s.s for s in sentences])
ioi_layer_logits = lens_logits(model, ioi_tokens)  # layer batch pos d_vocab
rows = torch.arange(len(sentences))
last_logits = ioi_layer_logits[:, rows, ends]  # layer batch d_vocab
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
ax.set_ylabel("rank of IO + 1 (log)")
ax.set_title(f"Logit lens on {len(sentences)} held-out IOI prompts")
plt.show()

# %%
assert io_top1[-1] >= 0.9, "the model should name the indirect object at the last layer"
assert io_top1[0] < 0.5, "layer 0 should not yet know the answer"

# %% [markdown]
# ## 3. Which heads and MLPs write the answer?
# Each head's output $z_h W_O^h$ and each MLP's output, projected through the final
# layer norm's scale and the unembedding, gives its direct contribution to every logit.
# We read off its contribution to the logit difference $\text{logit}(IO) - \text{logit}(S)$.

# %%
per_head = head_logits(model, ioi_tokens)[:, :, rows, ends]  # layer head batch d_vocab
per_mlp = mlp_logits(model, ioi_tokens)[:, rows, ends]  # layer batch d_vocab
head_dla = (per_head[..., rows, io_ids] - per_head[..., rows, s_ids]).mean(-1)  # layer head
mlp_dla = (per_mlp[:, rows, io_ids] - per_mlp[:, rows, s_ids]).mean(-1)  # layer

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3), gridspec_kw={"width_ratios": [3, 1]})
bound = head_dla.abs().max().item()
im = ax1.imshow(head_dla.detach().cpu(), cmap="RdBu", vmin=-bound, vmax=bound)
ax1.set_xlabel("head")
ax1.set_ylabel("layer")
ax1.set_title("direct effect on logit(IO) - logit(S)")
fig.colorbar(im, ax=ax1)
ax2.barh([f"L{layer} MLP" for layer in range(n_layers)], mlp_dla.detach().cpu())
ax2.invert_yaxis()
ax2.set_title("MLPs")
plt.tight_layout()
plt.show()
full_diff = logit_difference(ioi_layer_logits[-1, rows, ends], io_ids, s_ids).mean().item()
components = {f"L{l}H{h}": head_dla[l, h].item() for l in range(n_layers)
              for h in range(model.cfg.n_heads)}
components.update({f"L{l} MLP": mlp_dla[l].item() for l in range(n_layers)})
direct_total = sum(components.values())
top_name = max(components, key=components.get)
print(f"mean logit difference of the model:         {full_diff:.2f}")
print(f"sum of all heads' and MLPs' direct effects: {direct_total:.2f}")
print(f"largest writer: {top_name}, {components[top_name]:.2f} ({components[top_name] / full_diff:.0%})")
print(f"all heads together: {head_dla.sum().item():.2f}; all MLPs together: {mlp_dla.sum().item():.2f}")

# %%
assert abs(direct_total - full_diff) < 0.2 * abs(full_diff), "direct effects should add up"
assert components[top_name] > 0.2 * full_diff, "expected one component to write much of it"

# %% [markdown]
# Which kind of component writes the answer is a property of the model, not of the
# method: in gpt2-small the IOI paper found *heads* (name movers 9.9, 9.6, 10.0) doing
# it. Read the printout above for the model you loaded; notebook 06 follows the answer
# back from whichever components write it.

# %% [markdown]
# ## 4. The tuned lens
# We train one affine translator per layer on text from the zoo corpus (English,
# French, IOI and arithmetic sentences), then compare $\mathrm{KL}(\text{final} \,\|\,
# \text{lens})$ per layer on *held-out* text for the raw and the tuned lens.

# %%
seq_len = min(64, model.cfg.n_ctx)
train_tokens = token_chunks(model, corpus_sentences(2500, seed=0), seq_len)
test_tokens = token_chunks(model, corpus_sentences(1000, seed=1), seq_len)
print(f"training on {train_tokens.numel():,} tokens, testing on {test_tokens.numel():,}")
tuned, losses = train_tuned_lens(model, train_tokens, steps=150, seed=0, progress=False)
raw_kl = kl_to_final(lens_logits(model, test_tokens)).detach()
tuned_kl = kl_to_final(lens_logits(model, test_tokens, lens=tuned)).detach()
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
ax2.set_ylabel("KL(final || lens), held-out")
ax2.legend()
plt.tight_layout()
plt.show()

# %%
assert (tuned_kl[:-1] < raw_kl[:-1]).all(), "the tuned lens should beat the logit lens"
assert tuned_kl[-1] == raw_kl[-1] == 0, "at the last layer both lenses are the model"

# %% [markdown]
# ## Summary
# * The logit lens turns every layer into a (rough) next-token guess; at the last layer
#   it is exactly the model.
# * On IOI the answer appears late, and the direct effects show which components write
#   it: the starting point for the circuit analysis of notebook 06.
# * A direct effect is only a correlation with the output: patching (notebook 05) asks
#   whether the model actually *uses* a component.
# * The tuned lens corrects each layer's basis and tracks the final distribution more
#   closely than the raw lens at every earlier layer.
