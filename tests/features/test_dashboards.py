import shutil
import subprocess

import pytest
import torch

from mi_helpers.features.dashboards import (DashboardWidget, DirectionReader, NeuronReader,
                                   build_dashboard, collect_statistics, export_html,
                                   render_html, steering_effect)
from mi_helpers.datasets.text import corpus_sentences, token_chunks


@pytest.fixture(scope="module")
def setup():
    from mi_helpers.core.models import load_model
    model = load_model("zoo-2l", device="cpu")
    tokens = token_chunks(model, corpus_sentences(300, seed=0), 32)
    # planted units: unit i reads how much the embedding points along token i's embedding
    watched = [int(model.to_single_token(w)) for w in (" Mary", " cat", " the")]
    embeddings = model.W_E.detach()[watched]
    reader = DirectionReader("hook_embed", embeddings / embeddings.norm(dim=1, keepdim=True),
                             names=["Mary", "cat", "the"])
    return model, tokens, reader, watched


def test_planted_units_find_their_tokens(setup):
    """A unit reading the embedding along token t's own direction peaks on t, wherever t
    is the vocabulary's largest projection on that direction (checked first)."""
    model, tokens, reader, watched = setup
    stats = collect_statistics(model, reader, tokens, n_top=5, n_sample=256, progress=False)
    projections = model.W_E.detach() @ reader.directions.T  # d_vocab unit
    checked = 0
    for unit, token_id in enumerate(watched):
        n_present = int((tokens[:, 1:] == token_id).sum())
        if projections[:, unit].argmax() != token_id or n_present == 0:
            continue
        rows, positions = stats.top_where[unit, :min(5, n_present)].T
        assert (tokens[rows, positions] == token_id).all(), reader.name(unit)
        checked += 1
    assert checked >= 1


def test_streaming_matches_brute_force(setup):
    model, tokens, reader, _ = setup
    small = collect_statistics(model, reader, tokens, n_top=7, n_sample=64, batch_size=3, progress=False)
    big = collect_statistics(model, reader, tokens, n_top=7, n_sample=64, batch_size=64, progress=False)
    _, cache = model.run_with_cache(tokens, names_filter="hook_embed")
    acts = reader.read(cache["hook_embed"])[:, 1:].reshape(-1, reader.n_units)
    assert torch.allclose(small.top_values, acts.topk(7, dim=0).values.T, atol=1e-5)
    assert torch.allclose(small.top_values, big.top_values, atol=1e-5)
    assert torch.equal(small.fire_count, (acts > 0).sum(0))
    assert small.n_tokens == acts.shape[0] and small.sample_values.shape == (64, reader.n_units)
    # every sampled value is the activation at its recorded position
    rows, positions = small.sample_where.T
    full = reader.read(cache["hook_embed"])
    assert torch.allclose(small.sample_values, full[rows, positions], atol=1e-5)


def test_dashboard_html_and_errors(setup, tmp_path):
    model, tokens, reader, _ = setup
    stats = collect_statistics(model, reader, tokens, n_top=6, n_sample=256, progress=False)
    dash = build_dashboard(model, reader, stats, tokens, 0, n_top=4, steering_prompt="Mary sees",
                           steering_scale=2.0)
    assert dash.title == "Mary" and len(dash.top_contexts) <= 4
    assert all(len(c.tokens) == len(c.activations) for c in dash.top_contexts)
    page = render_html(dash, standalone=True)
    assert "<script" not in page and "http" not in page and "Mary" in page and "<svg" in page
    size = export_html(dash, tmp_path / "d.html")
    assert size == len((tmp_path / "d.html").read_bytes()) and size < 300 * 1024
    with pytest.raises(IndexError, match="out of range"):
        build_dashboard(model, reader, stats, tokens, 3)
    with pytest.raises(ValueError, match="at least one id"):
        collect_statistics(model, reader, tokens[:0], progress=False)
    with pytest.raises(KeyError):
        collect_statistics(model, DirectionReader("blocks.0.hook_nope", torch.ones(1, 64)), tokens,
                           progress=False)


def test_steering_with_zero_scale_changes_nothing(setup):
    model, _, _, _ = setup
    reader = NeuronReader(model, 0)
    result = steering_effect(model, reader, 5, "When Mary and John went", scale=0.0)
    assert result["kl"] == pytest.approx(0.0, abs=1e-7)
    moved = steering_effect(model, reader, 5, "When Mary and John went", scale=50.0)
    assert moved["kl"] > 0.01 and moved["before"] != moved["after"]


