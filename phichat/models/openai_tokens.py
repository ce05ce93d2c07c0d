"""How an OpenAI-compatible server counts tokens: one dialect per kind of server.

Prompt assembly needs the model's own token counts. Where the server has a tokenize
endpoint, it is used: vLLM's ``/tokenize``, which also applies the chat template, as
``phichat serve`` does; llama.cpp's ``/apply-template`` plus ``/tokenize``. Otherwise the
count is an estimate of one token per three characters, plus four tokens of template per
message. Real tokenizers average nearer four characters per English token, so the
estimate errs towards shorter prompts, never towards overflowing the window.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

from phichat.errors import ModelServerError
from phichat.models.base import ChatMessage
from phichat.models.openai_transport import ServerLink, json_or_none

ESTIMATE_CHARS_PER_TOKEN = 3
ESTIMATE_TOKENS_PER_MESSAGE = 4
COUNT_CACHE_SIZE = 512


def estimate_text_tokens(text: str) -> int:
    return math.ceil(len(text) / ESTIMATE_CHARS_PER_TOKEN)


class TokenDialect(Protocol):
    name: str  # "vllm", "llamacpp" or "estimate"

    def count_messages(self, link: ServerLink, messages: list[ChatMessage]) -> int: ...

    def count_text(self, link: ServerLink, text: str) -> int: ...


class VllmTokens:
    """vLLM's ``/tokenize`` (and phichat serve's): takes messages or a prompt, says ``count``."""

    name = "vllm"

    def count_messages(self, link: ServerLink, messages: list[ChatMessage]) -> int:
        body = {"model": link.model, "messages": list(messages), "add_generation_prompt": True}
        answer = link.post_json(f"{link.root_url}/tokenize", body, "counting tokens")
        return _int_field(answer, "count", link.host)

    def count_text(self, link: ServerLink, text: str) -> int:
        body = {"model": link.model, "prompt": text, "add_special_tokens": False}
        answer = link.post_json(f"{link.root_url}/tokenize", body, "counting tokens")
        return _int_field(answer, "count", link.host)


class LlamaCppTokens:
    """llama.cpp's server: ``/apply-template`` renders the chat, ``/tokenize`` lists tokens."""

    name = "llamacpp"

    def count_messages(self, link: ServerLink, messages: list[ChatMessage]) -> int:
        url = f"{link.root_url}/apply-template"
        rendered = link.post_json(url, {"messages": list(messages)}, "counting tokens")
        prompt = rendered.get("prompt") if isinstance(rendered, dict) else None
        if not isinstance(prompt, str):
            raise ModelServerError(f"the model server at {link.host} sent no chat prompt")
        body = {"content": prompt, "add_special": True, "parse_special": True}
        answer = link.post_json(f"{link.root_url}/tokenize", body, "counting tokens")
        return _list_len(answer, "tokens", link.host)

    def count_text(self, link: ServerLink, text: str) -> int:
        body = {"content": text, "add_special": False}
        answer = link.post_json(f"{link.root_url}/tokenize", body, "counting tokens")
        return _list_len(answer, "tokens", link.host)


class EstimatedTokens:
    """No tokenize endpoint: the documented, generous estimate."""

    name = "estimate"

    def count_messages(self, link: ServerLink, messages: list[ChatMessage]) -> int:
        overhead = ESTIMATE_TOKENS_PER_MESSAGE * len(messages) + 2
        return overhead + sum(estimate_text_tokens(m["content"]) for m in messages)

    def count_text(self, link: ServerLink, text: str) -> int:
        return estimate_text_tokens(text)


def probe_dialect(link: ServerLink, client: Any) -> TokenDialect:
    """Which tokenize dialect the server speaks, if any: vLLM's or llama.cpp's."""
    probe = "phichat probe"
    try:
        response = client.post(
            f"{link.root_url}/tokenize",
            json={"model": link.model, "prompt": probe, "add_special_tokens": False},
        )
        answer = json_or_none(response) if response.status_code == 200 else None
        if isinstance(answer, dict) and isinstance(answer.get("count"), int):
            return VllmTokens()
        # llama.cpp ignores "prompt" and tokenizes "content"; ask it that way.
        response = client.post(f"{link.root_url}/tokenize", json={"content": probe})
        answer = json_or_none(response) if response.status_code == 200 else None
        if isinstance(answer, dict) and answer.get("tokens"):
            return LlamaCppTokens()
    except Exception:
        pass  # no usable endpoint: fall back to the documented estimate
    return EstimatedTokens()


class CountCache:
    """The most recent counts, so that prompt assembly does not ask the server twice."""

    def __init__(self, size: int = COUNT_CACHE_SIZE) -> None:
        self._size = size
        self._counts: OrderedDict[str, int] = OrderedDict()

    def get(self, key: str, count: Callable[[], int]) -> int:
        if key in self._counts:
            self._counts.move_to_end(key)
            return self._counts[key]
        value = int(count())
        self._counts[key] = value
        if len(self._counts) > self._size:
            self._counts.popitem(last=False)
        return value


def _int_field(answer: Any, name: str, host: str) -> int:
    value = answer.get(name) if isinstance(answer, dict) else None
    if not isinstance(value, int):
        raise ModelServerError(f"the model server at {host} sent no token count")
    return value


def _list_len(answer: Any, name: str, host: str) -> int:
    value = answer.get(name) if isinstance(answer, dict) else None
    if not isinstance(value, list):
        raise ModelServerError(f"the model server at {host} sent no tokens")
    return len(value)
