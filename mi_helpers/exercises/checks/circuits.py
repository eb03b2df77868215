"""Checks for circuits: activation patching (notebook 05), path patching and head roles
(06), induction heads and composition (07).

Each ``check_<skill>(fn)`` compares the learner's ``fn`` with a reference on fresh
inputs (see :mod:`mi_helpers.exercises.checking`). The two that run a model take it as
a second argument, so they check the learner's code on the notebook's own model.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor

from ...circuits.patching import activation_patching
from ...core.hooks import hook_name
from ...core.metrics import per_token_loss
from ..checking import Case, Mistake, check_function, generator

__all__ = ["check_patch_head_hook", "check_logit_diff", "check_patching_loop",
           "check_path_patching_step", "check_attention_between", "check_copying_score",
           "check_induction_score", "check_k_composition", "check_loss_on_repeat"]


def _randn(gen: torch.Generator, *shape: int) -> Tensor:
    return torch.randn(*shape, generator=gen)


def _softmax_patterns(gen: torch.Generator, batch: int, n_heads: int, n_pos: int) -> Tensor:
    scores = 3 * _randn(gen, batch, n_heads, n_pos, n_pos)
    mask = torch.ones(n_pos, n_pos, dtype=torch.bool).triu(1)
    return scores.masked_fill(mask, -torch.inf).softmax(-1)


# --- 05: a hook that patches one head --------------------------------------------------------
def _patch_head(z: Tensor, hook, head: int, source: Tensor) -> Tensor:
    z = z.clone()
    z[:, :, head] = source[:, :, head]
    return z


def _patched_logits(hook_fn, model, tokens: Tensor, source: Tensor, layer: int, head: int) -> Tensor:
    """Logits of ``model`` with ``hook_fn`` patching ``head`` of layer ``layer``'s ``z``."""
    with torch.no_grad():
        return model.run_with_hooks(tokens, fwd_hooks=[
            (hook_name("z", layer), partial(hook_fn, head=head, source=source))])


def check_patch_head_hook(fn, model=None) -> None:
    """``fn(z, hook, head, source)`` -> ``z`` with one head taken from ``source``.

    Tensors alone first; with ``model``, the hook also runs inside the model and its
    logits must match the reference's.
    """
    gen = generator(20)
    z, source = _randn(gen, 2, 5, 4, 3), _randn(gen, 2, 5, 4, 3)
    cases = [Case("head 2 of 4", (z, None, 2, source)), Case("head 0", (z, None, 0, source)),
             Case("one prompt, one position", (z[:1, :1], None, 3, source[:1, :1]))]
    check_function(fn, _patch_head, cases, axes="batch pos head d_head", mistakes=[
        Mistake("you patched a *position* (z is [batch, pos, head, d_head]: heads are axis 2)",
                lambda z, h, i, s: torch.cat([z[:, :i], s[:, i:i + 1], z[:, i + 1:]], 1)),
        Mistake("you replaced every head, not just one", lambda z, h, i, s: s)],
        hint="z[:, :, head] = source[:, :, head] (then return z).")
    if model is None:
        return
    tokens = torch.randint(0, model.cfg.d_vocab, (2, 6), generator=gen)
    source = model.run_with_cache(tokens.flip(1), names_filter=hook_name("z", 0))[1][hook_name("z", 0)]
    cases = [Case(f"inside the model, layer 0 head {h}", (model, tokens, source, 0, h))
             for h in (0, model.cfg.n_heads - 1)]
    check_function(partial(_patched_logits, fn), partial(_patched_logits, _patch_head), cases,
                   name=f"{getattr(fn, '__name__', 'your hook')} (inside the model)",
                   axes="batch pos d_vocab", hint="the hook must *return* the patched z (or "
                   "modify it in place): TransformerLens uses what the hook returns.")


# --- 05: the IOI metric ------------------------------------------------------------------------
def _logit_diff(logits: Tensor, ends: Tensor, correct: Tensor, wrong: Tensor) -> Tensor:
    rows = torch.arange(len(logits))
    final = logits[rows, ends]
    return (final[rows, correct] - final[rows, wrong]).mean()


