"""Interchange interventions on a subspace: does this subspace carry that variable?

An **interchange intervention** runs the model on a *base* prompt but sets the base's
activation, inside a subspace with orthonormal basis ``B`` (``[width, n_dims]``), to its
value on a *source* prompt::

    h' = h_base + (h_source - h_base) @ B @ B.T

Outside the subspace the base keeps its own coordinates. If the model then does what a
high-level causal model predicts for "the base, with variable V taken from the source",
the subspace carries V at this hook and position (Geiger et al., 2021). With ``B`` the
identity (every direction), it is ordinary activation patching.

* :func:`interchange` is the intervention, a context manager: inside it, every forward
  pass on base prompts has its subspace replaced by given source activations; the hooks
  are always removed on the way out. A ``match_norm_of`` basis turns it into the
  **norm-matched random placebo**: move each base as far as the reference interchange
  would, but inside ``basis`` (e.g. a random one), to tell "this subspace" from "any move
  this large";
* :func:`source_activations` reads the source activations it needs;
* :func:`interchange_logits` runs base/source prompt pairs, batch by batch;
* :func:`check_basis`, :func:`orthonormal_basis` and :func:`principal_angles` handle the
  bases themselves (the families of bases are in :mod:`.bases`, learning one is in
  :mod:`.das`).

Agrees with transformer-lens 4.3's ``tools/analysis/interchange.py`` for a fixed basis
(tested to 1e-6).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..core.activations import collect_activations, run_cached
from ..core.checks import check_positions, check_positive, check_tokens
from ..core.hooks import check_hook_names

__all__ = ["check_basis", "orthonormal_basis", "principal_angles", "interchange",
           "source_activations", "interchange_logits"]

Positions = int | Int[Tensor, "batch"] | None
Bases = Tensor | Mapping[str, Tensor] | Callable[[], Tensor]


def check_basis(basis: Float[Tensor, "d_model n_dims"], width: int | None = None,
                atol: float = 1e-4) -> Float[Tensor, "d_model n_dims"]:
    """``basis`` as a float tensor whose columns are orthonormal, or a clear error.

    Args:
        basis: ``[width, n_dims]``, one basis vector per column.
        width: the activation width it must fit (e.g. ``d_model``), if known.
        atol: tolerance on ``B.T @ B == I``.

    Raises:
        TypeError: not a float tensor. ValueError: wrong shape, more directions than the
            width (``n_dims > width``), NaN, or columns that are not orthonormal.
    """
    if not isinstance(basis, Tensor) or not basis.dtype.is_floating_point:
        raise TypeError(f"a basis is a float tensor [width, n_dims], got "
                        f"{getattr(basis, 'dtype', type(basis).__name__)}")
    if basis.ndim != 2 or basis.shape[1] == 0:
        raise ValueError(f"a basis is [width, n_dims] with at least one column, got shape "
                         f"{tuple(basis.shape)}")
    if width is not None and basis.shape[0] != width:
        raise ValueError(f"the basis has width {basis.shape[0]} but the activation has "
                         f"{width} entries per position")
    if basis.shape[1] > basis.shape[0]:
        raise ValueError(f"n_dims={basis.shape[1]} directions cannot be orthonormal in a "
                         f"space of width {basis.shape[0]}; use n_dims <= {basis.shape[0]}")
    if not torch.isfinite(basis).all():
        raise ValueError("the basis contains NaN or infinity")
    gram = basis.double().T @ basis.double()
    eye = torch.eye(basis.shape[1], dtype=gram.dtype, device=gram.device)
    if not torch.allclose(gram, eye, atol=atol):
        raise ValueError(f"the basis columns are not orthonormal (|B.T B - I| up to "
                         f"{(gram - eye).abs().max():.2g}); make one with orthonormal_basis()")
    return basis.float()


def orthonormal_basis(vectors: Float[Tensor, "d_model n"]) -> Float[Tensor, "d_model n"]:
    """An orthonormal basis of the span of ``vectors``' columns (Gram-Schmidt order).

    Column ``i`` of the result spans the part of column ``i`` not in the earlier ones,
    with the same sign, so a single vector comes back as its unit vector.

    Raises:
        ValueError: the columns are linearly dependent (or one is zero).
    """
    vectors = torch.as_tensor(vectors).double()
    if vectors.ndim != 2 or vectors.shape[1] == 0:
        raise ValueError(f"give vectors as columns [width, n], got shape {tuple(vectors.shape)}")
    if vectors.shape[1] > vectors.shape[0]:
        raise ValueError(f"{vectors.shape[1]} vectors cannot be independent in width "
                         f"{vectors.shape[0]}")
    q, r = torch.linalg.qr(vectors)
    diag = torch.diagonal(r)
    if (diag.abs() < 1e-6 * vectors.norm(dim=0).max()).any():
        raise ValueError("the vectors are linearly dependent: their span has fewer "
                         "dimensions than vectors")
    return (q * diag.sign()).float()


def principal_angles(a: Float[Tensor, "d_model n"], b: Float[Tensor, "d_model m"]
                     ) -> Float[Tensor, "n_dims"]:
    """Principal angles between two subspaces, in degrees, smallest first.

    Both bases must be orthonormal; the cosines are the singular values of ``a.T @ b``.
    0 degrees: a shared direction; 90: orthogonal.
    """
    a, b = check_basis(a), check_basis(b, a.shape[0])
    cosines = torch.linalg.svdvals(a.double().T @ b.double()).clamp(-1, 1)
    return torch.rad2deg(torch.arccos(cosines)).float()


def _as_hook_bases(model, hooks: str | Sequence[str], basis: Bases) -> dict[str, Tensor]:
    """``{hook: basis}`` for one basis shared by every hook, or a basis per hook."""
    hooks = check_hook_names(model, hooks)
    if not hooks:
        raise ValueError("no hooks given: name at least one hook to intervene at")
    by_head = [h for h in hooks if h.endswith(("hook_pattern", "hook_attn_scores"))]
    if by_head:
        raise ValueError(f"{by_head} are [batch, head, dest_pos, src_pos]: interchange needs "
                         f"an activation with positions on axis 1, e.g. the hook_z of a layer")
    if callable(basis):  # a learned basis, recomputed at every forward pass (DAS)
        return dict.fromkeys(hooks, basis)
    if isinstance(basis, Mapping):
        missing = [h for h in hooks if h not in basis]
        if missing:
            raise ValueError(f"no basis given for hooks {missing}")
        return {h: check_basis(basis[h]) for h in hooks}
    basis = check_basis(basis)
    return dict.fromkeys(hooks, basis)


def _move(base: Tensor, source: Tensor, basis: Tensor, strength: float,
          match: Tensor | None) -> Tensor:
    """``base`` with its coordinates in ``basis`` moved towards the source's."""
    move = ((source - base) @ basis) @ basis.T
    if match is None:
        return base + strength * move
    # move as far as an interchange in ``match`` would (computed as transformer-lens does)
    distance = (_move(base, source, match, strength, None) - base).norm(dim=-1, keepdim=True)
    return base + move * (distance / move.norm(dim=-1, keepdim=True).clamp_min(1e-8))


