"""Explain a unit with any OpenAI-compatible chat model (a local server or an API)."""

from __future__ import annotations

import http.client
import json
import os
import urllib.error
import urllib.request
from collections.abc import Sequence

from .contexts import ActivationContext, Explanation, ExplainerError, check_contexts

__all__ = ["ChatExplainer"]


class ChatExplainer:
    """Explain a unit with any OpenAI-compatible chat model (a local server or an API).

    The prompt lists the top ``max_contexts`` contexts, each token the unit fired on
    followed by ``<<a>>``, its activation on a 0-10 scale (10: the largest shown), as in
    Bills et al. The request is ``POST {base_url}/chat/completions`` with
    ``temperature: 0``; the reply's ``choices[0].message.content`` is the explanation.

    Args:
        base_url: the API root, e.g. ``"http://127.0.0.1:8000/v1"`` (vLLM, llama.cpp,
            Ollama's ``/v1``) or ``"https://api.openai.com/v1"``.
        model: the model name the server expects.
        api_key_env: environment variable holding an API key, sent as
            ``Authorization: Bearer <key>`` when set (local servers need none).
        timeout: seconds to wait for the server.
        max_contexts: how many contexts (strongest first) go into the prompt.
    """

    SYSTEM = ("We are studying one unit (a neuron or a sparse-autoencoder latent) of a "
              "language model. You will see text excerpts where it activates. Each token "
              "it fires on is followed by <<a>>, its activation from 0 to 10 (10 is the "
              "strongest). Explain in one short sentence what the unit responds to. When "
              "it fires on a few specific tokens, quote them in double quotes. Reply with "
              "the explanation only.")

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY",
                 timeout: float = 30.0, max_contexts: int = 10):
        if not base_url or not model:
            raise ValueError("ChatExplainer needs a base_url and a model name")
        if timeout <= 0 or max_contexts < 1:
            raise ValueError(f"need timeout > 0 and max_contexts >= 1, got {timeout}, "
                             f"{max_contexts}")
        self.base_url, self.model = base_url.rstrip("/"), model
        self.api_key_env, self.timeout, self.max_contexts = api_key_env, timeout, max_contexts

    @property
    def url(self) -> str:
        """The chat-completions endpoint."""
        return f"{self.base_url}/chat/completions"

    def explain(self, contexts: Sequence[ActivationContext]) -> Explanation:
        """Ask the chat model to explain the unit from its top ``contexts``.

        Raises:
            ValueError: no contexts.
            ExplainerError: the endpoint is unreachable, too slow, answers an HTTP error,
                or answers something other than a chat completion.
        """
        prompt = self.prompt(check_contexts(contexts, "top contexts"))
        payload = {"model": self.model, "temperature": 0,
                   "messages": [{"role": "system", "content": self.SYSTEM},
                                {"role": "user", "content": prompt}]}
        text = _reply_content(self._post(payload), self.url)
        return Explanation(text=text, tokens=[], source=f"chat:{self.model}")

    def prompt(self, contexts: list[ActivationContext]) -> str:
        """The user message: the strongest contexts with activations marked ``<<0-10>>``."""
        shown = sorted(contexts, key=lambda c: -c.max_activation)[:self.max_contexts]
        peak = max(c.max_activation for c in shown)
        scale = 10 / peak if peak > 0 else 0.0
        excerpts = []
        for n, context in enumerate(shown, 1):
            marked = "".join(
                tok.replace("\n", "\\n") + (f"<<{round(a * scale)}>>" if round(a * scale) > 0
                                            else "")
                for tok, a in zip(context.tokens, context.activations, strict=True))
            excerpts.append(f"Excerpt {n}:\n{marked}")
        return "\n\n".join(excerpts) + "\n\nWhat does the unit respond to?"

    def _post(self, payload: dict) -> bytes:
        """POST ``payload`` as JSON; the raw body of a 200 reply, else ExplainerError."""
        headers = {"Content-Type": "application/json"}
        if key := os.environ.get(self.api_key_env):
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(self.url, data=json.dumps(payload).encode(),
                                         headers=headers, method="POST")
        url, slow = self.url, f"did not answer within timeout={self.timeout} s"
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.read()
        except urllib.error.HTTPError as err:
            detail = err.read()[:300]
            raise ExplainerError(
                f"{url} answered HTTP {err.code} ({err.reason}): {detail!r}; check the model "
                f"name {self.model!r} and the API key in ${self.api_key_env}") from err
        except urllib.error.URLError as err:
            if isinstance(err.reason, TimeoutError):
                raise ExplainerError(f"{url} {slow}; is the server up?") from err
            raise ExplainerError(
                f"could not reach {url} ({err.reason}); is the server running, and is "
                f"base_url right (usually ending in /v1)?") from err
        except TimeoutError as err:
            raise ExplainerError(f"{url} {slow}; is it overloaded? Raise timeout") from err
        except (OSError, http.client.HTTPException) as err:
            raise ExplainerError(f"the connection to {url} failed: {err!r}") from err


def _reply_content(body: bytes, url: str) -> str:
    """``choices[0].message.content`` of a chat-completion body, else ExplainerError."""
    try:
        reply = json.loads(body)
    except ValueError as err:
        raise ExplainerError(f"{url} answered something that is not JSON: {body[:200]!r}; "
                             f"is base_url an OpenAI-compatible API root?") from err
    try:
        content = reply["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as err:
        raise ExplainerError(f"{url} answered JSON without choices[0].message.content: "
                             f"{body[:200]!r}; is it a chat-completions endpoint?") from err
    if not isinstance(content, str) or not content.strip():
        raise ExplainerError(f"{url} answered an empty explanation: {body[:200]!r}")
    return content.strip()
