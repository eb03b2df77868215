import pytest
import torch

from mi_helpers import viz


@pytest.fixture
def fresh_viz(monkeypatch):
    viz.embed_mode.cache_clear()
    monkeypatch.setattr(viz, "_bundle_sent", False)
    yield
    viz.embed_mode.cache_clear()


def test_inline_bundle_is_sent_once(fresh_viz, monkeypatch):
    monkeypatch.setenv("MI_VIZ", "inline")
    pattern = torch.softmax(torch.randn(2, 3, 3), -1)
    first = viz.attention_heads(pattern, ["a", "b", "c"])._repr_html_()
    second = viz.attention_heads(pattern, ["a", "b", "c"])._repr_html_()
    assert "DecompressionStream" in first and len(first) > 300_000
    assert "DecompressionStream" not in second and len(second) < 2_000
    assert "cdn" not in second


def test_cdn_mode_imports_from_cdn(fresh_viz, monkeypatch):
    monkeypatch.setenv("MI_VIZ", "cdn")
    html = viz.attention_heads(torch.ones(1, 2, 2) / 2, ["a", "b"])._repr_html_()
    assert viz.CDN_HOST in html and len(html) < 2_000


def test_bad_mode_and_bad_shape(fresh_viz, monkeypatch):
    monkeypatch.setenv("MI_VIZ", "sometimes")
    with pytest.raises(ValueError, match="MI_VIZ"):
        viz.embed_mode()
    with pytest.raises(ValueError, match="dest_pos"):
        viz.attention_heads(torch.ones(2, 2), ["a", "b"])


def test_plot_attention_makes_a_grid():
    fig = viz.plot_attention(torch.softmax(torch.randn(5, 4, 4), -1), list("abcd"), ncols=4)
    assert len(fig.axes) == 8


def test_cdn_and_inline_outputs_compare_equal_after_sanitising(fresh_viz, monkeypatch):
    """A notebook committed in CDN mode must pass nbval offline (inline mode): the test
    settings remove the transport scripts; the element and its props are still compared."""
    import configparser
    import re
    from pathlib import Path

    config = configparser.ConfigParser()
    config.read(Path(__file__).parent / "nbval_sanitize.cfg")
    rule = config["circuitsvis transport: CDN import or inline bundle; the element and its "
                  "props are compared"]
    pattern = torch.softmax(torch.randn(2, 3, 3), -1)
    tokens = ["<|endoftext|>", "a</script>", "b"]
    outputs = {}
    for mode in ("cdn", "inline"):
        viz.embed_mode.cache_clear()
        monkeypatch.setattr(viz, "_bundle_sent", False)
        monkeypatch.setattr(viz, "_ids", __import__("itertools").count())
        monkeypatch.setenv("MI_VIZ", mode)
        html = viz.attention_heads(pattern, tokens)._repr_html_()
        assert html.count("</script>") == html.count("<script")  # the props cannot end a script
        outputs[mode] = re.sub(rule["regex"], rule["replace"], html)
    assert outputs["cdn"] == outputs["inline"]
    assert "mi-viz-0-props" in outputs["cdn"] and "endoftext" in outputs["cdn"]
    other = viz.attention_heads(pattern * 0.5, tokens)._repr_html_()
    assert re.sub(rule["regex"], rule["replace"], other) != outputs["inline"]
