"""Load a committed Tracr model into a ``TransformerBridge``, with no Tracr or JAX import.

Each program has two files under ``data/tracr/``, written by
:mod:`mi_helpers.tracr.compile`:

* ``<name>.safetensors``: the bridge's weights (TransformerLens key names);
* ``<name>.json``: the bridge's config, the input and output encodings, the program's
  operations as lookup tables, RASP's output on every input, and the ground truth.

:func:`load_tracr` boots a bridge from the config and loads the weights **strictly**: a
missing or unexpected key is an error that names the file, never a model whose MLPs
silently stay random. The returned :class:`TracrModel` encodes inputs, decodes outputs,
runs the RASP program (with interventions) and holds the true circuit.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import torch
from jaxtyping import Float, Int
from safetensors import SafetensorError, safe_open
from torch import Tensor
from transformer_lens.config.transformer_bridge_config import TransformerBridgeConfig
from transformer_lens.model_bridge import TransformerBridge

from ..core.checks import check_device
from ..core.graph import Circuit, CircuitGraph, Edge, Node
from . import interpreter

__all__ = ["TRACR_DIR", "TracrModel", "load_tracr", "tracr_names", "read_spec", "read_weights",
           "config_fields"]

TRACR_DIR = Path(__file__).resolve().parents[2] / "data" / "tracr"
FORMAT_VERSION = 1
CONFIG_FIELDS = ("n_layers", "d_model", "d_head", "n_ctx", "d_vocab", "d_vocab_out", "d_mlp",
                 "n_heads", "act_fn", "attention_dir", "normalization_type")
SPEC_KEYS = ("format_version", "name", "config", "input_encoding", "output", "operations",
             "reference", "ground_truth")


def config_fields(cfg) -> dict:
    """The config fields a Tracr bridge is booted from (the rest are defaults)."""
    return {name: getattr(cfg, name) for name in CONFIG_FIELDS}


def tracr_names(tracr_dir: Path | None = None) -> list[str]:
    """The programs whose files are in ``tracr_dir`` (default ``data/tracr/``)."""
    tracr_dir = TRACR_DIR if tracr_dir is None else Path(tracr_dir)
    return sorted(p.stem for p in tracr_dir.glob("*.json")) if tracr_dir.is_dir() else []


def read_spec(path: Path) -> dict:
    """The JSON description of a compiled program, checked.

    Raises:
        FileNotFoundError: the file is missing. ValueError: it is not JSON, or lacks keys.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Tracr file is missing: {path}. Restore it from git or "
                                f"recompile: python -m mi_helpers.tracr.compile --only {path.stem}")
    try:
        spec = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"Tracr file is not valid JSON: {path} ({err})") from err
    missing = [key for key in SPEC_KEYS if not isinstance(spec, dict) or key not in spec]
    if missing:
        raise ValueError(f"Tracr file {path} lacks the keys {missing}; recompile it")
    if spec["format_version"] != FORMAT_VERSION:
        raise ValueError(f"Tracr file {path} has format {spec['format_version']}, this code "
                         f"reads format {FORMAT_VERSION}; recompile it")
    return spec


