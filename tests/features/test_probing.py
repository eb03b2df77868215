import pytest
import torch

from mi_helpers.core.activations import collect_activations
from mi_helpers.features.probing import (best_dims, binary_metrics, check_labels, fit_probe,
                                         probe_rows, probe_sweep, probe_with_control,
                                         split_indices,
                                         train_probe, tune_threshold)
from mi_helpers.interventions import ablate_direction, causal_effect, steer_direction

D = 32
HOOK = "blocks.1.hook_resid_post"


def planted(direction: torch.Tensor, n: int = 600, margin: float = 2.5, seed: int = 0):
    """Gaussian activations whose label shifts them by ``±margin`` along ``direction``."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=gen)
    acts = torch.randn(n, D, generator=gen) + 3.0  # an offset the probe must absorb
    acts += margin * (2 * labels[:, None] - 1) * direction / direction.norm()
    return acts, labels


def test_dense_probe_recovers_a_planted_direction():
    direction = torch.randn(D, generator=torch.Generator().manual_seed(1))
    acts, labels = planted(direction)
    probe, metrics = train_probe(acts, labels)
    cosine = torch.cosine_similarity(probe.direction, direction, dim=0)
    assert cosine > 0.9, cosine
    assert metrics["f1"] > 0.95, metrics


def test_sparse_probe_finds_the_planted_coordinates():
    direction = torch.zeros(D)
    direction[[3, 17]] = 1.0
    acts, labels = planted(direction)
    assert set(best_dims(acts, labels, 2).tolist()) == {3, 17}
    probe, metrics = train_probe(acts, labels, n_dims=2)
    assert set(torch.nonzero(probe.direction).flatten().tolist()) == {3, 17}
    assert metrics["f1"] > 0.95, metrics


def test_shuffled_label_control_is_near_chance():
    acts, labels = planted(torch.randn(D, generator=torch.Generator().manual_seed(2)))
    row = probe_with_control(acts, labels)
    assert abs(row["control_accuracy"] - 0.5) < 0.1, row
    assert row["control_f1"] < 0.75 and row["selectivity_f1"] > 0.2, row
    assert row["selectivity_accuracy"] > 0.35, row


def test_threshold_maximises_validation_f1():
    scores = torch.tensor([3.0, 2.0, 1.0, 0.5, -1.0, -2.0])
    labels = torch.tensor([1, 1, 0, 1, 0, 0])
    probe = fit_probe(scores[:, None], labels)
    tuned = tune_threshold(probe, scores[:, None], labels)
    predicted = tuned.predict(scores[:, None])
    assert binary_metrics(predicted, labels)["f1"] == pytest.approx(6 / 7)  # top 4 positive


def test_metrics_by_hand():
    """An asymmetric confusion matrix: precision and recall swapped would differ."""
    predicted = torch.tensor([1, 1, 1, 1, 0, 0, 0, 0, 0, 0]).bool()
    labels = torch.tensor([1, 1, 1, 0, 1, 1, 0, 0, 0, 0])  # tp 3, fp 1, fn 2, tn 4
    m = binary_metrics(predicted, labels)
    assert m == pytest.approx({"f1": 2 / 3, "precision": 3 / 4, "recall": 3 / 5, "accuracy": 0.7})


def test_splits_are_stratified_and_disjoint():
    labels = torch.tensor([0] * 50 + [1] * 50)
    train, val, test = split_indices(labels)
    assert len(set(train.tolist()) | set(val.tolist()) | set(test.tolist())) == 100
    assert labels[train].sum() == 30 and labels[val].sum() == 10 and labels[test].sum() == 10


@pytest.fixture(scope="module")
def two_token_prompts(tiny_model):
    """Prompts ending in one of two tokens; the label says which. Padded to differ in length."""
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(3, tiny_model.cfg.d_vocab, (80, 12), generator=gen)
    tokens[:, 0] = tiny_model.tokenizer.bos_token_id
    labels = torch.arange(80) % 2
    ends = torch.randint(6, 12, (80,), generator=gen)
    tokens[torch.arange(80), ends] = torch.where(labels == 1, 100, 200)
    return tokens, labels, ends


def test_extraction_reads_each_examples_position(tiny_model, two_token_prompts):
    tokens, _, ends = two_token_prompts
    acts = collect_activations(tiny_model, tokens, [HOOK, "blocks.0.attn.hook_z"], positions=ends,
                               batch_size=32)
    _, cache = tiny_model.run_with_cache(tokens[:3])
    assert torch.allclose(acts[HOOK][:3], cache[HOOK][torch.arange(3), ends[:3]], atol=1e-5)
    cfg = tiny_model.cfg
    assert acts["blocks.0.attn.hook_z"].shape == (80, cfg.n_heads * cfg.d_head)


def test_sweep_finds_the_token_at_every_layer(tiny_model, two_token_prompts):
    tokens, labels, ends = two_token_prompts
    rows = probe_sweep(tiny_model, tokens, labels, pos=ends, progress=False)
    assert [row["hook"] for row in rows] == [f"blocks.{layer}.hook_resid_post"
                                             for layer in range(tiny_model.cfg.n_layers)]
    assert all(row["f1"] == 1.0 and row["selectivity_accuracy"] > 0.25 for row in rows), rows


def test_probe_rows_on_collected_activations_is_the_sweep(tiny_model, two_token_prompts):
    """One collection, probed twice: the same rows as two sweeps, hooks in the order given."""
    tokens, labels, ends = two_token_prompts
    hooks = ["blocks.1.hook_resid_post", "blocks.0.hook_resid_pre"]
    acts = collect_activations(tiny_model, tokens, hooks, positions=ends)
    for n_dims in (None, 2):
        swept = probe_sweep(tiny_model, tokens, labels, hooks, pos=ends, n_dims=n_dims,
                            progress=False)
        rows = probe_rows(acts, labels, n_dims=n_dims)
        assert [r["hook"] for r in rows] == hooks
        for a, b in zip(rows, swept):
            assert {k: v for k, v in a.items() if k != "probe"} == \
                   {k: v for k, v in b.items() if k != "probe"}
            assert torch.equal(a["probe"].direction, b["probe"].direction)


def test_ablation_removes_the_direction(tiny_model):
    tokens = tiny_model.to_tokens("Mary likes the cat .")
    direction = torch.randn(tiny_model.cfg.d_model)
    with ablate_direction(tiny_model, HOOK, direction):
        _, cache = tiny_model.run_with_cache(tokens, names_filter=["ln_final.hook_in"])
    assert (cache["ln_final.hook_in"] @ direction).abs().max() < 1e-4


def test_steering_along_an_unembedding_beats_random(tiny_model):
    tokens = tiny_model.to_tokens("Mary likes the cat .")
    target = 100
    result = causal_effect(tiny_model, tokens, HOOK, tiny_model.W_U[:, target].detach(),
                           lambda logits: logits[:, -1, target].mean(), scale=20.0)
    assert result["effect"] > 3 * result["random_abs_effect"] > 0, result


def test_steering_leaves_no_hooks_behind_even_on_error(tiny_model):
    tokens = tiny_model.to_tokens("Mary likes the cat .")
    with torch.no_grad():
        clean = tiny_model(tokens)
    with pytest.raises(RuntimeError, match="boom"):
        with steer_direction(tiny_model, HOOK, torch.ones(tiny_model.cfg.d_model), scale=50.0):
            assert not torch.allclose(tiny_model(tokens), clean)
            raise RuntimeError("boom")
    assert not any(point.fwd_hooks for point in tiny_model.hook_dict.values())
    with torch.no_grad():
        assert torch.equal(tiny_model(tokens), clean)


def test_label_count_mismatch():
    with pytest.raises(ValueError, match="10 examples"):
        check_labels(torch.randint(0, 2, (9,)), 10)


def test_single_class():
    with pytest.raises(ValueError, match="both classes"):
        fit_probe(torch.randn(10, D), torch.ones(10, dtype=torch.long))


def test_position_beyond_prompt(tiny_model):
    tokens = tiny_model.to_tokens("Mary likes the cat .")
    with pytest.raises(IndexError, match=f"{tokens.shape[1]} positions"):
        collect_activations(tiny_model, tokens, [HOOK], positions=tokens.shape[1])
    with pytest.raises(IndexError, match="positions"):
        collect_activations(tiny_model, tokens, [HOOK], positions=torch.tensor([99]))


def test_unknown_hook(tiny_model):
    tokens = tiny_model.to_tokens("Mary likes the cat .")
    with pytest.raises(KeyError, match="blocks.1.hook_resid_post"):
        collect_activations(tiny_model, tokens, ["blocks.1.hook_resid_pots"])
    with pytest.raises(KeyError, match="blocks.1.hook_resid_post"):
        with ablate_direction(tiny_model, "blocks.1.hook_resid_pots", torch.ones(32)):
            pass