def check_logit_diff(fn) -> None:
    """``fn(logits, ends, correct, wrong)`` -> mean over prompts of logit(correct) - logit(wrong)."""
    gen = generator(21)
    logits = _randn(gen, 4, 7, 12)
    correct = torch.randint(0, 12, (4,), generator=gen)
    wrong = torch.randint(0, 12, (4,), generator=gen)
    cases = [Case("prompts of the same length", (logits, torch.full((4,), 6), correct, wrong)),
             Case("padded prompts (ends differ)", (logits, torch.tensor([3, 6, 4, 5]), correct, wrong)),
             Case("one prompt", (logits[:1], torch.tensor([2]), correct[:1], wrong[:1]))]
    check_function(fn, _logit_diff, cases, mistakes=[
        Mistake("you read the last position (-1) instead of each prompt's end",
                lambda lg, e, c, w: _logit_diff(lg, torch.full_like(e, lg.shape[1] - 1), c, w)),
        Mistake("you computed logit(wrong) - logit(correct)",
                lambda lg, e, c, w: _logit_diff(lg, e, w, c))],
        hint="for prompt b read logits[b, ends[b]], then its correct[b] and wrong[b] entries; "
             "average the differences over prompts.")


# --- 05: an activation-patching loop ---------------------------------------------------------
def _patching_reference(model, clean, corrupted, metric, layer, mode="denoise", site="resid_pre"):
    result = activation_patching(model, clean, corrupted, metric, site, mode=mode,
                                 per_position=True, layers=[layer])
    return result.values.reshape(-1)


def check_patching_loop(fn, model) -> None:
    """``fn(model, clean_tokens, corrupted_tokens, metric, layer)`` -> ``[pos]`` metric values."""
    gen = generator(22)
    vocab, n_layers = model.cfg.d_vocab, model.cfg.n_layers
    clean = torch.randint(0, vocab, (3, 6), generator=gen)
    corrupted = clean.clone()
    corrupted[:, 1:4] = torch.randint(0, vocab, (3, 3), generator=gen)
    a, b = torch.randint(0, vocab, (2,), generator=gen).tolist()

    def metric(logits):
        return (logits[:, -1, a] - logits[:, -1, b]).mean()

    cases = [Case(f"layer {layer}", (model, clean, corrupted, metric, layer))
             for layer in sorted({0, n_layers - 1})]
    check_function(fn, _patching_reference, cases, axes="pos", atol=1e-3, mistakes=[
        Mistake("you ran the clean prompts and patched in corrupted activations (that is "
                "noising; here we denoise)", partial(_patching_reference, mode="noise")),
        Mistake("you patched resid_post instead of resid_pre",
                partial(_patching_reference, site="resid_post"))],
        hint="cache the clean run; for each position run the corrupted tokens with a hook on "
             "blocks.{layer}.hook_resid_pre that copies the clean value at that position only.")


# --- 06: one step of path patching -----------------------------------------------------------
def _path_step(resid: Tensor, z_clean: Tensor, z_corrupted: Tensor, W_O: Tensor, sender: int) -> Tensor:
    return resid + (z_corrupted[:, :, sender] - z_clean[:, :, sender]) @ W_O[sender]


def check_path_patching_step(fn) -> None:
    """``fn(resid, z_clean, z_corrupted, W_O, sender)`` -> the receiver's ``[batch pos d_model]``."""
    gen = generator(23)

    def case(name, batch, n_pos, n_heads, d_head, d_model, sender, same=False):
        z_clean = _randn(gen, batch, n_pos, n_heads, d_head)
        z_corrupted = z_clean.clone() if same else _randn(gen, batch, n_pos, n_heads, d_head)
        return Case(name, (_randn(gen, batch, n_pos, d_model), z_clean, z_corrupted,
                           _randn(gen, n_heads, d_head, d_model), sender))

    cases = [case("2 prompts, sender head 1 of 3", 2, 4, 3, 2, 6, 1),
             case("the last head", 1, 3, 4, 2, 5, 3),
             case("corrupted = clean (nothing changes)", 2, 3, 3, 2, 6, 0, same=True)]
    check_function(fn, _path_step, cases, axes="batch pos d_model", mistakes=[
        Mistake("you added the sender's corrupted output without removing its clean output",
                lambda r, zc, zx, W, s: r + zx[:, :, s] @ W[s]),
        Mistake("you swapped every head, not only the sender", lambda r, zc, zx, W, s:
                r + torch.einsum("bphd,hdm->bpm", zx - zc, W))],
        hint="the receiver sees the clean residual with one term changed: add "
             "(z_corrupted - z_clean) of the sender, mapped through its W_O.")


