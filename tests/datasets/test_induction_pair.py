"""Clean and corrupted repeated-token prompts for induction circuits."""

import torch

from mi_helpers import load_model
from mi_helpers.datasets import induction_pair


def test_induction_pair_breaks_only_the_first_copy():
    model = load_model("zoo-2l", device="cpu")
    clean, corrupted, metric = induction_pair(model, rep_len=8, n_seqs=16, seed=3)
    assert clean.shape == corrupted.shape == (16, 17)
    assert torch.equal(clean[:, 9:], clean[:, 1:9])  # BOS r r
    assert torch.equal(corrupted[:, 9:], clean[:, 9:]) and torch.equal(corrupted[:, 0], clean[:, 0])
    assert (corrupted[:, 1:9] != clean[:, 1:9]).float().mean() > 0.9
    with torch.no_grad():
        good, bad = metric(model(clean)).item(), metric(model(corrupted)).item()
    # the zoo model copies: far better than chance (log 1/389 = -6) only on clean prompts
    assert good > -1.5 and bad < -4, (good, bad)
    # the metric reads the log-probability of the right token: a wrong target scores worse
    logits = torch.zeros(16, 17, model.cfg.d_vocab)
    logits[torch.arange(16)[:, None], torch.arange(9, 16), clean[:, 10:17]] = 20.0
    assert metric(logits).item() > -0.01
