"""Path patching against a plain re-implementation with hooks, one sender set at a time.

On a random 3-layer GPT-2, a layer-0 sender's *path* effect differs from its *total*
effect (the layer-1 heads that read it are frozen), and a receiver patched at one
position per prompt differs from one patched everywhere, so path patching without
freezing, or with ``receiver_positions`` ignored, gives other numbers than these.
"""

from functools import partial

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from mi_helpers.circuits.patching import activation_patching
from mi_helpers.circuits.path_patching import path_patching
from mi_helpers.core.models import load_model
from mi_helpers.zoo.tokenizer import build_tokenizer

CLEAN = ["Mary likes the old cat", "John sees the big dog"]
CORRUPTED = ["John likes the old cat", "Mary sees the big dog"]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A random 3-layer GPT-2 whose weights are large enough for clear path effects."""
    tokenizer = build_tokenizer()
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=32, n_embd=32, n_layer=3,
                        n_head=4, initializer_range=0.5, resid_pdrop=0.0, embd_pdrop=0.0,
                        attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    out = tmp_path_factory.mktemp("tiny-gpt2-3l")
    GPT2LMHeadModel(config).eval().save_pretrained(out)
    tokenizer.save_pretrained(out)
    return load_model(str(out), device="cpu")


@pytest.fixture(scope="module")
def setup(model):
    mary, john = (int(model.to_tokens(" " + w, prepend_bos=False)[0, 0]) for w in ("Mary", "John"))

    def metric(logits):
        return (logits[:, -1, mary] - logits[:, -1, john]).mean()

    return model, model.to_tokens(CLEAN), model.to_tokens(CORRUPTED), metric


def by_hand(model, clean, corrupted, metric, senders, receivers="logits", positions=None,
            freeze=True):
    """Path patching written out: sender run (others frozen), then receiver run."""
    with torch.no_grad():
        _, clean_cache = model.run_with_cache(clean)
        _, corrupted_cache = model.run_with_cache(corrupted)

    def sender_hook(z, hook, layer):
        z = clean_cache[hook.name].clone() if freeze else z.clone()
        for sender_layer, head in senders:
            if sender_layer == layer:
                z[:, :, head] = corrupted_cache[hook.name][:, :, head]
        return z

    hooks = [(f"blocks.{layer}.attn.hook_z", partial(sender_hook, layer=layer))
             for layer in range(model.cfg.n_layers)]
    with torch.no_grad():
        if receivers == "logits":
            return metric(model.run_with_hooks(clean, fwd_hooks=hooks)).item()
        names = {f"blocks.{layer}.attn.hook_{kind}" for layer, _, kind in receivers}
        recorded = {}

        def record(act, hook):
            recorded[hook.name] = act.clone()

        model.run_with_hooks(clean, fwd_hooks=hooks + [(name, record) for name in names])

        def receive(act, hook):
            act = act.clone()
            for layer, head, kind in receivers:
                if hook.name != f"blocks.{layer}.attn.hook_{kind}":
                    continue
                if positions is None:
                    act[:, :, head] = recorded[hook.name][:, :, head]
                else:
                    for row, pos in enumerate(positions.tolist()):
                        act[row, pos, head] = recorded[hook.name][row, pos, head]
            return act

        logits = model.run_with_hooks(clean, fwd_hooks=[(name, receive) for name in names])
        return metric(logits).item()


@pytest.mark.parametrize("replay", [True, False])
def test_path_to_the_logits_freezes_the_other_heads(setup, replay):
    model, clean, corrupted, metric = setup
    senders = [[(0, 1)], [(1, 2)], [(0, 0), (1, 3)], [(0, 3)], [(2, 1), (0, 2)]]
    result = path_patching(model, clean, corrupted, metric, "logits", senders=senders,
                           patches_per_pass=3, replay=replay)
    expected = [by_hand(model, clean, corrupted, metric, s) for s in senders]
    assert result.values.tolist() == pytest.approx(expected, abs=1e-4)
    assert result.axes == ("sender_set",) and result.coords["sender_set"][2] == ((0, 0), (1, 3))
    # the test can tell: without freezing, a layer-0 sender's effect is its total effect
    total = by_hand(model, clean, corrupted, metric, senders[0], freeze=False)
    assert abs(total - expected[0]) > 0.05, (total, expected[0])
    act = activation_patching(model, clean, corrupted, metric, "z", mode="noise", layers=[0])
    assert act.values[0, 1].item() == pytest.approx(total, abs=1e-4)
    assert result.clean == pytest.approx(metric(model(clean)).item(), abs=1e-5)
    assert result.corrupted == pytest.approx(metric(model(corrupted)).item(), abs=1e-5)


@pytest.mark.parametrize("replay", [True, False])
def test_path_to_heads_at_one_position_per_prompt(setup, replay):
    model, clean, corrupted, metric = setup
    receivers = [(2, 0, "k"), (2, 1, "q"), (1, 2, "v")]
    positions = torch.tensor([clean.shape[1] - 1, 2])  # the last token, then an earlier one
    senders = [[(0, 2)], [(0, 1), (0, 3)]]
    result = path_patching(model, clean, corrupted, metric, receivers, senders=senders,
                           receiver_positions=positions, patches_per_pass=1, replay=replay)
    expected = [by_hand(model, clean, corrupted, metric, s, receivers, positions) for s in senders]
    assert result.values.tolist() == pytest.approx(expected, abs=1e-4)
    everywhere = by_hand(model, clean, corrupted, metric, senders[0], receivers)
    unfrozen = by_hand(model, clean, corrupted, metric, senders[0], receivers, positions,
                       freeze=False)
    assert abs(everywhere - expected[0]) > 0.02 and abs(unfrozen - expected[0]) > 0.02, \
        (everywhere, unfrozen, expected[0])


@pytest.mark.parametrize("replay", [True, False])
def test_default_grid_is_every_head_before_the_first_receiver(setup, replay):
    model, clean, corrupted, metric = setup
    receivers = [(2, 0, "q"), (2, 2, "k")]
    grid = path_patching(model, clean, corrupted, metric, receivers, replay=replay)
    assert grid.axes == ("layer", "head") and grid.values[2].isnan().all()
    assert grid.coords == {"layer": [0, 1, 2], "head": [0, 1, 2, 3]}
    expected = torch.tensor([[by_hand(model, clean, corrupted, metric, [(layer, head)], receivers)
                              for head in range(4)] for layer in range(2)])
    assert torch.allclose(grid.values[:2], expected, atol=1e-4)
    assert (grid.score[:2] - 1).abs().max() > 0.01  # some path matters
    mixed = [(2, 0, "q"), (1, 1, "v")]  # the earliest receiver decides
    grid = path_patching(model, clean, corrupted, metric, mixed)
    assert grid.values[1:].isnan().all() and not grid.values[0].isnan().any()
    with pytest.raises(ValueError, match="not before the first receiver layer 1"):
        path_patching(model, clean, corrupted, metric, mixed, senders=[[(1, 0)]])
