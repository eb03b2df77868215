"""Fixtures for the edge-level tests: the zoo's 2-layer model, prompt pairs, and the
mapping between our position-summed edges and transformer-lens 4.3's per-position ones."""

from collections import defaultdict

import pytest
import torch
from transformer_lens.tools.analysis import attribution_patching as tl_ap

from mi_helpers import load_model
from mi_helpers.core.graph import Edge, Node
from mi_helpers.datasets import repeats


@pytest.fixture(scope="session")
def zoo2l():
    return load_model("zoo-2l", device="cpu")


@pytest.fixture(scope="session")
def random_gpt2(tmp_path_factory):
    """A random 2-layer GPT-2 (learned positions, gelu_new) with weights large enough
    that its edges matter (initializer range 0.3 instead of 0.02)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from mi_helpers.zoo.tokenizer import build_tokenizer

    tokenizer = build_tokenizer()
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=32, n_embd=32, n_layer=2,
                        n_head=4, initializer_range=0.3, resid_pdrop=0.0, embd_pdrop=0.0,
                        attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    out = tmp_path_factory.mktemp("random-gpt2")
    GPT2LMHeadModel(config).eval().save_pretrained(out)
    tokenizer.save_pretrained(out)
    return load_model(str(out), device="cpu")


def make_pair(model, batch=3, n_pos=9, seed=0):
    """Random clean and corrupted tokens that differ at a few positions, and a metric:
    the mean logit difference between two fixed tokens at the last position."""
    gen = torch.Generator().manual_seed(seed)
    clean = torch.randint(1, model.cfg.d_vocab, (batch, n_pos), generator=gen)
    clean[:, 0] = 0
    corrupted = clean.clone()
    corrupted[:, 2:5] = torch.randint(1, model.cfg.d_vocab, (batch, 3), generator=gen)

    def metric(logits):
        return (logits[:, -1, 5] - logits[:, -1, 7]).mean()

    return clean, corrupted, metric


def induction_pair(model):
    """Four ``BOS r r`` prompts against ``BOS r' r`` (6 tokens per copy)."""
    return repeats.induction_pair(model, rep_len=6, n_seqs=4, seed=0)


def tl_node_to_ours(node, n_layers):
    """transformer-lens' (kind, position, layer, head) node as our node and channel."""
    kind = node.kind
    if kind == "embed":
        return Node(-1, "embed"), None
    if kind == "attn_head_out":
        return Node(node.layer, "head", node.head), None
    if kind == "mlp_out":
        return Node(node.layer, "mlp"), None
    if kind in ("q_input", "k_input", "v_input"):
        return Node(node.layer, "head", node.head), kind[0]
    if kind == "mlp_in":
        return Node(node.layer, "mlp"), "in"
    return Node(n_layers, "logits"), "in"


def aggregate_tl_edges(scores: dict, graph) -> torch.Tensor:
    """Sum transformer-lens' per-position edge scores into our edges (graph order)."""
    totals = defaultdict(float)
    for (writer, reader), value in scores.items():
        sender, _ = tl_node_to_ours(writer, graph.n_layers)
        receiver, channel = tl_node_to_ours(reader, graph.n_layers)
        totals[Edge(sender, receiver, channel)] += value
    assert set(totals) == set(graph.edges), "the two graphs have different edges"
    return torch.tensor([totals[e] for e in graph.edges], dtype=torch.float64)


def tl_edges_of(edges, n_layers, n_pos):
    """Our edges as transformer-lens' (writer, reader) pairs at every position."""
    pairs = []
    for edge in edges:
        s, r = edge.sender, edge.receiver
        for p in range(n_pos):
            if s.kind == "embed":
                writer = tl_ap.Node("embed", p)
            elif s.kind == "head":
                writer = tl_ap.Node("attn_head_out", p, s.layer, s.head)
            else:
                writer = tl_ap.Node("mlp_out", p, s.layer)
            if r.kind == "head":
                reader = tl_ap.Node(f"{edge.channel}_input", p, r.layer, r.head)
            elif r.kind == "mlp":
                reader = tl_ap.Node("mlp_in", p, r.layer)
            else:
                reader = tl_ap.Node("logits", p, n_layers - 1)
            pairs.append((writer, reader))
    return pairs


@pytest.fixture
def edge_tools():
    """The helpers above, for tests (test modules cannot import a conftest)."""
    from types import SimpleNamespace
    return SimpleNamespace(make_pair=make_pair, induction_pair=induction_pair,
                           aggregate_tl_edges=aggregate_tl_edges, tl_edges_of=tl_edges_of)
