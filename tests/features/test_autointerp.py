import json
import math
import random
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from mi_helpers.features.autointerp import (ActivationContext, ChatExplainer, Explainer,
                                   ExplainerError, Explanation, TokenExplainer,
                                   TokenSimulator, detection_score, quoted_tokens,
                                   score_explanation, simulation_score)

NAMES = [" Mary", " John", " Anna"]
FILLER = [" the", " a", " went", " to", " market", " and", " saw", " dog", " cat", " house",
          " ran", " quickly", ",", ".", " with", " old", " green", " tree"]


def sentence(rng: random.Random, n_names: int, length: int = 12) -> ActivationContext:
    """Filler words with ``n_names`` names planted; the unit fires (3-5) only on names."""
    tokens = [rng.choice(FILLER) for _ in range(length)]
    for pos in rng.sample(range(1, length), n_names):
        tokens[pos] = rng.choice(NAMES)
    acts = [rng.uniform(3, 5) if t in NAMES else rng.uniform(-0.1, 0.3) for t in tokens]
    return ActivationContext(tokens, acts)


@pytest.fixture
def planted():
    """(top contexts with names, random contexts: mostly without names)."""
    rng = random.Random(0)
    top = [sentence(rng, rng.randint(1, 2)) for _ in range(20)]
    rand = [sentence(rng, 1 if i % 5 == 0 else 0) for i in range(40)]
    return top, rand


# ---------------------------------------------------------------------------- explain


def test_token_explainer_names_the_planted_tokens(planted):
    top, _ = planted
    explanation = TokenExplainer().explain(top)
    assert sorted(explanation.tokens) == sorted(NAMES)
    assert explanation.source == "tokens"
    assert explanation.text.startswith("fires on ") and '" Mary"' in explanation.text
    assert "(100% of the strongest activations)" in explanation.text
    assert isinstance(TokenExplainer(), Explainer)


def test_token_explainer_uses_base_contexts_and_max_tokens(planted):
    top, rand = planted
    explanation = TokenExplainer(max_tokens=2, base_contexts=rand).explain(top)
    assert len(explanation.tokens) == 2 and set(explanation.tokens) <= set(NAMES)


def test_token_explainer_finds_a_bigram():
    """The unit fires on " York" only after " New"; " York" also occurs without firing."""
    rng = random.Random(1)
    contexts = []
    for i in range(30):
        tokens = [rng.choice(FILLER) for _ in range(10)]
        tokens[4:6] = [" New" if i % 2 == 0 else " old", " York"]
        acts = [4.0 if t == " York" and tokens[j - 1] == " New" else 0.0
                for j, t in enumerate(tokens)]
        contexts.append(ActivationContext(tokens, acts))
    explanation = TokenExplainer(context_window=1).explain(contexts)
    assert explanation.tokens == [" York"] and explanation.previous == {" York": " New"}
    assert '" York" after " New"' in explanation.text
    without = TokenExplainer(context_window=0).explain(contexts)
    assert without.previous == {}
    assert simulation_score(explanation, contexts) > 0.99
    assert simulation_score(explanation, contexts) > simulation_score(without, contexts) + 0.3


def test_token_explainer_falls_back_when_nothing_repeats():
    context = ActivationContext([" a", " b", " c"], [0.0, 2.0, 0.1])
    explanation = TokenExplainer(min_count=2).explain([context])
    assert explanation.tokens == [" b"] and "weak evidence" in explanation.text


# --------------------------------------------------------------------------- simulate


def test_simulator_matches_stripped_case_insensitive_and_quoted_tokens():
    simulator = TokenSimulator()
    named = Explanation("fires on names", [" Mary"], "tokens")
    assert simulator.predict(named, ["Mary", " mary", " Marys", " the"]) == [1, 1, 0, 0]
    chat = Explanation('the names "Mary" and \'John\', also `Anna`; don\'t care', [], "chat:m")
    assert quoted_tokens(chat.text) == ["Mary", "John", "Anna"]
    assert simulator.predict(chat, [" John", " x", "Anna", " don"]) == [1, 0, 1, 0]
    escaped = Explanation('fires on "\\n"', [], "chat:m")
    assert simulator.predict(escaped, ["\n", " n"]) == [1, 0]


# ------------------------------------------------------------------------------ score


def test_right_explanation_scores_high_and_wrong_one_at_chance(planted):
    top, rand = planted
    right = TokenExplainer().explain(top)
    wrong = Explanation('fires on " the"', [" the"], "tokens")
    assert simulation_score(right, top + rand) > 0.9
    assert abs(simulation_score(wrong, top + rand)) < 0.15
    quiet = [c for c in rand if c.max_activation < 1]
    assert detection_score(right, top, quiet) == 1.0
    assert abs(detection_score(wrong, top, quiet) - 0.5) < 0.15
    scores = score_explanation(right, top, rand)
    assert set(scores) == {"simulation", "detection"}
    assert scores["simulation"] > 0.9 and scores["detection"] == 1.0
    absent = Explanation('fires on " zebra"', [" zebra"], "tokens")
    assert score_explanation(absent, top, rand) == {"simulation": 0.0, "detection": 0.5}


