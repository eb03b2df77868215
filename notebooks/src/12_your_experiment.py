# %% [markdown]
# # 12 · Your experiment: the circuit-study checklist as a template
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mi-roadmap/mi-roadmap/blob/main/notebooks/12_your_experiment.ipynb)
#
# The survey this course follows ([Rai et al., 2024, *A Practical Review of Mechanistic
# Interpretability for Transformer-Based Language Models*](https://arxiv.org/abs/2407.02646))
# closes its roadmap with the steps of a circuit study. This notebook turns them into
# a runnable start: **one short section per step**, each calling the helpers, each
# ending with a **Decision** box: the question you answer before moving on.
#
# It comes filled in with a worked example that no other notebook uses, so that every
# cell runs and every claim is checked; **replace it with your own behaviour**:
#
# > **Places after prepositions.** After "Mary sees Tom **near** the", the zoo model
# > expects a *place* ("park", "store"); after "Mary sees Tom **.** the", a sentence
# > starts and it expects a *noun* ("dog", "book"). The word two tokens back decides the
# > next word: a *skip-trigram* ("near … the → park"), the kind of rule that
# > [Elhage et al. (2021)](https://transformer-circuits.pub/2021/framework/index.html)
# > found attention heads implement.
#
# How to use it: copy the notebook, edit the parameters cell and the behaviour cell of
# step 1, run it top to bottom, read each printout and Decision box, then rewrite the
# assertions as *your* claims, each against a control that could refute it.
#
# **What we expect to see** for the worked example on zoo-2l (asserted below):
# 1. the model prefers places after a preposition far more than after a sentence break
#    (by more than 2 nats, in at least 90% of the pairs); a randomly initialised model of
#    the same shape does not (less than 0.5 nats);
# 2. the preposition's information reaches the last token through **layer-0 attention**
#    (denoising layer 0's attention output restores at least 90% of the effect), and from
#    layer 1 on it sits at the last position only;
# 3. the head that carries most of it does so through **what it reads** (its values),
#    not **where it looks** (its attention pattern);
# 4. the heads found by patching, alone with every other head mean-ablated, keep at least
#    80% of the effect, more than 90% of the random circuits of the same size, and each
#    of them matters; but the circuit is not complete: without some of its heads it
#    loses more than the whole model does;
# 5. in the zoo's two other seeds layer-0 attention carries it again, not always through
#    the same head.


# %% [markdown]
# **Learning objectives.** After this notebook you can
# * plan a circuit study as eight decisions, each backed by a measurement;
# * run the whole loop (behaviour, control, graph, localisation, interpretation,
#   evaluation, universality, report) on a behaviour of your own;
# * write every claim as an assertion with a control that could refute it.
#
# **Prerequisites:** notebooks 05-07 (patching, path patching, circuit evaluation) and 09
# (universality). **Time:** about 30 min to read and run; a first study of your own, a few days.

# %% tags=["parameters"]
MODEL = "zoo-2l"  # any zoo model offline, or a hub model such as "gpt2" on Colab
OTHERS = ["zoo-2l-seed1", "zoo-2l-seed2"]  # same architecture, other seeds (step 7)
N_PAIRS = 60  # clean / corrupted prompt pairs
CIRCUIT_THRESHOLD = 0.3  # a head joins the circuit if patching it alone restores this much
SEED = 0

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
from mi_helpers.circuits import (CircuitEvaluator, activation_patching, attention_patterns,
                                 completeness, faithfulness, head_means, head_scores,
                                 minimality, path_patching, random_head_sets)
from mi_helpers.core import CircuitGraph, all_heads, heads_above, top_heads
from mi_helpers.datasets import minimal_pairs, single_token_ids, single_token_words
from mi_helpers.universality import random_like
from mi_helpers.viz import heatmap
from mi_helpers.zoo.corpus import EN_NOUN, EN_PREP, EN_VERB, NAMES, OBJECTS, PLACES

torch.manual_seed(SEED)
model = load_model(MODEL)
n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
EXPECTED = MODEL == "zoo-2l"  # the worked example's claims were measured on zoo-2l
print(f"{MODEL}: {n_layers} layers, {n_heads} heads per layer")

