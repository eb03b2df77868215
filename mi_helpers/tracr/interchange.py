"""Interchange interventions: does a residual subspace carry a program variable, causally?

Run the model on a **base** input, but replace the component of the residual stream in
a subspace ``S`` with its value on a **source** input:
``resid_base + (resid_source - resid_base) P_S`` (``P_S`` the orthogonal projection).
If ``S`` carries variable ``X`` of the high-level program, the model must now output
what the *program* outputs on the base input with ``X`` set to its value on the
source (Geiger et al., 2021). The share of (base, source) pairs where it does is the
**interchange intervention accuracy** (IIA).

For a Tracr model the subspace of each variable is known (one dimension per value),
so IIA must be 1.0 there, while a random subspace of the same size (mixing
variables) must fail. Pairs where ``X`` has the same value on base and source test
nothing and are left out.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import torch
from jaxtyping import Float
from torch import Tensor

from ..core.activations import run_cached
from ..core.checks import check_positive, check_type
from ..core.hooks import hook_name
from .files import TracrModel
from .ground_truth import variable_site

__all__ = ["Interchange", "interchange_logits", "interchange_accuracy", "random_basis",
           "variable_basis", "informative_pairs"]


@dataclass
class Interchange:
    """The IIA of one subspace for one variable over ``n_pairs`` informative pairs."""

    variable: str
    subspace: str  # "variable" or "random"
    hook: str
    n_pairs: int
    accuracy: float


def variable_basis(model: TracrModel, variable: str) -> Float[Tensor, "d_model k"]:
    """The residual dimensions Tracr gave ``variable``, as one-hot columns."""
    if variable not in model.variables:
        raise KeyError(f"no variable {variable!r}; this program has {sorted(model.variables)}")
    dims = model.variables[variable]
    return torch.eye(model.model.cfg.d_model)[:, dims]


def random_basis(d_model: int, k: int, seed: int = 0) -> Float[Tensor, "d_model k"]:
    """An orthonormal basis of a random ``k``-dimensional subspace (QR of a Gaussian matrix)."""
    generator = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d_model, k, generator=generator))
    return q


def _add(act: Tensor, hook, *, delta: Tensor) -> Tensor:
    return act + delta.to(act)


def interchange_logits(model, base: Tensor, source: Tensor, hook: str,
                       basis: Float[Tensor, "d_model k"]) -> Float[Tensor, "batch pos d_vocab"]:
    """Logits on ``base`` with the residual at ``hook`` in span(``basis``) taken from ``source``.

    In TransformerLens 4.3's bridges a change made at ``hook_resid_mid`` reaches only the
    MLP's input, not the residual stream after it (measured); so a swap there is added to
    the attention output of the same layer instead, which changes ``resid_mid`` itself.
    """
    if base.shape != source.shape:
        raise ValueError(f"base and source tokens differ in shape: {tuple(base.shape)} vs "
                         f"{tuple(source.shape)}")
    _, base_cache = run_cached(model, base, [hook], stop_early=True)
    _, source_cache = run_cached(model, source, [hook], stop_early=True)
    projection = basis @ torch.linalg.pinv(basis)
    delta = (source_cache[hook] - base_cache[hook]) @ projection.to(base_cache[hook])
    write = hook.replace("hook_resid_mid", "hook_attn_out")
    with torch.no_grad():
        return model.run_with_hooks(base, fwd_hooks=[(write, partial(_add, delta=delta))])


def variable_hook(model: TracrModel, variable: str) -> str:
    """The residual hook right after the last node that writes ``variable``."""
    writers = [model.graph.node(name) for name, io in model.spec["ground_truth"]["nodes"].items()
               if variable in io["writes"]]
    if not writers:
        raise KeyError(f"no node writes {variable!r}")
    site, layer = variable_site(writers)
    return hook_name(site, layer)


def _check_variable(model: TracrModel, variable: str) -> None:
    """Raise unless ``model`` is a TracrModel whose program computes ``variable``."""
    check_type("model", model, TracrModel, "load one with load_tracr(name) (not its bridge, "
               "tracr_model.model)")
    if variable not in model.program_variables:
        raise KeyError(f"{variable!r} is not a variable of the program {model.name!r}; choose "
                       f"one of {model.program_variables}")


def _check_pairs(pairs: Sequence, d_model: int, basis: Tensor | None) -> None:
    """Raise unless ``pairs`` are (base, source) inputs of one length and ``basis`` is
    ``[d_model, k]`` columns (``1 <= k <= d_model``), finite and not all zero."""
    if isinstance(pairs, (str, Tensor)) or not isinstance(pairs, Sequence):
        raise TypeError(f"pairs must be a list of (base, source) inputs, got "
                        f"{type(pairs).__name__}; e.g. informative_pairs(model, variable, n)")
    bad = [p for p in pairs if isinstance(p, str) or not isinstance(p, Sequence) or len(p) != 2
           or not all(isinstance(x, Sequence) for x in p)]
    if bad:
        raise ValueError(f"each pair must be (base, source), two inputs, got {bad[0]!r}; e.g. "
                         f"[((1, 2, 3), (3, 2, 1))] (see informative_pairs)")
    lengths = {len(x) for pair in pairs for x in pair}
    if len(lengths) > 1:
        raise ValueError(f"the pairs hold inputs of lengths {sorted(lengths)}; every base "
                         f"and source must have the same length")
    if basis is None:
        return
    check_type("basis", basis, Tensor, "e.g. random_basis(d_model, k)")
    if basis.ndim != 2 or basis.shape[0] != d_model or not 1 <= basis.shape[1] <= d_model:
        raise ValueError(f"basis must be [d_model, k] = [{d_model}, k] columns with "
                         f"1 <= k <= {d_model}, got shape {tuple(basis.shape)}")
    if not basis.dtype.is_floating_point or not torch.isfinite(basis).all() or not basis.any():
        raise ValueError("basis must hold finite float columns, not all zero")


def informative_pairs(model: TracrModel, variable: str, n: int, seed: int = 0) -> list[tuple]:
    """Up to ``n`` random (base, source) pairs of longest inputs where ``variable`` differs.

    Raises:
        TypeError: ``model`` is not a TracrModel. KeyError: the program has no
            ``variable``. ValueError: ``n`` is not a positive int.
    """
    _check_variable(model, variable)
    check_positive("n", n, integer=True)
    inputs = model.inputs(model.max_seq_len)
    values = {x: model.variable_values([x], variable)[0] for x in inputs}
    rng = random.Random(seed)
    pairs = []
    for _ in range(20 * n):
        base, source = rng.choice(inputs), rng.choice(inputs)
        if values[base] != values[source]:
            pairs.append((base, source))
            if len(pairs) == n:
                break
    return pairs


def _same(a: list, b: list, numerical: bool) -> bool:
    if numerical:
        return all(abs(x - y) < 1e-3 for x, y in zip(a, b))
    return a == b


def interchange_accuracy(model: TracrModel, variable: str, pairs: list[tuple],
                         basis: Float[Tensor, "d_model k"] | None = None,
                         subspace: str = "variable") -> Interchange:
    """IIA of span(``basis``) (default: the variable's own dimensions) for ``variable``.

    Args:
        model: a loaded Tracr model.
        variable: a RASP variable of its program.
        pairs: ``(base, source)`` inputs of one length (see :func:`informative_pairs`).
        basis: ``[d_model, k]`` columns spanning the subspace to swap.
        subspace: a label for the result (``"variable"`` or ``"random"``).

    Raises:
        TypeError: ``model`` is not a TracrModel, ``pairs`` not a list of pairs, or
            ``basis`` not a tensor. KeyError: the program has no ``variable``.
        ValueError: a pair is not two inputs, inputs of several lengths, or a basis that
            is not ``[d_model, k]`` finite float columns.
    """
    _check_variable(model, variable)
    _check_pairs(pairs, model.model.cfg.d_model, basis)
    if not pairs:
        return Interchange(variable, subspace, "", 0, float("nan"))
    hook = variable_hook(model, variable)
    basis = variable_basis(model, variable) if basis is None else basis
    bases, sources = [b for b, _ in pairs], [s for _, s in pairs]
    logits = interchange_logits(model.model, model.encode(bases), model.encode(sources), hook,
                                basis)
    ours = model.decode(logits)
    wanted = model.run_program(bases, {variable: model.variable_values(sources, variable)})
    hits = sum(_same(a, b, model.numerical) for a, b in zip(ours, wanted))
    return Interchange(variable, subspace, hook, len(pairs), hits / len(pairs))

