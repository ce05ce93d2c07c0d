"""Any OpenAI-compatible chat-completions server: vLLM, TGI, Ollama, llama.cpp, LM Studio.

Generation happens on the server; phichat keeps retrieval, prompts and history here and
streams the answer over server-sent events. The HTTP side is ``openai_transport``; how
each kind of server counts tokens is ``openai_tokens``. httpx is imported in ``load()``,
so importing this module stays cheap.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from phichat.errors import ConfigError, ModelNotAvailable, ModelServerError
from phichat.models.base import (
    BackendBase,
    ChatMessage,
    Generation,
    GenerationOptions,
    ProgressCallback,
    Prompt,
)
from phichat.models.openai_tokens import CountCache, EstimatedTokens, TokenDialect, probe_dialect
from phichat.models.openai_transport import (
    ServerLink,
    json_or_none,
    normalize_base_url,
    parse_chunk,
)
from phichat.models.stops import STOP_TOKENS
from phichat.threads import Stream

__all__ = ["DEFAULT_CONTEXT_WINDOW", "OpenAICompatModel", "normalize_base_url", "require_base_url"]

# Phi-3-mini-4k's window: the model phichat is built around, when neither the settings nor
# the server say otherwise.
DEFAULT_CONTEXT_WINDOW = 4096
# How long a stopped stream waits for its reader thread after shutting the socket.
_READER_JOIN_S = 2.0


class OpenAICompatModel(BackendBase):
    """A model behind an OpenAI-compatible ``/v1/chat/completions`` endpoint."""

    not_loaded_message = "the model server is not connected yet"
    # The server queues (or batches) requests itself.
    one_generation_at_a_time = False
    # Servers apply ``stop`` themselves, but not all reliably for special-token strings.
    cuts_stop_text = True

    def __init__(
        self,
        base_url: str,
        api_model: str | None = None,
        api_key: str | None = None,
        context_window: int | None = None,
        timeout: float = 120.0,
    ) -> None:
        self._link = ServerLink(base_url, api_key, timeout)
        super().__init__(api_model or self._link.base_url)
        self.base_url = self._link.base_url
        self._link.model = api_model
        self._window_override = context_window
        self._server_window: int | None = None
        self._dialect: TokenDialect = EstimatedTokens()  # the server's own, found in load()
        self._counts = CountCache()

    # ---- loading -------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self._link.client is not None

    def _load(self, progress: ProgressCallback) -> None:
        progress(f"connecting to {self._link.host}", None)
        client = self._link.open()
        try:
            self._pick_model(client)
            progress("checking the server's tokenizer", 0.5)
            self._dialect = probe_dialect(self._link, client)
        except BaseException:
            client.close()
            raise
        self._link.attach(client)

    def _pick_model(self, client: Any) -> None:
        """Check the server answers and the key works; choose the model if none was named."""
        link = self._link
        response = link.send(client, "GET", f"{self.base_url}/models")
        if response.status_code == 404 and link.model:
            return  # a server without a model list; the chosen model is tried at the first turn
        if response.status_code != 200:
            raise link.status_error(response, "listing models")
        listed = json_or_none(response)
        entries = listed.get("data") if isinstance(listed, dict) else None
        if not isinstance(entries, list):
            raise ModelServerError(
                f"the model server at {link.host} sent a model list phichat cannot read"
            )
        models = {str(m["id"]): m for m in entries if isinstance(m, dict) and "id" in m}
        if not link.model:
            if len(models) != 1:
                names = ", ".join(sorted(models)) or "none"
                raise ConfigError(
                    f"the model server at {link.host} offers {len(models)} models ({names}); "
                    "choose one with --api-model or the api_model setting"
                )
            link.model = next(iter(models))
            self.name = link.model
        card = models.get(link.model, {})
        # vLLM (and phichat serve) report the window the server was started with.
        window = card.get("max_model_len")
        if isinstance(window, int) and window > 0:
            self._server_window = window

    @property
    def context_window(self) -> int:
        return self._window_override or self._server_window or DEFAULT_CONTEXT_WINDOW

    @property
    def token_counting(self) -> str:
        """How tokens are counted: ``vllm``, ``llamacpp`` (server endpoints) or ``estimate``."""
        return self._dialect.name

    def describe(self) -> dict[str, str]:
        return {"model": self.name, "device": self._link.host, "dtype": "openai API"}

    # ---- tokens --------------------------------------------------------------------
    def count_tokens(self, messages: list[ChatMessage]) -> int:
        key = "m" + json.dumps(messages, sort_keys=True)
        return self._counts.get(key, lambda: self._dialect.count_messages(self._link, messages))

    def count_text_tokens(self, text: str) -> int:
        return self._counts.get("t" + text, lambda: self._dialect.count_text(self._link, text))

    def _prompt(self, messages: list[ChatMessage]) -> Prompt:
        return Prompt(list(messages), self.count_tokens(messages))

    # ---- generation ----------------------------------------------------------------
    def chat_body(self, messages: list[ChatMessage], options: GenerationOptions) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self._link.model,
            "messages": list(messages),
            "stream": True,
            "max_tokens": options.max_new_tokens,
            "temperature": options.temperature,
            # The same stop strings as the local backends; most servers stop at <|end|>
            # anyway, as the model's own end-of-turn token.
            "stop": list(STOP_TOKENS),
        }
        if options.temperature > 0:
            body["top_p"] = options.top_p
        if options.seed is not None:
            body["seed"] = options.seed
        return body

    def _generate(self, job: Generation) -> Iterator[str]:
        """Stream the server's answer; a stop (or closing the stream) closes the connection.

        The HTTP read runs in a daemon thread, so a stop request is noticed at once even
        while the server is silent.
        """
        link = self._link
        url = f"{self.base_url}/chat/completions"
        body = self.chat_body(job.prompt.messages, job.options)
        stats = job.stats
        finished = False
        events: Stream[str, None] = Stream(
            lambda sink: link.stream_events(url, body, sink),
            name="phichat-openai-stream",
            stop=job.stop,
            join_s=_READER_JOIN_S,
        )
        with events:
            try:
                for data in events:
                    if data.strip() == "[DONE]":
                        return
                    text, done, usage = parse_chunk(data, link.host)
                    if usage:
                        stats.prompt_tokens = usage.get("prompt_tokens", stats.prompt_tokens)
                    finished = finished or done
                    if text:
                        yield text
                    if usage and isinstance(usage.get("completion_tokens"), int):
                        stats.new_tokens = usage["completion_tokens"]
            except Exception as exc:
                raise link.transport_error(exc) from exc
        if not events.stopped and not finished:
            raise ModelServerError(f"the model server at {link.host} ended the stream mid-answer")


def require_base_url(base_url: str | None) -> str:
    if not base_url:
        raise ModelNotAvailable(
            "backend 'openai' needs a server: pass --base-url URL (or set base_url)"
        )
    return base_url
