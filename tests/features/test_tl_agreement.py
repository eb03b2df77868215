"""Where transformer-lens 4.3 implements the same technique, ours agrees with it.

Each test runs on the zoo (rotary GPT-NeoX) and on a random GPT-2 (learned positions):
logit lens, residual decomposition, per-head direct logit attribution, composition scores,
head detection (previous-token, duplicate-token, induction) and the sparse probe's choice
of dimensions. The tolerances are float32 round-off unless a comment says otherwise.
"""

import pytest
import torch
from transformer_lens.head_detector import detect_head
from transformer_lens.tools.analysis.direct_logit_attribution import direct_logit_attribution
from transformer_lens.tools.analysis.logit_lens import logit_lens
from transformer_lens.tools.analysis.sparse_probing import fit_sparse_probe

from mi_helpers.circuits import attention_patterns, composition_scores, offset_score
from mi_helpers.core import load_model, residual_components, run_cached
from mi_helpers.features import head_logits, lens_logits
from mi_helpers.features.probing import best_dims

PROMPT = "When Mary and John went to the store , John gave a drink to"


@pytest.fixture(scope="module", params=["zoo", "gpt2"])
def model(request, tiny_model):
    return load_model("zoo-2l", device="cpu") if request.param == "zoo" else tiny_model


def test_logit_lens_agrees(model):
    tokens = model.to_tokens(PROMPT)
    ours = lens_logits(model, tokens)[:, 0, -1].log_softmax(-1)  # layer d_vocab
    theirs = logit_lens(model, tokens, positions=-1, return_type="logits").values
    theirs = theirs.reshape(model.cfg.n_layers + 1, -1).log_softmax(-1)
    # their stack starts with the embeddings (resid_pre 0); ours is each block's output
    assert torch.allclose(ours, theirs[1:], atol=1e-4)


def test_residual_decomposition_agrees(model):
    tokens = model.to_tokens(PROMPT)
    _, cache = model.run_with_cache(tokens)
    ours, labels = residual_components(cache, model.cfg.n_layers)
    theirs, their_labels = cache.decompose_resid(return_labels=True)
    assert len(labels) == len(their_labels)
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_head_direct_logit_attribution_agrees(model):
    tokens = model.to_tokens(PROMPT)
    mary, john = model.to_single_token(" Mary"), model.to_single_token(" John")
    ours = head_logits(model, tokens)[:, :, 0, -1]  # layer head d_vocab
    ours = (ours[..., mary] - ours[..., john]).flatten()
    theirs = direct_logit_attribution(model, tokens, answer_tokens=torch.tensor([mary]),
                                      incorrect_tokens=torch.tensor([john]), unit="head")
    heads = [i for i, label in enumerate(theirs.labels) if label.startswith("L")]
    assert len(heads) == len(ours)
    assert torch.allclose(ours, theirs.attribution[heads].flatten(), atol=1e-4)


@pytest.mark.parametrize("kind", ["Q", "K", "V"])
def test_composition_scores_agree(model, kind):
    ours = composition_scores(model, kind)  # [layer head layer head], NaN unless l1 < l2
    theirs = model.all_composition_scores(kind).scores.detach()
    valid = ours.isfinite()
    assert valid.any() and torch.allclose(ours[valid], theirs.cpu()[valid], atol=1e-5)


def test_head_detection_agrees(model):
    """TransformerLens' "mul" score divides by every query row (BOS's too) and marks every
    earlier copy of a token; on BOS + r + r with distinct tokens in r it is ours times
    ``(rows scored) / (rows)``."""
    rep_len = 10
    special = set(model.tokenizer.all_special_ids)
    pool = [i for i in range(model.cfg.d_vocab) if i not in special]
    gen = torch.Generator().manual_seed(0)
    block = torch.tensor(pool)[torch.randperm(len(pool), generator=gen)[:rep_len]]
    tokens = torch.cat([torch.tensor([model.tokenizer.bos_token_id]), block, block])[None]
    text = model.to_string(tokens[0, 1:])
    assert torch.equal(model.to_tokens(text).cpu(), tokens), "the text must round-trip"
    patterns = attention_patterns(model, tokens)
    n_rows = tokens.shape[1]
    ours = {"previous_token_head": offset_score(patterns, range(1, n_rows), 1) * (n_rows - 1),
            "duplicate_token_head": offset_score(patterns, range(rep_len + 1, n_rows), rep_len)
            * rep_len,
            "induction_head": offset_score(patterns, range(rep_len + 1, n_rows), rep_len - 1)
            * rep_len}
    for name, score in ours.items():
        theirs = detect_head(model, text, name)
        assert torch.allclose(score / n_rows, theirs, atol=1e-5), name


def test_sparse_probe_picks_the_same_dimensions_when_variances_match():
    """TransformerLens ranks dimensions by the class-mean difference, ours by that difference
    over the pooled standard deviation (an effect size): with equal variances they agree."""
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(400) % 2
    acts = torch.randn(400, 24, generator=gen)
    for dim, shift in ((3, 1.5), (11, 1.0), (17, 0.6)):
        acts[:, dim] += shift * labels
    theirs = fit_sparse_probe(acts, labels, k=3, seed=0)
    ours = best_dims(acts, labels, 3)
    assert set(ours.tolist()) == set(theirs.selected_features.tolist()) == {3, 11, 17}


def test_run_cached_matches_a_full_cache(model):
    tokens = model.to_tokens(PROMPT)
    _, full = model.run_with_cache(tokens)
    _, ours = run_cached(model, tokens, ["blocks.1.attn.hook_z"])
    assert torch.equal(ours["blocks.1.attn.hook_z"], full["blocks.1.attn.hook_z"])


def test_logit_difference_attribution_is_exact_and_agrees(model):
    from mi_helpers.circuits import ioi_dataset
    from mi_helpers.features.attribution import logit_difference_attribution
    data = ioi_dataset(model, 6)
    ends = data.word_positions["end"]
    terms, labels = logit_difference_attribution(model, data.tokens, data.io_ids, data.s_ids,
                                                 ends)
    with torch.no_grad():
        diff = data.logit_diff(model(data.tokens))
    assert torch.allclose(terms.sum(0), diff, atol=1e-4)  # nothing unexplained
    heads = [i for i, label in enumerate(labels) if label[0] == "L" and "H" in label]
    for row in range(2):  # per prompt: TransformerLens' per-head DLA at that prompt's end
        theirs = direct_logit_attribution(model, data.tokens[row:row + 1],
                                          answer_tokens=data.io_ids[row:row + 1],
                                          incorrect_tokens=data.s_ids[row:row + 1], unit="head",
                                          pos=int(ends[row]))
        their_heads = [i for i, label in enumerate(theirs.labels) if label.startswith("L")]
        assert torch.allclose(terms[heads, row], theirs.attribution[their_heads].flatten(),
                              atol=1e-4)
