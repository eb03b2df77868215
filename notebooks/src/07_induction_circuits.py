# %% [markdown]
# # 07 · Induction circuits: a two-head algorithm that recurs everywhere
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mi-roadmap/mi-roadmap/blob/main/notebooks/07_induction_circuits.ipynb)
#
# An **induction head** completes patterns: having seen "... A B ... A", it predicts
# "B". It attends from the second "A" to the token *after* the first "A" and copies it.
# It cannot find that token on its own: a **previous-token head** in an earlier layer
# first writes "the token before me was A" into each position, and the induction head's
# *keys* read it (**K-composition**,
# [Elhage et al. 2021](https://transformer-circuits.pub/2021/framework/index.html);
# [Olsson et al. 2022](https://arxiv.org/abs/2209.11895)).
#
# We find both heads from their attention on repeated random tokens, check from the
# weights that they compose through the keys, and then test the algorithm causally by
# ablation and by path patching.
#
# **What we expect to see** (asserted below):
# 1. a previous-token head (score > 0.8) in an earlier layer than the induction heads
#    (score > 0.8; a model may have several);
# 2. each induction head's keys read the previous-token head's output more than its
#    queries or values do, and more than random heads of the same shape would;
# 3. ablating any one induction head raises the loss on the repeated half by more than
#    1 nat per token, more than twice as much as any other head of its layer; the
#    previous-token head is the costliest head of its layer to ablate;
# 4. path patching, with one corruption for each side of the attention: the
#    previous-token head's effect on the induction heads goes through their keys; a
#    corruption that does reach the queries finds no path through them; part of the
#    effect also goes through the values, much of it via MLP0.


# %% [markdown]
# **Learning objectives.** After this notebook you can
# * find previous-token and induction heads from their attention, and compute an
#   induction score from a cache by hand (exercise);
# * read K-composition from the weights against a random baseline, and write the score
#   yourself (exercise);
# * test the two-head algorithm causally, by ablation and by path patching through keys
#   and queries.
#
# **Prerequisites:** notebooks 00 and 05; notebook 06 for path patching.
# **Time:** about 40 min to read and run, plus 40 min of exercises.

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
from mi_helpers.circuits import (activation_patching, attention_patterns, circuit_metrics,
                                 composition_baseline, composition_scores, head_ablation_hooks,
                                 head_means, head_scores, offset_score, path_patching)
from mi_helpers.core import Circuit, CircuitGraph, Head, Node, heads_above, top_heads
from mi_helpers.core.metrics import per_token_loss
from mi_helpers.datasets import repeated_random_tokens
from mi_helpers.viz import heatmap, plot_attention

torch.manual_seed(0)
model = load_model(MODEL)
n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
print(f"{MODEL}: {n_layers} layers, {n_heads} heads per layer")



# %% [markdown]
# ## 1. Finding the heads
# On sequences `BOS + r + r` of random tokens, a previous-token head attends one
# position back, and an induction head attends from each token of the second copy to
# the token after its first occurrence ($r - 1$ positions back).

# %%
REP_LEN = 20
scores = head_scores(model, rep_len=REP_LEN, n_seqs=64, seed=0)
fig, axes = plt.subplots(1, 3, figsize=(15, 2.6))
for ax, kind in zip(axes, ("previous_token", "duplicate_token", "induction")):
    heatmap(scores[kind], kind.replace("_", "-"), xlabel="head", ylabel="layer", ax=ax,
            kind="score")
plt.tight_layout()
plt.show()
found_induction = heads_above(scores["induction"], 0.8)
(induction_head,) = top_heads(scores["induction"], 1)  # the strongest
induction_heads = found_induction or [induction_head]  # analyse at least the strongest
(prev_head,) = top_heads(scores["previous_token"], 1)
print("induction heads (score > 0.8):",
      {h.label: round(scores["induction"][h].item(), 2) for h in found_induction})
print(f"strongest induction head {induction_head.label}, previous-token head "
      f"{prev_head.label}: {scores['previous_token'][prev_head]:.2f}")

# %%
if MODEL.startswith("zoo") or MODEL == "gpt2":  # model cards; Olsson et al. (2022) for gpt2
    assert len(found_induction) >= 1, "no head scores above 0.8 on induction"
    assert scores["previous_token"][prev_head] > 0.8, "no previous-token head"
    assert prev_head.layer < induction_head.layer, "the previous-token head must come first"
else:
    print(f"no expectation for {MODEL}")

