"""Input checks at the package's boundary, in the user's terms, written once.

Every public function checks what it is given *before* any work, so that a mistake is
reported as "layer 7 is out of range: this model has 4 layers" rather than as an
indexing error deep inside torch, or, worse, as a silently wrong number. The checks
live here and are reused; no module writes its own copy.
"""

from __future__ import annotations

import operator
import warnings
from collections.abc import Iterable, Sequence

import torch
from jaxtyping import Int
from torch import Tensor

__all__ = ["as_tokens", "check_tokens", "check_layer", "check_pos", "check_positions",
           "checked_indices", "check_same_shape", "check_device", "check_prompts",
           "check_positive", "check_type", "check_model", "check_token_ids", "check_labels",
           "check_records", "check_circuit", "check_activations"]


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
        got = repr(value) if isinstance(value, (bool, int, float, str)) else type(value).__name__
        raise ValueError(f"{name} must be {'an int' if integer else 'a number'}, got {got}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return value


def check_type(name: str, value, types: type | tuple[type, ...], hint: str = ""):
    """``value`` if it is an instance of ``types``, else a ``TypeError`` naming both.

    Args:
        hint: how to make the right object, appended to the message.
    """
    if not isinstance(value, types):
        wanted = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
        article = "an" if wanted[0] in "AEIO" else "a"
        raise TypeError(f"{name} must be {article} {wanted}, got {type(value).__name__}"
                        + (f"; {hint}" if hint else ""))
    return value


def check_model(model, name: str = "model",
                needs: tuple[str, ...] = ("cfg", "tokenizer", "run_with_hooks")):
    """``model`` if it is a loaded TransformerLens model (it has the attributes ``needs``).

    Raises:
        TypeError: a model name, a Hugging Face model or anything else.
    """
    if isinstance(model, str):
        raise TypeError(f"{name} must be a loaded model, got the string {model!r}; load it "
                        f"first: load_model({model!r})")
    if not all(hasattr(model, a) for a in needs):
        raise TypeError(f"{name} must be a TransformerLens model from load_model(...), got "
                        f"{type(model).__name__}; a Hugging Face model loads with "
                        f"load_model(its folder or hub name)")
    return model


def check_token_ids(model, ids, n_batch: int, what: str = "token ids") -> Int[Tensor, "batch"]:
    """One token id per prompt: a ``[n_batch]`` integer tensor of ids in the vocabulary.

    Raises:
        TypeError: not integers. ValueError: not one per prompt, or outside the vocabulary.
    """
    ids = torch.as_tensor(ids)
    if ids.dtype.is_floating_point or ids.dtype == torch.bool:
        raise TypeError(f"{what} must be integer token ids, got dtype {ids.dtype}")
    if ids.ndim == 0:
        ids = ids.expand(n_batch)
    if ids.shape != (n_batch,):
        raise ValueError(f"{what} have shape {tuple(ids.shape)}: give one id per prompt "
                         f"({n_batch})")
    d_vocab = model.cfg.d_vocab
    if len(ids) and (int(ids.min()) < 0 or int(ids.max()) >= d_vocab):
        raise ValueError(f"{what} must be in 0..{d_vocab - 1} (this model's vocabulary), got "
                         f"ids from {int(ids.min())} to {int(ids.max())}")
    return ids.long()


def check_labels(labels: Int[Tensor, "batch"], n_examples: int) -> Int[Tensor, "batch"]:
    """Return ``labels`` as 0/1 integers, or raise if they do not fit ``n_examples``.

    Raises:
        ValueError: the counts differ, a label is not exactly 0 or 1 (e.g. 0.7 or 2), or
            only one class is present.
    """
    labels = torch.as_tensor(labels)
    if labels.ndim != 1 or len(labels) != n_examples:
        raise ValueError(f"got {n_examples} examples but labels of shape "
                         f"{tuple(labels.shape)}; give one 0/1 label per example")
    if labels.dtype == torch.bool:
        labels = labels.long()
    if not torch.isin(labels, torch.tensor([0, 1], dtype=labels.dtype, device=labels.device)).all():
        bad = sorted({float(v) for v in labels.unique().tolist()} - {0.0, 1.0})
        raise ValueError(f"labels must be exactly 0 or 1, got the values "
                         f"{[f'{v:g}' for v in bad[:5]]}; binarise "
                         f"them first (e.g. labels > 0.5)")
    labels = labels.long()
    if labels.unique().numel() < 2:
        raise ValueError(f"every label is {labels[0].item()}: a probe needs examples of both "
                         f"classes")
    return labels


def check_records(rows, keys: Iterable[str], source: str) -> list[dict]:
    """``rows`` as a non-empty list of dicts that all have ``keys`` (rows of ``source``).

    Raises:
        TypeError: not a list of dicts. ValueError: empty, or a row lacks a key.
    """
    if isinstance(rows, (dict, str)) or not isinstance(rows, Iterable):
        raise TypeError(f"expected the list of rows of {source}, got {type(rows).__name__}")
    rows = list(rows)
    if not rows:
        raise ValueError(f"no rows given: pass the rows of {source}")
    for row in rows:
        if not isinstance(row, dict):
            raise TypeError(f"each row must be a dict (a row of {source}), got "
                            f"{type(row).__name__}")
        missing = [k for k in keys if k not in row]
        if missing:
            raise ValueError(f"a row lacks {missing} (it has {sorted(row)}); pass the rows of "
                             f"{source}")
    return rows


def check_circuit(circuit, graph=None, model=None):
    """``circuit`` as a :class:`~mi_helpers.core.graph.Circuit` on ``graph`` (the same
    graph shape) or with ``model``'s layers and heads.

    Raises:
        TypeError: not a Circuit. ValueError: a circuit built on another graph.
    """
    from .graph import Circuit

    check_type("circuit", circuit, Circuit, "build one with Circuit.from_heads(graph, heads) "
               "or Circuit.from_edges(graph, edges)")
    other = circuit.graph
    if graph is not None and other != graph:
        raise ValueError(f"the circuit was built on another graph ({other}), not this one "
                         f"({graph}); build it on CircuitGraph.from_model(model)")
    if model is not None and (other.n_layers, other.n_heads) != (model.cfg.n_layers,
                                                                  model.cfg.n_heads):
        raise ValueError(f"the circuit was built for a model with {other.n_layers} layers of "
                         f"{other.n_heads} heads, but this one has {model.cfg.n_layers} of "
                         f"{model.cfg.n_heads}; build it on CircuitGraph.from_model(model)")
    return circuit


def check_activations(acts: Tensor, min_rows: int = 1) -> Tensor:
    """``acts`` if it is a finite float ``[batch, width]`` tensor with ``min_rows`` rows.

    Raises:
        ValueError: not a 2-D tensor, too few rows, or NaN/infinity. TypeError: not floats.
    """
    if not isinstance(acts, Tensor) or acts.ndim != 2 or len(acts) < min_rows:
        raise ValueError(f"activations must be a [batch, width] tensor with at least {min_rows} "
                         f"row{'s' if min_rows > 1 else ''}, got "
                         f"{tuple(acts.shape) if isinstance(acts, Tensor) else type(acts).__name__}")
    if not acts.dtype.is_floating_point:
        raise TypeError(f"activations must be floats, got {acts.dtype}")
    if not torch.isfinite(acts).all():
        raise ValueError("activations contain NaN or infinity")
    return acts
