"""No silent wrong answers: every public function the notebooks use answers a bad input with
its own message, naming the problem in the user's terms (one case at least per function;
the per-module tests add more)."""

import pytest
import torch

from mi_helpers import circuits, core, datasets, features, interventions, universality, viz
from mi_helpers.features import autointerp, dashboards, sae

PROMPT = "When Mary and John went to the store , John gave a drink to"


@pytest.fixture(scope="module")
def m(tiny_model):
    return tiny_model


def tokens(m, text=PROMPT):
    return m.to_tokens(text)


def metric(logits):
    return logits[:, -1, 5].mean()


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
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_named(m, case):
    call, error, message = CASES[case]
    with pytest.raises(error, match=message):
        call(m)