# %%
tokens = repeated_random_tokens(model, rep_len=10, n_seqs=1, seed=1)
labels = model.to_str_tokens(tokens[0])
patterns = attention_patterns(model, tokens)  # layer batch head dest_pos src_pos
both = torch.stack([patterns[prev_head.layer, 0, prev_head.head],
                    patterns[induction_head.layer, 0, induction_head.head]])
plot_attention(both, labels, head_names=[f"{prev_head.label} (previous token)",
                                         f"{induction_head.label} (induction)"], ncols=2)
plt.show()

# %% [markdown]
# ### Exercise 07.1: an induction score from a cache
# **Difficulty** 2/5 · **Importance** 5/5 · **Time** about 15 min
#
# Write `induction_score(pattern, rep_len)`: `pattern` is one layer's attention on
# sequences `BOS + r + r` (`r` random, `rep_len` tokens), `[batch, head, dest_pos,
# src_pos]`, as `cache["blocks.1.attn.hook_pattern"]` holds it. Return `[head]`: each
# head's mean attention, over the batch and over the second copy's positions, to the
# token *after* the first occurrence of the current token.
#
# <details><summary>Hint 1</summary>
#
# Position 0 is BOS, the first copy is at 1 .. `rep_len`, the second at `rep_len` + 1 ..
# `2 * rep_len`. The token at position $p$ of the second copy first occurred at
# $p - \text{rep\_len}$.
# </details>
#
# <details><summary>Hint 2</summary>
#
# `dest = torch.arange(rep_len + 1, 2 * rep_len + 1)`; `pattern[:, :, dest, dest -
# rep_len + 1]` is `[batch, head, rep_len]`; average over axes 0 and 2.
# </details>

# %%
import torch
from torch import Tensor


def induction_score(pattern: Tensor, rep_len: int) -> Tensor:
    """Mean attention from each second-copy token to the token after its first copy: [head]."""
    # BEGIN SOLUTION
    dest = torch.arange(rep_len + 1, 2 * rep_len + 1, device=pattern.device)
    return pattern[:, :, dest, dest - rep_len + 1].mean(dim=(0, 2))
    # END SOLUTION
    # STUB raise NotImplementedError("attention to p - rep_len + 1, averaged")

# %%
from mi_helpers.exercises import check_induction_score

check_induction_score(induction_score)

# %% [markdown]
# ## 2. Composition, read from the weights
# The score $\lVert W_{OV}^{\,\text{early}} M^{\text{late}} \rVert_F / (\lVert
# W_{OV}^{\,\text{early}} \rVert_F \lVert M^{\text{late}} \rVert_F)$ with $M$ the late
# head's query, key or value map; random heads of the same shapes give the baseline.

# %%
composition = {kind: composition_scores(model, kind) for kind in ("Q", "K", "V")}
baseline = {kind: composition_baseline(model, kind) for kind in ("Q", "K", "V")}
layer_a, layer_b = prev_head.layer, induction_head.layer
fig, axes = plt.subplots(1, 3, figsize=(15, 2.8))
for ax, (kind, values) in zip(axes, composition.items()):
    heatmap(values[layer_a, :, layer_b], f"{kind}-composition, L{layer_a} -> L{layer_b}",
            xlabel=f"head in L{layer_b}", ylabel=f"head in L{layer_a}", ax=ax, kind="matters")
plt.tight_layout()
plt.show()
pair = {kind: torch.tensor([values[(*prev_head, *h)].item()
                            for h in induction_heads if h.layer > prev_head.layer])
        for kind, values in composition.items()}
for kind in pair:
    print(f"{kind}-composition {prev_head.label} -> induction heads: "
          f"{[round(v, 3) for v in pair[kind].tolist()]} (random heads: {baseline[kind]:.3f})")

# %%
if MODEL.startswith("zoo"):
    assert len(pair["K"]) >= 1, "no induction head after the previous-token head"
    assert (pair["K"] > pair["Q"]).all() and (pair["K"] > pair["V"]).all(), "keys read the previous-token head"
    assert (pair["K"] > 1.5 * baseline["K"]).all(), "...clearly more than chance"
else:
    print(f"no expectation for {MODEL}")

