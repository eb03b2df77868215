"""No silent wrong answers: every public function the notebooks use answers a bad input with
its own message, naming the problem in the user's terms (one case at least per function;
the per-module tests add more)."""

from functools import cache

import pytest
import torch

from mi_helpers import (circuits, core, datasets, dynamics, features, interventions, universality,
                        viz)
from mi_helpers.core import Circuit, CircuitGraph, Head
from mi_helpers.core.metrics import PositionMetric
from mi_helpers.features import autointerp, dashboards, probing, sae, superposition
from mi_helpers.features.attribution import logit_difference_attribution
from mi_helpers.tracr import load_tracr
from mi_helpers.tracr.interchange import informative_pairs, interchange_accuracy
from mi_helpers.tracr.methods import (clean_distance, node_patching, output_metric,
                                      path_patching_edges)
from mi_helpers.tracr.plot import draw_circuit
from mi_helpers.tracr.recovery import importance, recovery_table, through_mlps

PROMPT = "When Mary and John went to the store , John gave a drink to"


@pytest.fixture(scope="module")
def m(tiny_model):
    return tiny_model


def tokens(m, text=PROMPT):
    return m.to_tokens(text)


def metric(logits):
    return logits[:, -1, 5].mean()


@cache
def evaluator(m):
    toks = tokens(m)
    return circuits.CircuitEvaluator(m, toks, metric, circuits.head_means(m, toks))


@cache
def neuron_stats(m):
    """A reader of layer 0's neurons, its statistics and the tokens they were collected on."""
    reader = dashboards.NeuronReader(m, 0)
    toks = m.to_tokens(["the cat sat on the mat .", "Mary gave a drink to John ."])
    return reader, dashboards.collect_statistics(m, reader, toks, progress=False), toks


@cache
def dashboard(m):
    reader, stats, toks = neuron_stats(m)
    return dashboards.build_dashboard(m, reader, stats, toks, 0, n_top=2)


def full_cache(m):
    names = [core.hook_name("embed"), core.hook_name("pos_embed"),
             *core.layer_hooks(m, "attn_out"), *core.layer_hooks(m, "mlp_out")]
    return core.run_cached(m, tokens(m), names)[1]


def graph(m):
    return CircuitGraph.from_model(m)


@cache
def tracr_run():
    """Tracr's ``reverse``, two clean and two corrupted inputs, their logits and metric."""
    t = load_tracr("reverse")
    clean, corrupted = t.encode([(1, 2, 3), (3, 2, 1)]), t.encode([(1, 1, 1), (2, 2, 2)])
    with torch.no_grad():
        logits = t.model(clean), t.model(corrupted)
    return t, clean, corrupted, logits, output_metric(*logits)


def tracr():
    return tracr_run()[0]


LABELS = torch.tensor([0, 1] * 6)
STEERING_ROWS = [{"direction": "probe", "scale": 2.0, "loss_increase": 0.1,
                  "behaviour_change": 0.4}]