def _hook_fn(basis: Tensor | Callable[[], Tensor], source: Tensor, positions: Positions,
             strength: float, match: Tensor | None) -> Callable:
    """A TransformerLens hook: interchange ``basis`` at ``positions`` (None: all)."""

    def fn(act: Tensor, hook) -> Tensor:
        flat = act.flatten(2)  # batch pos width
        b = (basis() if callable(basis) else basis).to(flat.device, flat.dtype)
        if flat.shape[-1] != b.shape[0]:
            raise ValueError(f"the basis has width {b.shape[0]} but {hook.name} has "
                             f"{flat.shape[-1]} entries per position")
        src = source.to(flat.device, flat.dtype)
        m = None if match is None else match.to(flat.device, flat.dtype)
        if positions is None:
            if src.shape != flat.shape:
                raise ValueError(f"source activations {tuple(src.shape)} do not match the "
                                 f"base's {tuple(flat.shape)} at {hook.name}: base and source "
                                 f"prompts must have the same length to swap every position")
            return _move(flat, src, b, strength, m).reshape(act.shape)
        where = check_positions(positions, *flat.shape[:2]).to(flat.device)
        if src.shape != (flat.shape[0], flat.shape[2]):
            raise ValueError(f"source activations {tuple(src.shape)} should be one row per "
                             f"base prompt, [{flat.shape[0]}, {flat.shape[2]}], at {hook.name}")
        rows = torch.arange(flat.shape[0], device=flat.device)
        out = flat.clone()
        out[rows, where] = _move(flat[rows, where], src, b, strength, m)
        return out.reshape(act.shape)

    return fn


