"""Compile the RASP library with Tracr and write TransformerBridge files with their ground truth.

Run ``python -m mi_helpers.tracr.compile`` (``--only reverse hist`` for some programs)
after ``pip install -e .[tracr]``; it writes ``data/tracr/<name>.safetensors`` and
``<name>.json``. Nothing else in the curriculum needs Tracr or JAX: the notebook and
tests load the committed files (:mod:`mi_helpers.tracr.files`).

This is a module rather than a script in ``benchmarks/`` so the test that re-compiles a
program (when JAX is installed) imports the very code that wrote the files.

For each program it

1. runs Tracr's compiler step by step (as ``compile_rasp_to_model`` does), keeping the
   compiler's graph so it can tell which heads and MLPs each RASP operation became;
2. converts the weights with TransformerLens 4.3's converter
   (``transformer_lens.utilities.tracr``), renames its native keys to the booted
   bridge's (``tok_embed`` -> ``embed``, ``mlp.fc_in`` -> ``mlp.in``, ...) and loads them
   **strictly**; that converter handles categorical outputs only, so for a numerical
   output (``frac_prevs``) it is given a view of the model whose output is one
   category, read from the output variable's single dimension;
3. checks the bridge agrees with Tracr's own forward pass on every input;
4. writes the weights, the encodings, the program's operations as lookup tables (so
   :mod:`~mi_helpers.tracr.interpreter` can run it, with interventions, without
   Tracr), RASP's output on every input, and the ground truth: the heads and MLPs of
   each operation, the residual dimensions of each variable, and the true edges.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace

import networkx
import numpy as np
import torch
from safetensors.torch import save_file
from torch import Tensor
from tracr.compiler import (assemble, basis_inference, craft_graph_to_model,
                            craft_model_to_transformer, expr_to_craft_graph, nodes, rasp_to_graph,
                            validating)
from tracr.craft import bases, transformers
from tracr.rasp import rasp
from transformer_lens.model_bridge import TransformerBridge
from transformer_lens.utilities import tracr as tl_tracr

from ..core.graph import CircuitGraph, Node
from .files import FORMAT_VERSION, TRACR_DIR, config_fields
from .ground_truth import ablation_changes, node_dims, true_edges
from .programs import PROGRAMS, TracrProgram

__all__ = ["BOS", "PAD", "compile_program", "to_bridge", "program_spec", "write_program", "main"]

BOS, PAD = "BOS", "PAD"


@dataclass
class Compiled:
    """Tracr's assembled model with the compiler state that explains it."""

    program: TracrProgram
    expr: rasp.SOp
    graph: object  # networkx.DiGraph of RASP expressions, keyed by label
    model: assemble.AssembledTransformerModel
    layer_of: dict  # node label -> {"attn": [(layer, head), ...], "mlp": [layer, ...]}


def compile_program(program: TracrProgram) -> Compiled:
    """Compile ``program`` as ``compile_rasp_to_model`` does, keeping the graph and allocation."""
    expr = program.build()
    unsupported = validating.static_validate(expr)
    if unsupported:
        raise NotImplementedError(f"{program.name}: Tracr cannot compile "
                                  f"{[f'{u.expr.name}: {u.reason}' for u in unsupported]}")
    extracted = rasp_to_graph.extract_rasp_graph(expr)
    graph, sources, sink = extracted.graph, extracted.sources, extracted.sink
    basis_inference.infer_bases(graph, sink, set(program.vocab), program.max_seq_len)
    expr_to_craft_graph.add_craft_components_to_rasp_graph(
        graph, bos_dir=bases.BasisDirection(rasp.tokens.label, BOS), mlp_exactness=100)
    allocation = craft_graph_to_model._allocate_modules_to_layers(graph, sources)
    craft_model = craft_graph_to_model.craft_graph_to_model(graph, sources)
    model = craft_model_to_transformer.craft_model_to_transformer(
        craft_model=craft_model, graph=graph, sink=sink, max_seq_len=program.max_seq_len,
        causal=False, compiler_bos=BOS, compiler_pad=PAD)
    return Compiled(program, expr, graph, model, _locate(graph, allocation, craft_model))