CASES = {
    # core
    "run_cached float tokens": (lambda m: core.run_cached(m, tokens(m).float(), []),
                                TypeError, "integer token ids"),
    "run_cached ids outside the vocabulary": (
        lambda m: core.run_cached(m, tokens(m) + 10**6, []), ValueError, "vocabulary"),
    "collect_activations position beyond prompt": (
        lambda m: core.collect_activations(m, tokens(m), [core.hook_name("resid_post", 0)],
                                           positions=99), IndexError, "beyond the prompt"),
    "hook_name unknown site": (lambda m: core.hook_name("resid", 0), ValueError, "unknown site"),
    "layer_hooks unknown site": (lambda m: core.layer_hooks(m, "attn"), ValueError, "unknown site"),
    "top_heads not a grid": (lambda m: core.top_heads(torch.zeros(3), 1), ValueError,
                             r"\[layer, head\]"),
    "heads_above not a grid": (lambda m: core.heads_above(torch.zeros(3), 0.5), ValueError,
                               r"\[layer, head\]"),
    "unembed wrong width": (lambda m: core.unembed(m, torch.zeros(1, 2, 7)), ValueError, "d_model"),
    "per_token_loss misaligned": (
        lambda m: core.metrics.per_token_loss(torch.zeros(1, 3, 5), torch.zeros(1, 4).long()),
        ValueError, r"share \[batch, pos\]"),
    "logit_difference not per prompt": (
        lambda m: core.metrics.logit_difference(torch.zeros(1, 3, 5), torch.zeros(1).long(),
                                                torch.zeros(1).long()), ValueError, "per prompt"),
    "Circuit.from_heads unknown head": (
        lambda m: core.Circuit.from_heads(core.CircuitGraph.from_model(m), [(7, 0)]),
        ValueError, "not in the graph"),
    # circuits
    "activation_patching shapes differ": (
        lambda m: circuits.activation_patching(m, PROMPT, "Mary went", metric), ValueError,
        "same number of tokens"),
    "activation_patching bad mode": (
        lambda m: circuits.activation_patching(m, PROMPT, PROMPT, metric, mode="both"),
        ValueError, "'denoise' or 'noise'"),
    "activation_patching non-scalar metric": (
        lambda m: circuits.activation_patching(m, PROMPT, PROMPT, lambda x: x[:, -1, 0]),
        ValueError, "must return a scalar"),
    "activation_patching NaN metric": (
        lambda m: circuits.activation_patching(m, PROMPT, PROMPT,
                                               lambda x: x.sum() * float("nan")),
        ValueError, "finite number"),
    "ablation_patching unknown ablation": (
        lambda m: circuits.ablation_patching(m, PROMPT, metric, ablation="gaussian"), ValueError,
        "ablation must be one of"),
    "causal_tracing position out of range": (
        lambda m: circuits.causal_tracing(m, PROMPT, metric, noise_positions=[99]), IndexError,
        "pos index 99"),
    "causal_tracing non-positive noise": (
        lambda m: circuits.causal_tracing(m, PROMPT, metric, [1], noise_scale=0), ValueError,
        "noise_scale"),
    "path_patching receivers in layer 0": (
        lambda m: circuits.path_patching(m, PROMPT, PROMPT, metric, [(0, 1, "q")]), ValueError,
        "layer 0"),
    "path_patching bad receiver": (
        lambda m: circuits.path_patching(m, PROMPT, PROMPT, metric, [(1, 1, "z")]), ValueError,
        r"'q'\|'k'\|'v'"),
    "head_ablation_hooks head out of range": (
        lambda m: circuits.head_ablation_hooks(m, [(0, 9)]), IndexError, "head 9 is out of range"),
    "head_means groups of the wrong length": (
        lambda m: circuits.head_means(m, tokens(m), torch.zeros(3).long()), ValueError,
        "one group per row"),
    "composition_scores bad kind": (lambda m: circuits.composition_scores(m, "O"), ValueError,
                                    "'Q', 'K' or 'V'"),
    "head_scores repeat longer than the context": (
        lambda m: circuits.head_scores(m, rep_len=100), ValueError, "context"),
    "offset_score offset reaching before the prompt": (
        lambda m: circuits.offset_score(torch.zeros(1, 1, 1, 4, 4), range(0, 4), 1), ValueError,
        "before position 0"),
    "ioi_dataset too few prompts": (lambda m: circuits.ioi_dataset(m, 1), ValueError,
                                    "at least 2 prompts"),
    "ioi_dataset names that are not single tokens": (
        lambda m: circuits.ioi_dataset(m, 4, names=["Mary", "John", "Zzyzx"]), ValueError,
        "not single tokens.*Zzyzx"),
    "evaluate_ioi names do not match prompts": (
        lambda m: circuits.evaluate_ioi(m, [PROMPT], ["Mary", "John"], ["John"]), ValueError,
        "one IO and one S name per prompt"),
    "CircuitEvaluator float tokens": (
        lambda m: circuits.CircuitEvaluator(m, tokens(m).float(), metric, {}), TypeError,
        "integer token ids"),
    # features
    "lens_logits float tokens": (lambda m: features.lens_logits(m, tokens(m).float()), TypeError,
                                 "integer token ids"),
    "Lens on a non-residual site": (lambda m: features.Lens(m, site="z"), ValueError,
                                    "residual stream"),
    "top_tokens all layers and prompts": (
        lambda m: features.top_tokens(m, torch.zeros(2, 3, 4, 5)), ValueError, "one prompt"),
    "kl_to_final not stacked by layer": (lambda m: features.kl_to_final(torch.zeros(3, 5)),
                                         ValueError, r"\[layer, batch, pos, d_vocab\]"),
    "train_tuned_lens no steps": (lambda m: features.train_tuned_lens(m, tokens(m), steps=0),
                                  ValueError, "steps"),
    "head_logits float tokens": (lambda m: features.head_logits(m, tokens(m).float()), TypeError,
                                 "integer token ids"),
    "probe labels that are not 0/1": (
        lambda m: features.fit_probe(torch.randn(6, 4), torch.tensor([0, 0.7, 0, 1, 0, 1])),
        ValueError, "exactly 0 or 1.*0.7"),
    "probe with one positive example": (
        lambda m: features.train_probe(torch.randn(6, 4), torch.tensor([0, 0, 0, 0, 0, 1])),
        ValueError, "at least 3 examples"),
    "probe_sweep labels of the wrong length": (
        lambda m: features.probe_sweep(m, tokens(m), torch.tensor([0, 1]), progress=False),
        ValueError, "one 0/1 label per example"),
    "probe_rows given one tensor instead of {hook: activations}": (
        lambda m: features.probe_rows(torch.randn(6, 4), torch.tensor([0, 1] * 3)), TypeError,
        "acts must be a dict"),
    "probe_rows given no activations": (
        lambda m: features.probe_rows({}, torch.tensor([0, 1])), ValueError, "acts is empty"),
    "PositionMetric with a metric that is not a function": (
        lambda m: PositionMetric(3.0, torch.tensor([1, 2])), TypeError, "must be a function"),
    "PositionMetric with float positions": (
        lambda m: PositionMetric(len, torch.tensor([1.0, 2.0])), ValueError,
        "1-D integer tensor"),
    "PositionMetric with a list of positions": (
        lambda m: PositionMetric(len, [1, 2]), ValueError, "1-D integer tensor"),
    "probe_rows labels of the wrong length": (
        lambda m: features.probe_rows({"h": torch.randn(6, 4)}, torch.tensor([0, 1])), ValueError,
        "one 0/1 label per example"),
    "build_sae unknown architecture": (
        lambda m: sae.build_sae(d_in=8, d_sae=16, architecture="batchtopk"), ValueError,
        "unknown SAE architecture"),
    "train_sae runs out of batches": (
        lambda m: sae.train_sae(sae.build_sae(d_in=8, d_sae=16, architecture="relu"),
                                [torch.randn(4, 8)], steps=3, progress=False), ValueError,
        "ran out after 1 steps"),
    "train_sae unknown setting": (
        lambda m: sae.train_sae(sae.build_sae(d_in=8, d_sae=16, architecture="relu"),
                                [torch.randn(4, 8)], stpes=3), TypeError, "unknown training"),
    "ActivationBuffer too few activations": (
        lambda m: sae.ActivationBuffer.from_tensor(torch.randn(5, 8), acts_per_batch=10),
        ValueError, "fewer than one batch"),
    "sae_metrics wrong width": (
        lambda m: sae.sae_metrics(sae.build_sae(d_in=8, d_sae=16), torch.randn(4, 5)),
        ValueError, "d_in=8"),
    "ce_loss_recovered unknown hook": (
        lambda m: sae.ce_loss_recovered(m, sae.build_sae(d_in=32, d_sae=16, hook_name="nope"),
                                        tokens(m)), KeyError, "no hook named 'nope'"),
    "ToyFeatures bad probability": (lambda m: sae.ToyFeatures(p_fire=1.5), ValueError, "p_fire"),
    "mmcs width mismatch": (lambda m: sae.mmcs(torch.randn(4, 3), torch.randn(2, 5)), ValueError,
                            "width"),
    "load_sae missing folder": (lambda m: sae.load_sae("/nowhere/sae"), FileNotFoundError,
                                "no SAE folder"),
    "collect_statistics empty dataset": (
        lambda m: dashboards.collect_statistics(m, dashboards.NeuronReader(m, 0),
                                                tokens(m)[:, :1], progress=False),
        ValueError, "empty"),
    "NeuronReader layer out of range": (lambda m: dashboards.NeuronReader(m, 5), IndexError,
                                        "layer 5 is out of range"),
    "score_explanation no random contexts": (
        lambda m: autointerp.score_explanation(
            autointerp.Explanation("x", ["a"], "tokens"),
            [autointerp.ActivationContext(["a"], [1.0])], []), ValueError, "no random contexts"),
    "ActivationContext lengths differ": (
        lambda m: autointerp.ActivationContext(["a", "b"], [1.0]), ValueError,
        "one activation per token"),
    # interventions
    "causal_effect zero direction": (
        lambda m: interventions.causal_effect(m, tokens(m), core.hook_name("resid_post", 0),
                                              torch.zeros(32), metric), ValueError, "all zeros"),
    "steer_direction matrix": (
        lambda m: interventions.steer_direction(m, core.hook_name("resid_post", 0),
                                                torch.ones(2, 32), 1.0), ValueError,
        r"one vector \[d_model\]"),
    # universality
    "best_matches different tokens": (
        lambda m: universality.best_matches(torch.randn(5, 3), torch.randn(6, 3)), ValueError,
        "same tokens"),
    "residual_map different tokens": (
        lambda m: universality.residual_map(torch.randn(5, 3), torch.randn(6, 3)), ValueError,
        "same tokens"),
    "latent_centroids different tokens": (
        lambda m: universality.latent_centroids(torch.randn(5, 3), torch.randn(6, 3)),
        ValueError, "same tokens"),
    # datasets
    "corpus_sentences unknown kind": (lambda m: datasets.corpus_sentences(3, ["german"]),
                                      ValueError, "unknown sentence kinds"),
    "token_chunks row longer than the context": (
        lambda m: datasets.token_chunks(m, ["a b c"], 10_000), ValueError, "context"),
    "tokenize_prompts nothing": (lambda m: datasets.tokenize_prompts(m, []), ValueError,
                                 "no prompts"),
    "single_token_ids split word": (lambda m: datasets.single_token_ids(m, ["Zzyzx"]), ValueError,
                                    "not single tokens"),
    "language_prompts none": (lambda m: datasets.language_prompts(0), ValueError, "n_per_language"),
    # viz
    "heatmap not 2-D": (lambda m: viz.heatmap(torch.zeros(3)), ValueError, r"\[row, col\]"),
    "attention_heads wrong shape": (lambda m: viz.attention_heads(torch.zeros(3, 3), ["a"] * 3),
                                    ValueError, "dest_pos"),
    # --- every other function the notebooks import (issue 14) ---
    # core
    "Head fractional layer (/ instead of //)": (lambda m: Head(7 / 2, 1), TypeError,
                                                "a layer is an int, got float 3.5"),
    "Head negative index": (lambda m: Head(-1, 0), ValueError, "check_heads"),
    "all_heads model name": (lambda m: core.all_heads("zoo-2l"), TypeError,
                             r"load it first: load_model\('zoo-2l'\)"),
    "CircuitGraph fractional size": (lambda m: CircuitGraph(2.5, 4), ValueError,
                                     "n_layers must be an int"),
    "Circuit heads instead of edges": (
        lambda m: Circuit(graph(m), frozenset([(1, 1)])), TypeError,
        r"set of Edge values.*Circuit.from_heads"),
    "residual_components cache without the outputs": (
        lambda m: core.residual_components(
            core.run_cached(m, tokens(m), [core.hook_name("embed")])[1], m.cfg.n_layers),
        ValueError, r"cache lacks \['blocks.0.hook_attn_out'"),
    "residual_components fewer layers than cached": (
        lambda m: core.residual_components(full_cache(m), 1), ValueError,
        "holds layer 1's outputs but n_layers=1"),
    # circuits
    "abc_corruption arguments swapped": (
        lambda m: circuits.abc_corruption(m, circuits.ioi_dataset(m, 4)), TypeError,
        "dataset must be an IOIDataset"),
    "abc_corruption too few names": (
        lambda m: circuits.abc_corruption(
            circuits.ioi_dataset(m, 4, names=["Mary", "John", "Tom", "Bob"]), m,
            names=["Mary", "John", "Tom", "Bob"]), ValueError,
        "three names other than its IO and S"),
    "attention_patterns float tokens": (
        lambda m: circuits.attention_patterns(m, tokens(m).float()), TypeError,
        "integer token ids"),
    "circuit_metrics circuit of a zoo-4l graph": (
        lambda m: circuits.circuit_metrics(m, PROMPT, PROMPT, metric,
                                           [Circuit.from_heads(CircuitGraph(4, 8), [(3, 7)])]),
        ValueError, "built on another graph"),
    "circuit_metrics one circuit, not a list": (
        lambda m: circuits.circuit_metrics(m, PROMPT, PROMPT, metric,
                                           Circuit.from_heads(graph(m), [(1, 1)])),
        TypeError, r"pass a list of circuits, e.g. \[circuit\]"),
    "completeness model instead of an evaluator": (
        lambda m: circuits.completeness(m, [(1, 1)]), TypeError,
        "evaluator must be a CircuitEvaluator"),
    "completeness negative n_random": (
        lambda m: circuits.completeness(evaluator(m), [(1, 1)], n_random=-1), ValueError,
        "n_random must be >= 0"),
    "faithfulness circuit for a model with other heads": (
        lambda m: circuits.faithfulness(evaluator(m),
                                        Circuit.from_heads(CircuitGraph(2, 8), [(1, 1)])),
        ValueError, "2 layers of 8 heads, but this one has 2 of 4"),
    "minimality head out of range": (lambda m: circuits.minimality(evaluator(m), [(1, 9)]),
                                     IndexError, "head 9 is out of range"),
    "composition_baseline no samples": (
        lambda m: circuits.composition_baseline(m, "K", n_samples=0), ValueError,
        "n_samples must be > 0"),
    "ioi_dataset float count": (lambda m: circuits.ioi_dataset(m, 4.0), ValueError,
                                "n must be an int, got 4.0"),
    # datasets
    "induction_pair repeat of one token": (lambda m: datasets.induction_pair(m, 1, 4),
                                           ValueError, "rep_len must be at least 2"),
    "ioi_split no sentences": (lambda m: datasets.ioi_split(0), ValueError, "n must be > 0"),
    "is_single_token word with its space": (
        lambda m: datasets.is_single_token(m, " Mary"), ValueError, "without surrounding spaces"),
    "single_token_words one string": (lambda m: datasets.single_token_words(m, "Mary"),
                                      TypeError, r"wrap it in a list: \['Mary'\]"),
    "length_matched labels 0/2": (lambda m: datasets.length_matched([3, 3, 4, 4], [0, 2, 0, 2]),
                                  ValueError, "exactly 0 or 1"),
    "logits_at position beyond the prompt": (
        lambda m: datasets.logits_at(torch.zeros(2, 5, 7), torch.tensor([4, 5])), IndexError,
        "position 5 is beyond the prompt"),
    "logits_at not one position per prompt": (
        lambda m: datasets.logits_at(torch.zeros(2, 5, 7), torch.tensor([4, 3, 2])), ValueError,
        r"one position per example \(2\)"),
    "logits_at logits of one prompt": (
        lambda m: datasets.logits_at(torch.zeros(5, 7), torch.tensor([4, 3, 1, 1, 1])),
        ValueError, r"\[batch, pos, d_vocab\]"),
    "repeated_random_tokens fractional length": (
        lambda m: datasets.repeated_random_tokens(m, 2.5), ValueError, "rep_len must be an int"),
    # dynamics
    "induction_spec no steps": (lambda m: dynamics.induction_spec(steps=0), ValueError,
                                "steps must be > 0"),
    "spec_probes model name": (lambda m: dynamics.spec_probes("zoo-2l"), TypeError,
                               "spec must be a ZooSpec"),
    "spec_probes repeat longer than the context": (
        lambda m: dynamics.spec_probes(dynamics.induction_spec(), rep_lens=(10, 40)), ValueError,
        "rep_len=40 needs 81 positions"),
    # features
    "lens_kl lens of another model": (
        lambda m: features.lens_kl(m, tokens(m), features.Lens(universality.random_like(m, 1))),
        ValueError, "built for another model"),
    "logit_difference_attribution ids not per prompt": (
        lambda m: logit_difference_attribution(m, tokens(m), torch.tensor([5, 6]),
                                               torch.tensor([7, 8])),
        ValueError, r"correct_ids have shape \(2,\): give one id per prompt \(1\)"),
    "export_html missing folder": (lambda m: dashboards.export_html(dashboard(m), "/nowhere/d.html"),
                                   FileNotFoundError, "folder /nowhere does not exist"),
    "render_html statistics instead of a dashboard": (
        lambda m: dashboards.render_html(neuron_stats(m)[1]), TypeError, "build_dashboard"),
    "interpretability reader and statistics swapped": (
        lambda m: dashboards.interpretability(m, neuron_stats(m)[1], neuron_stats(m)[0],
                                              neuron_stats(m)[2], autointerp.TokenExplainer()),
        TypeError, "reader must be a UnitReader"),
    "DashboardWidget unit out of range": (
        lambda m: dashboards.DashboardWidget(m, *neuron_stats(m), start=999), IndexError,
        "neuron 999 is out of range"),
    "StaticHTML dashboard not rendered": (lambda m: dashboards.StaticHTML(dashboard(m)),
                                          TypeError, r"StaticHTML\(render_html\(dash\)\)"),
    "SAELatentReader model instead of an SAE": (lambda m: dashboards.SAELatentReader(m),
                                                TypeError, "sae must be a SAE"),
    "group_splits held-out group as a string": (
        lambda m: probing.group_splits(list("abcdef") * 2, LABELS, "a"), TypeError,
        "held_out must be a set of groups"),
    "group_splits labels not 0/1": (
        lambda m: probing.group_splits(list("abcdef") * 2, LABELS * 0.7, {"a"}), ValueError,
        "exactly 0 or 1"),
    "probe_with_control integer activations": (
        lambda m: probing.probe_with_control(torch.randint(0, 3, (12, 4)), LABELS), TypeError,
        "activations must be floats"),
    "train_probe splits sharing rows": (
        lambda m: probing.train_probe(torch.randn(12, 4), LABELS,
                                      splits=(torch.arange(12), torch.arange(6), torch.arange(6))),
        ValueError, "splits share rows"),
    "save_sae density of the wrong length": (
        lambda m: sae.save_sae(sae.build_sae(d_in=8, d_sae=16), "/nonexistent-unused",
                               feature_density=torch.rand(5)),
        ValueError, r"one value per latent \(16\)"),
    "feature_geometry of an SAE": (
        lambda m: superposition.feature_geometry(sae.build_sae(d_in=8, d_sae=16)), TypeError,
        "model must be a ToyModel"),
    "train_toy_model zero learning rate": (
        lambda m: superposition.train_toy_model(superposition.ToyModel(5, 2, [0.9]), lr=0.0),
        ValueError, "lr must be > 0"),
    "ToyModel sparsity 1": (lambda m: superposition.ToyModel(5, 2, [1.0]), ValueError,
                            r"probabilities in \[0, 1\)"),
    # interventions
    "best_within_cost rows of another sweep": (
        lambda m: interventions.best_within_cost([{"family": "pca", "iia": 0.5}], 0.1),
        ValueError, "pass the rows of steering_sweep"),
    "summarise rows of another sweep": (lambda m: interventions.summarise(STEERING_ROWS),
                                        ValueError, "pass the rows of compare_bases"),
    "contrastive_vector text instead of tokens": (
        lambda m: interventions.contrastive_vector(m, [PROMPT], [PROMPT],
                                                   core.hook_name("resid_post", 0)),
        TypeError, "model.to_tokens"),
    "iia tokens instead of pairs": (
        lambda m: interventions.iia(m, tokens(m), core.hook_name("resid_post", 0),
                                    torch.eye(32)[:, :1]), TypeError,
        "pairs must be a CounterfactualPairs"),
    "task_accuracy no prompts per pass": (
        lambda m: interventions.task_accuracy(m, interventions.ioi_pairs(m, 4), batch_size=0),
        ValueError, "batch_size must be > 0"),
    "ioi_pairs one pair": (lambda m: interventions.ioi_pairs(m, 1), ValueError,
                           "at least 2 prompts"),
    "language_words model name": (lambda m: interventions.language_words("zoo-2l"), TypeError,
                                  "load it first"),
    "patchscope_logits target position beyond the prompt": (
        lambda m: interventions.patchscope_logits(m, tokens(m), tokens(m), target_pos=99),
        IndexError, "position 99 is beyond the prompt"),
    "probe_basis labels not 0/1": (
        lambda m: interventions.probe_basis(torch.randn(12, 4), LABELS * 0.7), ValueError,
        "exactly 0 or 1"),
    # universality
    "check_same_tokenizer model name": (
        lambda m: universality.check_same_tokenizer(m, "gpt2"), TypeError,
        r"model_b must be a loaded model.*load_model\('gpt2'\)"),
    "fraction_above whole correlation matrix": (
        lambda m: universality.fraction_above(torch.rand(3, 4), 0.5), ValueError,
        "one finite correlation per unit"),
    "map_quality transposed mapping": (
        lambda m: universality.map_quality(torch.randn(10, 4), torch.randn(10, 6),
                                           torch.randn(6, 4)), ValueError,
        r"mapping must be \[d_model_a, d_model_b\] = \[4, 6\]"),
    "mapped_direction_similarity index beyond B": (
        lambda m: universality.mapped_direction_similarity(
            torch.randn(3, 4), torch.randn(3, 4), torch.eye(4), torch.tensor([0, 1, 5])),
        IndexError, "pairs index B's directions up to 5"),
    "random_like Hugging Face model": (lambda m: universality.random_like(m.original_model),
                                       TypeError, "TransformerLens model from load_model"),
    "recurring_heads list of grids": (
        lambda m: universality.recurring_heads([torch.rand(2, 4)], 0.5), TypeError,
        "scores_by_model must be a dict"),
    # viz
    "plot_attention too few head names": (
        lambda m: viz.plot_attention(torch.rand(4, 5, 5), ["a"] * 5, head_names=["H0"]),
        ValueError, "1 head_names for 4 heads"),
    "plot_attention pattern not square": (
        lambda m: viz.plot_attention(torch.rand(4, 3, 5), ["a"] * 5), ValueError,
        "dest_pos = src_pos = 5 tokens"),
    "plot_circuit heads instead of a circuit": (lambda m: viz.plot_circuit([(1, 1)]), TypeError,
                                                "circuit must be a Circuit"),
    "plot_circuit effects not per edge": (
        lambda m: viz.plot_circuit(Circuit.from_heads(graph(m), [(1, 1)]), torch.rand(5)),
        ValueError, "one value per edge of the graph"),
    # tracr
    "output_metric token ids instead of logits": (
        lambda m: output_metric(*tracr_run()[1:3]), TypeError,
        r"float logits, got dtype torch.int64 \(token ids\?\)"),
    "output_metric runs of different shapes": (
        lambda m: output_metric(tracr_run()[3][0], tracr_run()[3][1][:1]), ValueError,
        r"but corrupted_logits have \(1, 4, \d+\)"),
    "clean_distance one prompt's logits": (
        lambda m: clean_distance(tracr_run()[3][0][0]), ValueError,
        r"\[batch, pos, d_vocab\].*logits\[None\] for one prompt"),
    "node_patching TracrModel instead of its bridge": (
        lambda m: node_patching(*tracr_run()[:3], tracr_run()[4]), TypeError,
        r"got a TracrModel; pass its \.model"),
    "node_patching inputs not encoded": (
        lambda m: node_patching(tracr().model, [(1, 2, 3)], [(3, 2, 1)], tracr_run()[4]),
        TypeError, r"clean must be a Tensor, got list; encode Tracr inputs"),
    "path_patching_edges graph of another model": (
        lambda m: path_patching_edges(tracr().model, graph(m), *tracr_run()[1:3],
                                      tracr_run()[4]),
        ValueError, "the graph has 2 layers of 4 heads but the model has 3 of 1"),
    "path_patching_edges graph left out": (
        lambda m: path_patching_edges(tracr().model, *tracr_run()[1:3], tracr_run()[4],
                                      tracr_run()[4]),
        TypeError, "graph must be a CircuitGraph, got Tensor"),
    "importance model instead of a result": (
        lambda m: importance(tracr()), TypeError, "result must be a SweepResult or Circuit"),
    "importance unknown mode": (lambda m: importance(tracr().circuit, mode="both"), ValueError,
                                "'noise' or 'denoise'"),
    "recovery_table one result, not a dict": (
        lambda m: recovery_table(tracr().circuit, tracr().circuit), TypeError,
        r"a dict \{method name: its SweepResult or Circuit\}"),
    "recovery_table no results": (lambda m: recovery_table({}, tracr().circuit), ValueError,
                                  "no results given"),
    "recovery_table result of another model": (
        lambda m: recovery_table({"heads": Circuit.from_heads(graph(m), [(1, 1)])},
                                 tracr().circuit),
        ValueError, r"'heads' scores .* not in the circuit's graph.*another model"),
    "recovery_table negative threshold": (
        lambda m: recovery_table({"truth": tracr().circuit}, tracr().circuit, threshold=-0.1),
        ValueError, "threshold must be >= 0"),
    "through_mlps edge by name": (
        lambda m: through_mlps(tracr().circuit, "L0H0 -> MLP0"), TypeError,
        "edge must be an Edge, got str"),
    "through_mlps edge of another graph": (
        lambda m: through_mlps(tracr().circuit,
                               core.Edge(core.Node(0, "head", 3), core.Node(3, "logits"))),
        ValueError, "edge L0H3 -> logits is not in the circuit's graph"),
    "draw_circuit circuit instead of colours": (
        lambda m: draw_circuit(tracr().graph, tracr().circuit), TypeError,
        r"edges must be a Mapping, got Circuit.*\{edge: 'black'"),
    "draw_circuit unknown colour": (
        lambda m: draw_circuit(tracr().graph, dict.fromkeys(tracr().circuit.edges, "redd")),
        ValueError, "colour 'redd', which matplotlib does not know"),
    "draw_circuit edges of another graph": (
        lambda m: draw_circuit(tracr().graph, dict.fromkeys(graph(m).edges[-3:], "black")),
        ValueError, "edges not in the graph"),
    "informative_pairs bridge instead of the TracrModel": (
        lambda m: informative_pairs(tracr().model, "reverse", 3), TypeError,
        r"model must be a TracrModel, got TransformerBridge; load one with load_tracr"),
    "informative_pairs unknown variable": (
        lambda m: informative_pairs(tracr(), "sort", 3), KeyError,
        r"'sort' is not a variable of the program 'reverse'; choose one of \['tokens'"),
    "informative_pairs no pairs": (lambda m: informative_pairs(tracr(), "reverse", 0),
                                   ValueError, "n must be > 0"),
    "interchange_accuracy inputs instead of pairs": (
        lambda m: interchange_accuracy(tracr(), "reverse", [(1, 2, 3), (3, 2, 1)]), ValueError,
        r"each pair must be \(base, source\), two inputs, got \(1, 2, 3\)"),
    "interchange_accuracy inputs of two lengths": (
        lambda m: interchange_accuracy(tracr(), "reverse", [((1, 2, 3), (3, 2))]), ValueError,
        r"inputs of lengths \[2, 3\]"),
    "interchange_accuracy transposed basis": (
        lambda m: interchange_accuracy(tracr(), "reverse", [((1, 2, 3), (3, 2, 1))],
                                       torch.randn(2, tracr().model.cfg.d_model)),
        ValueError, r"basis must be \[d_model, k\] = \[31, k\].*got shape \(2, 31\)"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_named(m, case):
    call, error, message = CASES[case]
    with pytest.raises(error, match=message):
        call(m)
