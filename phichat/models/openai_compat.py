"""Any OpenAI-compatible chat-completions server: vLLM, TGI, Ollama, llama.cpp, LM Studio.

Generation happens on the server; phichat keeps retrieval, prompts and history here and
streams the answer over server-sent events. httpx is imported in ``load()`` so that
importing this module stays cheap.

Token counts: prompt assembly needs the model's own token counts. Where the server has a
tokenize endpoint, it is used (vLLM's ``/tokenize``, which also applies the chat template,
as ``phichat serve`` does; llama.cpp's ``/apply-template`` plus ``/tokenize``). Otherwise
the count is an estimate of one token per three characters, plus four tokens of template
per message. Real tokenizers average nearer four characters per English token, so the
estimate errs towards shorter prompts, never towards overflowing the window.
"""

from __future__ import annotations

import json
import math
import queue
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from phichat.errors import ConfigError, ModelNotAvailable, ModelServerError, PhichatError
from phichat.models.base import ChatMessage, GenerationOptions, GenerationStats, ProgressCallback
from phichat.models.phi3 import STOP_TOKENS
from phichat.models.sse import event_data
from phichat.models.stops import StopScanner
from phichat.textsafe import one_line

# Phi-3-mini-4k's window: the model phichat is built around, when neither the settings nor
# the server say otherwise.
DEFAULT_CONTEXT_WINDOW = 4096
ESTIMATE_CHARS_PER_TOKEN = 3
ESTIMATE_TOKENS_PER_MESSAGE = 4
CONNECT_TIMEOUT_S = 10.0
_POLL_S = 0.05
_COUNT_CACHE_SIZE = 512