def _locate(graph, allocation: dict, craft_model) -> dict:
    """For each RASP node: the ``(layer, head)`` of its heads and the layers of its MLPs.

    Tracr numbers half-layers (0 attention, 1 MLP, 2 attention, ...); the non-empty ones
    become ``craft_model.blocks`` in order, which the assembler places into the model's
    layers (``module_names``), stacking one half-layer's heads in the order of
    ``MultiAttentionHead.heads()``. A ``SelectorWidth`` is a head and the next MLP.
    """
    _, module_names = assemble._get_model_config_and_module_names(craft_model)
    parts_of = {node_id: (graph.nodes[node_id][nodes.MODEL_BLOCK].blocks
                          if _is_series(graph.nodes[node_id])
                          else [graph.nodes[node_id][nodes.MODEL_BLOCK]])
                for node_id in allocation}
    halves = sorted({half + i for node_id, half in allocation.items()
                     for i in range(len(parts_of[node_id]))})
    if len(halves) != len(craft_model.blocks):
        raise AssertionError(f"{len(halves)} half-layers but {len(craft_model.blocks)} blocks")
    layer_of_half = {half: int(name.split("/")[1].removeprefix("layer_"))
                     for half, name in zip(halves, module_names)}
    head_index = {id(head): h for block in craft_model.blocks
                  if not isinstance(block, transformers.MLP)
                  for h, head in enumerate(block.as_multi().heads())}
    located = {}
    for node_id, half in allocation.items():
        where = {"attn": [], "mlp": []}
        for offset, part in enumerate(parts_of[node_id]):
            layer = layer_of_half[half + offset]
            if isinstance(part, transformers.MLP):
                where["mlp"].append(layer)
            else:
                where["attn"] += [(layer, head_index[id(h)]) for h in part.as_multi().heads()]
        located[graph.nodes[node_id][nodes.EXPR].label] = where
    return located


def _is_series(node) -> bool:
    return isinstance(node.get(nodes.MODEL_BLOCK), transformers.SeriesWithResiduals)


# ---- conversion through TransformerLens ---------------------------------------------------

_RENAMES = ((r"^tok_embed\.", "embed."), (r"^pos\.", "pos_embed."), (r"^head\.", "unembed."),
            (r"^layers\.(\d+)\.attn\.", r"blocks.\1.attn."),
            (r"^layers\.(\d+)\.mlp\.fc_in\.", r"blocks.\1.mlp.in."),
            (r"^layers\.(\d+)\.mlp\.fc_out\.", r"blocks.\1.mlp.out."))


def _bridge_key(key: str) -> str:
    """TransformerLens' converter's native key -> the booted bridge's key."""
    for pattern, replacement in _RENAMES:
        key = re.sub(pattern, replacement, key)
    return key


def _categorical_view(model, output_label: str):
    """``model`` as TransformerLens' converter expects it: with a categorical output.

    The converter raises ``NotImplementedError`` for a numerical output. Such an output
    is one residual dimension labelled by the variable alone (``"frac_prevs_15"``); the
    view relabels it ``"frac_prevs_15:value"`` and declares one category ``value``, so
    the converter's unembedding reads exactly that dimension.
    """
    if hasattr(model.output_encoder, "encoding_map"):
        return model
    if output_label not in model.residual_labels:
        raise ValueError(f"no residual dimension is labelled {output_label!r}")
    labels = [f"{lab}:value" if lab == output_label else lab for lab in model.residual_labels]
    return SimpleNamespace(params=model.params, model_config=model.model_config,
                           residual_labels=labels,
                           output_encoder=SimpleNamespace(encoding_map={"value": 0}))


def to_bridge(model, output_label: str) -> tuple[TransformerBridge, dict, dict[str, Tensor]]:
    """Convert a Tracr model with TransformerLens' converter and load it strictly.

    Returns:
        The bridge (compatibility mode), its config fields and its state dict.
    """
    view = _categorical_view(model, output_label)
    cfg = tl_tracr.make_tracr_transformer_bridge_config(view)
    native = tl_tracr.make_tracr_transformer_bridge_state_dict(view, output_label=output_label)
    state = {_bridge_key(key): value.contiguous() for key, value in native.items()}
    state["unembed.bias"] = torch.zeros(cfg.d_vocab_out)
    bridge = TransformerBridge.boot_native(cfg)
    bridge.load_state_dict(state, strict=True)
    bridge.enable_compatibility_mode(no_processing=True)  # keep Tracr's weights exact
    return bridge.eval(), config_fields(cfg), state


# ---- the program, its reference outputs and its ground truth ------------------------------

_KINDS = ((rasp.Select, "select"), (rasp.Aggregate, "aggregate"),
          (rasp.SelectorWidth, "selector_width"), (rasp.SequenceMap, "sequence_map"),
          (rasp.Map, "map"))