# %% [markdown]
# ## Step 1. Choose a behaviour and a model
# A behaviour worth a circuit study is one the model does **reliably**, that a **metric**
# scores with one number, and that a **minimal pair** of prompts switches on and off
# (the *clean* prompt shows it, the *corrupted* one differs in as few tokens as
# possible and does not). Edit this cell: the two templates, the words for each slot,
# and the words the behaviour predicts (target) and would predict otherwise (foil).

# %%
CLEAN = "{S} {V} {O} {P} the"  # after a preposition, "the" is followed by a place
CORRUPTED = "{S} {V} {O} . the"  # after a sentence break, by a noun
SLOTS = {"S": NAMES, "V": EN_VERB, "O": NAMES, "P": EN_PREP}
TARGET_WORDS, FOIL_WORDS = PLACES, EN_NOUN + OBJECTS


def behaviour(model, n=N_PAIRS, seed=SEED):
    """Clean and corrupted tokens, and the metric: log-mass on targets minus on foils."""
    clean, corrupted, _ = minimal_pairs(model, CLEAN, CORRUPTED, SLOTS, n, seed)
    target = single_token_ids(model, single_token_words(model, TARGET_WORDS))
    foil = single_token_ids(model, single_token_words(model, FOIL_WORDS))

    def preference(logits):  # per prompt, at the last position
        log_probs = logits[:, -1].log_softmax(-1)
        return log_probs[:, target].logsumexp(-1) - log_probs[:, foil].logsumexp(-1)

    return clean, corrupted, preference


clean_tokens, corrupted_tokens, preference = behaviour(model)


def metric(logits):
    return preference(logits).mean()


for i in range(3):
    print(f"clean {model.to_string(clean_tokens[i, 1:])!r:32} corrupted "
          f"{model.to_string(corrupted_tokens[i, 1:])!r}")

# %% [markdown]
# > **Decision.** Which behaviour, in which model, and why this one? Does the corrupted
# > prompt remove *only* the information you study (here: one token, the preposition,
# > becomes a full stop)? Is the metric's zero meaningful, or only differences (here:
# > only differences, so we report them)?
#
# ## Step 2. Measure it, against a control
# The effect is the metric's gap between each clean prompt and its corrupted twin. The
# control is the same measurement on a randomly initialised model of the same shape:
# an effect that a random model shows too is not a learned behaviour.

# %%
def pair_effects(model):
    clean, corrupted, preference = behaviour(model)
    with torch.no_grad():
        return preference(model(clean)) - preference(model(corrupted))


effects = pair_effects(model)
random_effects = pair_effects(random_like(model, seed=SEED))
effect = effects.mean().item()
share_positive = (effects > 0).float().mean().item()
with torch.no_grad():
    clean_metric, corrupted_metric = metric(model(clean_tokens)).item(), metric(model(corrupted_tokens)).item()
print(f"metric: clean {clean_metric:.2f}, corrupted {corrupted_metric:.2f} (nats of log-mass, "
      f"targets minus foils)")
print(f"effect: {effect:.2f} nats on average, positive in {share_positive:.0%} of {len(effects)} pairs")
print(f"random model of the same shape: {random_effects.mean().item():+.2f} nats")

# %%
if EXPECTED:
    assert effect > 2 and share_positive >= 0.9, "the model should show the behaviour"
    assert abs(random_effects.mean().item()) < 0.5, "a random model should not"
else:
    print(f"no expectation for {MODEL}: write your own claims here")

# %% [markdown]
# > **Decision.** Is the effect large and consistent enough to study? If it is small,
# > change the prompts or the model before anything else: every later step divides by it.
#
# ## Step 3. Define the graph: what can be in the circuit?
# The hypothesis space is a graph of components: the embeddings, every attention head,
# every MLP and the logits, with edges from each to every later one (into a head's
# query, key or value, or a block's input). Activation patching scores its nodes; path
# patching, its edges.

# %%
graph = CircuitGraph.from_model(model)
print(graph)
print(f"{len(graph.nodes)} nodes and {len(graph.edges)} edges; a circuit is a subset of them")

# %% [markdown]
# > **Decision.** At which granularity do you look: layers, heads and MLPs, neurons,
# > SAE latents (notebooks 03 and 04), positions? Start coarse and refine where the
# > signal is. This template uses heads and MLPs, and the position axis in step 4.
#
# ## Step 4. Localise: where does the information go?
# Denoising: run the corrupted prompts and restore one clean activation at a time
# (1 = the clean metric is back, 0 = nothing changes), first the residual stream at
# every layer and position, then each block's attention and MLP output, then each head.

