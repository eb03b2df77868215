import pytest
import torch

from mi_helpers.circuits.ablation import head_ablation_hooks, head_means, template_means
from mi_helpers.circuits.composition import _scores, composition_baseline, composition_scores
from mi_helpers.circuits.evaluation import (CircuitEvaluator, completeness, faithfulness,
                                            minimality)
from mi_helpers.core.heads import Head
from mi_helpers.core.metrics import per_token_loss
from mi_helpers.circuits.ioi import abc_corruption, ioi_dataset


@pytest.fixture(scope="module")
def setup():
    from mi_helpers.core.models import load_model
    model = load_model("zoo-4l", device="cpu")
    data = ioi_dataset(model, 16, seed=0)
    abc = abc_corruption(data, model)
    means = head_means(model, abc.tokens, data.template_ids)
    return model, data, CircuitEvaluator(model, data.tokens, data.metric, means), means


def test_head_label():
    assert Head(9, 6).label == "L9H6" and str(Head(9, 6)) == "L9H6"


def test_template_means_average_within_groups():
    acts = torch.arange(12.0).reshape(4, 3, 1)
    out = template_means(acts, torch.tensor([0, 1, 0, 1]))
    assert torch.equal(out[0], (acts[0] + acts[2]) / 2) and torch.equal(out[0], out[2])
    assert torch.equal(out[1], (acts[1] + acts[3]) / 2)


def test_keeping_every_head_is_the_plain_model(setup):
    model, data, ev, means = setup
    with torch.no_grad():
        plain = data.metric(model(data.tokens)).item()
    assert ev.full == pytest.approx(plain, abs=1e-5)
    # nothing kept == every head mean-ablated by hand
    hooks = head_ablation_hooks(model, ev.all_heads, means)
    with torch.no_grad():
        by_hand = data.metric(model.run_with_hooks(data.tokens, fwd_hooks=hooks)).item()
    assert ev.empty == pytest.approx(by_hand, abs=1e-5)


def test_a_circuit_takes_the_model_s_graph(setup):
    """A circuit is scored as its heads; one built on the graph of a smaller model (whose
    heads all exist here too) is refused, not silently read as this model's heads."""
    from mi_helpers.core.graph import Circuit, CircuitGraph
    model, _, ev, _ = setup
    own = Circuit.from_heads(CircuitGraph.from_model(model), [(0, 1), (1, 2)])
    assert ev.score(own) == pytest.approx(ev.score([(0, 1), (1, 2)]), abs=1e-6)
    small = Circuit.from_heads(CircuitGraph(2, model.cfg.n_heads), [(0, 1), (1, 2)])
    with pytest.raises(ValueError, match="built for a model with 2 layers"):
        ev.score(small)


def test_positions_restrict_a_head(setup):
    model, data, ev, means = setup
    everywhere = CircuitEvaluator(model, data.tokens, data.metric, means,
                                  positions={(0, 7): torch.arange(data.tokens.shape[1])
                                             .repeat(len(data), 1)})
    assert everywhere.score([(0, 7)]) == pytest.approx(ev.score([(0, 7)]), abs=1e-5)
    masks = ev.keep_masks([(0, 7)])
    assert masks["blocks.0.attn.hook_z"][:, :, 7].all() and not masks["blocks.1.attn.hook_z"].any()


