"""Checks for the model basics: attention, layer norm, the loss (notebook 00) and reading
the residual stream through the unembedding (notebook 01).

Each ``check_<skill>(fn)`` compares the learner's ``fn`` with a reference on fresh
inputs (see :mod:`mi_helpers.exercises.checking`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...core.metrics import kl_divergence, per_token_loss
from ..checking import Case, Mistake, check_function, generator

__all__ = ["check_attention_pattern", "check_layer_norm", "check_next_token_loss",
           "check_logit_lens", "check_answer_rank", "check_head_logit_attribution",
           "check_kl_final_vs_lens"]


def _randn(gen: torch.Generator, *shape: int, scale: float = 1.0) -> Tensor:
    return torch.randn(*shape, generator=gen) * scale


# --- 00: attention pattern ------------------------------------------------------------
def _attention_pattern(q: Tensor, k: Tensor, scale: bool = True, causal: bool = True,
                       over: int = -1) -> Tensor:
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / (q.shape[-1] ** 0.5 if scale else 1.0)
    if causal:
        n_pos = q.shape[1]
        scores = scores.masked_fill(torch.ones(n_pos, n_pos, dtype=torch.bool).triu(1), -torch.inf)
    return scores.softmax(over)


def check_attention_pattern(fn) -> None:
    """``fn(q, k)``: ``[batch pos head d_head]`` twice -> ``[batch head dest_pos src_pos]``."""
    gen = generator(0)
    cases = [Case("2 prompts, 5 positions, 3 heads", (_randn(gen, 2, 5, 3, 4), _randn(gen, 2, 5, 3, 4))),
             Case("one position", (_randn(gen, 1, 1, 2, 4), _randn(gen, 1, 1, 2, 4))),
             Case("large scores", (_randn(gen, 2, 4, 2, 8, scale=30), _randn(gen, 2, 4, 2, 8, scale=30)))]
    check_function(fn, _attention_pattern, cases, axes="batch head dest_pos src_pos", mistakes=[
        Mistake("you took the softmax over dest_pos instead of src_pos",
                lambda q, k: _attention_pattern(q, k, over=-2)),
        Mistake("you forgot to divide the scores by sqrt(d_head)",
                lambda q, k: _attention_pattern(q, k, scale=False)),
        Mistake("you forgot the causal mask (a token may not attend to later tokens)",
                lambda q, k: _attention_pattern(q, k, causal=False))],
        hint="scores[b, h, i, j] = q[b, i, h] . k[b, j, h] / sqrt(d_head); set j > i to -inf, "
             "then softmax over the last axis (src_pos).")


# --- 00: layer norm ---------------------------------------------------------------------
def _layer_norm(x: Tensor, w: Tensor, b: Tensor, eps: float = 1e-5) -> Tensor:
    centred = x - x.mean(-1, keepdim=True)
    return centred / (centred.pow(2).mean(-1, keepdim=True) + eps).sqrt() * w + b


def check_layer_norm(fn) -> None:
    """``fn(x, w, b, eps)``: ``[batch pos d_model]`` -> the same shape, normalised per position."""
    gen = generator(1)

    def case(name, x, eps=1e-5):
        d = x.shape[-1]
        return Case(name, (x, 1 + 0.1 * _randn(gen, d), 0.1 * _randn(gen, d), eps))

    cases = [case("2 prompts, 3 positions, d_model 8", _randn(gen, 2, 3, 8)),
             case("a large offset (mean 100)", 100 + _randn(gen, 1, 4, 6)),
             case("nearly constant vectors (eps matters)", 1e-3 * _randn(gen, 1, 2, 5), eps=1e-5)]
    check_function(fn, _layer_norm, cases, axes="batch pos d_model", mistakes=[
        Mistake("you used the unbiased variance (dividing by d_model - 1)",
                lambda x, w, b, eps: (x - x.mean(-1, keepdim=True))
                / (x.var(-1, keepdim=True) + eps).sqrt() * w + b),
        Mistake("you did not subtract the mean first (that is RMS norm)",
                lambda x, w, b, eps: x / (x.pow(2).mean(-1, keepdim=True) + eps).sqrt() * w + b),
        Mistake("you added eps outside the square root",
                lambda x, w, b, eps: (x - x.mean(-1, keepdim=True))
                / (x.var(-1, keepdim=True, unbiased=False).sqrt() + eps) * w + b)],
        hint="centre over d_model, divide by sqrt(mean of squares + eps) (the biased "
             "variance), then multiply by w and add b.")


# --- 00: next-token loss ------------------------------------------------------------------
def check_next_token_loss(fn) -> None:
    """``fn(logits, tokens)``: ``[batch pos d_vocab]``, ``[batch pos]`` -> ``[batch pos-1]``."""
    gen = generator(2)
    cases = [Case("2 prompts of 6 tokens", (_randn(gen, 2, 6, 10), torch.randint(0, 10, (2, 6), generator=gen))),
             Case("one prompt of 2 tokens", (_randn(gen, 1, 2, 7), torch.randint(0, 7, (1, 2), generator=gen))),
             Case("large logits", (_randn(gen, 2, 4, 5, scale=200), torch.randint(0, 5, (2, 4), generator=gen)))]
    check_function(fn, per_token_loss, cases, axes="batch pos", mistakes=[
        Mistake("you scored token i with the logits at position i (position i predicts token i + 1)",
                lambda lg, t: -lg[:, 1:].log_softmax(-1).gather(-1, t[:, 1:, None]).squeeze(-1)),
        Mistake("you returned the log-probability (the loss is its negative)",
                lambda lg, t: -per_token_loss(lg, t))],
        hint="log_softmax the logits at positions 0..n-2, pick the log-probability of the "
             "token at the next position (gather), and negate it.")


# --- 01: the logit lens on one layer -------------------------------------------------------
def _logit_lens(resid, w_ln, b_ln, W_U, b_U, eps=1e-5):
    return _layer_norm(resid, w_ln, b_ln, eps) @ W_U + b_U


def check_logit_lens(fn) -> None:
    """``fn(resid, w_ln, b_ln, W_U, b_U, eps)``: ``[batch pos d_model]`` -> ``[batch pos d_vocab]``."""
    gen = generator(3)

    def case(name, batch, n_pos, d_model, d_vocab):
        return Case(name, (_randn(gen, batch, n_pos, d_model), 1 + 0.1 * _randn(gen, d_model),
                           0.1 * _randn(gen, d_model), _randn(gen, d_model, d_vocab),
                           _randn(gen, d_vocab), 1e-5))

    cases = [case("2 prompts, d_model 8, d_vocab 11", 2, 4, 8, 11),
             case("a square unembedding (d_vocab = d_model)", 1, 3, 6, 6),
             case("one position", 1, 1, 5, 9)]
    check_function(fn, _logit_lens, cases, axes="batch pos d_vocab", mistakes=[
        Mistake("you skipped the final layer norm", lambda r, w, b, W, bU, eps: r @ W + bU),
        Mistake("you multiplied by W_U transposed", lambda r, w, b, W, bU, eps:
                _layer_norm(r, w, b, eps) @ W.T + bU),
        Mistake("you forgot the layer norm's weight and bias", lambda r, w, b, W, bU, eps:
                _layer_norm(r, torch.ones_like(w), torch.zeros_like(b), eps) @ W + bU)],
        hint="the model's own last step: layer norm (centre, scale, w, b), then @ W_U + b_U.")


# --- 01: the rank of the answer ---------------------------------------------------------
def _answer_rank(logits: Tensor, answers: Tensor) -> Tensor:
    own = logits.gather(-1, answers[:, None])
    return (logits > own).sum(-1)


def check_answer_rank(fn) -> None:
    """``fn(logits, answers)``: ``[batch d_vocab]``, ``[batch]`` -> ``[batch]`` ranks (0 = top)."""
    gen = generator(4)
    logits = _randn(gen, 5, 12)
    top = logits.argmax(-1)
    tied = torch.tensor([[1.0, 3.0, 3.0, 2.0, 3.0]])
    cases = [Case("5 prompts, 12 tokens", (logits, torch.randint(0, 12, (5,), generator=gen))),
             Case("every answer is the top token", (logits, top)),
             Case("a tie with the answer (ties do not count)", (tied, torch.tensor([2])))]
    check_function(fn, _answer_rank, cases, axes="batch", mistakes=[
        Mistake("you counted tokens with a logit >= the answer's (that counts the answer itself)",
                lambda lg, a: (lg >= lg.gather(-1, a[:, None])).sum(-1)),
        Mistake("you counted tokens with a *smaller* logit",
                lambda lg, a: (lg < lg.gather(-1, a[:, None])).sum(-1))],
        hint="rank = how many tokens have a strictly larger logit than the answer; read the "
             "answer's own logit with gather, one per prompt.")


# --- 01: direct logit attribution of heads ------------------------------------------------
def _head_dla(z, W_O, scale, W_U, correct, wrong, centre=True, divide=True):
    out = torch.einsum("bhd,hdm->bhm", z, W_O)  # batch head d_model
    if centre:
        out = out - out.mean(-1, keepdim=True)
    if divide:
        out = out / scale[:, :, None]
    direction = (W_U[:, correct] - W_U[:, wrong]).T  # batch d_model
    return torch.einsum("bhm,bm->bh", out, direction)


def check_head_logit_attribution(fn) -> None:
    """``fn(z, W_O, scale, W_U, correct, wrong)`` -> ``[batch head]`` direct effects."""
    gen = generator(5)

    def case(name, batch, n_heads, d_head, d_model, d_vocab):
        return Case(name, (_randn(gen, batch, n_heads, d_head), _randn(gen, n_heads, d_head, d_model),
                           1 + torch.rand(batch, 1, generator=gen), _randn(gen, d_model, d_vocab),
                           torch.randint(0, d_vocab, (batch,), generator=gen),
                           torch.randint(0, d_vocab, (batch,), generator=gen)))

    cases = [case("3 prompts, 4 heads", 3, 4, 2, 8, 10), case("one prompt, one head", 1, 1, 3, 5, 6),
             case("d_head = d_model", 2, 2, 6, 6, 7)]
    check_function(fn, _head_dla, cases, axes="batch head", mistakes=[
        Mistake("you did not divide by the final layer norm's scale",
                lambda *a: _head_dla(*a, divide=False)),
        Mistake("you did not centre the head's output (the layer norm subtracts the mean)",
                lambda *a: _head_dla(*a, centre=False)),
        Mistake("you measured logit(wrong) - logit(correct)",
                lambda z, W_O, s, W_U, c, w: _head_dla(z, W_O, s, W_U, w, c))],
        hint="each head writes z_h @ W_O[h]; the frozen final layer norm centres it and "
             "divides by scale; dot it with W_U[:, correct] - W_U[:, wrong], prompt by prompt.")


# --- 01: KL of a lens from the final distribution ---------------------------------------
def check_kl_final_vs_lens(fn) -> None:
    """``fn(lens_logits, final_logits)``: ``[batch pos d_vocab]`` twice -> ``[batch pos]``."""
    gen = generator(6)
    final = _randn(gen, 2, 3, 9)
    cases = [Case("2 prompts, 3 positions", (_randn(gen, 2, 3, 9), final)),
             Case("the lens is the model (KL 0)", (final, final)),
             Case("logits shifted by a constant (same distribution)", (final + 5.0, final))]
    check_function(fn, lambda lens, fin: kl_divergence(fin, lens), cases, axes="batch pos",
                   mistakes=[Mistake("you computed KL(lens || final), the other direction",
                                     lambda lens, fin: kl_divergence(lens, fin))],
                   hint="KL(final || lens) = sum over the vocabulary of p_final * (log p_final - "
                        "log p_lens); use log_softmax for both.")