# %%
labels = [f"{i}:{t}" for i, t in enumerate(model.to_str_tokens(clean_tokens[0]))]
resid = activation_patching(model, clean_tokens, corrupted_tokens, metric, "resid_pre",
                            per_position=True)
blocks = {site: activation_patching(model, clean_tokens, corrupted_tokens, metric, site).score
          for site in ("attn_out", "mlp_out")}
heads = activation_patching(model, clean_tokens, corrupted_tokens, metric, "z")
fig, axes = plt.subplots(1, 2, figsize=(12, 2.8))
heatmap(resid.score, "residual stream (resid_pre), denoised", xlabel="position", ylabel="layer",
        xticklabels=labels, yticklabels=[f"L{l}" for l in range(n_layers)], kind="score",
        ax=axes[0])
heatmap(heads.score, "each head's output (z), denoised", xlabel="head", ylabel="layer",
        xticklabels=[str(h) for h in range(n_heads)], yticklabels=[f"L{l}" for l in range(n_layers)],
        ax=axes[1])
plt.tight_layout()
plt.show()
last = clean_tokens.shape[1] - 1
for site, scores in blocks.items():
    print(f"{site} per layer: {[round(s, 2) for s in scores.tolist()]}")
(top_head,) = top_heads(heads.score, 1)
print(f"after layer 0, the last position restores {resid.score[1:, last].min():.2f} or more; "
      f"any other position at most {resid.score[1:, :last].max():.2f}")
print(f"strongest head: {top_head.label}, {heads.score[top_head]:.2f}")

# %%
if EXPECTED:
    assert blocks["attn_out"][0] > 0.9, "layer-0 attention carries the preposition's information"
    assert resid.score[1:, last].min() > 0.9 and resid.score[1:, :last].abs().max() < 0.1, \
        "from layer 1 on, only the last position matters"
    assert heads.score[top_head] > 0.5, "one head carries most of it"

# %% [markdown]
# > **Decision.** Which components will you explain? Denoising finds what is
# > *sufficient*; check *necessity* too (`mode="noise"`, notebook 05) before you drop a
# > component that scores low here: redundant heads each look unimportant alone.
#
# ## Step 5. Interpret: what do the components do?
# Three questions about the strongest head. Where does it look from the last token, on
# clean and corrupted prompts? Does its effect come from *where* it looks (patch only its
# attention pattern) or from *what it reads* there (patch only its values)? And how much
# of its effect goes straight to the logits (path patching, notebook 06) rather than
# through later layers?

# %%
layer, head = top_head
attention = {name: attention_patterns(model, tokens)[layer, :, head, -1].mean(0)
             for name, tokens in (("clean", clean_tokens), ("corrupted", corrupted_tokens))}
fig, ax = plt.subplots(figsize=(6, 2.5))
for name, values in attention.items():
    ax.plot(values.cpu(), "o-", label=name)
ax.set_xticks(range(len(labels)), labels, rotation=30)
ax.set_ylabel("attention from the last token")
ax.set_title(f"{top_head.label}, mean over prompts")
ax.legend()
plt.show()
by_part = {site: activation_patching(model, clean_tokens, corrupted_tokens, metric, site,
                                     layers=[layer], heads=[head]).score.item()
           for site in ("v", "pattern")}
direct = path_patching(model, clean_tokens, corrupted_tokens, metric, "logits",
                       senders=[[top_head]]).score.item()
necessity = 1 - activation_patching(model, clean_tokens, corrupted_tokens, metric, "z",
                                    mode="noise", layers=[layer], heads=[head]).score.item()
previous = head_scores(model, rep_len=10, n_seqs=32, seed=SEED)["previous_token"]
print(f"{top_head.label}: attention to the preposition {attention['clean'][-2]:.2f} (clean), "
      f"to the full stop {attention['corrupted'][-2]:.2f} (corrupted)")
print(f"denoising only its values restores {by_part['v']:.2f}, only its pattern {by_part['pattern']:.2f}")
print(f"noising it costs {necessity:.2f} of the effect, {1 - direct:.2f} through its direct "
      f"path to the logits")
print(f"its previous-token score: {previous[top_head]:.2f} (the model's previous-token head: "
      f"{top_heads(previous, 1)[0].label}, {previous.max():.2f})")

