"""Steering: contrastive vectors, sweeps checked against a hand-written hook, generation."""

import pytest
import torch

from mi_helpers.core import hook_name
from mi_helpers.core.metrics import per_token_loss
from mi_helpers.interventions.steering import (best_within_cost, contrastive_vector, generate,
                                               steering_sweep)

POSITIVE = ["le chat voit Mary", "la femme suit Paul"]
NEGATIVE = ["the dog sees Mary", "my cat follows Paul", "the old man helps Anna"]
UNRELATED = ["36 - 8 = 28 . 48 + 4 = 52 .", "31 + 48 = 79 . 12 - 3 = 9 ."]


def test_contrastive_vector_is_the_difference_of_means(tiny_model):
    model = tiny_model
    hook = hook_name("resid_post", 0)
    pos, neg = model.to_tokens(POSITIVE), model.to_tokens(NEGATIVE)
    pos_end = torch.tensor([len(model.to_tokens(p)[0]) - 1 for p in POSITIVE])
    neg_end = torch.tensor([len(model.to_tokens(p)[0]) - 1 for p in NEGATIVE])
    vector = contrastive_vector(model, pos, neg, hook, pos_end, neg_end)
    means = []
    for prompts in (POSITIVE, NEGATIVE):
        rows = [model.run_with_cache(model.to_tokens(p))[1][hook][0, -1] for p in prompts]
        means.append(torch.stack(rows).mean(0))
    assert torch.allclose(vector, means[0] - means[1], atol=1e-5)


def test_sweep_matches_a_hand_written_steering_hook(tiny_model):
    model = tiny_model
    hook = hook_name("resid_post", 0)
    prompts = model.to_tokens(NEGATIVE)
    unrelated = model.to_tokens(UNRELATED)
    direction = torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(0))
    token = model.to_single_token(" le")

    def behaviour(logits):
        return logits[:, -1].log_softmax(-1)[:, token].mean()

    with torch.no_grad():
        clean = model(prompts)
    rows = steering_sweep(model, hook, {"d": direction}, [0.0, 3.0], prompts, behaviour,
                          unrelated, progress=False)
    assert rows[0]["behaviour_change"] == 0.0 and rows[0]["loss_increase"] == 0.0
    unit = direction / direction.norm()
    add = [(hook, lambda act, hook: act + 3.0 * unit)]
    with torch.no_grad():
        steered = model.run_with_hooks(prompts, fwd_hooks=add)
        steered_loss = per_token_loss(model.run_with_hooks(unrelated, fwd_hooks=add),
                                      unrelated).mean()
        clean_loss = per_token_loss(model(unrelated), unrelated).mean()
    assert rows[1]["behaviour"] == pytest.approx(behaviour(steered).item(), abs=1e-5)
    assert rows[1]["loss_increase"] == pytest.approx((steered_loss - clean_loss).item(), abs=1e-5)
    assert abs(rows[1]["behaviour_change"]) > 1e-3
    with torch.no_grad():  # no hook left behind
        assert torch.equal(model(prompts), clean)
    with pytest.raises(ValueError, match="at least one"):
        steering_sweep(model, hook, {}, [1.0], prompts, behaviour, unrelated, progress=False)


def test_best_within_cost():
    rows = [{"direction": "a", "behaviour_change": 0.0, "loss_increase": 0.0},
            {"direction": "a", "behaviour_change": 2.0, "loss_increase": 0.5},
            {"direction": "a", "behaviour_change": 5.0, "loss_increase": 3.0},
            {"direction": "b", "behaviour_change": -1.0, "loss_increase": 0.1}]
    assert best_within_cost(rows, 1.0) == {"a": 2.0, "b": 0.0}
    assert best_within_cost(rows, 3.0)["a"] == 5.0


def test_generate(tiny_model):
    model = tiny_model
    hook = hook_name("resid_post", 0)
    direction = torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(1))
    plain = generate(model, "the dog sees", 5)
    assert plain == generate(model, "the dog sees", 5, hook, direction, 0.0)
    assert plain != generate(model, "the dog sees", 5, hook, direction, 50.0)
    with pytest.raises(ValueError, match="hook"):
        generate(model, "the dog", 3, direction=torch.ones(model.cfg.d_model), scale=1.0)