# %% [markdown]
# ### Exercise 07.2: a K-composition score
# **Difficulty** 3/5 · **Importance** 4/5 · **Time** about 15 min
#
# Write `k_composition_score(W_V_a, W_O_a, W_Q_b, W_K_b)` for an earlier head `a`
# (`W_V_a` `[d_model, d_head]`, `W_O_a` `[d_head, d_model]`) and a later head `b`
# (`W_Q_b`, `W_K_b` `[d_model, d_head]`), returning the score of the formula above as a
# float: how much head `b`'s keys read what head `a` writes.
#
# <details><summary>Hint 1</summary>
#
# $W_{OV}^a = W_V^a W_O^a$ and $W_{QK}^b = W_Q^b (W_K^b)^T$, both `[d_model, d_model]`.
# </details>
#
# <details><summary>Hint 2</summary>
#
# Keys are the *second* factor of $W_{QK}$, so K-composition uses its transpose:
# $\lVert W_{OV}^a (W_{QK}^b)^T \rVert_F / (\lVert W_{OV}^a \rVert_F \lVert W_{QK}^b
# \rVert_F)$ (`torch.linalg.norm` or `.norm()` of a matrix is the Frobenius norm).
# </details>

# %%
from torch import Tensor


def k_composition_score(W_V_a: Tensor, W_O_a: Tensor, W_Q_b: Tensor, W_K_b: Tensor) -> float:
    """|W_OV^a (W_QK^b)^T|_F / (|W_OV^a|_F |W_QK^b|_F)."""
    # BEGIN SOLUTION
    ov = W_V_a @ W_O_a
    qk = W_Q_b @ W_K_b.T
    return ((ov @ qk.T).norm() / (ov.norm() * qk.norm())).item()
    # END SOLUTION
    # STUB raise NotImplementedError("compose the OV and the transposed QK matrices")

# %%
from mi_helpers.exercises import check_k_composition

check_k_composition(k_composition_score)

# %% [markdown]
# ## 3. Ablation: is the induction head necessary?
# The loss on the second copy (where only induction can predict the next token), with
# each head of the model mean-ablated in turn (its mean over these sequences, position by
# position), and with the induction head zero-ablated. That is one forward pass per head:
# on a hub-width model (144 heads and d_model 768 on gpt2) the test uses 16 sequences
# instead of 64.

# %%
N_TEST = 64 if model.cfg.d_model <= 256 else 16
test_tokens = repeated_random_tokens(model, rep_len=REP_LEN, n_seqs=N_TEST, seed=2)
second_half = slice(REP_LEN + 1, 2 * REP_LEN)  # positions predicting tokens of the repeat
means = head_means(model, test_tokens)


def repeat_loss(fwd_hooks=()):
    with torch.no_grad():
        logits = model.run_with_hooks(test_tokens, fwd_hooks=list(fwd_hooks))
    return per_token_loss(logits, test_tokens)[:, second_half].mean().item()


clean_loss = repeat_loss()
ablated = torch.zeros(n_layers, n_heads)
for layer in range(n_layers):
    for head in range(n_heads):
        ablated[layer, head] = repeat_loss(head_ablation_hooks(model, [(layer, head)], means))
increase = ablated - clean_loss
zero_increase = repeat_loss(head_ablation_hooks(model, [induction_head])) - clean_loss
heatmap(increase, f"loss increase on the repeat (clean {clean_loss:.2f} nats/token)",
        xlabel="head", ylabel="layer", kind="matters")
plt.show()
same_layer = [increase[induction_head.layer, h].item() for h in range(n_heads)
              if (induction_head.layer, h) not in induction_heads]
print(f"clean loss on the repeated half: {clean_loss:.2f} nats/token")
for h in induction_heads:
    print(f"mean-ablating induction head {h.label}: +{increase[h]:.2f}")
print(f"zero-ablating {induction_head.label} instead: +{zero_increase:.2f}")
print(f"largest increase from another head of layer {induction_head.layer}: "
      f"{max(same_layer, default=0):+.2f}")
print(f"mean-ablating the previous-token head {prev_head.label}: +{increase[prev_head]:.2f}")
test_patterns = attention_patterns(model, test_tokens)
self_attention = offset_score(test_patterns, range(1, test_tokens.shape[1]), 0)  # layer head
for h in top_heads(increase, n_layers * n_heads):
    if h not in induction_heads and h != prev_head and increase[h] > 0.5:
        print(f"also costly: {h.label} +{increase[h]:.2f}; it attends to "
              f"its own position with weight {self_attention[h]:.2f}")

# %%
smallest = min(increase[h].item() for h in induction_heads)
if MODEL.startswith("zoo"):
    assert smallest > 1.0, "ablating an induction head should cost > 1 nat/token"
    assert smallest > 2 * max(same_layer, default=0), "...more than twice any other head of its layer"
    assert increase[prev_head] == increase[prev_head.layer].max(), "the costliest head of its layer"