# %%
if EXPECTED:
    assert by_part["v"] > 0.7 and by_part["pattern"] < 0.2, "what it reads, not where it looks"

# %% [markdown]
# > **Decision.** What is your hypothesis for each component, in words ("reads the
# > preposition's token through its values and writes 'a place comes next'")? Each
# > word of it should be testable: attention, values, direct effect, vocabulary
# > projections (notebook 01), probes (notebook 02), features (notebooks 03 and 04).
#
# ## Step 6. Evaluate: faithfulness, completeness, minimality
# The circuit is every head whose denoising score passes `CIRCUIT_THRESHOLD`; MLPs and
# embeddings stay. Every other head is mean-ablated (its mean over the corrupted
# prompts). **Faithfulness** compares the circuit alone with the model, as
# $(F(C) - F(\varnothing)) / (F(M) - F(\varnothing))$, against every random circuit of
# the same size; **completeness** removes subsets of the circuit from the circuit and
# from the model (a complete circuit loses as much as the model); **minimality** asks
# whether each head matters to the rest ([Wang et al., 2022](https://arxiv.org/abs/2211.00593); notebook 06).

# %%
found_circuit = heads_above(heads.score, CIRCUIT_THRESHOLD)
circuit = found_circuit or [top_head]  # analyse at least the strongest head
evaluator = CircuitEvaluator(model, clean_tokens, metric, head_means(model, corrupted_tokens))
faith = faithfulness(evaluator, circuit).normalised
same_size = random_head_sets(all_heads(model), len(circuit), 60, seed=SEED)
baseline = torch.tensor([faithfulness(evaluator, c).normalised for c in same_size])
beaten = (baseline < faith).float().mean().item()
points = completeness(evaluator, circuit, n_random=10, greedy_steps=2, seed=SEED)
necessary = minimality(evaluator, circuit, n_random=3, seed=SEED)
gap = evaluator.full - evaluator.empty
print(f"circuit: {[h.label for h in circuit]}; it keeps {faith:.0%} of the effect, more than "
      f"{beaten:.0%} of {len(baseline)} random circuits of {len(circuit)} heads "
      f"(median {baseline.median():.0%})")
worst = max(points, key=lambda p: p.gap)
print(f"completeness: largest gap |F(C\\K) - F(M\\K)| = {worst.gap / gap:.0%} of the effect, "
      f"removing {[h.label for h in worst.removed]}: circuit {worst.circuit:.2f}, model "
      f"{worst.full:.2f}")
print("minimality (largest change from removing the head, share of the effect):",
      {h.label: round(v / gap, 2) for h, v in necessary.items()})

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3))
ax1.hist(baseline.numpy(), bins=20, color="grey", label="random circuits")
ax1.axvline(faith, color="red", label="the circuit")
ax1.set_xlabel("share of the effect kept")
ax1.legend()
for kind, marker in (("empty", "s"), ("random", "o"), ("greedy", "^")):
    chosen = [p for p in points if p.kind == kind]
    ax2.scatter([p.full for p in chosen], [p.circuit for p in chosen], marker=marker, label=kind)
low, high = evaluator.empty, evaluator.full
ax2.plot([low, high], [low, high], "k:", lw=1)
ax2.set_xlabel("F(model without K)")
ax2.set_ylabel("F(circuit without K)")
ax2.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %%
if EXPECTED:
    assert found_circuit, f"no head passes the threshold {CIRCUIT_THRESHOLD}"
    assert faith > 0.8 and beaten > 0.9, "the circuit keeps the effect, unlike random circuits"
    assert min(necessary.values()) > 0.1 * gap, "every head of the circuit matters"
    assert worst.gap > 0.2 * gap and worst.circuit < worst.full, \
        "incomplete: without some heads the circuit loses more than the model"

# %% [markdown]
# > **Decision.** Is the circuit good enough to claim, and for which metric? A circuit
# > that keeps the effect for one metric can fail another (notebook 06, section 4).
# > If completeness fails, look for the missing components; if minimality fails, drop
# > the head. Then state the mechanism as edges (path patching) rather than nodes.
#
# ## Step 7. Universality: does it recur in other models?
# The same localisation in models trained the same way from other seeds (notebook 09),
# each on its own tokens and metric.

