# %% [markdown]
# # 11 · Ground truth: circuits compiled by Tracr, and how well our tools recover them
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mi-roadmap/mi-roadmap/blob/main/notebooks/11_tracr_ground_truth.ipynb)
#
# How do we know a circuit-finding method is right? On a trained model we do not know
# the answer. **Tracr** ([Lindner et al., 2023](https://arxiv.org/abs/2301.05062)) turns
# the question around: it *compiles* a program written in **RASP**
# ([Weiss et al., 2021](https://arxiv.org/abs/2106.06981)), a language of attention-like
# operations, into transformer weights. Each operation becomes known heads or MLPs, and
# each variable gets its own dimensions of the residual stream, so the circuit is known
# by construction. ACDC ([Conmy et al., 2023](https://arxiv.org/abs/2304.14997)) and
# InterpBench ([Gupta et al., 2024](https://arxiv.org/abs/2407.14494)) score discovery
# methods this way.
#
# We load seven compiled programs (committed under `data/tracr/`; compiling them needs
# JAX, running this notebook does not), check the ground truth, run exact edge
# patching, activation patching, path patching, EAP
# ([Syed et al., 2023](https://arxiv.org/abs/2310.10348)), EAP-IG
# ([Hanna et al., 2024](https://arxiv.org/abs/2403.17806)) and ACDC on clean/corrupted
# pairs, and score what each finds against the truth. The edge-level methods are the
# package's own (`mi_helpers.circuits`, notebook 08): the same engine runs the zoo's
# models and Tracr's, which have no LayerNorm and attend in both directions. Finally,
# interchange interventions ([Geiger et al., 2021](https://arxiv.org/abs/2106.02997))
# test the variables' subspaces.
#
# **What we expect to see** (asserted below):
# 1. each compiled model outputs exactly what its RASP program outputs, on every input of
#    length 1 to 5;
# 2. the ground truth holds: removing any edge outside the true circuit changes no output
#    on any input, and removing any true edge changes some;
# 3. no method but path patching reports a node or edge outside the true circuit
#    (precision 1): path patching's path from a head also runs through MLPs, so it
#    reports direct edges that are not there;
# 4. methods that compare a clean with a corrupted input see only what differs between
#    the two: exact edge patching finds exactly the true edges whose signal differs, and
#    none of the rest (e.g. everything that depends only on the length, when both inputs
#    have the same length);
# 5. ACDC, pruning edges by exact patching, keeps no false edge either, and with
#    corrupted inputs keeps exactly the edges exact edge patching finds, at every threshold
#    τ we try; with zero ablation instead it also finds what the two inputs share, and
#    misses only edges whose zeroed value the model reads as a real one;
# 6. EAP, a gradient, misses the edges into queries and keys and most edges into MLPs,
#    where Tracr's attention is hard and its MLPs are step functions, but is exact on edges
#    into the logits; integrated gradients repair little of it;
# 7. swapping a variable's own subspace between two inputs (interchange intervention)
#    changes the output exactly as the program predicts (IIA 1.0); swapping a random
#    subspace of the same size does not.
#
# *No `MODEL` parameter here:* a Tracr model is compiled from a program, not trained, so
# it cannot be swapped for a hub model such as `gpt2`.

# %% [markdown]
# **Learning objectives.** After this notebook you can
# * check a compiled model against its program on every input, and score agreement
#   yourself (exercise);
# * read a ground-truth circuit from the weights and confirm it causally, removing one
#   edge at a time (exercise: remove an edge from a query by hand);
# * score discovery methods (exact edge patching, activation and path patching, EAP,
#   EAP-IG, ACDC) against known edges by precision, recall and AUROC (exercises);
# * say what each method cannot see: what the clean and corrupted inputs share, slopes
#   through hard attention and step-function MLPs, and what a zeroed input looks like to
#   the model;
# * test which residual subspace carries a variable with interchange interventions.
#
# **Prerequisites:** notebooks 05 and 06 (activation and path patching), 07 (Q/K
# composition), 08 (EAP, EAP-IG and ACDC).
# **Time:** about 40 min to read and run, plus 45 min of exercises.

# %% tags=["parameters"]
PROGRAMS = ["length", "reverse", "hist", "sort", "frac_prevs", "double_hist", "induction_count"]
N_PAIRS = 64  # clean/corrupted pairs per program
IG_STEPS = 8  # EAP-IG's interpolation steps
ACDC_TAUS = (0.001, 0.01, 0.1)  # ACDC's thresholds, as fractions of the clean-to-corrupted gap

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
import random

