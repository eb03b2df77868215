"""Modular addition: the task on which small transformers *grok*.

Power et al. (2022) trained small transformers on tables such as ``a + b mod p`` with
some of the pairs held out. The training accuracy reached 100% early; the test accuracy
stayed at chance for a long time and then jumped to 100%: *grokking*. Nanda et al.
(2023) reverse-engineered a one-layer transformer that grokked: it embeds each number
``a`` as cosines and sines of ``2 pi k a / p`` for a handful of *key frequencies* ``k``,
and adds angles with trigonometric identities. Weight decay drives the change: the
memorising solution is large, the Fourier solution is small.

* :func:`modular_addition_data`: every pair ``(a, b)`` as tokens ``a b =``, split at random
  into train and test sets;
* :class:`OneLayerTransformer`: the paper's model (embedding, attention, ReLU MLP,
  unembedding, no layer norm), reading its answer at the ``=`` position;
* :func:`fourier_basis`, :func:`frequency_norms`, :func:`effective_frequencies`: how much
  of the embedding lies at each frequency, and how many frequencies it effectively uses
  (few after grokking: the embedding is *sparse* in the Fourier basis).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from ..core.checks import check_positive

__all__ = ["ModularData", "modular_addition_data", "OneLayerTransformer", "fourier_basis",
           "frequency_norms", "effective_frequencies"]


class ModularData(NamedTuple):
    """Tokens ``a b =`` (the ``=`` token is ``p``) and answers ``(a + b) % p``."""

    train_tokens: Int[Tensor, "batch 3"]
    train_labels: Int[Tensor, "batch"]
    test_tokens: Int[Tensor, "batch 3"]
    test_labels: Int[Tensor, "batch"]


def modular_addition_data(p: int, train_frac: float, seed: int = 0) -> ModularData:
    """All ``p * p`` pairs, a random ``train_frac`` of them for training, the rest for test.

    Raises:
        ValueError: ``p < 3`` or ``train_frac`` leaves the train or the test set empty.
    """
    check_positive("p", p, integer=True)
    if p < 3:
        raise ValueError(f"p must be at least 3, got {p}")
    n_train = int(train_frac * p * p)
    if not 0 < n_train < p * p:
        raise ValueError(f"train_frac={train_frac} leaves an empty train or test set "
                         f"({n_train} of {p * p} pairs)")
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    a, b = a.flatten(), b.flatten()
    tokens = torch.stack([a, b, torch.full_like(a, p)], dim=1)
    labels = (a + b) % p
    order = torch.randperm(p * p, generator=torch.Generator().manual_seed(seed))
    train, test = order[:n_train], order[n_train:]
    return ModularData(tokens[train], labels[train], tokens[test], labels[test])


class OneLayerTransformer(nn.Module):
    """One attention layer and one ReLU MLP on three tokens, no layer norm (Nanda et al.).

    Only the answer at the last position (``=``) is needed, so the attention's query and
    the MLP are computed there alone; the result equals the full model's last position.

    Args:
        p: the modulus (tokens ``0..p-1`` and ``=``; ``p`` answers).
        d_model, n_heads, d_mlp: widths (``d_model`` divisible by ``n_heads``).
    """

    def __init__(self, p: int, d_model: int = 128, n_heads: int = 4, d_mlp: int = 512):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        self.p, self.n_heads = p, n_heads
        scale = 1 / math.sqrt(d_model)
        self.W_E = nn.Parameter(torch.randn(p + 1, d_model) * scale)
        self.W_pos = nn.Parameter(torch.randn(3, d_model) * scale)
        self.W_Q = nn.Linear(d_model, d_model, bias=False)
        self.W_KV = nn.Linear(d_model, 2 * d_model, bias=False)
        self.W_O = nn.Linear(d_model, d_model, bias=False)
        self.mlp_in, self.mlp_out = nn.Linear(d_model, d_mlp), nn.Linear(d_mlp, d_model)
        self.W_U = nn.Parameter(torch.randn(d_model, p) * scale)

    def forward(self, tokens: Int[Tensor, "batch 3"]) -> Float[Tensor, "batch p"]:
        """Logits over the ``p`` answers, read at the ``=`` position."""
        x = self.W_E[tokens] + self.W_pos  # batch pos d_model
        B, T, C = x.shape
        H = self.n_heads
        k, v = self.W_KV(x).view(B, T, 2, H, C // H).permute(2, 0, 3, 1, 4)  # batch head pos d_head
        q = self.W_Q(x[:, -1]).view(B, H, 1, C // H)
        pattern = (q @ k.transpose(-1, -2) / math.sqrt(C // H)).softmax(dim=-1)  # batch head 1 pos
        resid = x[:, -1] + self.W_O((pattern @ v).reshape(B, C))
        resid = resid + self.mlp_out(torch.relu(self.mlp_in(resid)))
        return resid @ self.W_U


def fourier_basis(p: int) -> Float[Tensor, "p p"]:
    """Orthonormal rows: the constant, then ``cos(2 pi k x / p)`` and ``sin(...)`` for each ``k``.

    For odd ``p`` there are ``(p - 1) / 2`` frequencies; for even ``p`` the last row is
    the alternating ``cos(pi x)``.
    """
    check_positive("p", p, integer=True)
    x = torch.arange(p, dtype=torch.float64)
    rows = [torch.ones(p, dtype=torch.float64)]
    for k in range(1, p // 2 + 1):
        rows.append(torch.cos(2 * math.pi * k * x / p))
        if 2 * k != p:
            rows.append(torch.sin(2 * math.pi * k * x / p))
    basis = torch.stack(rows)
    return (basis / basis.norm(dim=1, keepdim=True)).float()


def frequency_norms(embedding: Float[Tensor, "p d_model"]) -> Float[Tensor, "freq"]:
    """The norm of the embedding's component at each frequency ``k = 1 .. p // 2``.

    Args:
        embedding: one row per number ``0..p-1`` (leave out the ``=`` row).

    Returns:
        ``[p // 2]`` norms, the cosine and sine parts together (the constant left out).
    """
    if embedding.ndim != 2 or len(embedding) < 3:
        raise ValueError(f"expected a [p, d_model] embedding with p >= 3, got shape "
                         f"{tuple(embedding.shape)}")
    p = len(embedding)
    coeffs = fourier_basis(p).to(embedding) @ embedding  # p d_model, row 0 the constant
    sq = coeffs[1:].pow(2).sum(dim=1)
    pairs = torch.zeros(p // 2, dtype=sq.dtype, device=sq.device)
    pairs.index_add_(0, torch.arange(len(sq), device=sq.device) // 2, sq)
    return pairs.sqrt()


def effective_frequencies(norms: Float[Tensor, "freq"]) -> float:
    """How many frequencies the embedding uses: ``(sum s)^2 / sum s^2`` with ``s = norm^2``.

    Equals ``m`` when ``m`` frequencies hold equal shares and the rest none, so it falls
    from near the number of frequencies (a random embedding) to a handful (grokked).
    """
    share = norms.double().pow(2)
    if share.sum() == 0:
        raise ValueError("the embedding is zero at every frequency")
    return (share.sum().pow(2) / share.pow(2).sum()).item()