# %%
recurs = {}
for name in OTHERS:
    other = load_model(name)
    o_clean, o_corrupted, o_preference = behaviour(other)

    def o_metric(logits, o_preference=o_preference):
        return o_preference(logits).mean()

    o_attn = activation_patching(other, o_clean, o_corrupted, o_metric, "attn_out").score
    o_heads = activation_patching(other, o_clean, o_corrupted, o_metric, "z").score
    o_prev = head_scores(other, rep_len=10, n_seqs=32, seed=SEED)["previous_token"]
    (o_top,) = top_heads(o_heads, 1)
    recurs[name] = {"effect": pair_effects(other).mean().item(), "attn_out": o_attn.tolist(),
                    "top head": o_top.label, "top score": o_heads[o_top].item(),
                    "previous-token head": top_heads(o_prev, 1)[0].label}
    print(f"{name}: effect {recurs[name]['effect']:.2f} nats; attention output restores "
          f"{[round(v, 2) for v in o_attn.tolist()]} by layer; strongest head "
          f"{o_top.label} ({o_heads[o_top]:.2f}); previous-token head "
          f"{recurs[name]['previous-token head']}")

# %%
if EXPECTED:
    for name, found in recurs.items():
        assert found["effect"] > 2, f"{name} should show the behaviour too"
        assert found["attn_out"][0] > 0.9, f"{name}: layer-0 attention carries it again"

# %% [markdown]
# > **Decision.** What recurs: the layer, the kind of head, the exact head? A claim of
# > universality needs the level it holds at (here the layer-level route recurs; read
# > the printout for the heads).
#
# ## Step 8. Report: what was measured, against what, and what was not
# Every claim with its number and its control, printed from the variables above, so the
# report cannot drift from the results.

# %%
report = [
    ("effect (nats), clean vs corrupted", effect, f"random model {random_effects.mean().item():+.2f}"),
    ("layer-0 attention output restores", blocks["attn_out"][0].item(), "other layers "
     f"{[round(v, 2) for v in blocks['attn_out'][1:].tolist()]}"),
    (f"{top_head.label}: values restore", by_part["v"], f"its pattern {by_part['pattern']:.2f}"),
    (f"circuit of {len(circuit)} heads keeps", faith, f"beats {beaten:.0%} of random circuits"),
    ("completeness: largest gap, share", worst.gap / gap, f"removing {[h.label for h in worst.removed]}"),
    *((f"{name}: layer-0 attention restores", found["attn_out"][0], f"top head {found['top head']}")
      for name, found in recurs.items()),
]
for claim, value, control in report:
    print(f"{claim:<40} {value:6.2f}   control: {control}")

# %% [markdown]
# > **Decision.** What would change your mind? List what this study did *not* test
# > (here: one pair of templates, one metric, heads but not neurons, nodes but not
# > edges) and the next experiment for each.
#
# ## Summary
# * The worked example, measured above: the zoo model's preference for a place after
#   a preposition travels from the preposition to the last token through layer-0
#   attention, mostly in one head that acts through what it reads rather than where it
#   looks; the heads found by patching keep the effect alone, unlike random circuits of
#   their size; the layer-level route recurs in the other seeds.
# * It is not the whole story: the completeness test (step 6) finds heads whose removal
#   hurts the circuit more than the model, so heads outside the circuit can stand in
#   for them (the gap is printed there): the next experiment.
# * The template: replace step 1, rerun, and rewrite each assertion as your claim with
#   its control. Notebooks 05-09 go deeper into each step.

# %% [markdown]
# ## Further reading
# * [Rai et al. (2024), *A Practical Review of Mechanistic Interpretability for Transformer-Based Language Models*](https://arxiv.org/abs/2407.02646): the roadmap.
# * [Wang et al. (2022), *Interpretability in the Wild*](https://arxiv.org/abs/2211.00593): the loop of localise, interpret, evaluate.
# * [Heimersheim & Nanda (2024), *How to use and interpret activation patching*](https://arxiv.org/abs/2404.15255).
# * [Miller et al. (2024), *Transformer Circuit Faithfulness Metrics are not Robust*](https://arxiv.org/abs/2407.08734): what a faithfulness number depends on.
# * [Elhage et al. (2021), *A Mathematical Framework for Transformer Circuits*](https://transformer-circuits.pub/2021/framework/index.html): skip-trigrams.