def read_weights(path: Path) -> dict[str, Tensor]:
    """Every tensor of a safetensors file.

    Raises:
        FileNotFoundError: the file is missing. ValueError: it is truncated or corrupted.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Tracr weights are missing: {path}. Restore them from git or "
                                f"recompile: python -m mi_helpers.tracr.compile --only {path.stem}")
    try:
        with safe_open(str(path), framework="pt") as f:
            return {key: f.get_tensor(key) for key in f.keys()}
    except (SafetensorError, OSError, RuntimeError) as err:
        raise ValueError(f"Tracr weights are corrupted or truncated: {path} ({err})") from err


def _boot(spec: dict, state: dict[str, Tensor], path: Path, device) -> TransformerBridge:
    """A bridge booted from ``spec``'s config with ``state`` loaded strictly.

    Compatibility mode is enabled *without* weight processing: by default it centres the
    unembedding, which shifts a categorical output's logits and zeroes a numerical
    output's single column; and Tracr's weights, dimension by dimension, are the ground
    truth.
    """
    bridge = TransformerBridge.boot_native(TransformerBridgeConfig(**spec["config"]))
    try:
        bridge.load_state_dict(state, strict=True)
    except RuntimeError as err:  # missing or unexpected keys, or a shape mismatch
        raise ValueError(f"Tracr weights {path} do not fit the model in {path.with_suffix('.json')}"
                         f" (strict load): {err}") from err
    bridge.enable_compatibility_mode(no_processing=True)  # keep Tracr's weights exact
    if torch.device(device) != torch.device("cpu"):  # booted on the CPU
        bridge = bridge.to(device)
    return bridge.eval()


def load_tracr(name: str, tracr_dir: Path | None = None, device: str | torch.device = "cpu"
               ) -> TracrModel:
    """Load the compiled program ``name`` (see :func:`tracr_names`).

    Raises:
        KeyError: no such program. FileNotFoundError / ValueError: a file is missing,
            not JSON, truncated, or its weights do not fit its config (the message names it).
    """
    tracr_dir = TRACR_DIR if tracr_dir is None else Path(tracr_dir)
    json_path, weights_path = tracr_dir / f"{name}.json", tracr_dir / f"{name}.safetensors"
    if not json_path.exists() and not weights_path.exists():
        raise KeyError(f"no Tracr program {name!r} in {tracr_dir}; there are "
                       f"{tracr_names(tracr_dir) or 'none'}")
    spec = read_spec(json_path)
    model = _boot(spec, read_weights(weights_path), weights_path, check_device(device) or "cpu")
    return TracrModel(spec, model)


@dataclass
class TracrModel:
    """A compiled RASP program: its bridge, encodings, program and ground truth.

    Attributes:
        spec: the program's JSON description (see :mod:`mi_helpers.tracr.compile`).
        model: the ``TransformerBridge`` (compatibility mode, eval mode).
    """

    spec: dict = field(repr=False)
    model: TransformerBridge = field(repr=False)

    @property
    def name(self) -> str:
        return self.spec["name"]

    @property
    def output(self) -> str:
        """The output variable's name (the program's name)."""
        return self.spec["output"]["name"]

    @property
    def numerical(self) -> bool:
        """Whether the output is a number (read from one dimension), not a category."""
        return self.spec["output"]["encoding"] is None

    @cached_property
    def token_ids(self) -> dict:
        return {token: i for token, i in self.spec["input_encoding"]}

    @property
    def vocab(self) -> list:
        return [t for t in self.token_ids if t not in ("BOS", "PAD")]

    @property
    def max_seq_len(self) -> int:
        return self.spec["max_seq_len"]

    @cached_property
    def graph(self) -> CircuitGraph:
        return CircuitGraph.from_model(self.model)

    @cached_property
    def circuit(self) -> Circuit:
        """The true circuit: every edge along which the program's data flows."""
        return Circuit.from_edges(self.graph, [parse_edge(self.graph, e)
                                               for e in self.spec["ground_truth"]["edges"]])

    @property
    def operations(self) -> dict[str, list[Node]]:
        """Each RASP operation -> the heads and MLPs Tracr compiled it into."""
        return {op: [self.graph.node(n) for n in nodes]
                for op, nodes in self.spec["ground_truth"]["operations"].items()}

    @property
    def variables(self) -> dict[str, list[int]]:
        """Each RASP variable -> the residual-stream dimensions that carry it.

        ``indices`` has dimensions even where the program does not use it (Tracr always
        embeds positions); :attr:`program_variables` lists the program's own.
        """
        return self.spec["ground_truth"]["variables"]

    @property
    def program_variables(self) -> list[str]:
        """The program's variables (tokens, indices if used, every operation's output)."""
        return [op["name"] for op in self.spec["operations"]
                if op["kind"] != "select" and op["name"] in self.variables]

    def inputs(self, length: int) -> list[tuple]:
        """Every input of ``length`` tokens, in a fixed order."""
        if not 1 <= length <= self.max_seq_len:
            raise ValueError(f"length must be in 1..{self.max_seq_len}, got {length}")
        return list(itertools.product(self.vocab, repeat=length))

    def encode(self, inputs: list) -> Int[Tensor, "batch pos"]:
        """Token ids, BOS first, for equally long ``inputs`` (e.g. ``[(1, 2, 3)]``)."""
        lengths = {len(x) for x in inputs}
        if len(lengths) != 1 or not inputs:
            raise ValueError(f"give one or more inputs of one length, got lengths {sorted(lengths)}")
        unknown = {t for x in inputs for t in x} - set(self.vocab)
        if unknown:
            raise ValueError(f"tokens {sorted(map(str, unknown))} are not in this program's "
                             f"vocabulary {self.vocab}")
        ids = [[self.token_ids["BOS"]] + [self.token_ids[t] for t in x] for x in inputs]
        return torch.tensor(ids, device=self.model.cfg.device)

    def decode(self, logits: Float[Tensor, "batch pos d_vocab"]) -> list[list]:
        """The output value at each position after BOS: a category, or a number."""
        if self.numerical:
            return logits[:, 1:, 0].tolist()
        values = [value for value, _ in sorted(self.spec["output"]["encoding"], key=lambda p: p[1])]
        return [[values[i] for i in row] for row in logits[:, 1:].argmax(-1).tolist()]

    def run(self, inputs: list) -> list[list]:
        """The compiled model's decoded outputs on ``inputs``."""
        with torch.no_grad():
            return self.decode(self.model(self.encode(inputs)))

    def run_program(self, inputs: list, overrides: dict[str, list] | None = None) -> list[list]:
        """The RASP program's outputs on ``inputs`` (see :mod:`.interpreter`).

        Args:
            overrides: variable -> one list of values per input, set instead of computed.
        """
        overrides = overrides or {}
        return [interpreter.evaluate(self.spec["operations"], list(x),
                                     {var: values[i] for var, values in overrides.items()}
                                     )[self.output] for i, x in enumerate(inputs)]

    def variable_values(self, inputs: list, variable: str) -> list[list]:
        """The RASP program's ``variable`` at each position of each input."""
        return [interpreter.evaluate(self.spec["operations"], list(x))[variable] for x in inputs]

    def reference(self, inputs: list) -> list[list]:
        """RASP's own outputs (Tracr's evaluator, stored at compile time) for ``inputs``."""
        table = {tuple(x): y for x, y in self.spec["reference"]}
        return [table[tuple(x)] for x in inputs]


def parse_edge(graph: CircuitGraph, name: str) -> Edge:
    """The edge written ``"L0H0 -> L1H0.k"`` or ``"MLP0 -> logits"``."""
    sender, _, receiver = name.partition(" -> ")
    receiver, _, channel = receiver.partition(".")
    return Edge(graph.node(sender), graph.node(receiver), channel or "in")
