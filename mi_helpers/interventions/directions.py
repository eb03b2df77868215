"""Interventions along a direction: remove it, or push along it, and watch the output.

A probe, an SAE latent or a difference of class means gives a *direction* in an
activation space. Two interventions test whether the model uses it:

* **direction ablation** (:func:`ablate_direction`): project the direction out of the
  activation, ``x - (x . u) u`` with ``u`` the unit direction;
* **steering** (:func:`steer`): add a vector to the activation (activation addition,
  Turner et al., 2023); :func:`steer_direction` adds ``scale`` times the unit direction.

Both are context managers that add one hook while inside and always remove it, even
after an error. :func:`causal_effect` compares an intervention with random directions of
the same norm (the baseline any claimed effect has to beat), and
:func:`next_token_shift` shows how steering moves the next-token distribution.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..core.checks import as_tokens, check_pos
from ..core.hooks import check_writable_hooks
from ..core.metrics import kl_from_log_probs

__all__ = ["ablate_direction", "steer", "steer_direction", "causal_effect", "next_token_shift"]


def _unit(direction: Float[Tensor, "d_model"]) -> Float[Tensor, "d_model"]:
    direction = torch.as_tensor(direction)
    if direction.ndim != 1:
        raise ValueError(f"a direction is one vector [d_model], got shape {tuple(direction.shape)}")
    if not torch.isfinite(direction).all():
        raise ValueError("the direction contains NaN or infinity")
    norm = direction.float().norm()
    if norm == 0:
        raise ValueError("the direction is all zeros; there is nothing to ablate or steer along")
    return direction.float() / norm


@contextmanager
def _edit_activation(model, hook: str, vector: Float[Tensor, "d_model"],
                     edit: Callable[[Tensor, Tensor], Tensor], pos: int | None
                     ) -> Iterator[None]:
    """Apply ``edit(x, vector)`` to the hook's activation, per position, while inside.

    Axes after ``pos`` are flattened to match ``vector``; the hook is always removed.
    """
    check_writable_hooks(model, [hook])

    def hook_fn(act: Tensor, hook) -> Tensor:
        flat = act.flatten(2)  # batch pos d_model
        if flat.shape[-1] != len(vector):
            raise ValueError(f"the direction has {len(vector)} entries but {hook.name} has "
                             f"{flat.shape[-1]} per position")
        v = vector.to(flat.device, flat.dtype)
        where = slice(None) if pos is None else check_pos(pos, flat.shape[1])
        flat = flat.clone()
        flat[:, where] = edit(flat[:, where], v)
        return flat.reshape(act.shape)

    with model.hooks(fwd_hooks=[(hook, hook_fn)]):  # removes the hook in a finally block
        yield


def _project_out(x: Float[Tensor, "... d_model"], unit: Float[Tensor, "d_model"]
                 ) -> Float[Tensor, "... d_model"]:
    return x - (x @ unit)[..., None] * unit


def ablate_direction(model, hook: str, direction: Float[Tensor, "d_model"],
                     pos: int | None = None) -> AbstractContextManager[None]:
    """Context manager: project ``direction`` out of the activation at ``hook``.

    Args:
        model: a TransformerLens model.
        hook: hook name, e.g. ``hook_name("resid_post", 1)``.
        direction: e.g. ``probe.direction`` (only its direction matters).
        pos: edit only this position; ``None`` edits all.
    """
    return _edit_activation(model, hook, _unit(direction), _project_out, pos)


def steer(model, hook: str, vector: Float[Tensor, "d_model"], pos: int | None = None
          ) -> AbstractContextManager[None]:
    """Context manager: add ``vector`` (as it is, not normalised) to the activation at ``hook``."""
    vector = torch.as_tensor(vector).float()
    if vector.ndim != 1 or not torch.isfinite(vector).all():
        raise ValueError(f"a steering vector is one finite vector [d_model], got shape "
                         f"{tuple(vector.shape)}")
    return _edit_activation(model, hook, vector, lambda x, v: x + v, pos)


def steer_direction(model, hook: str, direction: Float[Tensor, "d_model"], scale: float,
                    pos: int | None = None) -> AbstractContextManager[None]:
    """Context manager: add ``scale`` times the *unit* ``direction`` at ``hook``.

    Arguments as in :func:`ablate_direction`; ``scale`` is in activation units.
    """
    return steer(model, hook, scale * _unit(direction), pos)


def causal_effect(model, tokens: Int[Tensor, "batch pos"], hook: str,
                  direction: Float[Tensor, "d_model"],
                  metric: Callable[[Float[Tensor, "batch pos d_vocab"]], Float[Tensor, ""]],
                  scale: float | None = None, pos: int | None = None, n_random: int = 5,
                  seed: int = 0) -> dict[str, float]:
    """How much an intervention along ``direction`` moves ``metric``, against random
    directions of the same norm.

    Args:
        model, tokens: the model and the prompts to run.
        hook, direction, pos: where and along what to intervene.
        metric: maps the logits to a scalar (e.g. a mean logit difference).
        scale: ``None`` ablates (projects out); a number steers by ``scale``.
        n_random: how many random directions to average for the baseline.
        seed: seeds the random directions.

    Returns:
        ``clean`` and ``intervened`` metric values, ``effect`` (their difference), and
        the random directions' mean ``random_effect`` and mean ``random_abs_effect``.
        Compare ``|effect|`` with ``random_abs_effect``.
    """
    tokens = as_tokens(model, tokens)
    _unit(direction)  # fail early on a bad direction

    def run(d: Tensor) -> float:
        context = (ablate_direction(model, hook, d, pos) if scale is None
                   else steer_direction(model, hook, d, scale, pos))
        with context, torch.no_grad():
            return float(metric(model(tokens)))

    with torch.no_grad():
        clean = float(metric(model(tokens)))
    intervened = run(direction)
    gen = torch.Generator().manual_seed(seed)
    randoms = [run(torch.randn(len(direction), generator=gen)) - clean for _ in range(n_random)]
    n = max(n_random, 1)
    return {"clean": clean, "intervened": intervened, "effect": intervened - clean,
            "random_effect": sum(randoms) / n,
            "random_abs_effect": sum(abs(r) for r in randoms) / n}


def next_token_shift(model, hook: str, vector: Float[Tensor, "d_model"],
                     prompt: str | Int[Tensor, "pos"], n: int = 8) -> dict:
    """Steer with ``vector`` at every position; compare the next-token distribution.

    Returns:
        ``{"prompt", "kl", "before": [(token, prob)], "after": [(token, prob)],
        "most_raised": [(token, prob change)]}`` at the prompt's last position, with
        ``kl = KL(before || after)``.
    """
    tokens = as_tokens(model, prompt)[:1]
    with torch.no_grad():
        before = model(tokens)[0, -1].float().log_softmax(-1).cpu()
        with steer(model, hook, vector):
            after = model(tokens)[0, -1].float().log_softmax(-1).cpu()

    def top(p: Tensor) -> list[tuple[str, float]]:  # decode only the n shown tokens
        values = p.topk(n)
        return list(zip(model.to_str_tokens(values.indices), values.values.tolist()))

    text = prompt if isinstance(prompt, str) else "".join(model.to_str_tokens(tokens[0]))
    return {"prompt": text, "kl": kl_from_log_probs(before, after).item(),
            "before": top(before.exp()), "after": top(after.exp()),
            "most_raised": top(after.exp() - before.exp())}
