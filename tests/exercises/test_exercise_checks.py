"""Every exercise of every notebook: its check fails on the stub (taken from the exercise
build), passes on the notebook's solution, and fails on a plausible wrong answer written
here. The checks are called directly on the exercise cells, so this takes seconds."""

import math
import re

import pytest
import torch

from mi_helpers import exercises
from mi_helpers.exercises import ExerciseFailed, build_exercises, exercises_in
from mi_helpers.tools.runner import NOTEBOOK_DIR

NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
EXERCISES = [e for path in NOTEBOOKS for e in exercises_in(path)]


# --- plausible wrong answers, one per exercise function: (function, what the message says)
def _log_probs_of_next(logits, tokens):
    return logits.log_softmax(-1)[:, 1:].gather(-1, tokens[:, 1:, None]).squeeze(-1)


def _wrong_patching_loop(model, clean_tokens, corrupted_tokens, metric, layer):
    """Noising instead of denoising: the clean run with one corrupted position."""
    hook = f"blocks.{layer}.hook_resid_pre"
    _, cache = model.run_with_cache(corrupted_tokens, names_filter=hook)
    out = torch.zeros(clean_tokens.shape[1])
    for pos in range(clean_tokens.shape[1]):
        def patch(resid, hook, pos=pos):
            resid[:, pos] = cache[hook.name][:, pos]
            return resid
        out[pos] = metric(model.run_with_hooks(clean_tokens, fwd_hooks=[(hook, patch)]))
    return out


