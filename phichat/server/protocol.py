"""The OpenAI chat-completions wire format: read requests, shape responses.

Pure functions over plain dicts, so the HTTP layer stays thin and every rule (which
fields are accepted, what a bad value says) can be tested without a socket.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from phichat.models.base import ChatMessage, GenerationOptions
from phichat.textsafe import has_lone_surrogates

ROLES = ("system", "user", "assistant")
MAX_STOP_SEQUENCES = 4


class RequestError(Exception):
    """The request is wrong; ``status`` and ``code`` go back to the client with the message."""

    def __init__(self, message: str, status: int = 400, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass
class ChatRequest:
    model: str
    messages: list[ChatMessage]
    options: GenerationOptions
    stream: bool = False
    include_usage: bool = False
    stop: list[str] = field(default_factory=list)


def parse_chat_request(body: Any, defaults: GenerationOptions) -> ChatRequest:
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError("'model' is required")
    messages = _messages(body.get("messages"))
    if body.get("n", 1) != 1:
        raise RequestError("only n = 1 is supported")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    temperature = _number(body, "temperature", defaults.temperature, 0.0, 2.0)
    options = GenerationOptions(
        max_new_tokens=defaults.max_new_tokens
        if max_tokens is None
        else _whole(max_tokens, "max_tokens", 1),
        temperature=temperature,
        top_p=_number(body, "top_p", defaults.top_p, 0.0, 1.0) or 1.0,
        seed=defaults.seed if body.get("seed") is None else _whole(body["seed"], "seed", None),
    )
    stream_options = body.get("stream_options") or {}
    if not isinstance(stream_options, dict):
        raise RequestError("'stream_options' must be an object")
    return ChatRequest(
        model=model,
        messages=messages,
        options=options,
        stream=_flag(body, "stream"),
        include_usage=_flag(stream_options, "include_usage", "'stream_options.include_usage'"),
        stop=_stops(body.get("stop")),
    )


def _messages(raw: Any) -> list[ChatMessage]:
    if not isinstance(raw, list) or not raw:
        raise RequestError("'messages' must be a non-empty list")
    messages: list[ChatMessage] = []
    for number, message in enumerate(raw, 1):
        if not isinstance(message, dict):
            raise RequestError(f"message {number} must be an object")
        role = message.get("role")
        if role == "developer":  # the newer name OpenAI clients use for the system role
            role = "system"
        if role not in ROLES:
            raise RequestError(f"message {number} has role {role!r}; expected one of {ROLES}")
        content = _content(message.get("content"), number)
        if has_lone_surrogates(content):
            raise RequestError(f"message {number} is not valid Unicode (it has a lone surrogate)")
        messages.append({"role": role, "content": content})
    return messages


def _content(raw: Any, number: int) -> str:
    """A string, or a list of text parts (the newer form); images are not supported."""
    if isinstance(raw, str):
        return raw
    if isinstance(raw, list):
        texts = []
        for part in raw:
            if not (isinstance(part, dict) and part.get("type") == "text"):
                raise RequestError(f"message {number}: only text content is supported")
            text = part.get("text")
            if not isinstance(text, str):
                raise RequestError(f"message {number}: a text part needs 'text'")
            texts.append(text)
        return "".join(texts)
    raise RequestError(f"message {number} needs 'content' as text")


def _whole(raw: Any, name: str, low: int | None) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or (low is not None and raw < low):
        raise RequestError(f"'{name}' must be a whole number" + (f" >= {low}" if low else ""))
    return raw


def _number(body: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    raw = body.get(name)
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not low <= raw <= high:
        raise RequestError(f"'{name}' must be a number from {low:g} to {high:g}")
    return float(raw)


def _flag(body: dict[str, Any], name: str, shown: str = "") -> bool:
    """A JSON boolean; bool() would read the string "false" as true."""
    raw = body.get(name)
    if raw is None:
        return False
    if not isinstance(raw, bool):
        raise RequestError(f"{shown or repr(name)} must be true or false")
    return raw


def _stops(raw: Any) -> list[str]:
    if raw is None:
        return []
    stops = [raw] if isinstance(raw, str) else raw
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise RequestError("'stop' must be a string or a list of strings")
    if len(stops) > MAX_STOP_SEQUENCES:
        raise RequestError(f"'stop' takes at most {MAX_STOP_SEQUENCES} sequences")
    if any(has_lone_surrogates(s) for s in stops):
        raise RequestError("'stop' is not valid Unicode (it has a lone surrogate)")
    return [s for s in stops if s]


# ---- responses -----------------------------------------------------------------------
def completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex


def error_body(message: str, code: str, kind: str = "invalid_request_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": code, "param": None}}


def model_card(model_id: str, context_window: int, created: int) -> dict[str, Any]:
    # max_model_len is vLLM's field; phichat's openai backend reads it as the window.
    return {
        "id": model_id,
        "object": "model",
        "created": created,
        "owned_by": "phichat",
        "max_model_len": context_window,
    }


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def completion(
    ident: str, model_id: str, text: str, finish_reason: str, counts: dict[str, int]
) -> dict[str, Any]:
    return {
        "id": ident,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model_id,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish_reason,
                "logprobs": None,
            }
        ],
        "usage": counts,
    }


def chunk(
    ident: str,
    model_id: str,
    delta: dict[str, str],
    finish_reason: str | None = None,
) -> dict[str, Any]:
    return {
        "id": ident,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model_id,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
    }


def usage_chunk(ident: str, model_id: str, counts: dict[str, int]) -> dict[str, Any]:
    return {
        "id": ident,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model_id,
        "choices": [],
        "usage": counts,
    }