@contextmanager
def interchange(model, hooks: str | Sequence[str], basis: Bases,
                source: Mapping[str, Tensor], positions: Positions = None,
                strength: float = 1.0, match_norm_of: Bases | None = None) -> Iterator[None]:
    """Context manager: base runs get their ``basis`` coordinates from ``source``.

    Args:
        model: a TransformerLens model.
        hooks: hook name(s), e.g. ``hook_name("resid_post", 1)``; axes after ``pos`` are
            flattened (``z``: ``head * d_head`` entries per position).
        basis: orthonormal ``[width, n_dims]``, shared by every hook, or ``{hook: basis}``
            (or a function returning the basis, evaluated at each forward pass: DAS).
        source: ``{hook: activations}`` from :func:`source_activations`: ``[batch, width]``
            at ``positions``, or ``[batch, pos, width]`` when ``positions`` is ``None``.
        positions: the base position to change: an int, one per prompt, or ``None`` for
            every position (base and source prompts then have the same length).
        strength: 1 swaps the coordinates; 0 leaves the base alone.
        match_norm_of: the norm-matched placebo: rescale the move inside ``basis`` to the
            length of the move an interchange in this basis would make.

    Raises:
        KeyError: an unknown hook. ValueError: a bad basis, or (during the run) source
            activations that do not fit the base batch. IndexError: a position beyond
            the prompts.
    """
    bases = _as_hook_bases(model, hooks, basis)
    matches = (dict.fromkeys(bases) if match_norm_of is None
               else _as_hook_bases(model, list(bases), match_norm_of))
    missing = [h for h in bases if h not in source]
    if missing:
        raise ValueError(f"no source activations for hooks {missing}")
    fwd_hooks = [(h, _hook_fn(b, source[h], positions, strength, matches[h]))
                 for h, b in bases.items()]
    with model.hooks(fwd_hooks=fwd_hooks):  # removes the hooks in a finally block
        yield


def source_activations(model, source: Int[Tensor, "batch pos"], hooks: str | Sequence[str],
                       positions: Positions = None, batch_size: int = 64
                       ) -> dict[str, Tensor]:
    """The activations :func:`interchange` copies from: ``[batch, width]`` at
    ``positions`` (an int or one per prompt), or ``[batch, pos, width]`` for ``None``."""
    hooks = check_hook_names(model, hooks)
    source = check_tokens(model, source)
    if positions is not None:
        return collect_activations(model, source, hooks, positions=positions,
                                   batch_size=batch_size, device=model.cfg.device)
    parts: dict[str, list[Tensor]] = {h: [] for h in hooks}
    for start in range(0, len(source), batch_size):
        _, cache = run_cached(model, source[start:start + batch_size], hooks, stop_early=True)
        for h in hooks:
            parts[h].append(cache[h].flatten(2))
    return {h: torch.cat(chunks) for h, chunks in parts.items()}


def _check_pairs(base: Tensor, source: Tensor, positions: Positions,
                source_positions: Positions) -> None:
    """Raise ``ValueError`` unless base and source prompts pair up position by position."""
    if len(base) != len(source):
        raise ValueError(f"{len(base)} base prompts but {len(source)} source prompts: give "
                         f"one source per base")
    if base.shape != source.shape and (positions is None or source_positions is None):
        raise ValueError(f"base prompts have {base.shape[1]} tokens but source prompts "
                         f"have {source.shape[1]}: pairs of different lengths need explicit "
                         f"positions and source_positions (where to read and write in each)")


def interchange_logits(model, base: Int[Tensor, "batch pos"], source: Int[Tensor, "batch pos"],
                       hooks: str | Sequence[str], basis: Bases, positions: Positions = None,
                       source_positions: Positions = None, strength: float = 1.0,
                       match_norm_of: Bases | None = None, batch_size: int = 64
                       ) -> Float[Tensor, "batch pos d_vocab"]:
    """The base prompts' logits with the ``basis`` coordinates taken from their sources.

    Args:
        model: a TransformerLens model.
        base, source: ``[batch, pos]`` token ids, one source per base.
        hooks, basis, strength, match_norm_of: as in :func:`interchange`.
        positions: where to write in each base (``None``: every position).
        source_positions: where to read in each source; default ``positions``.
        batch_size: pairs per forward pass.

    Raises:
        ValueError: different numbers of prompts, or different lengths without explicit
            positions for both.
    """
    base, source = check_tokens(model, base), check_tokens(model, source)
    _check_pairs(base, source, positions, source_positions)
    check_positive("batch_size", batch_size, integer=True)
    source_positions = positions if source_positions is None else source_positions
    if positions is not None:
        positions = check_positions(positions, *base.shape)
        source_positions = check_positions(source_positions, *source.shape)
    hooks = list(_as_hook_bases(model, hooks, basis))
    out = []
    for start in range(0, len(base), batch_size):
        rows = slice(start, start + batch_size)
        src = source_activations(model, source[rows], hooks,
                                 None if source_positions is None else source_positions[rows],
                                 batch_size)
        where = None if positions is None else positions[rows]
        with torch.no_grad(), interchange(model, hooks, basis, src, where, strength,
                                          match_norm_of):
            out.append(model(base[rows].to(model.cfg.device)))
    return torch.cat(out)