import matplotlib.pyplot as plt
import pandas as pd
import torch

from mi_helpers.circuits import acdc, edge_attribution, edge_patching
from mi_helpers.circuits.edge_patching import edge_differences
from mi_helpers.core.results import SweepResult
from mi_helpers.tracr import load_tracr
from mi_helpers.tracr.ground_truth import ablation_changes
from mi_helpers.tracr.interchange import informative_pairs, interchange_accuracy, random_basis
from mi_helpers.tracr.methods import (clean_distance, node_patching, output_metric,
                                      path_patching_edges)
from mi_helpers.tracr.plot import draw_circuit
from mi_helpers.tracr.recovery import (DEFAULT_THRESHOLD, importance, recovery_table,
                                      through_mlps)

torch.manual_seed(0)
torch.set_num_threads(1)  # the models are tiny: more threads only wait for each other
models = {name: load_tracr(name) for name in PROGRAMS}
pd.set_option("display.width", 200)
pd.set_option("display.max_columns", 20)
print(pd.DataFrame([{
    "program": name, "computes": m.spec["description"],
    "layers": m.model.cfg.n_layers, "heads": m.model.cfg.n_heads,
    "d_model": m.model.cfg.d_model,
    "operations -> nodes": ", ".join(f"{op}: {'+'.join(n.name for n in nodes)}"
                                     for op, nodes in m.operations.items()),
} for name, m in models.items()]).to_string(index=False))

# %% [markdown]
# ## 1. The compiled model computes the program
# Every input of length 1 to 5 over the vocabulary {1, 2, 3} (363 inputs), run through
# the compiled model (a TransformerLens `TransformerBridge`, loaded strictly) and through
# RASP (its outputs were stored at compile time by Tracr's own evaluator). Position 0
# is the BOS token; the outputs start after it.

# %%
agreement = {}
for name, m in models.items():
    same = total = 0
    for length in range(1, m.max_seq_len + 1):
        inputs = m.inputs(length)
        for ours, rasp in zip(m.run(inputs), m.reference(inputs)):
            same += all(abs(a - b) < 1e-4 for a, b in zip(ours, rasp)) if m.numerical else ours == rasp
            total += 1
    agreement[name] = same / total
    example = (3, 2, 2, 1, 2)
    print(f"{name:16s} agrees on {same}/{total} inputs; e.g. {list(example)} -> "
          f"{[round(v, 2) if m.numerical else v for v in m.run([example])[0]]}")

# %%
assert all(share == 1.0 for share in agreement.values()), agreement

# %% [markdown]
# ### Exercise 11.1: agreement with the program
# **Difficulty** 1/5 · **Importance** 4/5 · **Time** about 5 min
#
# Write `sequence_agreement(logits, expected)` for a program with a categorical output:
# `logits` is the compiled model's `[batch, pos, d_vocab_out]` on inputs that start with
# BOS, `expected` is `[batch, pos - 1]`, the id of the program's output at each position
# after BOS. Return, as a float, the share of inputs whose output is right at *every*
# position: one wrong position makes the whole input wrong.
#
# <details><summary>Hint 1</summary>
#
# The prediction at a position is the `argmax` over the output vocabulary; position 0
# (BOS) has no output, so compare `logits[:, 1:]`.
# </details>
#
# <details><summary>Hint 2</summary>
#
# `(logits[:, 1:].argmax(-1) == expected)` is `[batch, pos - 1]`; `.all(-1)` says which
# inputs are entirely right; `.float().mean().item()`.
# </details>

# %%
from torch import Tensor


def sequence_agreement(logits: Tensor, expected: Tensor) -> float:
    """Share of inputs whose every output after BOS is the expected one."""
    # BEGIN SOLUTION
    return (logits[:, 1:].argmax(-1) == expected).all(-1).float().mean().item()
    # END SOLUTION
    # STUB raise NotImplementedError("argmax after BOS, all positions right, mean over inputs")

# %%
from mi_helpers.exercises import check_sequence_agreement

check_sequence_agreement(sequence_agreement)

# %% [markdown]
# ## 2. The ground truth
# Tracr gives each value of each variable its own residual dimension, so we can read
# from the weights which dimensions every node writes and every receiver (a head's
# query, key or value input, an MLP's input, the logits) reads. An edge is *connected*
# when the sender writes what the receiver reads. A few connected edges are *inert*:
# every attention head in Tracr also reads a BOS flag and a constant so that it can fall
# back to BOS when its selector selects nothing; where the selector always selects
# something (or everything, as in `length`), that part is never used. The compiler's
# view of `induction_count`, our own program with two interacting heads:

# %%
ic = models["induction_count"]
gt = ic.spec["ground_truth"]
labels = gt["residual_labels"]
for var in ic.program_variables:
    print(f"variable {var:16s} dims {ic.variables[var]}: "
          f"{[labels[d] for d in ic.variables[var]][:6]}")
print("operations:", {op: [n.name for n in nodes] for op, nodes in ic.operations.items()})
print("true edges:", gt["edges"])
print("inert edges:", gt["inert_edges"])
for name, m in models.items():
    print(f"{name:16s} {len(m.circuit)} true edges of {len(m.graph.edges)} "
          f"({len(m.spec['ground_truth']['inert_edges'])} connected but inert)")

# %% [markdown]
# The test of a ground truth is causal: remove each edge of the graph alone (its
# sender's output replaced by zeros in that one receiver's input; exact, because Tracr
# models have no LayerNorm) and count the inputs whose output changes.

# %%
outside_changes, true_unchanged = {}, {}
for name, m in models.items():
    changes = ablation_changes(m, m.graph.edges)
    outside_changes[name] = sum(changes[e] for e in m.graph.edges if e not in m.circuit.edges)
    true_unchanged[name] = [e.name for e in m.circuit.edges if changes[e] == 0]
    print(f"{name:16s} outputs changed by removing an edge outside the circuit: "
          f"{outside_changes[name]}; true edges that change nothing: {true_unchanged[name]}")

# %%
assert all(n == 0 for n in outside_changes.values()), outside_changes
assert all(not edges for edges in true_unchanged.values()), true_unchanged

# %% [markdown]
# ### Exercise 11.2: remove an edge into a query, by hand
# **Difficulty** 2/5 · **Importance** 5/5 · **Time** about 10 min
#
# Without LayerNorm a head's query is linear in the residual stream, `q = resid @ W_Q +
# b_Q`, and the residual is the sum of what every earlier node wrote. So removing the
# edge from one sender to one head's query (zero ablation, as above) means subtracting
# that sender's share from that head's query, and nothing else. Write
# `remove_edge(q, sender_out, W_Q, head)`: `q` is one layer's queries `[batch, pos, head,
# d_head]` (as `blocks.L.attn.hook_q` holds them), `sender_out` the sender's output
# `[batch, pos, d_model]`, `W_Q` the layer's `[head, d_model, d_head]`; return the
# queries with the edge into `head` removed.
#
# <details><summary>Hint 1</summary>
#
# The sender contributed `sender_out @ W_Q[head]` (`[batch, pos, d_head]`) to head
# `head`'s query. The other heads' queries keep it: their edges from this sender stay.
# </details>
#
# <details><summary>Hint 2</summary>
#
# `q = q.clone(); q[:, :, head] -= sender_out @ W_Q[head]; return q`. With LayerNorm this
# would not be exact: the norm's scale depends on the whole residual.
# </details>

# %%
from torch import Tensor


def remove_edge(q: Tensor, sender_out: Tensor, W_Q: Tensor, head: int) -> Tensor:
    """Queries with the edge sender -> head.q removed (the sender's share set to zero)."""
    # BEGIN SOLUTION
    q = q.clone()
    q[:, :, head] -= sender_out @ W_Q[head]
    return q
    # END SOLUTION
    # STUB raise NotImplementedError("subtract the sender's contribution from one head's query")

# %%
from mi_helpers.exercises import check_remove_edge

check_remove_edge(remove_edge)

# %% [markdown]
# ## 3. Clean and corrupted inputs
# Each method compares a **clean** input with a **corrupted** one: here two random
# inputs of length 5 (`N_PAIRS` pairs). The metric projects the logits on the
# difference between the clean and the corrupted outputs, at every position: it is
# linear, so gradient methods see it too. For `length`, every input of length 5 has the
# same output, so there is no difference to explain.

# %%
rng = random.Random(0)
pairs, differing = {}, {}
for name, m in models.items():
    inputs = m.inputs(m.max_seq_len)
    clean_in = rng.sample(inputs, N_PAIRS)
    corrupted_in = [rng.choice(inputs) for _ in clean_in]
    pairs[name] = (m.encode(clean_in), m.encode(corrupted_in))
    differing[name] = sum(a != b for a, b in zip(m.run(clean_in), m.run(corrupted_in)))
    print(f"{name:16s} outputs differ in {differing[name]}/{N_PAIRS} pairs")