# --- 06: attention between chosen positions ------------------------------------------------------
def _attention_between(pattern: Tensor, dest: Tensor, src: Tensor) -> Tensor:
    rows = torch.arange(len(pattern))
    return pattern[rows, :, dest, src]


def check_attention_between(fn) -> None:
    """``fn(pattern, dest_pos, src_pos)``: ``[batch head dest_pos src_pos]`` -> ``[batch head]``."""
    gen = generator(24)
    pattern = _softmax_patterns(gen, 3, 2, 7)
    cases = [Case("3 prompts, positions differ by prompt",
                  (pattern, torch.tensor([6, 5, 6]), torch.tensor([2, 1, 3]))),
             Case("one prompt", (pattern[:1], torch.tensor([4]), torch.tensor([0]))),
             Case("a token attending to itself", (pattern, torch.tensor([3, 3, 3]), torch.tensor([3, 3, 3])))]
    check_function(fn, _attention_between, cases, axes="batch head", mistakes=[
        Mistake("you swapped dest and src (pattern is [batch, head, dest_pos, src_pos])",
                lambda p, d, s: _attention_between(p, s, d)),
        Mistake("you used the first prompt's positions for every prompt",
                lambda p, d, s: p[:, :, d[0], s[0]])],
        hint="index prompt b's pattern at [b, :, dest_pos[b], src_pos[b]] (advanced indexing "
             "with torch.arange(batch)).")


# --- 06: a head's copying score ---------------------------------------------------------------
def _copying_score(W_E: Tensor, W_V: Tensor, W_O: Tensor, W_U: Tensor) -> float:
    scores = W_E @ W_V @ W_O @ W_U  # name (input) x name (output)
    return (scores.argmax(-1) == torch.arange(len(W_E))).float().mean().item()


def check_copying_score(fn) -> None:
    """``fn(W_E_names, W_V, W_O, W_U_names)`` -> fraction of names the head's OV copies."""
    gen = generator(25)
    names, d_model, d_head = 10, 8, 8
    W_E = _randn(gen, names, d_model)
    W_V, W_O = torch.eye(d_model, d_head), torch.eye(d_head, d_model)
    cases = [Case("random weights", (W_E, _randn(gen, d_model, 4), _randn(gen, 4, d_model),
                                     _randn(gen, d_model, names))),
             Case("a copying head (W_U = W_E^T, identity OV)", (W_E, W_V, W_O, W_E.T.clone())),
             Case("an anti-copying head", (W_E, W_V, -W_O, W_E.T.clone())),
             Case("a head that promotes one name whatever it reads",
                  (torch.eye(names), torch.eye(names), torch.eye(names),
                   torch.eye(names) + 2 * (torch.arange(names) == 3).float()))]
    check_function(fn, _copying_score, cases, mistakes=[
        Mistake("you took the argmax over input names (axis 0) instead of output names",
                lambda E, V, O, U: ((E @ V @ O @ U).argmax(0) == torch.arange(len(E))).float().mean().item())],
        hint="scores = W_E_names @ W_V @ W_O @ W_U_names is [input name, output name]; a name "
             "is copied when its own column is the largest in its row.")


# --- 07: induction score -------------------------------------------------------------------------
def _offset_score(pattern: Tensor, rep_len: int, offset: int) -> Tensor:
    dest = torch.arange(rep_len + 1, 2 * rep_len + 1)
    return pattern[:, :, dest, dest - offset].mean(dim=(0, 2))