def test_faithfulness_completeness_minimality(setup):
    """On the zoo: each point is F of the right head sets, the first greedy step takes the
    largest single-head gap, and minimality is at least the change from removing the head
    alone (the empty K it always tries). A stub F checks the rest by hand
    (test_completeness_minimality.py)."""
    model, data, ev, _ = setup
    circuit = [Head(0, 2), Head(0, 6), Head(0, 7), Head(1, 0)]
    f = faithfulness(ev, circuit)
    assert (f.full, f.empty) == (ev.full, ev.empty) and f.circuit == ev.score(circuit)
    assert f.ratio == pytest.approx(f.circuit / f.full) and f.ratio != pytest.approx(1.0)
    points = completeness(ev, circuit, n_random=3, greedy_steps=2, seed=0)
    assert [p.kind for p in points] == ["empty"] + ["random"] * 3 + ["greedy"] * 2
    assert points[0].circuit == pytest.approx(f.circuit) and points[0].full == pytest.approx(ev.full)
    gaps = {h: abs(ev.without(circuit, [h]) - ev.without(ev.all_heads, [h])) for h in circuit}
    assert points[-2].removed == (max(gaps, key=gaps.get),)
    assert points[-2].gap == pytest.approx(max(gaps.values()))
    assert len(points[-1].removed) == 2 and points[-1].removed[0] == points[-2].removed[0]
    mins = minimality(ev, circuit, n_random=2)
    assert set(mins) == set(circuit)
    for h in circuit:
        alone = abs(ev.without(circuit, [h]) - f.circuit)
        assert mins[h] >= alone - 1e-6 and mins[h] > 0
    with pytest.raises(IndexError, match="layer 7"):
        ev.score([(7, 0)])


def test_composition_scores_on_planted_matrices():
    d = 8
    basis = torch.eye(d)
    first = 3 * basis[:, :2] @ basis[:2]  # writes to dims 0-1 (a rank-2 projection, scaled)
    reads_same = 0.5 * basis[:, :2] @ basis[:2]  # another norm: the score must not care
    reads_other = basis[:, 4:6] @ basis[4:6]
    ov = torch.stack([first, first]).reshape(1, 2, d, d).repeat(2, 1, 1, 1)
    reader = torch.stack([reads_same, reads_other]).reshape(1, 2, d, d).repeat(2, 1, 1, 1)
    scores = _scores(ov, reader)
    assert scores[0, 0, 1, 0] == pytest.approx(2 ** -0.5)  # |P P| / |P|^2 = 1/sqrt(rank)
    assert scores[0, 0, 1, 1] == pytest.approx(0.0)
    assert scores[1].isnan().all() and scores[:, :, 0].isnan().all()


def test_composition_scores_shape_and_errors(setup):
    model = setup[0]
    scores = composition_scores(model, "K")
    n, h = model.cfg.n_layers, model.cfg.n_heads
    assert scores.shape == (n, h, n, h) and not scores[0, :, 1].isnan().any()
    assert 0 < composition_baseline(model, "K") < 1
    with pytest.raises(ValueError, match="'Q', 'K' or 'V'"):
        composition_scores(model, "O")


def test_zero_ablation_and_per_token_loss(setup):
    model, data = setup[:2]
    hooks = head_ablation_hooks(model, [(0, 7)])
    seen = {}

    def grab(z, hook):
        seen["z"] = z.clone()

    with torch.no_grad():
        model.run_with_hooks(data.tokens, fwd_hooks=hooks + [("blocks.0.attn.hook_z", grab)])
    assert (seen["z"][:, :, 7] == 0).all() and (seen["z"][:, :, 6] != 0).any()
    logits = torch.zeros(1, 3, 5)
    loss = per_token_loss(logits, torch.tensor([[0, 1, 2]]))
    assert torch.allclose(loss, torch.full((1, 2), torch.log(torch.tensor(5.0)).item()))


def test_a_position_metric_gives_the_same_scores_unembedding_one_position(setup):
    """The evaluator of a PositionMetric (IOI's metric) unembeds only each prompt's last
    token and scores every circuit as the evaluator of the same function undeclared."""
    model, data, ev, means = setup
    plain = CircuitEvaluator(model, data.tokens, data.mean_logit_diff, means)
    circuits = [[], [Head(0, 1), Head(2, 3)], ev.all_heads[::3], ev.all_heads]
    for kept in circuits:
        assert ev.score(kept) == pytest.approx(plain.score(kept), abs=1e-5)
    logits = ev.run(circuits[1])
    ends = data.word_positions["end"]
    rows = torch.arange(len(ends))
    assert logits[rows, ends].isfinite().all()
    assert logits.isnan().sum() == logits.numel() - logits[rows, ends].numel()
    assert torch.allclose(logits[rows, ends], plain.run(circuits[1])[rows, ends], atol=1e-5)
