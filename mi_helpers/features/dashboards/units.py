"""What a *unit* is: anything with one activation per token (a neuron, an SAE latent, a
direction), read from one hook by a :class:`UnitReader`."""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from ...core.checks import check_layer, check_type
from ...core.hooks import hook_name
from ..sae.base import SAE

__all__ = ["UnitReader", "NeuronReader", "SAELatentReader", "DirectionReader"]


class UnitReader:
    """Reads a family of units from one hook: ``read(act) -> [batch, pos, unit]``.

    Attributes:
        kind: ``"neuron"``, ``"sae latent"`` or ``"direction"``.
        hook: the hook whose activation the units read.
        n_units: how many units.
    """

    kind = "unit"
    hook: str
    n_units: int

    def read(self, act: Float[Tensor, "batch pos d"]) -> Float[Tensor, "batch pos unit"]:
        raise NotImplementedError

    def output_directions(self, model) -> Float[Tensor, "unit d_model"]:
        """What each unit adds to the residual stream per unit of activation."""
        raise NotImplementedError

    @property
    def write_hook(self) -> str:
        """The residual-stream hook where a steering vector for these units is added."""
        raise NotImplementedError

    def check_unit(self, unit: int) -> int:
        """``unit`` as an index, or ``IndexError`` naming the valid range."""
        if not -self.n_units <= int(unit) < self.n_units:
            raise IndexError(f"{self.kind} {int(unit)} is out of range: there are {self.n_units} "
                             f"({self.hook}), so use 0..{self.n_units - 1}")
        return int(unit) % self.n_units

    def name(self, unit: int) -> str:
        return f"{self.kind} {unit} ({self.hook})"


class NeuronReader(UnitReader):
    """The MLP neurons of one layer (``blocks.L.mlp.hook_post``)."""

    kind = "neuron"

    def __init__(self, model, layer: int):
        layer = check_layer(model, layer)
        self.layer, self.hook, self.n_units = layer, hook_name("mlp_post", layer), model.cfg.d_mlp

    def read(self, act):
        return act

    def output_directions(self, model):
        return model.W_out[self.layer].detach()  # d_mlp d_model

    @property
    def write_hook(self):
        return hook_name("resid_post", self.layer)

    def name(self, unit):
        return f"neuron L{self.layer}.{unit}"


class SAELatentReader(UnitReader):
    """The latents of a sparse autoencoder (reads ``sae.cfg.hook_name``).

    An SAE on the residual stream writes its decoder rows there; one on an MLP's neurons
    (site ``mlp_post``) writes them through the MLP's output matrix, ``W_dec @ W_out``.
    """

    kind = "sae latent"

    def __init__(self, sae, label: str = "SAE"):
        check_type("sae", sae, SAE, "e.g. load_sae(folder) or build_sae(...)")
        self.sae, self.label = sae, label
        self.hook, self.n_units = sae.cfg.hook_name, sae.cfg.d_sae
        match = re.fullmatch(r"blocks\.(\d+)\.mlp\.hook_post", self.hook)
        self.mlp_layer = int(match.group(1)) if match else None

    def read(self, act):
        with torch.no_grad():
            return self.sae.encode(act.to(self.sae.W_enc.device, self.sae.W_enc.dtype))

    def output_directions(self, model):
        rows = self.sae.W_dec.detach()  # d_sae d_in
        if self.mlp_layer is None:
            return rows
        return rows.to(model.W_out.device, model.W_out.dtype) @ model.W_out[self.mlp_layer].detach()

    @property
    def write_hook(self):
        return self.hook if self.mlp_layer is None else hook_name("resid_post", self.mlp_layer)

    def name(self, unit):
        return f"{self.label} latent {unit}"


class DirectionReader(UnitReader):
    """Projections of a residual-stream hook on given directions (e.g. probe weights)."""

    kind = "direction"

    def __init__(self, hook: str, directions: Float[Tensor, "unit d_model"],
                 names: Sequence[str] | None = None):
        directions = torch.as_tensor(directions).detach().float()
        if directions.ndim != 2:
            raise ValueError(f"directions must be [unit, d_model], got shape "
                             f"{tuple(directions.shape)}")
        self.hook, self.directions = hook, directions
        self.n_units = len(directions)
        self.names = list(names) if names is not None else None

    def read(self, act):
        return act.float() @ self.directions.to(act.device).T

    def output_directions(self, model):
        return self.directions

    @property
    def write_hook(self):
        return self.hook

    def name(self, unit):
        return self.names[unit] if self.names else f"direction {unit}"