def test_widget_driven_from_code(setup):
    model, tokens, reader, _ = setup
    stats = collect_statistics(model, reader, tokens, n_top=4, n_sample=128, progress=False)
    widget = DashboardWidget(model, reader, stats, tokens, start=0, n_top=3)
    assert "Mary" in widget.panel.value
    widget.select(1)
    assert "cat" in widget.panel.value and widget.box.value == "1"
    widget.box.value = "2"  # typing a number moves the slider and the panel
    assert widget.slider.value == 2 and "the" in widget.panel.value
    widget.box.value = "7"
    assert "out of range" in widget.message.value and widget.slider.value == 2
    widget.box.value = "seven"
    assert "invalid literal" in widget.message.value


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="needs Debian's chromium (apt-get install -y chromium)")
def test_exported_html_renders_in_headless_chromium(setup, tmp_path):
    model, tokens, reader, _ = setup
    stats = collect_statistics(model, reader, tokens, n_top=4, n_sample=128, progress=False)
    path = tmp_path / "dash.html"
    export_html(build_dashboard(model, reader, stats, tokens, 0), path)
    flags = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
    dom = subprocess.run(flags + ["--dump-dom", path.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    assert "mi-dash" in dom and "<svg" in dom and "Top activations" in dom
    shot = tmp_path / "shot.png"
    subprocess.run(flags + [f"--screenshot={shot}", "--window-size=1000,800", path.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 5000  # a rendered page, not a blank one


def test_random_contexts_come_from_the_uniform_sample(setup):
    from mi_helpers.features.dashboards import random_contexts
    model, tokens, reader, _ = setup
    stats = collect_statistics(model, reader, tokens, n_top=4, n_sample=128, progress=False)
    contexts = random_contexts(model, reader, stats, tokens, 1, n=6, seed=0)
    assert len(contexts) == 6
    assert len({tuple(w) for w in stats.sample_where.tolist()}) == 128
    sampled = stats.sample_values[:, 1]
    highlighted = []
    for context in contexts:
        assert len(context.tokens) == len(context.activations)
        assert 0 <= context.highlight < len(context.tokens)
        value = context.activations[context.highlight]
        assert (sampled - value).abs().min() < 1e-5, value  # a position of the uniform sample
        highlighted.append(value)
    assert len(set(highlighted)) == 6  # six different sampled positions
    assert random_contexts(model, reader, stats, tokens, 1, n=6, seed=0)[0].tokens == contexts[0].tokens
    other = random_contexts(model, reader, stats, tokens, 1, n=6, seed=1)
    assert [c.activations for c in other] != [c.activations for c in contexts]


def test_quantile_bands_rise_from_band_to_band(setup):
    model, tokens, reader, _ = setup
    stats = collect_statistics(model, reader, tokens, n_top=4, n_sample=512, progress=False)
    dash = build_dashboard(model, reader, stats, tokens, 2, n_per_quantile=3)
    assert list(dash.quantile_contexts) == [f"{25 * q}-{25 * (q + 1)}% of firing activations"
                                            for q in range(4)]
    bands = [[c.activations[c.highlight] for c in contexts]
             for contexts in dash.quantile_contexts.values()]
    firing = stats.sample_values[:, 2][stats.sample_values[:, 2] > 0].sort().values
    for q, band in enumerate(bands):
        assert len(band) == 3 and min(band) > 0
        part = firing.tensor_split(4)[q]  # each band lies within its quarter of the sample
        assert part[0] - 1e-5 <= min(band) and max(band) <= part[-1] + 1e-5, (q, band)
    assert max(bands[0]) < min(bands[3])


def test_one_pass_reads_the_top_and_band_contexts(setup, monkeypatch):
    """The top contexts and the four bands come from one forward pass (not five), each
    context the same as when read alone."""
    from mi_helpers.features.dashboards import build as build_module

    model, tokens, reader, _ = setup
    stats = collect_statistics(model, reader, tokens, n_top=4, n_sample=512, progress=False)
    calls = []
    real = build_module.run_cached
    monkeypatch.setattr(build_module, "run_cached",
                        lambda *a, **k: calls.append(len(a[1])) or real(*a, **k))
    dash = build_dashboard(model, reader, stats, tokens, 2, n_per_quantile=3)
    assert len(calls) == 1
    alone = build_module.unit_contexts(model, reader, tokens, stats.top_where[2, :4], 2,
                                       drop_bos=stats.drop_bos)
    assert [c.tokens for c in alone] == [c.tokens for c in dash.top_contexts]
    for a, b in zip(alone, dash.top_contexts):
        assert a.highlight == b.highlight
        assert a.activations == pytest.approx(b.activations, abs=1e-5)
