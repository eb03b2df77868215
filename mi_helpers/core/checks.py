"""Input checks at the package's boundary, in the user's terms, written once.

Every public function checks what it is given *before* any work, so that a mistake is
reported as "layer 7 is out of range: this model has 4 layers" rather than as an
indexing error deep inside torch, or, worse, as a silently wrong number. The checks
live here and are reused; no module writes its own copy.
"""

from __future__ import annotations

import operator
import warnings
from collections.abc import Sequence

import torch
from jaxtyping import Int
from torch import Tensor

__all__ = ["as_tokens", "check_tokens", "check_layer", "check_pos", "check_positions",
           "checked_indices", "check_same_shape", "check_device", "check_prompts",
           "check_positive"]


def check_prompts(prompts: str | Sequence[str]) -> list[str]:
    """``prompts`` as a non-empty list of non-empty strings.

    Raises:
        TypeError: not a string or a sequence of strings. ValueError: empty.
    """
    if isinstance(prompts, str):
        prompts = [prompts]
    if not isinstance(prompts, Sequence) or not all(isinstance(p, str) for p in prompts):
        raise TypeError(f"prompts must be a string or a list of strings, got "
                        f"{type(prompts).__name__}")
    if not prompts:
        raise ValueError("no prompts given: pass at least one string")
    empty = [i for i, p in enumerate(prompts) if not p.strip()]
    if empty:
        raise ValueError(f"prompts {empty[:5]} are empty strings; give each prompt some text")
    return list(prompts)


def check_tokens(model, tokens: Tensor) -> Int[Tensor, "batch pos"]:
    """``tokens`` as a ``[batch, pos]`` integer tensor of ids the model knows.

    A 1-D tensor is taken as one prompt. Prompts longer than the model's context are
    an error (the model cannot run them).

    Raises:
        TypeError: not a tensor, or not integer ids (e.g. floats).
        ValueError: empty, more than 2 axes, ids outside ``[0, d_vocab)``, or too long.
    """
    if not isinstance(tokens, Tensor):
        raise TypeError(f"tokens must be a tensor of token ids, got {type(tokens).__name__}; "
                        f"use model.to_tokens(text) for text")
    if tokens.dtype.is_floating_point or tokens.dtype.is_complex or tokens.dtype == torch.bool:
        raise TypeError(f"tokens must be integer token ids, got dtype {tokens.dtype}; "
                        f"use model.to_tokens(text), or .long() if they are ids stored as floats")
    if tokens.ndim == 1:
        tokens = tokens.unsqueeze(0)
    if tokens.ndim != 2 or tokens.numel() == 0:
        raise ValueError(f"tokens must be [batch, pos] with at least one id, got shape "
                         f"{tuple(tokens.shape)}")
    d_vocab = model.cfg.d_vocab
    low, high = int(tokens.min()), int(tokens.max())
    if low < 0 or high >= d_vocab:
        raise ValueError(f"token ids must be in 0..{d_vocab - 1} (this model's vocabulary), "
                         f"got ids from {low} to {high}; were they made by another tokenizer?")
    if tokens.shape[1] > model.cfg.n_ctx:
        raise ValueError(f"the prompts have {tokens.shape[1]} tokens but the model's context "
                         f"is {model.cfg.n_ctx}; shorten them")
    return tokens.long()


def as_tokens(model, prompts: str | Sequence[str] | Tensor) -> Int[Tensor, "batch pos"]:
    """Checked token ids on the model's device, from a tensor, a prompt or a list of prompts.

    Text longer than the context is truncated to it, with a warning.
    """
    if isinstance(prompts, Tensor):
        return check_tokens(model, prompts).to(model.cfg.device)
    prompts = check_prompts(prompts)
    tokens = model.to_tokens(prompts, truncate=False)
    if tokens.shape[1] > model.cfg.n_ctx:
        warnings.warn(f"prompts of {tokens.shape[1]} tokens were truncated to the model's "
                      f"context of {model.cfg.n_ctx}", stacklevel=2)
        tokens = tokens[:, :model.cfg.n_ctx]
    return tokens