# %%
assert differing["length"] == 0
assert all(differing[name] > N_PAIRS // 2 for name in PROGRAMS if name != "length")

# %% [markdown]
# ## 4. What each method finds
# Exact **edge patching** removes one edge at a time from the clean run, giving its
# receiver the sender's corrupted output; **activation patching** does that to a whole
# head or MLP output; **path patching** (notebook 06) patches a head's corrupted output
# along the path to a later head's q/k/v or to the logits; **EAP** estimates every
# edge's effect from one gradient, **EAP-IG** averages the gradient over inputs moving
# from corrupted to clean. **ACDC** ([Conmy et al.,
# 2023](https://arxiv.org/abs/2304.14997); notebook 08) prunes: from the logits
# backwards it removes each edge for good when that moves the run less than τ away from
# the clean one. ACDC usually measures that distance by a KL divergence; one of our
# programs outputs a number (a single logit, whose softmax is constant), so we use the
# squared distance of the logits from the clean run, with τ a fraction (`ACDC_TAUS`) of
# the clean-to-corrupted distance. We run it twice: with removed edges carrying the
# corrupted output (**resample ablation**, like every other method here) and carrying
# zeros (**zero ablation**). A *random* scorer is the control. An edge (or node) counts
# as found when the method gives it more than 1% of the clean-to-corrupted gap, or when
# ACDC keeps it at τ = 1%.
#
# ACDC returns a circuit, not scores, so its ROC curve has a single point and its AUROC
# (ties counting half) is the mean of its true-positive and true-negative rates. The
# paper draws a curve by varying τ; here every τ from 0.1% to 10% gives the same
# circuit (asserted below), so varying it adds no points.

# %%
results, acdc_circuits = {}, {}
for name in PROGRAMS:
    if differing[name] == 0:
        print(f"{name}: no clean/corrupted pair differs, so no method has anything to find")
        continue
    m, (clean, corrupted) = models[name], pairs[name]
    with torch.no_grad():
        metric = output_metric(m.model(clean), m.model(corrupted))
    exact = edge_patching(m.model, clean, corrupted, metric)
    with torch.no_grad():
        distance = clean_distance(m.model(clean))
        gap = distance(m.model(corrupted)).item()
    for ablation in ("resample", "zero"):
        for tau in sorted({*ACDC_TAUS, DEFAULT_THRESHOLD}):
            acdc_circuits[name, ablation, tau] = acdc(
                m.model, clean, corrupted if ablation == "resample" else None, distance,
                tau=tau * gap, progress=False)
    noise = torch.rand(len(m.graph.edges), generator=torch.Generator().manual_seed(0))
    results[name] = {
        "edge patching": exact,
        "activation patching": node_patching(m.model, clean, corrupted, metric),
        "path patching": path_patching_edges(m.model, m.graph, clean, corrupted, metric),
        "EAP": edge_attribution(m.model, clean, corrupted, metric),
        "EAP-IG": edge_attribution(m.model, clean, corrupted, metric, ig_steps=IG_STEPS),
        "ACDC": acdc_circuits[name, "resample", DEFAULT_THRESHOLD],
        "ACDC (zero ablation)": acdc_circuits[name, "zero", DEFAULT_THRESHOLD],
        "random (control)": SweepResult(exact.corrupted + noise * (exact.clean - exact.corrupted),
                                        ("edge",), {"edge": list(m.graph.edges)}, exact.clean,
                                        exact.corrupted, method="random, denoise"),
    }
rows = [dict(program=name, **row) for name, res in results.items()
        for row in recovery_table(res, models[name].circuit)]
table = pd.DataFrame(rows).set_index(["program", "method"])
columns = ["node precision", "node recall", "node AUROC", "edge precision", "edge recall",
           "edge AUROC", "edges scored"]
print(table[columns].round(2).to_string())

# %% [markdown]
# Precision is 1 for every method but path patching and the random control: on a Tracr
# model an edge outside the circuit carries nothing, so neither an intervention nor a
# gradient can give it weight, and ACDC never needs to keep it. Path patching's false
# edges run from a head to a later head or the logits *through MLPs*: its sender run
# freezes the other heads but recomputes the MLPs, so the effect of the route through an
# MLP is credited to the direct edge.

# %%
false_paths = {name: [e for e, v in importance(res["path patching"]).items()
                      if v > DEFAULT_THRESHOLD and e not in models[name].circuit.edges]
               for name, res in results.items()}
print({name: [e.name for e in edges] for name, edges in false_paths.items()})
mediated = {name: [through_mlps(models[name].circuit, e) for e in edges]
            for name, edges in false_paths.items()}
print("each joined to its receiver by true edges through MLPs:", mediated)

# %%
exact_methods = ["edge patching", "activation patching", "EAP", "EAP-IG", "ACDC",
                 "ACDC (zero ablation)"]
assert (table.loc[(slice(None), exact_methods), "node precision"] == 1).all()
edge_methods = ["edge patching", "EAP", "EAP-IG", "ACDC", "ACDC (zero ablation)"]
assert (table.loc[(slice(None), edge_methods), "edge precision"] == 1).all()
assert sum(map(len, false_paths.values())) >= 3, "path patching reports false direct edges"
assert all(all(flags) for flags in mediated.values())
random_auroc = table.xs("random (control)", level="method")["edge AUROC"]
assert (table.xs("edge patching", level="method")["edge AUROC"] > random_auroc).all()

# %% [markdown]
# Recall is where the methods part. Edge patching's missed edges are exactly the true
# edges along which the clean and corrupted runs send **the same thing** (measured: the
# largest change of the receiver's input from the sender's clean vs corrupted output).
# Such an edge is invisible to any method built on this comparison: e.g. in `reverse`,
# the head counting the length, the MLP computing `length - i - 1` and the query of the
# head that reads position `length - i - 1` all depend only on the length, which is 5 in
# every pair.

# %%
invisible, missed_by_exact = {}, {}
for name, res in results.items():
    m, (clean, corrupted) = models[name], pairs[name]
    carried = edge_differences(m.model, clean, corrupted)
    invisible[name] = sorted(e.name for e in m.circuit.edges if carried[e] < 1e-6)
    found = importance(res["edge patching"])
    missed_by_exact[name] = sorted(e.name for e in m.circuit.edges if found[e] <= DEFAULT_THRESHOLD)
    print(f"{name:16s} invisible true edges: {invisible[name]}")

# %%
assert missed_by_exact == invisible
assert {"MLP1 -> L2H0.q", "L0H0 -> MLP0"} <= set(invisible["reverse"])

# %% [markdown]
# ### ACDC against the truth
# ACDC decides by exact patching, so with corrupted inputs it inherits patching's blind
# spot: removing an edge along which both runs send the same thing changes nothing,
# whatever τ. The table below compares, per program, the circuit ACDC keeps at τ = 1%
# with the edges that exact edge patching, one edge at a time with the same ablation and
# metric, finds; and ACDC's circuits at every τ in `ACDC_TAUS` with each other. Zero
# ablation does not compare two inputs: a removed edge carries nothing at all.

# %%
acdc_rows, alone = [], []
for name in results:
    m, (clean, corrupted) = models[name], pairs[name]
    with torch.no_grad():
        distance = clean_distance(m.model(clean))
    for ablation in ("resample", "zero"):
        # ACDC's first test of each edge: its distance from the clean run, removed alone
        single = importance(edge_patching(
            m.model, clean, corrupted if ablation == "resample" else None, distance))
        alone += list(single.values())
        one_edge_found = {e for e, v in single.items() if v > DEFAULT_THRESHOLD}
        kept = acdc_circuits[name, ablation, DEFAULT_THRESHOLD].edges
        acdc_rows.append({
            "program": name, "ablation": ablation, "true edges": len(m.circuit.edges),
            "kept": len(kept), "true kept": len(kept & m.circuit.edges),
            "same at every τ": all(acdc_circuits[name, ablation, tau].edges == kept
                                   for tau in ACDC_TAUS),
            "= one-edge patching's": kept == one_edge_found,
            "missed": ", ".join(sorted(e.name for e in m.circuit.edges - kept))})
acdc_table = pd.DataFrame(acdc_rows)
print(acdc_table.to_string(index=False))
smallest_found = min(v for v in alone if v > DEFAULT_THRESHOLD)
largest_unfound = max(v for v in alone if v <= DEFAULT_THRESHOLD)
print(f"one edge removed alone moves the run, as a share of the clean-to-corrupted distance: "
      f"at least {smallest_found:.3f} or at most {largest_unfound:.3f}")

# %%
assert acdc_table["same at every τ"].all(), "ACDC's circuit does not depend on τ here"
resample_rows = acdc_table[acdc_table["ablation"] == "resample"]
zero_rows = acdc_table[acdc_table["ablation"] == "zero"]
assert acdc_table["= one-edge patching's"].all(), "ACDC keeps what one-edge patching finds"
assert (zero_rows["true kept"].to_numpy() >= resample_rows["true kept"].to_numpy()).all()
assert (zero_rows["true edges"] - zero_rows["true kept"]).sum() <= 2
assert all(acdc_circuits[name, "resample", DEFAULT_THRESHOLD].edges
           == {e for e, v in importance(res["edge patching"]).items() if v > DEFAULT_THRESHOLD}
           for name, res in results.items()), "the same edges as the table's edge patching"
assert (resample_rows["true edges"] - resample_rows["true kept"]).sum() >= 20
assert largest_unfound < min(ACDC_TAUS) and smallest_found > max(ACDC_TAUS)

# %% [markdown]
# So on these models ACDC is exact edge patching with a threshold: with corrupted inputs
# it is right about every edge it keeps and blind to the same true edges as the table's
# edge patching (every edge that carries the length, or the positions, which are equal
# in two inputs of length 5). It does not depend on τ because one edge's effect here is
# all or nothing: removed alone, an edge moves the run either not at all or by a large
# share of the clean-to-corrupted distance (printed), and every τ tried lies in the gap
# between.
#
# Zero ablation recovers all but the edges printed below, in `reverse`. They carry the
# length: head `L0H0` attends to BOS and to every token and reads only the BOS flag, so
# it writes 1/(n + 1) for n tokens (printed), and `MLP0` turns that into n. A zeroed
# edge writes 0, closer to 1/6 than to any other value: the model reads "no signal" as
# "length 5", which is what every input we ran had. On shorter inputs the same ablation
# changes outputs.

# %%
zero_missed = {name: sorted(models[name].circuit.edges
                            - acdc_circuits[name, "zero", DEFAULT_THRESHOLD].edges)
               for name in results}
zero_missed = {name: edges for name, edges in zero_missed.items() if edges}
missed_changes = {}
for name, edges in zero_missed.items():
    m = models[name]
    at_max = ablation_changes(m, edges, lengths=[m.max_seq_len])
    shorter = ablation_changes(m, edges, lengths=range(1, m.max_seq_len))
    for edge in edges:
        missed_changes[name, edge.name] = (at_max[edge], shorter[edge])
        print(f"{name}: zeroing {edge.name} changes {at_max[edge]} of the "
              f"{len(m.inputs(m.max_seq_len))} outputs of length {m.max_seq_len}, and "
              f"{shorter[edge]} of the {sum(len(m.inputs(n)) for n in range(1, m.max_seq_len))} "
              f"shorter ones")
reverse = models["reverse"]
for n in range(1, reverse.max_seq_len + 1):
    _, cache = reverse.model.run_with_cache(reverse.encode(reverse.inputs(n)[:1]))
    written = cache["blocks.0.attn.hook_z"][0, 1, 0] @ reverse.model.W_O[0, 0]
    print(f"reverse, length {n}: L0H0 writes {written.abs().max().item():.3f}")

# %%
assert set(zero_missed) <= {"reverse"}
assert all(at_max == 0 and shorter > 0 for at_max, shorter in missed_changes.values())

# %% [markdown]
# EAP needs the metric to be locally sensitive to an edge. Tracr's attention is hard
# (its query weights are much larger than its value weights, printed below, so attention
# is all or nothing) and its categorical MLPs are lookup tables built from steep ReLUs,
# flat between their steps. So the gradient through a query, a key or such an MLP is
# zero (or small), however much the edge matters. Edges into values and into the logits,
# where the path to the output is linear, EAP gets exactly right. Integrated gradients
# move the inputs from corrupted to clean in `IG_STEPS` steps; on step functions few of
# the steps see a slope.

# %%
for name in results:
    W = models[name].model
    print(f"{name:16s} largest |W_Q| {W.W_Q.abs().max().item():6.1f}, largest |W_V| "
          f"{W.W_V.abs().max().item():4.1f}")
edge_rows = []
for name, res in results.items():
    scores = {method: importance(res[method]) for method in ("edge patching", "EAP", "EAP-IG")}
    for edge in sorted(models[name].circuit.edges):
        if edge.name not in invisible[name]:
            edge_rows.append({"program": name, "edge": edge.name, "into": edge.channel,
                              **{method: s[edge] for method, s in scores.items()}})
visible = pd.DataFrame(edge_rows)
print(visible.round(3).to_string(index=False))
qk = visible[visible["into"].isin(["q", "k"])]
linear = visible[visible["edge"].str.endswith("logits") | (visible["into"] == "v")]
print(f"\nedges into a query or key: {len(qk)}; EAP's largest importance there "
      f"{qk['EAP'].max():.3f}, exact edge patching's smallest {qk['edge patching'].min():.3f}; "
      f"EAP-IG finds {(qk['EAP-IG'] > DEFAULT_THRESHOLD).sum()} of them")
logit_gap = (visible[visible["edge"].str.endswith("logits")][["EAP", "edge patching"]]
             .diff(axis=1).abs().max().max())
print(f"edges into the logits: EAP and exact edge patching agree to 1e-5: {logit_gap < 1e-5}")

# %%
assert len(qk) >= 8 and qk["EAP"].max() < 1e-3 and qk["edge patching"].min() > 0.3
into_logits = visible[visible["edge"].str.endswith("logits")]
assert (into_logits["EAP"] - into_logits["edge patching"]).abs().max() < 1e-4
assert (qk["EAP-IG"] > DEFAULT_THRESHOLD).sum() < len(qk) / 2, "integrated gradients repair little"
assert (table.xs("EAP", level="method")["edge recall"]
        <= table.xs("edge patching", level="method")["edge recall"]).all()

# %% [markdown]
# The true circuit of `induction_count`, coloured by what was found: the previous-token
# head `L0H0` feeds the second head's **keys** (K-composition, as in an induction head;
# notebook 07).

# %%
name = "induction_count"
exact_found = importance(results[name]["edge patching"])
eap_found = importance(results[name]["EAP"])
colours = {}
for edge in models[name].circuit.edges:
    if eap_found[edge] > DEFAULT_THRESHOLD:
        colours[edge] = "tab:green"
    elif exact_found[edge] > DEFAULT_THRESHOLD:
        colours[edge] = "tab:orange"
    else:
        colours[edge] = "0.7"
draw_circuit(models[name].graph, colours, f"{name}: the true circuit", legend={
    "tab:green": "found by EAP and exact patching", "tab:orange": "found by exact patching only",
    "0.7": "invisible: same on clean and corrupted"})
plt.show()

# %% [markdown]
# ### Exercise 11.3: precision and recall of a discovered circuit
# **Difficulty** 1/5 · **Importance** 4/5 · **Time** about 5 min
#
# Write `precision_recall(found, truth)`: two boolean `[edge]` masks over the graph's
# edges (what a method found, and the true circuit), returning `(precision, recall)` as
# floats. Precision: of the edges found, the share that is true. Recall: of the true
# edges, the share that was found. (Every case has at least one edge found.)
#
# <details><summary>Hint 1</summary>
#
# The hits are `found & truth`. Precision and recall divide the same number of hits by
# different totals.
# </details>
#
# <details><summary>Hint 2</summary>
#
# `hits = (found & truth).sum().item()`; precision `hits / found.sum().item()`, recall
# `hits / truth.sum().item()`.
# </details>

# %%
from torch import Tensor


def precision_recall(found: Tensor, truth: Tensor) -> tuple[float, float]:
    """(precision, recall) of the found edges against the true ones (boolean [edge] masks)."""
    # BEGIN SOLUTION
    hits = (found & truth).sum().item()
    return hits / found.sum().item(), hits / truth.sum().item()
    # END SOLUTION
    # STUB raise NotImplementedError("hits / found, hits / true")

# %%
from mi_helpers.exercises import check_precision_recall

check_precision_recall(precision_recall)

# %% [markdown]
# ### Exercise 11.4: AUROC, the ranking without a threshold
# **Difficulty** 3/5 · **Importance** 4/5 · **Time** about 15 min
#
# Precision and recall depend on where we cut the scores. AUROC does not: it is the
# chance that a randomly chosen true edge gets a higher score than a randomly chosen
# false one, a tie counting half (the area under the ROC curve). Write
# `auroc(scores, truth)`: `scores` `[edge]` floats, `truth` a boolean `[edge]` mask with
# both kinds of edges; return a float. A random scorer gives about 0.5, a perfect one 1.
#
# <details><summary>Hint 1</summary>
#
# Compare every true edge's score with every false edge's: broadcasting
# `scores[truth][:, None]` against `scores[~truth][None, :]` gives a `[true, false]` grid.
# </details>
#
# <details><summary>Hint 2</summary>
#
# `(grid_greater.float() + 0.5 * grid_equal.float()).mean().item()`, with `grid_greater =
# true_scores > false_scores` and `grid_equal = true_scores == false_scores`. Ties matter
# here: ACDC's scores are all 0 or 1.
# </details>

# %%
from torch import Tensor


def auroc(scores: Tensor, truth: Tensor) -> float:
    """P(a random true edge outscores a random false one), ties counting half."""
    # BEGIN SOLUTION
    true_scores, false_scores = scores[truth][:, None], scores[~truth][None, :]
    wins = (true_scores > false_scores).float() + 0.5 * (true_scores == false_scores).float()
    return wins.mean().item()
    # END SOLUTION
    # STUB raise NotImplementedError("compare every true edge's score with every false one's")

# %%
from mi_helpers.exercises import check_auroc

check_auroc(auroc)

# %% [markdown]
# ## 5. Interchange interventions on the variables' subspaces
# For each variable of each program: run a base input, but take the variable's
# residual dimensions (right after the node that writes it) from a source input. The
# program, run on the base input with that variable set to its source value, says what
# the output must be; IIA is the share of pairs where the model agrees. Pairs where the
# variable is the same on both inputs test nothing and are left out; variables that
# are the same on every input of length 5 (the length, positions) cannot be tested
# this way at all. The control swaps a random subspace of the same size at the same place.

# %%
iia_rows = []
for name, m in models.items():
    for var in m.program_variables:
        var_pairs = informative_pairs(m, var, N_PAIRS, seed=1)
        if not var_pairs:
            print(f"{name}.{var}: the same on every input of length {m.max_seq_len}; not testable")
            continue
        basis = random_basis(m.model.cfg.d_model, len(m.variables[var]), seed=0)
        own = interchange_accuracy(m, var, var_pairs)
        rand = interchange_accuracy(m, var, var_pairs, basis, subspace="random")
        iia_rows.append({"program": name, "variable": var, "dims": len(m.variables[var]),
                         "site": own.hook, "pairs": own.n_pairs, "IIA": own.accuracy,
                         "IIA random": rand.accuracy})
iia = pd.DataFrame(iia_rows)
print(iia.round(2).to_string(index=False))

# %%
assert len(iia) >= 15 and (iia["IIA"] == 1.0).all()
assert iia["IIA random"].max() < 0.2

# %% [markdown]
# ## Summary
# * The compiled models compute their programs exactly, and their circuits are known:
#   removing any edge outside the true circuit changes nothing, removing any true edge
#   changes some output (section 2). Interchange interventions confirm the variables'
#   subspaces: IIA 1.0 on each variable's own dimensions, near 0 on random ones.
# * Against this truth, no method but path patching reports a false edge, because nothing
#   else flows in a Tracr model. Path patching's path from a head also counts the routes
#   through MLPs, so it names direct edges that do not exist.
# * Every comparison of a clean with a corrupted input is blind to what the two share:
#   exact edge patching found precisely the true edges whose signal differs. Choosing
#   the corruption is choosing what the method can find (here, nothing about length).
# * ACDC keeps no false edge either. With corrupted inputs its circuit is exactly the set
#   one-at-a-time edge patching finds, the same at every τ we tried: it shares patching's
#   blind spot. With zero ablation it found every true edge but the two that carry the
#   length in `reverse`, where a zeroed signal reads as the length every input had.
# * EAP fails where the model is a step function, on queries, keys and lookup-table
#   MLPs, and is exact where the path to the output is linear; integrated gradients
#   repaired few of those edges.

# %% [markdown]
# ## Further reading
# * [Lindner et al. (2023), *Tracr: Compiled Transformers as a Laboratory for
#   Interpretability*](https://arxiv.org/abs/2301.05062); [Weiss et al. (2021), *Thinking
#   Like Transformers*](https://arxiv.org/abs/2106.06981) (RASP).
# * [Conmy et al. (2023), *Towards Automated Circuit Discovery for Mechanistic
#   Interpretability*](https://arxiv.org/abs/2304.14997) (ACDC, scored on Tracr models by
#   AUROC).
# * [Gupta et al. (2024), *InterpBench*](https://arxiv.org/abs/2407.14494): transformers
#   trained to implement Tracr's circuits, a benchmark closer to trained models.
# * [Syed et al. (2023), *Attribution Patching Outperforms Automated Circuit
#   Discovery*](https://arxiv.org/abs/2310.10348) (EAP); [Hanna et al. (2024), *Have Faith
#   in Faithfulness*](https://arxiv.org/abs/2403.17806) (EAP-IG).
# * [Zhang & Nanda (2023), *Towards Best Practices of Activation
#   Patching*](https://arxiv.org/abs/2309.16042): how the choice of corruption changes
#   what patching finds.
# * [Geiger et al. (2021), *Causal Abstractions of Neural
#   Networks*](https://arxiv.org/abs/2106.02997) (interchange interventions, IIA).