def _unravel_swapped(acts, n):
    top = acts.flatten().topk(n)
    return top.values, torch.stack([top.indices % acts.shape[1], top.indices // acts.shape[1]], 1)


def _topk_without_b_dec(x, W_enc, b_enc, W_dec, b_dec, k):
    top = (x @ W_enc + b_enc).topk(k)
    latents = torch.zeros(len(x), W_enc.shape[1]).scatter(-1, top.indices, top.values.relu())
    return latents, latents @ W_dec + b_dec


def _f1_with_nan(predictions, labels):
    tp = (predictions & labels).sum()
    precision, recall = tp / predictions.sum(), tp / labels.sum()
    return (2 * precision * recall / (precision + recall)).item()


def _acdc_against_full_model(kl_with_removed, order, tau):
    """ACDC comparing every trial with the full model's KL, not the pruned circuit's."""
    removed = torch.zeros(len(order), dtype=torch.bool)
    full = kl_with_removed(removed.clone())
    for edge in order:
        trial = removed.clone()
        trial[edge] = True
        if kl_with_removed(trial) - full < tau:
            removed = trial
    return ~removed


def _iia_best_word(logits, answer_pos, class_words, targets):
    log_probs = logits[torch.arange(len(logits)), answer_pos].log_softmax(-1)
    scores = torch.stack([log_probs[:, w].max(-1).values for w in class_words], -1)
    return (scores.argmax(-1) == targets).float().mean().item()


def _fourier_norms_unnormalised(embedding):
    p, x = len(embedding), torch.arange(len(embedding), dtype=embedding.dtype)
    waves = [(torch.cos(2 * math.pi * k * x / p), torch.sin(2 * math.pi * k * x / p))
             for k in range(1, p // 2 + 1)]
    return torch.stack([((c @ embedding).pow(2).sum() + (s @ embedding).pow(2).sum()).sqrt()
                        for c, s in waves])


WRONG = {
    "next_token_loss": (lambda logits, tokens: -_log_probs_of_next(logits, tokens),
                        "position i predicts token i \\+ 1"),
    "layer_norm": (lambda x, w, b, eps=1e-5: (x - x.mean(-1, keepdim=True))
                   / (x.var(-1, keepdim=True) + eps).sqrt() * w + b, "unbiased variance"),
    "attention_pattern": (lambda q, k: (torch.einsum("bqhd,bkhd->bhqk", q, k) / q.shape[-1] ** 0.5)
                          .masked_fill(torch.ones(q.shape[1], q.shape[1]).triu(1).bool(), -1e9)
                          .softmax(-2), "softmax over dest_pos"),
    "logit_lens": (lambda resid, w, b, W_U, b_U, eps=1e-5: resid @ W_U + b_U,
                   "skipped the final layer norm"),
    "answer_rank": (lambda logits, answers: (logits >= logits[torch.arange(len(logits)), answers][:, None])
                    .sum(-1), "counts the answer itself"),
    "head_logit_attribution": (lambda z, W_O, scale, W_U, c, w: torch.einsum(
        "bhm,mb->bh", torch.einsum("bhd,hdm->bhm", z, W_O), W_U[:, c] - W_U[:, w]), "wrong"),
    "kl_final_vs_lens": (lambda lens, final: (lens.softmax(-1) * (lens.log_softmax(-1)
                                                                   - final.log_softmax(-1))).sum(-1),
                         "the other direction"),
    "mean_difference_direction": (lambda acts, labels: acts[labels].mean(0) - acts[~labels].mean(0),
                                  "did not normalise"),
    "f1_score": (_f1_with_nan, "NaN"),
    "project_out": (lambda acts, d: acts - (acts @ d)[..., None] * d, "did not normalise"),
    "topk_sae_forward": (_topk_without_b_dec, "did not subtract b_dec"),
    "sae_loss": (lambda x, r: (torch.nn.functional.mse_loss(r, x).item(),
                               ((x - r).pow(2).sum() / (x - x.mean(0)).pow(2).sum()).item()),
                 "averaged the squared error over d_in"),
    "sparsity_stats": (lambda lat: ((lat != 0).sum(-1).float().mean().item(),
                                    (lat == 0).any(0).float().mean().item()), "never fires"),
    "top_activations": (_unravel_swapped, "\\(pos, batch\\)"),
    "promoted_tokens": (lambda d, W_U, n: ((d @ W_U).topk(n, largest=False).indices,
                                           (d @ W_U).topk(n).indices), "swapped"),
    "activation_correlation": (lambda s, t: (s @ t / (s.norm() * t.norm())).item(),
                               "cosine similarity"),
    "logit_diff": (lambda logits, ends, c, w: (logits[:, -1].gather(-1, c[:, None])
                                               - logits[:, -1].gather(-1, w[:, None])).mean(),
                   "last position"),
    "patch_residual_by_position": (_wrong_patching_loop, "noising"),
    "patch_head_hook": (lambda z, hook, head, source: torch.cat(
        [z[:, :head], source[:, head:head + 1], z[:, head + 1:]], 1), "patched a \\*position\\*"),
    "path_patching_step": (lambda resid, zc, zx, W_O, s: resid + zx[:, :, s] @ W_O[s],
                           "without removing its clean output"),
    "attention_between": (lambda p, d, s: p[torch.arange(len(p)), :, s, d], "swapped dest and src"),
    "copying_score": (lambda E, V, O, U: ((E @ V @ O @ U).argmax(0) == torch.arange(len(E)))
                      .float().mean().item(), "argmax over input names"),
    "induction_score": (lambda p, n: p[:, :, torch.arange(n + 1, 2 * n + 1),
                                       torch.arange(1, n + 1)].mean((0, 2)), "duplicate-token"),
    "k_composition_score": (lambda Va, Oa, Qb, Kb: ((Va @ Oa @ Qb @ Kb.T).norm()
                                                    / ((Va @ Oa).norm() * (Qb @ Kb.T).norm())).item(),
                            "Q-composition"),
    "loss_on_repeat": (lambda logits, tokens, n: -_log_probs_of_next_token(logits, tokens)[:, n:2 * n]
                       .mean(), "included position rep_len"),
    "neuron_correlations": (lambda a, b: (a / a.norm(dim=0)).T @ (b / b.norm(dim=0)), "NaN|centre"),
    "best_partner": (lambda corr: tuple(corr.max(dim=0)), "axis 0"),
    "mean_max_cosine": (lambda a, b: (a @ b.T).max(1).values.mean().item(), "did not normalise"),
    "eap_edge_score": (lambda clean, corrupted, grad: ((corrupted - clean) * grad).sum(),
                       "corrupted - clean"),
    "eap_ig_edge_score": (lambda c, x, gradient_at, m: ((c - x) * torch.stack(
        [gradient_at(a.item()) for a in torch.linspace(0, 1, m)]).mean(0)).sum(), "inclusive"),
    "acdc_prune": (lambda kl, order, tau: _acdc_against_full_model(kl, order, tau),
                   "compared every trial with the \\*full\\* model's KL"),
    "faithfulness_areas": (lambda b, f: (((b[1:] - b[:-1]) * f[:-1]).sum().item(),
                                         ((b[1:] - b[:-1]) * (1 - f[:-1]).abs()).sum().item()),
                           "rectangles"),
    "interchange_subspace": (lambda base, source, B: base + source @ B @ B.T,
                             "without removing the base's own"),
    "interchange_accuracy": (_iia_best_word, "single most likely word"),
    "steering_hook": (lambda resid, hook, d, scale: resid + scale * d, "did not normalise"),
    "icl_from_logits": (lambda logits, tokens, early, late:  # log-probs: early minus late loss
                        _log_probs_of_next_token(logits, tokens)[:, late.start:late.stop].mean()
                        - _log_probs_of_next_token(logits, tokens)[:, early.start:early.stop].mean(),
                        "early minus late"),
    "crossing_step": (lambda steps, values, t, below=False: next(
        (i for i, v in enumerate(values.tolist()) if (v <= t if below else v >= t)), None),
        "record's index"),
    "fourier_norms": (_fourier_norms_unnormalised, "did not normalise the cosine"),
}


def _log_probs_of_next_token(logits, tokens):
    """The right per-position log-probabilities (for wrong answers that err elsewhere)."""
    return logits[:, :-1].log_softmax(-1).gather(-1, tokens[:, 1:, None]).squeeze(-1)


WRONG.update({  # notebook 11 (Tracr ground truth)
    "sequence_agreement": (lambda logits, expected: (logits[:, 1:].argmax(-1) == expected)
                           .float().mean().item(), "matching \\*positions\\*"),
    "remove_edge": (lambda q, s, W, h: q - torch.einsum("bpd,hde->bphe", s, W), "every head"),
    "precision_recall": (lambda f, t: ((f & t).sum().item() / t.sum().item(),
                                       (f & t).sum().item() / f.sum().item()), "swapped"),
    "auroc": (lambda s, t: (s[t][:, None] > s[~t][None]).float().mean().item(), "ties as losses"),
})


def _function(source: str, name: str):
    namespace = {}
    exec(compile(source, f"<exercise {name}>", "exec"), namespace)  # noqa: S102 - our notebooks
    return namespace[name]


def _run_check(exercise, fn, model):
    check = getattr(exercises, exercise.check)
    check(fn, *([model] if exercise.check_args else []))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    import nbformat
    out = tmp_path_factory.mktemp("exercises")
    written = build_exercises(NOTEBOOK_DIR, out)
    return {b.path.name: nbformat.read(b.path, as_version=4) for b in written}


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: f"{e.number}-{e.function}")
def test_check_fails_on_stub_passes_on_solution_fails_on_wrong_answer(exercise, built, tiny_model,
                                                                       capsys):
    stub = built[exercise.notebook].cells[exercise.cell + 1].source  # +1: the build's note
    assert stub == exercise.stub and "BEGIN SOLUTION" not in stub and "# STUB" not in stub
    with pytest.raises(ExerciseFailed, match="still the stub"):
        _run_check(exercise, _function(stub, exercise.function), tiny_model)
    _run_check(exercise, _function(exercise.source, exercise.function), tiny_model)
    assert capsys.readouterr().out.startswith(f"✓ {exercise.function} passes")
    assert exercise.function in WRONG, f"write a plausible wrong answer for {exercise.function}"
    wrong, says = WRONG[exercise.function]
    wrong.__name__ = exercise.function
    with pytest.raises(ExerciseFailed, match=says):
        _run_check(exercise, wrong, tiny_model)


def test_every_notebook_has_three_exercises_and_the_core_skills_are_covered():
    per_notebook = {}
    for e in EXERCISES:
        per_notebook.setdefault(e.notebook[:2], []).append(e)
    for number in ("00", "01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "13"):
        assert len(per_notebook.get(number, [])) >= 3, f"notebook {number}"
    core = {"patch_head_hook", "induction_score", "head_logit_attribution", "logit_lens",
            "f1_score", "topk_sae_forward", "sae_loss", "patch_residual_by_position",
            "path_patching_step", "k_composition_score", "neuron_correlations",
            "eap_edge_score", "eap_ig_edge_score", "acdc_prune", "interchange_subspace",
            "steering_hook", "icl_from_logits", "fourier_norms"}
    assert core <= {e.function for e in EXERCISES}
    assert all(1 <= e.difficulty <= 5 and 1 <= e.importance <= 5 and e.minutes > 0 and e.hints
               for e in EXERCISES)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_exercise_functions_do_not_shadow_the_notebooks_names(path):
    """A learner's function must not replace a helper or variable the notebook uses."""
    import nbformat
    found = exercises_in(path)
    mine = {e.cell for e in found} | {e.cell + 1 for e in found}
    others = "\n".join(c.source for i, c in enumerate(nbformat.read(path, as_version=4).cells)
                       if c.cell_type == "code" and i not in mine)
    for e in found:
        assert not re.search(rf"\b{e.function}\b", others), f"{e.function} is used elsewhere in {path.name}"