def test_detection_is_nan_without_quiet_contexts(planted):
    top, _ = planted
    scores = score_explanation(TokenExplainer().explain(top), top, top)
    assert scores["simulation"] > 0.9 and math.isnan(scores["detection"])


# ------------------------------------------------------------------------- validation


def test_bad_inputs_raise_clear_errors(planted):
    top, rand = planted
    with pytest.raises(ValueError, match="2 tokens but 3 activations"):
        ActivationContext([" a", " b"], [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="at least one token"):
        ActivationContext([], [])
    with pytest.raises(ValueError, match="NaN"):
        ActivationContext([" a"], [float("nan")])
    assert ActivationContext([" a", " b"], torch.tensor([0.5, 2.0])).max_activation == 2.0
    explanation = TokenExplainer().explain(top)
    with pytest.raises(ValueError, match="no top contexts.*never fired"):
        TokenExplainer().explain([])
    with pytest.raises(ValueError, match="never fired"):
        TokenExplainer().explain([ActivationContext([" a"], [0.0])])
    with pytest.raises(ValueError, match="no contexts to simulate"):
        simulation_score(explanation, [])
    with pytest.raises(ValueError, match="no non-activating contexts"):
        detection_score(explanation, top, [])
    with pytest.raises(ValueError, match="no random contexts"):
        score_explanation(explanation, top, [])
    with pytest.raises(ValueError, match="no top contexts"):
        score_explanation(explanation, [], rand)
    with pytest.raises(TypeError, match="ActivationContext"):
        simulation_score(explanation, [([" a"], [1.0])])
    with pytest.raises(ValueError, match="no top contexts"):
        ChatExplainer("http://127.0.0.1:1/v1", "m").explain([])


# ------------------------------------------------------------------------ chat explainer


class FakeChat(BaseHTTPRequestHandler):
    """Records each request; answers ``server.reply`` (bytes) with ``server.status``."""

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.requests.append((self.path, dict(self.headers), json.loads(body)))
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.server.reply)))
        self.end_headers()
        self.wfile.write(self.server.reply)

    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture
def chat_server():
    """A chat-completions server on a free loopback port, answering one explanation."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeChat)
    server.requests, server.status = [], 200
    server.reply = json.dumps({"choices": [{"message": {
        "role": "assistant", "content": ' fires on names such as "Mary" \n'}}]}).encode()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def base_url(server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/v1"


def test_chat_explainer_sends_contexts_and_parses_the_reply(chat_server, planted,
                                                            monkeypatch):
    top, rand = planted
    monkeypatch.setenv("TEST_CHAT_KEY", "sk-test")
    explainer = ChatExplainer(base_url(chat_server) + "/", "tiny-llm",
                              api_key_env="TEST_CHAT_KEY", max_contexts=3)
    explanation = explainer.explain(top)
    assert explanation == Explanation('fires on names such as "Mary"', [], "chat:tiny-llm")
    (path, headers, body), = chat_server.requests
    assert path == "/v1/chat/completions"
    assert headers["Authorization"] == "Bearer sk-test"
    assert body["model"] == "tiny-llm" and body["temperature"] == 0
    prompt = body["messages"][-1]["content"]
    assert prompt.count("Excerpt") == 3 and "<<10>>" in prompt
    assert any(name + "<<" in prompt for name in NAMES) and " the<<" not in prompt
    assert score_explanation(explanation, top, rand)["detection"] > 0.6


def test_chat_explainer_sends_no_key_when_unset(chat_server, planted, monkeypatch):
    monkeypatch.delenv("TEST_CHAT_KEY", raising=False)
    ChatExplainer(base_url(chat_server), "m", api_key_env="TEST_CHAT_KEY").explain(planted[0])
    (_, headers, _), = chat_server.requests
    assert "Authorization" not in headers


@pytest.mark.parametrize("status, reply, match", [
    (200, b"<html>not json</html>", "not JSON"),
    (200, b'{"object": "list", "data": []}', "without choices"),
    (200, b'{"choices": []}', "without choices"),
    (200, b'{"choices": [{"message": {"content": "  "}}]}', "empty explanation"),
    (401, b'{"error": "bad key"}', "HTTP 401"),
])
def test_chat_explainer_rejects_bad_replies(chat_server, planted, status, reply, match):
    chat_server.status, chat_server.reply = status, reply
    explainer = ChatExplainer(base_url(chat_server), "m")
    with pytest.raises(ExplainerError, match=match) as info:
        explainer.explain(planted[0])
    assert explainer.url in str(info.value)


def test_chat_explainer_reports_a_closed_port(planted):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    with pytest.raises(ExplainerError, match="could not reach") as info:
        ChatExplainer(url, "m", timeout=2).explain(planted[0])
    assert f"{url}/chat/completions" in str(info.value)
    assert TokenExplainer().explain(planted[0]).tokens  # the offline explainer still works


def test_chat_explainer_times_out_on_a_silent_server(planted):
    with socket.socket() as sock:  # accepts connections (backlog) but never answers
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
        with pytest.raises(ExplainerError, match="did not answer within timeout=0.2") as info:
            ChatExplainer(url, "m", timeout=0.2).explain(planted[0])
    assert url in str(info.value)