def _operation(graph, label: str, name_of: dict) -> dict:
    """One RASP expression as a table the interpreter runs (see :mod:`.interpreter`)."""
    expr = graph.nodes[label][nodes.EXPR]
    values = lambda e: sorted(graph.nodes[e.label][nodes.VALUE_SET], key=repr)
    if label in ("tokens", "indices"):
        return {"name": label, "kind": label, "inputs": []}
    kind = next(k for cls, k in _KINDS if isinstance(expr, cls))
    op = {"name": name_of[label], "kind": kind}
    if kind == "select":
        op["inputs"] = [name_of[expr.keys.label], name_of[expr.queries.label]]
        op["table"] = [[k, q] for k in values(expr.keys) for q in values(expr.queries)
                       if expr.predicate(k, q)]
    elif kind in ("aggregate", "selector_width"):
        op["inputs"] = [name_of[expr.selector.label]]
        if kind == "aggregate":
            op["inputs"].append(name_of[expr.sop.label])
            op["default"] = expr.default
    else:
        children = [expr.inner] if kind == "map" else [expr.fst, expr.snd]
        op["inputs"] = [name_of[c.label] for c in children]
        op["table"] = [[*args, expr.f(*args)]
                       for args in itertools.product(*(values(c) for c in children))
                       if _defined(expr.f, args)]
    if kind != "select":
        op["numerical"] = bool(rasp.is_numerical(expr))
    return op


def _defined(f, args) -> bool:
    try:
        f(*args)
    except ArithmeticError:
        return False
    return True


def _all_inputs(program: TracrProgram):
    for length in range(1, program.max_seq_len + 1):
        yield from itertools.product(program.vocab, repeat=length)


def _variables(residual_labels: list[str], name_of: dict) -> tuple[dict, dict, list[str]]:
    """RASP variable -> dims; other dims (``one``, counting heads' outputs) -> dims; labels."""
    variables, hidden, labels = {}, {}, []
    for dim, label in enumerate(residual_labels):
        base, colon, value = label.partition(":")
        if base in name_of:
            name, target = name_of[base], variables
        else:
            owner = next((lab for lab in name_of if base.startswith(lab + "_")), None)
            name = base if owner is None else name_of[owner] + base[len(owner):]
            target = hidden
        target.setdefault(name, []).append(dim)
        labels.append(f"{name}{colon}{value}")
    return variables, hidden, labels


def _ground_truth(compiled: Compiled, bridge, name_of: dict) -> dict:
    """Operations -> nodes (from the compiler), variables -> dims, node reads/writes, edges."""
    variables, hidden, labels = _variables(compiled.model.residual_labels, name_of)
    var_of = {dim: label.partition(":")[0] for dim, label in enumerate(labels)}
    graph = CircuitGraph.from_model(bridge)
    writes, reads = node_dims(bridge)
    operations = {}
    for label, where in compiled.layer_of.items():
        operations[name_of[label]] = sorted(
            [Node(layer, "head", head).name for layer, head in where["attn"]] +
            [Node(layer, "mlp").name for layer in where["mlp"]])
    named = lambda dims: sorted({var_of[d] for d in dims})
    node_io = {node.name: {"writes": named(writes.get(node, ())),
                           "reads": {ch: named(dims) for (n, ch), dims in reads.items() if n == node}}
               for node in graph.nodes}
    gt = {"operations": operations, "variables": variables, "hidden": hidden,
          "residual_labels": labels, "nodes": node_io,
          "connected_edges": [e.name for e in true_edges(graph, writes, reads)]}
    _check_ground_truth(compiled, gt, name_of)
    return gt


def _check_ground_truth(compiled: Compiled, gt: dict, name_of: dict) -> None:
    """The compiler's view and the weights' must agree: each operation's nodes write its
    variable (and nothing else does), and read the variables it is computed from."""
    writers = {}
    for node, io in gt["nodes"].items():
        for var in io["writes"]:
            writers.setdefault(var, set()).add(node)
    for op, where in gt["operations"].items():
        if not writers.get(op) or not writers[op] <= set(where):
            raise AssertionError(f"{op} is written by {writers.get(op)}, not by its nodes {where}")
        expr = compiled.graph.nodes[next(k for k, v in name_of.items() if v == op)][nodes.EXPR]
        needed = [name_of[c.label] for c in expr.children if isinstance(c, rasp.SOp)]
        needed += [name_of[c.label] for c in expr.children if isinstance(c, rasp.Select)
                   for c in (c.keys, c.queries)]
        read = {v for n in where for ch in gt["nodes"][n]["reads"].values() for v in ch}
        missing = set(needed) - read
        if missing:
            raise AssertionError(f"{op}'s nodes {where} do not read {sorted(missing)}")
    for var in ("tokens", "indices"):
        if var in writers and writers[var] != {"embed"}:
            raise AssertionError(f"{var} is written by {writers[var]}, not only the embeddings")


