"""GPU-safe helpers: what a helper creates follows the model's device and dtype.

On this CPU-only machine the check is the dtype: with the model in float64, a helper that
builds a tensor with torch's defaults (float32, CPU) either fails on the mismatch or
silently computes in float32; both show here. Where CUDA or MPS is present, the same helpers
run with the model on that device.
"""

import pytest
import torch

from mi_helpers import circuits, core, features, load_model
from mi_helpers.features import dashboards, sae
from mi_helpers.interventions import causal_effect, next_token_shift
from mi_helpers.universality import best_matches, shared_activations

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else []) + (
    ["mps"] if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available() else [])
PROMPTS = ["When Mary and John went to the store , John gave a drink to",
           "When Tom and Anna went to the park , Anna gave a book to"]


@pytest.fixture(scope="module", params=DEVICES)
def model(request, tiny_model_dir):
    dtype = torch.float64 if request.param == "cpu" else torch.float32
    return load_model(str(tiny_model_dir), device=request.param, dtype=dtype)


def on_model(model, tensor):
    return tensor.device.type == torch.device(model.cfg.device).type and \
        tensor.dtype == model.W_U.dtype


def metric(logits):
    return logits[:, -1, 5].mean()


def test_activations_lens_and_attribution(model):
    tokens = model.to_tokens(PROMPTS)
    acts = core.collect_activations(model, tokens, [core.hook_name("resid_post", 0)], device=None)
    assert on_model(model, acts[core.hook_name("resid_post", 0)])
    assert on_model(model, features.lens_logits(model, tokens))
    assert on_model(model, features.head_logits(model, tokens))
    lens, _ = features.train_tuned_lens(model, tokens, steps=2, tokens_per_step=8, progress=False)
    assert on_model(model, lens.weight)
    assert on_model(model, features.lens_logits(model, tokens, lens))


def test_patching_path_patching_and_evaluation(model):
    clean, corrupted = model.to_tokens(PROMPTS), model.to_tokens(PROMPTS[::-1])
    assert circuits.activation_patching(model, clean, corrupted, metric, "z").values.isfinite().all()
    assert circuits.ablation_patching(model, clean, metric, "z", ablation="mean").values.numel()
    assert circuits.causal_tracing(model, clean, metric, [1], layers=[0]).values.numel()
    path = circuits.path_patching(model, clean, corrupted, metric, [(1, 0, "k")])
    assert path.values.isfinite().any()
    means = circuits.head_means(model, corrupted)
    evaluator = circuits.CircuitEvaluator(model, clean, metric, means)
    assert isinstance(circuits.faithfulness(evaluator, [(0, 1)]).ratio, float)
    assert on_model(model, circuits.composition_scores(model, "K")[0, 0, 1])


def test_probes_and_interventions(model):
    tokens = model.to_tokens(PROMPTS * 4)
    labels = torch.tensor([0, 1] * 4)
    rows = features.probe_sweep(model, tokens, labels, progress=False)
    assert on_model(model, rows[0]["probe"].direction)
    hook = core.hook_name("resid_post", 0)
    direction = torch.randn(model.cfg.d_model, dtype=model.W_U.dtype, device=model.cfg.device)
    assert causal_effect(model, tokens, hook, direction, metric, n_random=1)["effect"] == \
        pytest.approx(causal_effect(model, tokens, hook, direction, metric, n_random=1)["effect"])
    assert next_token_shift(model, hook, direction, PROMPTS[0])["kl"] >= 0


def test_saes_buffers_and_dashboards(model):
    tokens = model.to_tokens(PROMPTS * 4)
    hook = core.hook_name("resid_post", 0)
    buffer = sae.ActivationBuffer.from_model(model, tokens, hook, acts_per_batch=16,
                                             buffer_size=64)
    assert on_model(model, next(buffer))
    autoencoder = sae.build_sae(d_in=model.cfg.d_model, d_sae=16, architecture="topk", k=2,
                                hook_name=hook, device=model.cfg.device, dtype=model.cfg.dtype)
    sae.train_sae(autoencoder, buffer, steps=3, progress=False)
    assert on_model(model, autoencoder.W_dec)
    assert sae.ce_loss_recovered(model, autoencoder, tokens)["ce_clean"] > 0
    cpu_sae = sae.build_sae(d_in=model.cfg.d_model, d_sae=16, architecture="topk", k=2,
                            hook_name=hook)  # left on the CPU in float32, as load_sae gives it
    assert sae.ce_loss_recovered(model, cpu_sae, tokens)["ce_sae"] > 0
    reader = dashboards.SAELatentReader(cpu_sae)
    stats = dashboards.collect_statistics(model, reader, tokens, n_top=3, n_sample=32,
                                          progress=False)
    dash = dashboards.build_dashboard(model, reader, stats, tokens, int(stats.density.argmax()),
                                      steering_prompt=PROMPTS[0])
    assert dash.steering["kl"] >= 0


def test_universality(model, tiny_model_dir):
    other = load_model(str(tiny_model_dir), device=model.cfg.device, dtype=model.W_U.dtype)
    tokens = model.to_tokens(PROMPTS)
    a, b = shared_activations(model, other, tokens, core.hook_name("mlp_post", 0))
    best, _ = best_matches(a, b)
    assert torch.allclose(best, torch.ones_like(best), atol=1e-5)  # the same weights