def check_induction_score(fn) -> None:
    """``fn(pattern, rep_len)``: ``[batch head dest_pos src_pos]`` on BOS + r + r -> ``[head]``."""
    gen = generator(26)
    perfect = torch.zeros(1, 1, 11, 11)
    perfect[0, 0, 0, 0] = 1
    for pos in range(1, 11):
        perfect[0, 0, pos, pos - 4 if pos > 5 else 0] = 1  # induction on the second copy
    cases = [Case("2 sequences, rep_len 5, 3 heads", (_softmax_patterns(gen, 2, 3, 11), 5)),
             Case("rep_len 1", (_softmax_patterns(gen, 2, 2, 3), 1)),
             Case("a perfect induction head (score 1)", (perfect, 5))]
    check_function(fn, lambda p, n: _offset_score(p, n, n - 1), cases, axes="head", mistakes=[
        Mistake("you read attention to pos - rep_len: the earlier copy of the *same* token "
                "(a duplicate-token score)", lambda p, n: _offset_score(p, n, n)),
        Mistake("you read attention to pos - rep_len + 2", lambda p, n: _offset_score(p, n, n - 2))],
        hint="positions rep_len+1 .. 2*rep_len hold the second copy; the token after the first "
             "occurrence of position p's token sits at p - rep_len + 1. Average over batch and p.")


# --- 07: K-composition ----------------------------------------------------------------------------
def _composition(W_V_a, W_O_a, W_Q_b, W_K_b, transpose_qk=True, normalise=True):
    ov = W_V_a @ W_O_a
    qk = W_Q_b @ W_K_b.T
    product = ov @ (qk.T if transpose_qk else qk)
    if not normalise:
        return product.norm().item()
    return (product.norm() / (ov.norm() * qk.norm())).item()


def check_k_composition(fn) -> None:
    """``fn(W_V_a, W_O_a, W_Q_b, W_K_b)`` -> the K-composition score of head a into head b."""
    gen = generator(27)

    def weights(d_model, d_head):
        return (_randn(gen, d_model, d_head), _randn(gen, d_head, d_model),
                _randn(gen, d_model, d_head), _randn(gen, d_model, d_head))

    W_V, W_O, W_Q, _ = weights(8, 2)
    cases = [Case("d_model 8, d_head 2", weights(8, 2)), Case("d_head = d_model", weights(5, 5)),
             Case("head b's keys read exactly what head a writes", (W_V, W_O, W_Q, W_O.T.clone()))]
    check_function(fn, _composition, cases, mistakes=[
        Mistake("you computed Q-composition (W_OV @ W_QK); K-composition reads through the "
                "keys: W_OV @ W_QK^T", lambda *w: _composition(*w, transpose_qk=False)),
        Mistake("you did not divide by the two matrices' norms",
                lambda *w: _composition(*w, normalise=False))],
        hint="W_OV = W_V_a @ W_O_a, W_QK = W_Q_b @ W_K_b^T; score = |W_OV @ W_QK^T|_F / "
             "(|W_OV|_F |W_QK|_F).")


# --- 07: the loss on the repeated half -----------------------------------------------------------
def _repeat_loss(logits: Tensor, tokens: Tensor, rep_len: int, start: int = 1) -> Tensor:
    return per_token_loss(logits, tokens)[:, rep_len + start:2 * rep_len].mean()


def check_loss_on_repeat(fn) -> None:
    """``fn(logits, tokens, rep_len)`` -> mean loss where induction can predict the next token."""
    gen = generator(28)

    def case(name, batch, rep_len, d_vocab=11):
        first = torch.randint(1, d_vocab, (batch, rep_len), generator=gen)
        tokens = torch.cat([torch.zeros(batch, 1, dtype=torch.long), first, first], 1)
        return Case(name, (_randn(gen, batch, 2 * rep_len + 1, d_vocab), tokens, rep_len))

    cases = [case("2 sequences, rep_len 5", 2, 5), case("rep_len 2 (one position)", 3, 2),
             case("rep_len 8", 1, 8)]
    check_function(fn, _repeat_loss, cases, mistakes=[
        Mistake("you included position rep_len, whose next token (the first of the second "
                "copy) cannot be predicted", partial(_repeat_loss, start=0)),
        Mistake("you averaged over the whole sequence",
                lambda lg, t, n: per_token_loss(lg, t).mean())],
        hint="position p predicts token p + 1; induction can predict the tokens at rep_len+2 "
             ".. 2*rep_len, so use the losses at positions rep_len+1 .. 2*rep_len-1.")
