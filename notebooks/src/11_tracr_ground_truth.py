# %% [markdown]
# # 11 · Ground truth: circuits compiled by Tracr, and how well our tools recover them
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
# ([Syed et al., 2023](https://arxiv.org/abs/2310.10348)) and EAP-IG
# ([Hanna et al., 2024](https://arxiv.org/abs/2403.17806)) on clean/corrupted pairs,
# and score what each finds against the truth. Finally, interchange interventions
# ([Geiger et al., 2021](https://arxiv.org/abs/2106.02997)) test the variables' subspaces.
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
# 5. EAP, a gradient, misses the edges into queries and keys and most edges into MLPs,
#    where Tracr's attention is hard and its MLPs are step functions, but is exact on edges
#    into the logits; integrated gradients repair little of it;
# 6. swapping a variable's own subspace between two inputs (interchange intervention)
#    changes the output exactly as the program predicts (IIA 1.0); swapping a random
#    subspace of the same size does not.
#
# *No `MODEL` parameter here:* a Tracr model is compiled from a program, not trained, so
# it cannot be swapped for a hub model such as `gpt2`.

# %% tags=["parameters"]
PROGRAMS = ["length", "reverse", "hist", "sort", "frac_prevs", "double_hist", "induction_count"]
N_PAIRS = 64  # clean/corrupted pairs per program
IG_STEPS = 8  # EAP-IG's interpolation steps

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
import random

import matplotlib.pyplot as plt
import pandas as pd
import torch

from mi_helpers.core.results import SweepResult
from mi_helpers.tracr import load_tracr
from mi_helpers.tracr.edges import edge_differences, edge_patching
from mi_helpers.tracr.ground_truth import ablation_changes
from mi_helpers.tracr.interchange import informative_pairs, interchange_accuracy, random_basis
from mi_helpers.tracr.methods import eap, node_patching, output_metric, path_patching_edges
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
# from corrupted to clean. A *random* scorer is the control. An edge (or node) counts
# as found when the method gives it more than 1% of the clean-to-corrupted gap.

# %%
results = {}
for name in PROGRAMS:
    if differing[name] == 0:
        print(f"{name}: no clean/corrupted pair differs, so no method has anything to find")
        continue
    m, (clean, corrupted) = models[name], pairs[name]
    with torch.no_grad():
        metric = output_metric(m.model(clean), m.model(corrupted))
    exact = edge_patching(m.model, m.graph, clean, corrupted, metric)
    noise = torch.rand(len(m.graph.edges), generator=torch.Generator().manual_seed(0))
    results[name] = {
        "edge patching": exact,
        "activation patching": node_patching(m.model, clean, corrupted, metric),
        "path patching": path_patching_edges(m.model, m.graph, clean, corrupted, metric),
        "EAP": eap(m.model, m.graph, clean, corrupted, metric),
        "EAP-IG": eap(m.model, m.graph, clean, corrupted, metric, ig_steps=IG_STEPS),
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
# gradient can give it weight. Path patching's false edges run from a head to a later
# head or the logits *through MLPs*: its sender run freezes the other heads but
# recomputes the MLPs, so the effect of the route through an MLP is credited to the
# direct edge.

# %%
false_paths = {name: [e for e, v in importance(res["path patching"]).items()
                      if v > DEFAULT_THRESHOLD and e not in models[name].circuit.edges]
               for name, res in results.items()}
print({name: [e.name for e in edges] for name, edges in false_paths.items()})
mediated = {name: [through_mlps(models[name].circuit, e) for e in edges]
            for name, edges in false_paths.items()}
print("each joined to its receiver by true edges through MLPs:", mediated)

# %%
exact_methods = ["edge patching", "activation patching", "EAP", "EAP-IG"]
assert (table.loc[(slice(None), exact_methods), "node precision"] == 1).all()
assert (table.loc[(slice(None), ["edge patching", "EAP", "EAP-IG"]), "edge precision"] == 1).all()
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
    carried = edge_differences(m.model, m.graph, clean, corrupted)
    invisible[name] = sorted(e.name for e in m.circuit.edges if carried[e] < 1e-6)
    found = importance(res["edge patching"])
    missed_by_exact[name] = sorted(e.name for e in m.circuit.edges if found[e] <= DEFAULT_THRESHOLD)
    print(f"{name:16s} invisible true edges: {invisible[name]}")

# %%
assert missed_by_exact == invisible
assert {"MLP1 -> L2H0.q", "L0H0 -> MLP0"} <= set(invisible["reverse"])

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
print(f"edges into the logits: EAP - exact at most "
      f"{(visible[visible['edge'].str.endswith('logits')][['EAP', 'edge patching']].diff(axis=1).abs().max().max()):.1e}")

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
# * EAP fails where the model is a step function, on queries, keys and lookup-table
#   MLPs, and is exact where the path to the output is linear; integrated gradients
#   repaired few of those edges. ACDC (being built in `mi_helpers.circuits`) will plug into the
#   same table through `recovery_table`.