def normalize_base_url(url: str) -> str:
    """``http://host:port`` becomes ``http://host:port/v1``; a URL with a path is kept."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"base_url must be an http(s) URL such as http://127.0.0.1:8000/v1, got {url!r}"
        )
    path = parts.path.rstrip("/") or "/v1"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def estimate_text_tokens(text: str) -> int:
    return math.ceil(len(text) / ESTIMATE_CHARS_PER_TOKEN)


class OpenAICompatModel:
    """A model behind an OpenAI-compatible ``/v1/chat/completions`` endpoint."""

    def __init__(
        self,
        base_url: str,
        api_model: str | None = None,
        api_key: str | None = None,
        context_window: int | None = None,
        timeout: float = 120.0,
    ) -> None:
        self.base_url = normalize_base_url(base_url)
        parts = urlsplit(self.base_url)
        # Tokenize endpoints live at the server's root, beside /v1 rather than under it.
        root_path = parts.path.removesuffix("/v1")
        self._root_url = urlunsplit((parts.scheme, parts.netloc, root_path, "", ""))
        self._host = parts.netloc
        self.name = api_model or self.base_url
        self._api_model = api_model
        self._api_key = api_key
        self._window_override = context_window
        self._server_window: int | None = None
        self._timeout = timeout
        self._client: Any = None
        self._tokenizer = "estimate"  # or "vllm" or "llamacpp", found in load()
        self._counts: OrderedDict[str, int] = OrderedDict()
        self._load_lock = threading.Lock()
        self.load_s = 0.0

    # ---- loading -------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self._client is not None

    def load(self, progress: ProgressCallback | None = None) -> None:
        with self._load_lock:
            if self._client is not None:
                return
            started = time.perf_counter()
            if progress:
                progress(f"connecting to {self._host}", None)
            import httpx

            headers = {"User-Agent": "phichat"}
            if self._api_key:
                headers["Authorization"] = f"Bearer {self._api_key}"
            client = httpx.Client(
                headers=headers,
                timeout=httpx.Timeout(self._timeout, connect=min(CONNECT_TIMEOUT_S, self._timeout)),
            )
            try:
                self._pick_model(client)
                if progress:
                    progress("checking the server's tokenizer", 0.5)
                self._tokenizer = self._probe_tokenizer(client)
            except BaseException:
                client.close()
                raise
            self._client = client
            self.load_s = time.perf_counter() - started
            if progress:
                progress("ready", 1.0)

    def _pick_model(self, client: Any) -> None:
        """Check the server answers and the key works; choose the model if none was named."""
        response = self._send(client, "GET", f"{self.base_url}/models")
        if response.status_code == 404 and self._api_model:
            return  # a server without a model list; the chosen model is tried at the first turn
        if response.status_code != 200:
            raise self._status_error(response, "listing models")
        listed = _json_or_none(response)
        entries = listed.get("data") if isinstance(listed, dict) else None
        if not isinstance(entries, list):
            raise ModelServerError(
                f"the model server at {self._host} sent a model list phichat cannot read"
            )
        models = {str(m["id"]): m for m in entries if isinstance(m, dict) and "id" in m}
        if not self._api_model:
            if len(models) != 1:
                names = ", ".join(sorted(models)) or "none"
                raise ConfigError(
                    f"the model server at {self._host} offers {len(models)} models ({names}); "
                    "choose one with --api-model or the api_model setting"
                )
            self._api_model = next(iter(models))
            self.name = self._api_model
        card = models.get(self._api_model, {})
        # vLLM (and phichat serve) report the window the server was started with.
        window = card.get("max_model_len")
        if isinstance(window, int) and window > 0:
            self._server_window = window

    def _probe_tokenizer(self, client: Any) -> str:
        """Which tokenize dialect the server speaks, if any: vLLM's or llama.cpp's."""
        probe = "phichat probe"
        try:
            response = client.post(
                f"{self._root_url}/tokenize",
                json={"model": self._api_model, "prompt": probe, "add_special_tokens": False},
            )
            answer = _json_or_none(response) if response.status_code == 200 else None
            if isinstance(answer, dict) and isinstance(answer.get("count"), int):
                return "vllm"
            # llama.cpp ignores "prompt" and tokenizes "content"; ask it that way.
            response = client.post(f"{self._root_url}/tokenize", json={"content": probe})
            answer = _json_or_none(response) if response.status_code == 200 else None
            if isinstance(answer, dict) and answer.get("tokens"):
                return "llamacpp"
        except Exception:
            pass  # no usable endpoint: fall back to the documented estimate
        return "estimate"

    def _require(self) -> Any:
        if self._client is None:
            raise PhichatError("the model server is not connected yet")
        return self._client

    @property
    def context_window(self) -> int:
        return self._window_override or self._server_window or DEFAULT_CONTEXT_WINDOW

    @property
    def token_counting(self) -> str:
        """How tokens are counted: ``vllm``, ``llamacpp`` (server endpoints) or ``estimate``."""
        return self._tokenizer

    def describe(self) -> dict[str, str]:
        return {"model": self.name, "device": self._host, "dtype": "openai API"}

    # ---- tokens --------------------------------------------------------------------
    def count_tokens(self, messages: list[ChatMessage]) -> int:
        key = "m" + json.dumps(messages, sort_keys=True)
        return self._cached(key, lambda: self._count_messages(messages))

    def count_text_tokens(self, text: str) -> int:
        return self._cached("t" + text, lambda: self._count_text(text))

    def _cached(self, key: str, count: Any) -> int:
        if key in self._counts:
            self._counts.move_to_end(key)
            return self._counts[key]
        value = int(count())
        self._counts[key] = value
        if len(self._counts) > _COUNT_CACHE_SIZE:
            self._counts.popitem(last=False)
        return value

    def _count_messages(self, messages: list[ChatMessage]) -> int:
        if self._tokenizer == "vllm":
            answer = self._post_json(
                f"{self._root_url}/tokenize",
                {
                    "model": self._api_model,
                    "messages": list(messages),
                    "add_generation_prompt": True,
                },
            )
            return _int_field(answer, "count", self._host)
        if self._tokenizer == "llamacpp":
            rendered = self._post_json(
                f"{self._root_url}/apply-template", {"messages": list(messages)}
            )
            prompt = rendered.get("prompt") if isinstance(rendered, dict) else None
            if not isinstance(prompt, str):
                raise ModelServerError(f"the model server at {self._host} sent no chat prompt")
            answer = self._post_json(
                f"{self._root_url}/tokenize",
                {"content": prompt, "add_special": True, "parse_special": True},
            )
            return _list_len(answer, "tokens", self._host)
        overhead = ESTIMATE_TOKENS_PER_MESSAGE * len(messages) + 2
        return overhead + sum(estimate_text_tokens(m["content"]) for m in messages)

    def _count_text(self, text: str) -> int:
        if self._tokenizer == "vllm":
            answer = self._post_json(
                f"{self._root_url}/tokenize",
                {"model": self._api_model, "prompt": text, "add_special_tokens": False},
            )
            return _int_field(answer, "count", self._host)
        if self._tokenizer == "llamacpp":
            answer = self._post_json(
                f"{self._root_url}/tokenize", {"content": text, "add_special": False}
            )
            return _list_len(answer, "tokens", self._host)
        return estimate_text_tokens(text)

    def _post_json(self, url: str, body: dict[str, Any]) -> Any:
        response = self._send(self._require(), "POST", url, json=body)
        if response.status_code != 200:
            raise self._status_error(response, "counting tokens")
        answer = _json_or_none(response)
        if answer is None:
            raise ModelServerError(f"the model server at {self._host} did not answer in JSON")
        return answer

    # ---- generation ----------------------------------------------------------------
    def chat_body(self, messages: list[ChatMessage], options: GenerationOptions) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self._api_model,
            "messages": list(messages),
            "stream": True,
            "max_tokens": options.max_new_tokens,
            "temperature": options.temperature,
            # The same stop strings as the local backend; most servers stop at <|end|>
            # anyway, as the model's own end-of-turn token.
            "stop": list(STOP_TOKENS),
        }
        if options.temperature > 0:
            body["top_p"] = options.top_p
        if options.seed is not None:
            body["seed"] = options.seed
        return body

    def stream(
        self,
        messages: list[ChatMessage],
        options: GenerationOptions,
        stop: threading.Event,
        stats: GenerationStats | None = None,
    ) -> Iterator[str]:
        """Stream the server's answer; setting ``stop`` (or leaving the loop) closes the stream.

        The HTTP read runs in a worker thread, so a stop request is noticed at once even
        while the server is silent; cancelling shuts the socket, which the server sees as
        the client going away and stops generating.
        """
        client = self._require()
        stats = stats if stats is not None else GenerationStats()
        stats.prompt_tokens = self.count_tokens(messages)
        inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
        halt = threading.Event()
        live: list[Any] = []
        body = self.chat_body(messages, options)

        def run() -> None:
            try:
                with client.stream("POST", f"{self.base_url}/chat/completions", json=body) as reply:
                    live.append(reply)
                    if reply.status_code != 200:
                        reply.read()
                        raise self._status_error(reply, "answering")
                    for data in event_data(reply.iter_lines()):
                        if halt.is_set():
                            return
                        inbox.put(("data", data))
                inbox.put(("end", None))
            except BaseException as exc:  # handed to the consumer, which raises it
                inbox.put(("error", exc))

        started = time.perf_counter()
        worker = threading.Thread(target=run, name="phichat-openai-stream", daemon=True)
        worker.start()
        scanner = StopScanner(STOP_TOKENS)
        finished = False
        try:
            while True:
                try:
                    kind, payload = inbox.get(timeout=_POLL_S)
                except queue.Empty:
                    if stop.is_set():
                        return
                    continue
                if kind == "error":
                    if halt.is_set():
                        return
                    raise self._transport_error(payload)
                if kind == "end":
                    if not finished:
                        raise ModelServerError(
                            f"the model server at {self._host} ended the stream mid-answer"
                        )
                    break
                if payload.strip() == "[DONE]":
                    break
                text, done, usage = self._parse_chunk(payload)
                if usage:
                    stats.prompt_tokens = usage.get("prompt_tokens", stats.prompt_tokens)
                finished = finished or done
                if text:
                    if not stats.new_tokens:
                        stats.ttft_s = time.perf_counter() - started
                    stats.new_tokens += 1
                    shown = scanner.feed(text)
                    if shown:
                        yield shown
                    if scanner.stopped:
                        break
                if usage and isinstance(usage.get("completion_tokens"), int):
                    stats.new_tokens = usage["completion_tokens"]
                if stop.is_set():
                    return
            rest = scanner.flush()
            if rest:
                yield rest
        finally:
            halt.set()
            if worker.is_alive():
                _shut_socket(live)
                worker.join(timeout=2.0)
            stats.total_s = time.perf_counter() - started

    def _parse_chunk(self, data: str) -> tuple[str, bool, dict[str, Any] | None]:
        """(text, finished, usage) from one ``chat.completion.chunk`` event."""
        try:
            event = json.loads(data)
        except ValueError:
            raise ModelServerError(
                f"the model server at {self._host} sent a malformed event: {one_line(data, 80)}"
            ) from None
        if not isinstance(event, dict):
            raise ModelServerError(f"the model server at {self._host} sent a malformed event")
        if "error" in event:
            raise ModelServerError(
                f"the model server at {self._host} failed mid-answer: {_error_text(event)}"
            )
        usage = event.get("usage") if isinstance(event.get("usage"), dict) else None
        choices = event.get("choices")
        if choices is None and usage is not None:
            return "", False, usage
        if not isinstance(choices, list):
            raise ModelServerError(
                f"the model server at {self._host} sent an event without choices"
            )
        if not choices:
            return "", False, usage
        choice = choices[0]
        delta = choice.get("delta") if isinstance(choice, dict) else None
        content = delta.get("content") if isinstance(delta, dict) else None
        if delta is None or not (content is None or isinstance(content, str)):
            raise ModelServerError(f"the model server at {self._host} sent a malformed event")
        return content or "", bool(choice.get("finish_reason")), usage

    # ---- errors --------------------------------------------------------------------
    def _send(self, client: Any, method: str, url: str, **kwargs: Any) -> Any:
        try:
            return client.request(method, url, **kwargs)
        except Exception as exc:
            raise self._transport_error(exc) from exc

    def _transport_error(self, exc: BaseException) -> PhichatError:
        if isinstance(exc, PhichatError):
            return exc
        import httpx

        where = f"the model server at {self.base_url}"
        if isinstance(exc, httpx.ConnectTimeout):
            return ModelServerError(f"{where} did not accept a connection in time")
        if isinstance(exc, httpx.ConnectError):
            return ModelServerError(
                f"cannot connect to {where} ({_reason(exc)}); is it running, and is base_url right?"
            )
        if isinstance(exc, httpx.TimeoutException):
            return ModelServerError(f"{where} sent nothing for {self._timeout:g} s; gave up")
        if isinstance(exc, httpx.RemoteProtocolError):
            return ModelServerError(f"{where} broke off the connection mid-answer")
        if isinstance(exc, httpx.HTTPError):
            return ModelServerError(f"the request to {where} failed: {_reason(exc)}")
        return ModelServerError(f"talking to {where} failed: {_reason(exc)}")

    def _status_error(self, response: Any, doing: str) -> ModelServerError:
        status = response.status_code
        detail = _error_text(_json_or_none(response)) or one_line(response.text, 200)
        where = f"the model server at {self._host}"
        if status in (401, 403):
            return ModelServerError(
                f"{where} refused the API key (HTTP {status}): set api_key in the config file "
                "or PHICHAT_API_KEY"
            )
        if status == 404:
            return ModelServerError(
                f"{where} answered 404 while {doing} (model {self._api_model!r}): {detail}; "
                "check --api-model and --base-url"
            )
        if status == 429:
            retry = response.headers.get("retry-after")
            after = f"; retry after {one_line(retry, 20)} s" if retry else ""
            return ModelServerError(f"{where} is busy or rate-limited (HTTP 429){after}: {detail}")
        if status >= 500:
            return ModelServerError(f"{where} failed (HTTP {status}) while {doing}: {detail}")
        return ModelServerError(f"{where} rejected the request (HTTP {status}): {detail}")


def _shut_socket(live: list[Any]) -> None:
    """Wake a read blocked on a silent server: shutting the socket down ends it at once."""
    for reply in live:
        try:
            stream = reply.extensions.get("network_stream")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
        except (OSError, AttributeError):
            pass


def _json_or_none(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _error_text(answer: Any) -> str:
    """The message from an error body: {"error": {"message"}}, {"error": "..."}, {"detail"}."""
    if not isinstance(answer, dict):
        return ""
    error = answer.get("error", answer.get("detail", answer.get("message")))
    if isinstance(error, dict):
        error = error.get("message", "")
    return one_line(str(error), 200) if error else ""


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


def _reason(exc: BaseException) -> str:
    return one_line(str(exc) or type(exc).__name__, 160)


def require_base_url(base_url: str | None) -> str:
    if not base_url:
        raise ModelNotAvailable(
            "backend 'openai' needs a server: pass --base-url URL (or set base_url)"
        )
    return base_url
