"""ACDC on the circuit graph: a planted circuit, batching, bad input."""

import pytest
import torch

from mi_helpers import load_model
from mi_helpers.circuits.acdc import acdc
from mi_helpers.circuits.edge_patching import build_edge_model, circuit_metrics
from mi_helpers.core.metrics import kl_divergence

PLANTED_HEADS = {(0, 1), (1, 2)}


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A random GPT-2 in which only heads L0H1 and L1H2 write anything (every other head's
    output projection is zero) and the MLPs write a constant (zero output weights). Only
    the edges among the embeddings, those two heads and the logits can matter."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from mi_helpers.zoo.tokenizer import build_tokenizer

    tokenizer = build_tokenizer()
    torch.manual_seed(1)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=32, n_embd=32, n_layer=2,
                        n_head=4, initializer_range=0.4, resid_pdrop=0.0, embd_pdrop=0.0,
                        attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    hf = GPT2LMHeadModel(config).eval()
    d_head = config.n_embd // config.n_head
    with torch.no_grad():
        for layer, block in enumerate(hf.transformer.h):
            for head in range(config.n_head):
                if (layer, head) not in PLANTED_HEADS:  # Conv1D weight: [in (heads), out]
                    block.attn.c_proj.weight[head * d_head:(head + 1) * d_head] = 0
            block.mlp.c_proj.weight.zero_()
    out = tmp_path_factory.mktemp("planted")
    hf.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return load_model(str(out), device="cpu")


def planted_edges(graph):
    live = {graph.node("embed"), graph.node("logits")} | {graph.node(f"L{l}H{h}")
                                                          for l, h in PLANTED_HEADS}
    return {e for e in graph.edges if e.sender in live and e.receiver in live}


def test_acdc_finds_the_planted_circuit(planted, edge_tools):
    clean, corrupted, _ = edge_tools.make_pair(planted, batch=4, n_pos=10)
    tau = 1e-3
    circuit = acdc(planted, clean, corrupted, tau=tau, progress=False)
    graph = circuit.graph
    possible = planted_edges(graph)
    assert len(possible) == 3 + 3 * 2 + 3  # L0H1.qkv <- embed, L1H2.qkv <- 2, logits <- 3
    assert circuit.edges <= possible, sorted(e.name for e in circuit.edges - possible)
    assert graph.node("L1H2") in circuit.nodes and graph.node("embed") in circuit.nodes
    # each removal raised the KL by less than tau, and only planted edges can raise it
    em, _ = build_edge_model(planted, clean, corrupted)
    logits = em.patched_logits((~circuit.mask).float()[None])
    kl = kl_divergence(em.clean.logits[:, -1], logits[:, -1]).mean().item()
    assert kl < tau * len(possible - circuit.edges) + 1e-6
    # and the removed planted edges together matter: the empty circuit is far off
    empty = kl_divergence(em.clean.logits[:, -1], em.corrupted.logits[:, -1]).mean().item()
    assert empty > 100 * tau


def test_batched_acdc_decides_as_one_edge_per_pass(zoo2l, edge_tools):
    clean, corrupted, metric = edge_tools.induction_pair(zoo2l)
    one = acdc(zoo2l, clean, corrupted, tau=0.01, patches_per_pass=1, progress=False)
    many = acdc(zoo2l, clean, corrupted, tau=0.01, patches_per_pass=7, progress=False)
    assert one == many
    assert 0 < len(one) < len(one.graph.edges) / 2
    by_metric = acdc(zoo2l, clean, corrupted, metric, tau=0.05, patches_per_pass=5,
                     progress=False)
    assert by_metric == acdc(zoo2l, clean, corrupted, metric, tau=0.05, patches_per_pass=1,
                             progress=False)
    full, kept = circuit_metrics(zoo2l, clean, corrupted, metric,
                                 [type(one).from_edges(one.graph, one.graph.edges), by_metric])
    n_removed = len(by_metric.graph.edges) - len(by_metric)
    assert abs(kept - full) <= 0.05 * n_removed  # each removal moved the metric by < tau
    assert 0 < len(by_metric) < len(by_metric.graph.edges)


def test_bad_input(random_gpt2, edge_tools):
    clean, corrupted, _ = edge_tools.make_pair(random_gpt2)
    for tau in (0, -0.1, "0.1", True):
        with pytest.raises(ValueError, match="tau must be a number > 0"):
            acdc(random_gpt2, clean, corrupted, tau=tau)
    with pytest.raises(ValueError, match="metric must be 'kl' or a callable"):
        acdc(random_gpt2, clean, corrupted, "logit_diff", tau=0.1)
    with pytest.raises(ValueError, match="same number of tokens"):
        acdc(random_gpt2, clean, corrupted[:, :-2], tau=0.1)
    with pytest.raises(MemoryError, match="ACDC needs about"):
        acdc(random_gpt2, clean, corrupted, tau=0.1, memory_budget=4096)
    with pytest.raises(IndexError, match="beyond the prompt"):
        acdc(random_gpt2, clean, corrupted, tau=0.1, positions=50)


TAU = 0.01


def test_acdc_reads_only_where_its_score_reads(zoo2l, edge_tools, monkeypatch):
    """ACDC's passes unembed only at the positions its KL (or PositionMetric) reads, and
    find the same circuit as with every position unembedded."""
    from mi_helpers.core.metrics import PositionMetric, PositionReader

    clean, corrupted, _ = edge_tools.induction_pair(zoo2l)
    at = clean.shape[1] - 2  # predicts the last token by induction
    last = torch.full((len(clean),), at)

    def metric(logits):
        return logits[:, at].log_softmax(-1).gather(-1, clean[:, -1:]).mean()

    reads = []
    real = PositionReader.read_logits

    def recording(self, x, unembed):
        reads.append(self.read_positions)
        return real(self, x, unembed)

    for score in ("kl", PositionMetric(metric, last)):
        monkeypatch.setattr(PositionReader, "read_logits",
                            lambda self, x, unembed: unembed(x))  # every position
        everywhere = acdc(zoo2l, clean, corrupted, score, tau=TAU, positions=at, progress=False)
        reads.clear()
        monkeypatch.setattr(PositionReader, "read_logits", recording)
        fast = acdc(zoo2l, clean, corrupted, score, tau=TAU, positions=at, progress=False)
        patched = reads[2:]  # after the clean and corrupted runs, which keep every logit
        assert patched and all(r is not None and r.tolist() == last.tolist() for r in patched)
        assert fast == everywhere
        assert 0 < len(fast) < len(fast.graph.edges), "a circuit between empty and full"
