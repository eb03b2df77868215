"""Checkpoints that resume training exactly where it stopped.

A checkpoint is one folder per saved step, ``step-000250/``, holding a few small files:

* the model's weights, ``model.safetensors`` (for a Hugging Face model the whole model
  folder that ``save_pretrained`` writes, so :func:`~mi_helpers.load_model` opens it);
* ``training_state.safetensors``: the optimiser's tensors (AdamW's moment estimates and
  step counts) and torch's random-number state;
* ``training_state.json``: the step, the optimiser's hyper-parameters, the learning-rate
  schedule's position, the data sampler's random state and any record kept so far.

Resuming needs all of it: with the weights alone, AdamW restarts its moment estimates
and the data sampler replays the first batches, so the run would not be the run that
was interrupted. The tests check that the step after a resume is bit-for-bit the step
of an uninterrupted run.
"""

from __future__ import annotations

import json
import random
import re
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers.utils import logging as hf_logging

from ..core.models import ZOO_DIR

__all__ = ["RUNS_DIR", "checkpoint_dir", "list_checkpoints", "save_checkpoint", "load_checkpoint"]

#: Committed training runs (records and a few checkpoints) that notebook 13 loads.
RUNS_DIR = ZOO_DIR.parent / "dynamics"

STATE_TENSORS = "training_state.safetensors"
STATE_JSON = "training_state.json"
WEIGHTS = "model.safetensors"
_STEP_DIR = re.compile(r"^step-(\d+)$")


def checkpoint_dir(root: str | Path, step: int) -> Path:
    """The folder of the checkpoint taken after ``step`` optimiser steps."""
    return Path(root) / f"step-{step:06d}"


def list_checkpoints(root: str | Path) -> dict[int, Path]:
    """``{step: folder}`` for every complete checkpoint under ``root``, in step order."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no checkpoint folder at {root}")
    found = {int(m.group(1)): p for p in root.iterdir()
             if (m := _STEP_DIR.match(p.name)) and (p / WEIGHTS).is_file()}
    return dict(sorted(found.items()))


def save_checkpoint(folder: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                    step: int, *, scheduler=None, rng: random.Random | None = None,
                    tokenizer=None, extra: dict | None = None, weights_only: bool = False) -> Path:
    """Save everything needed to continue training from ``step``.

    Args:
        folder: the checkpoint folder (created), e.g. ``checkpoint_dir(root, step)``.
        model: a Hugging Face model (saved with ``save_pretrained``) or any module.
        optimizer: its state goes to ``training_state.safetensors``.
        step: optimiser steps taken so far.
        scheduler: a learning-rate scheduler whose position is saved, if any.
        rng: the data sampler's ``random.Random``, whose state is saved, if any.
        tokenizer: saved beside a Hugging Face model, so the folder loads as a model.
        extra: JSON-serialisable values to keep (e.g. the record so far).
        weights_only: save only the weights (a snapshot to look at, not to resume).

    Returns:
        The folder.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "save_pretrained"):
        with _no_hf_progress_bar():
            model.save_pretrained(folder)
        if tokenizer is not None:
            tokenizer.save_pretrained(folder)
    else:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / WEIGHTS))
    if weights_only:
        return folder
    tensors, groups = _optimizer_tensors(optimizer)
    tensors["rng.torch"] = torch.get_rng_state()
    save_file(tensors, str(folder / STATE_TENSORS))
    state = {"step": step, "param_groups": groups,
             "scheduler": None if scheduler is None else _scheduler_state(scheduler),
             "rng": None if rng is None else _rng_to_json(rng.getstate()),
             "extra": extra or {}}
    (folder / STATE_JSON).write_text(json.dumps(state) + "\n")
    return folder


def load_checkpoint(folder: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer, *,
                    scheduler=None, rng: random.Random | None = None) -> dict:
    """Restore a checkpoint saved by :func:`save_checkpoint` into freshly built objects.

    Args:
        folder: the checkpoint folder.
        model, optimizer, scheduler, rng: built as for a fresh run; overwritten in place.

    Returns:
        ``{"step": ..., "extra": ...}`` as saved.

    Raises:
        FileNotFoundError: a file of the checkpoint is missing (e.g. a weights-only one).
        ValueError: the weights or optimiser do not fit the model (wrong shapes or names).
    """
    folder = Path(folder)
    for name in (WEIGHTS, STATE_TENSORS, STATE_JSON):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name} is missing: not a resumable checkpoint")
    _load_weights(model, load_file(str(folder / WEIGHTS)), folder)
    state = json.loads((folder / STATE_JSON).read_text())
    tensors = load_file(str(folder / STATE_TENSORS))
    torch.set_rng_state(tensors.pop("rng.torch"))
    optimizer.load_state_dict(_optimizer_state(tensors, state["param_groups"]))
    if scheduler is not None:
        if state["scheduler"] is None:
            raise ValueError(f"{folder} was saved without a scheduler")
        scheduler.load_state_dict({**scheduler.state_dict(), **state["scheduler"]})
    if rng is not None:
        if state["rng"] is None:
            raise ValueError(f"{folder} was saved without the data sampler's random state")
        rng.setstate(_rng_from_json(state["rng"]))
    return {"step": state["step"], "extra": state["extra"]}


@contextmanager
def _no_hf_progress_bar():
    """Silence the "Writing model shards" bar of ``save_pretrained`` (a few small files)."""
    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()


def _load_weights(model: nn.Module, weights: dict[str, torch.Tensor], folder: Path) -> None:
    """Load ``weights``; only names tied to another parameter may be absent from the file."""
    result = model.load_state_dict(weights, strict=False)
    named = dict(model.named_parameters(remove_duplicate=False))
    kept = {id(p) for name, p in named.items() if name in weights}
    untied = [k for k in result.missing_keys if k not in named or id(named[k]) not in kept]
    if untied or result.unexpected_keys:
        raise ValueError(f"the weights in {folder} do not fit this model: missing "
                         f"{untied}, unexpected {result.unexpected_keys}")


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict, list[dict]]:
    """The optimiser's per-parameter tensors, keyed ``state.<index>.<name>``, and its groups."""
    saved = optimizer.state_dict()
    tensors = {f"state.{index}.{name}": value.detach().clone().contiguous()
               for index, values in saved["state"].items() for name, value in values.items()
               if isinstance(value, torch.Tensor)}
    scalars = [(index, name) for index, values in saved["state"].items()
               for name, value in values.items() if not isinstance(value, torch.Tensor)]
    if scalars:
        raise TypeError(f"optimiser state holds non-tensor values {scalars}; cannot save it")
    return tensors, saved["param_groups"]


def _optimizer_state(tensors: dict[str, torch.Tensor], groups: list[dict]) -> dict:
    """The inverse of :func:`_optimizer_tensors`."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    for group in groups:  # JSON turned tuples such as AdamW's betas into lists
        group.update({k: tuple(v) for k, v in group.items()
                      if k != "params" and isinstance(v, list)})
    return {"state": state, "param_groups": groups}


def _scheduler_state(scheduler) -> dict:
    """A learning-rate scheduler's position (its lambdas are code, rebuilt by the trainer)."""
    return {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}


def _rng_to_json(state: tuple) -> list:
    version, internal, gauss_next = state
    return [version, list(internal), gauss_next]


def _rng_from_json(saved: list) -> tuple:
    version, internal, gauss_next = saved
    return version, tuple(internal), gauss_next