def _check_agreement(compiled: Compiled, bridge, spec: dict) -> int:
    """How many inputs the bridge decodes exactly as Tracr's own forward pass does (all, or raise)."""
    from .files import TracrModel
    model = TracrModel(spec, bridge)
    agree = total = 0
    for length in range(1, compiled.program.max_seq_len + 1):
        inputs = model.inputs(length)
        ours = model.run(inputs)
        for x, y in zip(inputs, ours):
            theirs = compiled.model.apply([BOS, *x]).decoded[1:]
            same = (np.allclose(y, theirs, atol=1e-4) if model.numerical else y == theirs)
            agree, total = agree + same, total + 1
    if agree != total:
        raise AssertionError(f"{compiled.program.name}: the bridge agrees with Tracr on only "
                             f"{agree} of {total} inputs")
    return total


def _split_inert(spec: dict, bridge) -> None:
    """``edges``: the connected edges whose zero ablation changes some output; ``inert_edges``:
    the others (see :mod:`.ground_truth`)."""
    from .files import TracrModel, parse_edge
    model = TracrModel(spec, bridge)
    connected = [parse_edge(model.graph, e) for e in spec["ground_truth"]["connected_edges"]]
    changes = ablation_changes(model, connected)
    spec["ground_truth"]["edges"] = [e.name for e in connected if changes[e]]
    spec["ground_truth"]["inert_edges"] = [e.name for e in connected if not changes[e]]


def program_spec(compiled: Compiled, bridge, fields: dict) -> dict:
    """Everything the JSON file holds (see :mod:`mi_helpers.tracr.files`)."""
    program, model = compiled.program, compiled.model
    order = list(networkx.topological_sort(compiled.graph))
    name_of = {label: compiled.graph.nodes[label][nodes.EXPR].name for label in order}
    name_of.update(tokens="tokens", indices="indices")
    if len(set(name_of.values())) != len(name_of):
        raise ValueError(f"{program.name}: two operations share a name: {sorted(name_of.values())}")
    encoding = getattr(model.output_encoder, "encoding_map", None)
    return {
        "format_version": FORMAT_VERSION, "name": program.name,
        "description": program.description, "max_seq_len": program.max_seq_len,
        "config": fields,
        "input_encoding": [[t, i] for t, i in model.input_encoder.encoding_map.items()],
        "output": {"name": program.name,
                   "encoding": None if encoding is None else [[v, i] for v, i in encoding.items()]},
        "operations": [_operation(compiled.graph, label, name_of) for label in order],
        "reference": [[list(x), rasp.evaluate(compiled.expr, list(x))]
                      for x in _all_inputs(program)],
        "ground_truth": _ground_truth(compiled, bridge, name_of),
        "compiled_with": {p: metadata.version(p) for p in
                          ("tracr-pypi", "jax", "dm-haiku", "transformer-lens", "torch")},
    }


def _dumps(spec: dict) -> str:
    """JSON with one line per key of the spec and of its ground truth (readable, compact)."""
    def block(mapping: dict, indent: str) -> str:
        lines = [f'{indent} {json.dumps(key)}: ' + (block(value, indent + " ")
                 if key == "ground_truth" else json.dumps(value)) for key, value in mapping.items()]
        return "{\n" + ",\n".join(lines) + f"\n{indent}}}"
    return block(spec, "") + "\n"


def write_program(program: TracrProgram, out_dir: Path = TRACR_DIR) -> dict:
    """Compile ``program``, check it, and write ``<name>.safetensors`` and ``<name>.json``."""
    compiled = compile_program(program)
    bridge, fields, state = to_bridge(compiled.model, compiled.expr.label)
    spec = program_spec(compiled, bridge, fields)
    n_checked = _check_agreement(compiled, bridge, spec)
    _split_inert(spec, bridge)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out_dir / f"{program.name}.safetensors"))
    (out_dir / f"{program.name}.json").write_text(_dumps(spec))
    print(f"{program.name}: {fields['n_layers']} layers, {fields['n_heads']} heads, "
          f"d_model {fields['d_model']}, {len(spec['ground_truth']['edges'])} true edges "
          f"({len(spec['ground_truth']['inert_edges'])} connected but inert); "
          f"bridge = Tracr on all {n_checked} inputs")
    return spec


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(PROGRAMS), help="programs to compile")
    parser.add_argument("--out", type=Path, default=TRACR_DIR, help="output folder")
    args = parser.parse_args(argv)
    for name in args.only or PROGRAMS:
        write_program(PROGRAMS[name], args.out)


if __name__ == "__main__":
    main()
