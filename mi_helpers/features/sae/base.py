"""The shared part of every sparse autoencoder: config, weights, encode / decode, losses.

An SAE rewrites an activation ``x`` (width ``d_in``, e.g. ``d_model``) as a sparse,
non-negative combination of ``d_sae`` learned directions, the rows of ``W_dec``::

    latents = act(pre),   pre = (x - b_dec) @ W_enc + b_enc        [batch d_sae]
    x_hat   = latents @ W_dec + b_dec                               [batch d_in]

Architectures differ only in the activation ``act`` (ReLU, TopK, JumpReLU, gated) and in
the extra loss that makes ``latents`` sparse. :class:`SAE` owns the weights, the width
check and the reconstruction loss; a subclass supplies :meth:`SAE.encode_with_extras`
and :meth:`SAE.sparsity_losses`, which return *named* loss terms. ``forward`` returns an
:class:`SAEOutput` whose ``loss`` is their sum.

The reconstruction loss is the squared error summed over ``d_in`` and averaged over the
batch, as in SAELens, so a sparsity coefficient trades one unit of squared error
against one unit of (weighted) L1 or L0.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

import torch
from jaxtyping import Float
from torch import Tensor, nn

__all__ = ["SAE", "SAEConfig", "SAEOutput", "ARCHITECTURES", "squared_error"]

ARCHITECTURES = ("relu", "topk", "jumprelu", "gated", "matryoshka")


@dataclass
class SAEConfig:
    """What an SAE is; validates itself on construction.

    Attributes:
        d_in: width of the activations it reads (e.g. ``d_model`` for the residual stream).
        d_sae: number of latents (dictionary size).
        architecture: one of ``ARCHITECTURES``.
        k: latents kept per input (``topk``, ``matryoshka``).
        l1_coefficient: weight of the L1 penalty (``relu``, ``gated``).
        l0_coefficient: weight of the L0 penalty (``jumprelu``).
        jumprelu_bandwidth: width of the rectangle kernel behind the threshold's
            pseudo-derivative (``jumprelu``), in activation units.
        jumprelu_init_threshold: initial threshold of every latent (``jumprelu``).
        matryoshka_widths: increasing prefix sizes, the last one ``d_sae``; each prefix
            of the dictionary must reconstruct on its own (``matryoshka``).
        apply_b_dec_to_input: subtract ``b_dec`` from the input before encoding (our
            training always does; some published SAEs, e.g. Gemma Scope, do not).
        hook_name: where the activations come from, e.g. ``"blocks.0.hook_resid_post"``.
        model_name: the model they come from, e.g. ``"zoo-2l"``.
        drop_bos: the SAE was trained (and is evaluated) without the BOS position.
    """

    d_in: int
    d_sae: int
    architecture: str = "relu"
    k: int | None = None
    l1_coefficient: float = 1.0
    l0_coefficient: float = 1.0
    jumprelu_bandwidth: float = 0.001
    jumprelu_init_threshold: float = 0.001
    matryoshka_widths: list[int] | None = None
    apply_b_dec_to_input: bool = True
    hook_name: str = ""
    model_name: str = ""
    drop_bos: bool = True
    extra: dict = field(default_factory=dict)  # free-form notes (training settings, ...)

    def __post_init__(self):
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"unknown SAE architecture {self.architecture!r}; choose one of "
                             f"{list(ARCHITECTURES)}")
        for name in ("d_in", "d_sae"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        for name in ("l1_coefficient", "l0_coefficient"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        for name in ("jumprelu_bandwidth", "jumprelu_init_threshold"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.architecture in ("topk", "matryoshka"):
            self._check_k()
        if self.architecture == "matryoshka":
            self._check_widths()

    def _check_k(self):
        if self.k is None:
            raise ValueError(f"a {self.architecture} SAE needs k, the latents kept per input")
        if not isinstance(self.k, int) or self.k < 1:
            raise ValueError(f"k must be a positive int, got {self.k!r}")
        if self.k > self.d_sae:
            raise ValueError(f"k={self.k} is larger than the dictionary d_sae={self.d_sae}; "
                             f"a TopK SAE keeps at most d_sae latents")

    def _check_widths(self):
        widths = self.matryoshka_widths
        if widths is None:
            raise ValueError("a matryoshka SAE needs matryoshka_widths, e.g. "
                             f"[{self.d_sae // 4}, {self.d_sae // 2}, {self.d_sae}]")
        self.matryoshka_widths = widths = [int(w) for w in widths]
        if widths[-1] != self.d_sae or any(a >= b for a, b in zip(widths, widths[1:])):
            raise ValueError(f"matryoshka_widths must increase strictly and end at d_sae="
                             f"{self.d_sae}, got {widths}")
        if widths[0] < 1:
            raise ValueError(f"matryoshka_widths must be positive, got {widths}")

    def to_dict(self) -> dict:
        """A JSON-ready dict (see :meth:`from_dict`)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> SAEConfig:
        """Build a config from :meth:`to_dict`'s output; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown SAEConfig fields {sorted(unknown)}; known: {sorted(known)}")
        return cls(**values)


@dataclass
class SAEOutput:
    """What :meth:`SAE.forward` returns.

    Attributes:
        reconstruction: ``x_hat``, shape ``[batch d_in]``.
        latents: the sparse code, shape ``[batch d_sae]``.
        losses: named, already weighted loss terms (``"mse"`` and the architecture's own).
    """

    reconstruction: Float[Tensor, "batch d_in"]
    latents: Float[Tensor, "batch d_sae"]
    losses: dict[str, Float[Tensor, ""]]

    @property
    def loss(self) -> Float[Tensor, ""]:
        """The sum of the named losses: what training minimises."""
        return sum(self.losses.values())


class SAE(nn.Module):
    """Base sparse autoencoder: weights, width check, decode, reconstruction loss.

    Subclasses set ``architecture``, implement :meth:`encode_with_extras` and, if they
    have one, :meth:`sparsity_losses`. ``unit_norm_decoder`` says whether training keeps
    the rows of ``W_dec`` at unit norm (methods whose penalty would otherwise shrink
    latents and grow the decoder to cheat).

    Parameters (SAELens names and shapes): ``W_enc [d_in d_sae]``, ``b_enc [d_sae]``,
    ``W_dec [d_sae d_in]``, ``b_dec [d_in]``.
    """

    architecture: str = ""
    unit_norm_decoder: bool = True
    has_b_enc: bool = True
    latent_biases: tuple[str, ...] = ("b_enc",)  # per-latent vectors, zeroed on re-init

    def __init__(self, cfg: SAEConfig):
        super().__init__()
        if cfg.architecture != self.architecture:
            raise ValueError(f"{type(self).__name__} needs architecture="
                             f"{self.architecture!r}, got {cfg.architecture!r}")
        self.cfg = cfg
        d_in, d_sae = cfg.d_in, cfg.d_sae
        self.W_enc = nn.Parameter(torch.empty(d_in, d_sae))
        self.W_dec = nn.Parameter(torch.empty(d_sae, d_in))
        self.b_dec = nn.Parameter(torch.zeros(d_in))
        if self.has_b_enc:
            self.b_enc = nn.Parameter(torch.zeros(d_sae))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Random decoder rows of norm 0.1 (1 with the unit-norm constraint), the encoder
        their transpose (a common, well-behaved start)."""
        with torch.no_grad():
            nn.init.kaiming_uniform_(self.W_dec, a=math.sqrt(5))
            self.W_dec.mul_(0.1 / self.W_dec.norm(dim=1, keepdim=True))
            if self.unit_norm_decoder:
                self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True))
            self.W_enc.copy_(self.W_dec.T)

    # ---- checks -------------------------------------------------------------------------
    def check_input(self, x: Tensor) -> Tensor:
        """``x`` in the SAE's dtype; a clear ``ValueError`` if its last axis is not ``d_in``."""
        if x.ndim == 0 or x.shape[-1] != self.cfg.d_in:
            width = x.shape[-1] if x.ndim else "none (a scalar)"
            raise ValueError(f"activations have width {width} (shape {tuple(x.shape)}) but "
                             f"this SAE has d_in={self.cfg.d_in}; is it the right hook?")
        return x.to(self.W_enc.dtype)

    # ---- the model ----------------------------------------------------------------------
    def centred(self, x: Float[Tensor, "batch d_in"]) -> Float[Tensor, "batch d_in"]:
        """``x - b_dec`` (or ``x`` when ``cfg.apply_b_dec_to_input`` is False)."""
        return x - self.b_dec if self.cfg.apply_b_dec_to_input else x

    def pre_activations(self, x: Float[Tensor, "batch d_in"]) -> Float[Tensor, "batch d_sae"]:
        """``(x - b_dec) @ W_enc + b_enc``."""
        return torch.addmm(self.b_enc, self.centred(x), self.W_enc)

    def encode_with_extras(self, x: Float[Tensor, "batch d_in"]
                           ) -> tuple[Float[Tensor, "batch d_sae"], dict[str, Tensor]]:
        """The latents, plus whatever :meth:`sparsity_losses` needs (e.g. pre-activations)."""
        raise NotImplementedError

    def sparsity_losses(self, x: Float[Tensor, "batch d_in"],
                        latents: Float[Tensor, "batch d_sae"], extras: dict[str, Tensor],
                        reconstruction: Float[Tensor, "batch d_in"], sparsity_scale: float
                        ) -> dict[str, Float[Tensor, ""]]:
        """Named extra losses, each weighted by its coefficient and ``sparsity_scale``."""
        return {}

    def encode(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_sae"]:
        """The sparse code of ``x`` (any leading axes)."""
        x = self.check_input(x)
        latents, _ = self.encode_with_extras(x.reshape(-1, self.cfg.d_in))  # batch d_sae
        return latents.reshape(*x.shape[:-1], self.cfg.d_sae)

    def decode(self, latents: Float[Tensor, "... d_sae"]) -> Float[Tensor, "... d_in"]:
        """``latents @ W_dec + b_dec`` (any leading axes)."""
        flat = latents.reshape(-1, self.cfg.d_sae)
        return torch.addmm(self.b_dec, flat, self.W_dec).reshape(*latents.shape[:-1],
                                                                  self.cfg.d_in)

    def reconstruct(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_in"]:
        """``decode(encode(x))``, for evaluation."""
        return self.decode(self.encode(x))

    def forward(self, x: Float[Tensor, "batch d_in"], sparsity_scale: float = 1.0) -> SAEOutput:
        """Encode, decode and score a batch.

        Args:
            x: activations, shape ``[batch d_in]``.
            sparsity_scale: multiplies the sparsity terms (the trainer's warm-up, 0 → 1).

        Returns:
            An :class:`SAEOutput`: reconstruction, latents and named losses.
        """
        x = self.check_input(x)
        latents, extras = self.encode_with_extras(x)
        reconstruction = self.decode(latents)
        losses = {"mse": squared_error(reconstruction, x)}
        losses.update(self.sparsity_losses(x, latents, extras, reconstruction, sparsity_scale))
        return SAEOutput(reconstruction, latents, losses)

    # ---- decoder norms ------------------------------------------------------------------
    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """Scale each row of ``W_dec`` (one latent's direction) to unit norm, in place."""
        self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12))

    @torch.no_grad()
    def remove_parallel_decoder_grad(self) -> None:
        """Drop the part of ``W_dec.grad`` along each row, so a step keeps the norm ~1."""
        if self.W_dec.grad is None:
            return
        unit = self.W_dec / self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12)
        along = (self.W_dec.grad * unit).sum(dim=1, keepdim=True)
        self.W_dec.grad.sub_(along * unit)

    @torch.no_grad()
    def after_step(self) -> None:
        """Re-impose constraints after an optimizer step (unit-norm decoder rows, ...)."""
        if self.unit_norm_decoder:
            self.normalize_decoder()

    # ---- per-latent parameters ----------------------------------------------------------
    def latent_axes(self) -> dict[str, int]:
        """Each parameter with one slice per latent, and the axis of that slice."""
        return {"W_enc": 1, "W_dec": 0, **{name: 0 for name in self.latent_biases}}

    @torch.no_grad()
    def reinit_latents(self, latents: Tensor, dec_rows: Float[Tensor, "n d_in"],
                       enc_cols: Float[Tensor, "d_in n"]) -> None:
        """Give the chosen latents new decoder rows and encoder columns; reset biases."""
        self.W_dec[latents] = dec_rows.to(self.W_dec.dtype)
        self.W_enc[:, latents] = enc_cols.to(self.W_enc.dtype)
        for name in self.latent_biases:
            getattr(self, name)[latents] = 0.0

    def extra_repr(self) -> str:
        return f"d_in={self.cfg.d_in}, d_sae={self.cfg.d_sae}"


def squared_error(reconstruction: Float[Tensor, "batch d_in"], x: Float[Tensor, "batch d_in"]
                  ) -> Float[Tensor, ""]:
    """Squared error summed over ``d_in``, averaged over the batch."""
    return (reconstruction - x).pow(2).sum(-1).mean()