else:
    print(f"no expectation for {MODEL}: the cheapest induction head costs {smallest:.2f} nats/token")

# %% [markdown]
# ### Exercise 07.3: the loss where only induction helps
# **Difficulty** 2/5 · **Importance** 3/5 · **Time** about 10 min
#
# Write `loss_on_repeat(logits, tokens, rep_len)` for sequences `BOS + r + r`: `logits`
# `[batch, pos, d_vocab]`, `tokens` `[batch, pos]`. Return the mean next-token loss
# (a scalar tensor) over the positions whose next token an induction head can predict,
# as in `repeat_loss` above.
#
# <details><summary>Hint 1</summary>
#
# Position $p$ predicts token $p+1$. The first token of the second copy (position
# `rep_len + 1`) is not predictable from what came before; the tokens after it are.
# </details>
#
# <details><summary>Hint 2</summary>
#
# Per-token losses `-logits[:, :-1].log_softmax(-1).gather(-1, tokens[:, 1:, None])`,
# then positions `rep_len + 1` .. `2 * rep_len - 1`.
# </details>

# %%
from torch import Tensor


def loss_on_repeat(logits: Tensor, tokens: Tensor, rep_len: int) -> Tensor:
    """Mean next-token loss on the predictable part of the second copy."""
    # BEGIN SOLUTION
    log_probs = logits[:, :-1].log_softmax(-1)
    losses = -log_probs.gather(-1, tokens[:, 1:, None]).squeeze(-1)  # batch pos-1
    return losses[:, rep_len + 1:2 * rep_len].mean()
    # END SOLUTION
    # STUB raise NotImplementedError("per-token losses, then the second copy's positions")

# %%
from mi_helpers.exercises import check_loss_on_repeat

check_loss_on_repeat(loss_on_repeat)

# %% [markdown]
# ## 4. Path patching: keys, queries or values?
# The previous-token head's output could reach the induction heads through their
# queries, keys or values. A corruption can only test a path if it changes what the
# previous-token head writes *where that path reads*: keys and values read the first
# copy (the positions attended to), queries read the second copy (the positions
# attending). So we use two corruptions of `BOS + r + r`:
# * **first copy** `BOS + r' + r`: fresh tokens where the keys and values are read. The
#   query path cannot change here (the second copy is untouched), so its score of 1 is
#   guaranteed by the design and tests nothing;
# * **second copy** `BOS + r + r'`: fresh tokens where the queries are read; now the
#   key and value paths are the ones that cannot change.
#
# The metric is the mean log-probability of the clean next tokens on the second copy
# (a score of 1 = no effect, 0 = as bad as the corrupted run). As a positive control, we
# also patch the induction heads' *whole* query from the second-copy corruption
# (activation patching of `q`): if that does nothing either, the corruption never
# reached the queries and a null result for the query path would mean nothing.

# %%
fresh = repeated_random_tokens(model, rep_len=REP_LEN, n_seqs=N_TEST, seed=3)
first_copy = test_tokens.clone()
first_copy[:, 1:REP_LEN + 1] = fresh[:, 1:REP_LEN + 1]
second_copy = test_tokens.clone()
second_copy[:, REP_LEN + 1:] = fresh[:, REP_LEN + 1:]
corruptions = {"first copy (r' + r)": first_copy, "second copy (r + r')": second_copy}


def repeat_log_prob(logits):
    return -per_token_loss(logits, test_tokens)[:, second_half].mean()


receivers = [h for h in induction_heads if h.layer > prev_head.layer]
path = {(name, kind): path_patching(model, test_tokens, corrupted, repeat_log_prob,
                                    [(*h, kind) for h in receivers],
                                    senders=[[prev_head]]).score.item()
        for name, corrupted in corruptions.items() for kind in ("q", "k", "v") if receivers}
if receivers:
    whole_query = activation_patching(model, test_tokens, second_copy, repeat_log_prob, "q",
                                      mode="noise", layers=[receivers[0].layer],
                                      heads=[h.head for h in receivers if h.layer == receivers[0].layer])
    print(f"{'corruption':>22} | {prev_head.label} -> queries | keys | values (score)")
    for name in corruptions:
        print(f"{name:>22} | {path[name, 'q']:15.2f} | {path[name, 'k']:4.2f} | "
              f"{path[name, 'v']:6.2f}")
    print("positive control, second-copy corruption of each induction head's whole query:",
          [round(v, 2) for v in whole_query.score.flatten().tolist()])
else:
    print(f"no induction head comes after {prev_head.label}: no path to patch")

