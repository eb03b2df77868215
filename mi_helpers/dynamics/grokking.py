"""Train a one-layer transformer on modular addition and watch it grok.

Full-batch AdamW with strong weight decay on a fraction of the ``a + b mod p`` table
(Nanda et al. 2023 used ``p = 113``, 30% of the pairs, learning rate 1e-3 and weight
decay 1, and saw grokking after about 10,000 steps; the defaults here, a smaller model
with learning rate 3e-3 and weight decay 3, grokked within about 1,000 steps in the two
seeds we tried; with ``p = 53`` and ``p = 97`` the same settings grokked in some seeds
and not in others within 3,000 steps). Every
``record_every`` steps the :class:`~.recorder.Recorder` logs the train and test loss and
accuracy, the total weight norm, the embedding's norm at each Fourier frequency and its
effective number of frequencies (:mod:`.modular`). Grokking shows as a test accuracy
that jumps long after the train accuracy reached 1, while the weight norm falls and the
embedding concentrates on a few key frequencies.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from ..core.checks import check_positive
from ..core.training import TrainingGuard
from .modular import (ModularData, OneLayerTransformer, effective_frequencies, frequency_norms,
                      modular_addition_data)
from .recorder import Probe, Recorder

__all__ = ["GrokkingConfig", "grokking_probes", "weight_norm", "train_grokking",
           "first_crossing"]


@dataclass(frozen=True)
class GrokkingConfig:
    """One grokking run.

    Attributes:
        p: the modulus.
        train_frac: fraction of the ``p * p`` pairs trained on (the rest is the test set).
        d_model, n_heads, d_mlp: the model's widths.
        lr, weight_decay: AdamW's (constant) learning rate and decoupled weight decay.
        steps: full-batch optimiser steps.
        record_every: steps between records.
        seed: seeds the split and the weights.
    """

    p: int = 113
    train_frac: float = 0.3
    d_model: int = 64
    n_heads: int = 4
    d_mlp: int = 256
    lr: float = 3e-3
    weight_decay: float = 3.0
    steps: int = 2000
    record_every: int = 25
    seed: int = 0

    def __post_init__(self):
        for name in ("p", "d_model", "n_heads", "d_mlp", "steps", "record_every"):
            check_positive(name, getattr(self, name), integer=True)
        check_positive("lr", self.lr)
        check_positive("weight_decay", self.weight_decay, allow_zero=True)


def weight_norm(model: torch.nn.Module) -> float:
    """The L2 norm of all parameters together (what weight decay shrinks)."""
    return torch.sqrt(sum(p.detach().pow(2).sum() for p in model.parameters())).item()


def grokking_probes(data: ModularData) -> dict[str, Probe]:
    """Recorder probes: train/test loss and accuracy, weight norm, Fourier picture.

    Records ``train_loss``, ``train_accuracy``, ``test_loss``, ``test_accuracy``,
    ``weight_norm``, ``frequency_norms`` (``[p // 2]``) and ``effective_frequencies``.
    """
    def split_metrics(model):
        out = {}
        for split, tokens, labels in (("train", data.train_tokens, data.train_labels),
                                      ("test", data.test_tokens, data.test_labels)):
            logits = model(tokens)
            out[f"{split}_loss"] = F.cross_entropy(logits, labels).item()
            out[f"{split}_accuracy"] = (logits.argmax(-1) == labels).float().mean().item()
        return out

    def weights(model):
        norms = frequency_norms(model.W_E[: model.p].detach())
        return {"weight_norm": weight_norm(model), "frequency_norms": norms,
                "effective_frequencies": effective_frequencies(norms)}

    return {"accuracy": split_metrics, "weights": weights}


def train_grokking(config: GrokkingConfig, progress: bool = True
                   ) -> tuple[OneLayerTransformer, Recorder, ModularData]:
    """Train a fresh model on ``config``'s split, recording every ``record_every`` steps.

    Returns:
        The trained model, the recorder (records at step 0, every ``record_every`` steps
        and at the end) and the data split.

    Raises:
        TrainingError: the loss became NaN or infinite or diverged (the error's
            ``result`` holds the model with the last good step's weights).
    """
    data = modular_addition_data(config.p, config.train_frac, config.seed)
    torch.manual_seed(config.seed)
    model = OneLayerTransformer(config.p, config.d_model, config.n_heads, config.d_mlp)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=(0.9, 0.98),
                            weight_decay=config.weight_decay)
    recorder = Recorder(grokking_probes(data), every=config.record_every)
    recorder.record(0, model)
    guard = TrainingGuard(model.parameters(), "the modular-addition model", result=model)
    for step in tqdm(range(1, config.steps + 1), desc="grokking", disable=not progress):
        loss = F.cross_entropy(model(data.train_tokens), data.train_labels)
        guard.check(loss, step)
        guard.keep(step)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if recorder.due(step) or step == config.steps:
            recorder.record(step, model)
    recorder.metadata = {"config": asdict(config)}
    return model, recorder, data


def first_crossing(steps: Int[Tensor, "record"], values: Float[Tensor, "record"],
                   threshold: float, *, below: bool = False) -> int | None:
    """The first step at which ``values >= threshold`` (``values <= threshold`` with
    ``below``), or ``None`` if it never happens.

    Example: ``first_crossing(rec.steps, rec.series("test_accuracy"), 0.95)``.
    """
    if steps.shape != values.shape or steps.ndim != 1:
        raise ValueError(f"expected one value per step, got shapes {tuple(steps.shape)} and "
                         f"{tuple(values.shape)}")
    hits = ((values <= threshold) if below else (values >= threshold)).nonzero()
    return int(steps[hits[0, 0]]) if len(hits) else None
