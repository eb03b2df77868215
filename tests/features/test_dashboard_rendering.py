"""What learners see: an exported dashboard, rendered by headless Chromium, shows each context
as the tokenizer writes it (spaces included), for the zoo's word-level tokenizer and for
GPT-2's byte-level BPE; the histogram has labelled axes."""

import html
import re
import shutil
import subprocess

import pytest

from mi_helpers import load_model
from mi_helpers.datasets import corpus_sentences, token_chunks
from mi_helpers.datasets.prompts import token_texts
from mi_helpers.features.dashboards import (NeuronReader, build_dashboard, collect_statistics,
                                            export_html)

FLAGS = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--no-first-run"]
VISIBLE = ("<script>document.querySelectorAll('.ctx .text').forEach("
           "e => e.setAttribute('data-visible', e.innerText));</script>")


@pytest.mark.parametrize("tokenizer", ["zoo", "gpt2"])
def test_token_texts_join_to_the_decoded_text(tokenizer, gpt2_model):
    model = load_model("zoo-2l", device="cpu") if tokenizer == "zoo" else gpt2_model
    for text in ["When Mary and John went to the store , John gave a drink to Mary .",
                 "le chat voit Mary dans la maison . 31 - 19 = 12 ."]:
        ids = model.to_tokens(text, prepend_bos=False)[0]
        pieces = token_texts(model.tokenizer, ids)
        assert len(pieces) == len(ids)
        assert "".join(pieces) == model.tokenizer.decode(ids.tolist())
        assert " " in "".join(pieces)  # the words are spaced


def _expected_texts(model, tokens, stats, unit, n):
    """The decoded text of each top context's window (as unit_contexts cuts it)."""
    out = []
    for row, pos in stats.top_where[unit, :n].tolist():
        lo, hi = max(1, pos - 10), min(tokens.shape[1], pos + 4)
        out.append(model.tokenizer.decode(tokens[row, lo:hi].tolist()))
    return out


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="needs Debian's chromium (apt-get install -y chromium)")
@pytest.mark.parametrize("tokenizer", ["zoo", "gpt2"])
def test_chromium_shows_contexts_with_their_spaces(tokenizer, gpt2_model, tmp_path):
    model = load_model("zoo-2l", device="cpu") if tokenizer == "zoo" else gpt2_model
    tokens = token_chunks(model, corpus_sentences(120, seed=5), 32)
    reader = NeuronReader(model, 0)
    stats = collect_statistics(model, reader, tokens, n_top=4, n_sample=256, progress=False)
    unit = int(stats.fire_count.argmax())
    dash = build_dashboard(model, reader, stats, tokens, unit, n_top=4)
    expected = _expected_texts(model, tokens, stats, unit, len(dash.top_contexts))
    assert [c.text for c in dash.top_contexts] == expected
    page = tmp_path / "dash.html"
    export_html(dash, page)
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</body>", VISIBLE + "</body>"))
    dom = subprocess.run(FLAGS + ["--dump-dom", probe.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    shown = [html.unescape(v) for v in re.findall(r'data-visible="([^"]*)"', dom)]
    top = shown[:len(expected)]  # the top contexts come first on the page
    assert top == expected and all(" " in t for t in top)
    assert "activation value" in dom and ">count<" in dom
    shot = tmp_path / "shot.png"
    subprocess.run(FLAGS + [f"--screenshot={shot}", "--window-size=1000,900", page.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 5000  # a rendered page, not a blank one