# %% [markdown]
# The key path carries the effect: with the first copy corrupted, the previous-token
# head's output into the induction heads' keys alone takes the score to near 0. The
# second corruption reaches the queries (the positive control: replacing a whole query
# costs much of the log-probability), yet the previous-token head's path into the
# queries does nothing: the queries read the current token itself, not its
# predecessor. This is K-composition, now measured with a corruption that could have
# shown Q-composition.

# %%
first, second = "first copy (r' + r)", "second copy (r + r')"
if MODEL.startswith("zoo"):
    assert receivers, "no induction head after the previous-token head"
    assert path[first, "k"] < 0.2, "through the keys"
    assert whole_query.score.min() < 0.8, "the second-copy corruption must reach the queries"
    assert path[second, "q"] > 0.9, "...but not through the previous-token head"
else:
    print(f"no expectation for {MODEL}")

# %% [markdown]
# **The value path.** With the first copy corrupted, the previous-token head's path
# into the values costs about half the effect (printed above). The values are read at
# the attended position, the token after the earlier "A"; what the previous-token head
# wrote there is "A" itself, which the induction head does not need in order to copy
# the token. So where does the loss come from? Path patching lets the change flow
# through the MLPs on the way (only heads are frozen), so it mixes two routes: the head's
# own edges into the values, and the route through MLP0, which reads the head's output
# and writes into the residual stream that the values read. Exact edge patching
# (notebook 08) separates them: corrupt only the three direct edges
# `previous-token head -> induction head's values`.

# %%
graph = CircuitGraph.from_model(model)
prev_node, receiver_ids = Node(prev_head.layer, "head", prev_head.head), set(receivers)
direct_value_edges = [e for e in graph.edges if e.sender == prev_node and e.channel == "v"
                      and Head(e.receiver.layer, e.receiver.head) in receiver_ids]
if direct_value_edges:
    rest = Circuit.from_edges(graph, set(graph.edges) - set(direct_value_edges))
    (only_direct,) = circuit_metrics(model, test_tokens, first_copy, repeat_log_prob,
                                     [rest]).tolist()
    clean_lp, first_copy_lp = (repeat_log_prob(model(t)).item() for t in (test_tokens, first_copy))
    direct_score = (only_direct - first_copy_lp) / (clean_lp - first_copy_lp)
    print(f"value path (path patching, direct and through MLPs): score {path[first, 'v']:.2f}")
    print(f"only the {len(direct_value_edges)} direct edges into the values: score "
          f"{direct_score:.2f}")
else:
    print("no direct edge from the previous-token head into the values of an induction head")

# %% [markdown]
# On the zoo model the direct edges alone cost less than half of what the value path
# costs; the rest goes through MLP0. A token's representation after MLP0 depends on the
# token before it (MLP0 reads the previous-token head), so when the induction head copies
# "the token after A" it copies a vector that also encodes A; with a foreign A' before
# it, the copied vector is a different one and predicts the token less well. The key
# path is necessary (score near 0); the value path is a partial contribution that exists
# because copied representations are contextual, not a second mechanism.

# %%
if MODEL.startswith("zoo"):
    assert direct_value_edges, "the zoo model has induction heads after its previous-token head"
    assert 0.2 < path[first, "v"] < 0.8, "the value path is partial"
    assert direct_score > path[first, "v"] + 0.1, "part of it runs through the MLPs"

# %% [markdown]
# ## Summary
# * Two heads implement induction: the previous-token head writes "my predecessor was
#   A" at each position, and the induction head's keys read it, so a query "A" finds the
#   token after the earlier "A" and copies it.
# * The weights (K-composition), ablation and path patching tell the same story from
#   three directions; notebook 09 checks that it recurs in every seed of the zoo.
# * A path can only be tested by a corruption that changes what it reads: corrupting the
#   first copy tests keys and values, corrupting the second copy tests queries. Keys
#   carry the effect; queries do not, though they could have; the values carry part of
#   it, much of that through MLP0.
# * Ablation also flags heads the two scores do not name (printed in section 3 with
#   how much they attend to their own token): a circuit is rarely only the heads one
#   went looking for.

# %% [markdown]
# ## Further reading
# * [Elhage et al. (2021), *A Mathematical Framework for Transformer Circuits*](https://transformer-circuits.pub/2021/framework/index.html):
#   induction heads and Q/K/V composition.
# * [Olsson et al. (2022), *In-context Learning and Induction Heads*](https://arxiv.org/abs/2209.11895).