def check_layer(model, layer: int) -> int:
    """``layer`` as an index in ``[0, n_layers)`` (negatives count from the end).

    Raises:
        IndexError: the layer does not exist (the message gives the valid range).
    """
    n_layers = model.cfg.n_layers
    layer = _index("layer", layer)
    if not -n_layers <= layer < n_layers:
        raise IndexError(f"layer {layer} is out of range: this model has {n_layers} layers, "
                         f"so use 0..{n_layers - 1} (or -{n_layers}..-1 from the end)")
    return layer % n_layers


def _index(what: str, value) -> int:
    """``value`` as a Python int if it is an integer (not a bool or a float)."""
    try:
        if isinstance(value, bool):
            raise TypeError
        return operator.index(value)
    except TypeError:
        raise TypeError(f"a {what} is an int, got {type(value).__name__} {value!r}") from None


def check_pos(pos: int, n_pos: int) -> int:
    """``pos`` as an index in ``[0, n_pos)`` (negatives count from the end).

    Raises:
        IndexError: the position is beyond the prompt (the message gives its length).
    """
    pos = _index("position", pos)
    if not -n_pos <= pos < n_pos:
        raise IndexError(f"position {pos} is beyond the prompt: it has {n_pos} positions, "
                         f"so use 0..{n_pos - 1} (or -{n_pos}..-1 from the end)")
    return pos % n_pos


def check_positions(positions: int | Int[Tensor, "batch"], n_batch: int, n_pos: int
                    ) -> Int[Tensor, "batch"]:
    """One non-negative position per example (on the CPU), from an int or one per example.

    Raises:
        ValueError: a tensor of the wrong shape. IndexError: a position beyond the prompt.
    """
    positions = torch.as_tensor(positions)
    if positions.dtype.is_floating_point:
        raise TypeError(f"positions must be integers, got dtype {positions.dtype}")
    positions = positions.long().cpu()
    if positions.ndim == 0:
        return torch.full((n_batch,), check_pos(int(positions), n_pos))
    if positions.shape != (n_batch,):
        raise ValueError(f"positions have shape {tuple(positions.shape)}; give an int or one "
                         f"position per example ({n_batch})")
    bad = (positions < -n_pos) | (positions >= n_pos)
    if bad.any():
        check_pos(int(positions[bad][0]), n_pos)  # raises with the prompt length
    return positions % n_pos


def checked_indices(axis: str, requested: Sequence[int] | None, size: int) -> list[int]:
    """``requested`` with negatives counted from the end, or ``range(size)`` when ``None``.

    Raises:
        IndexError: an index is outside ``[-size, size)``. ValueError: an empty selection.
    """
    if requested is None:
        return list(range(size))
    if isinstance(requested, int):
        requested = [requested]
    out = []
    for i in requested:
        if not -size <= int(i) < size:
            raise IndexError(f"{axis} index {int(i)} is out of range: there are {size} "
                             f"{axis} values here (0..{size - 1}, or negatives from the end)")
        out.append(int(i) % size)
    if not out:
        raise ValueError(f"no {axis} to sweep: pass at least one index, or None for all")
    return out


def check_same_shape(clean: Tensor, corrupted: Tensor) -> None:
    """Raise ``ValueError`` unless two token batches have the same ``[batch, pos]`` shape."""
    if clean.shape != corrupted.shape:
        raise ValueError(
            f"clean tokens have shape {list(clean.shape)} but corrupted tokens have "
            f"{list(corrupted.shape)} [batch, pos]; patching swaps activations position by "
            f"position, so use prompts with the same number of tokens (and as many prompts)")


def check_device(device: str | torch.device | None) -> torch.device | None:
    """``device`` as a ``torch.device`` that exists here (``None`` stays ``None``).

    Raises:
        ValueError: an unknown device name, or one this machine does not have.
    """
    if device is None:
        return None
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"{device!r} is not a device name; use 'cpu', 'cuda' or 'mps'") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for, but this machine has no CUDA GPU "
                         "(torch.cuda.is_available() is False); use 'cpu'")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None)
                                     and torch.backends.mps.is_available()):
        raise ValueError("device 'mps' was asked for, but Apple's MPS is not available here; "
                         "use 'cpu'")
    return device


def check_positive(name: str, value, *, integer: bool = False, allow_zero: bool = False):
    """``value`` if it is a positive number (an int when ``integer``), else ``ValueError``."""
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or value != value:
        raise ValueError(f"{name} must be {'an int' if integer else 'a number'}, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return value
