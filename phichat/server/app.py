"""``phichat serve``: an OpenAI-compatible HTTP endpoint over any ``ChatModel``.

The standard library's ``ThreadingHTTPServer`` is enough: one model generates one answer
at a time, so the server's job is to queue requests in front of that one model, stream
its tokens as server-sent events, and stop generating when a client goes away.

Endpoints: ``GET /v1/models``, ``POST /v1/chat/completions`` (streamed or not),
``POST /tokenize`` (vLLM's form, so phichat's ``openai`` backend counts tokens exactly)
and ``GET /health``.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import re
import selectors
import socket
import threading
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from phichat.errors import ConfigError, PhichatError
from phichat.models.base import ChatModel, GenerationOptions, GenerationStats
from phichat.models.sse import encode_event
from phichat.models.stops import StopScanner
from phichat.server import protocol
from phichat.server.protocol import RequestError
from phichat.textsafe import one_line

MAX_BODY_BYTES = 8 * 1024 * 1024
# Phi-3's longest tokens are 16 characters (runs of spaces); with room to spare for other
# models' tokenizers, text longer than this per token of the window cannot fit it, and is
# refused before tokenizing (which takes seconds of CPU for 8 MB).
MAX_CHARS_PER_TOKEN = 32
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class ServeOptions:
    model_id: str
    defaults: GenerationOptions
    api_key: str | None = None
    # Requests that may wait for the model while it answers another; more get a 429.
    max_waiting: int = 8
    # How long a queued request waits for its turn before it gets a 503.
    queue_timeout_s: float = 600.0
    # The most a request body may hold; serve never reads more than this from a client.
    max_body_bytes: int = MAX_BODY_BYTES
    # A request (its line, headers and body) must have arrived this long after the server
    # began waiting for it, or the connection is closed: a client dripping a byte at a time
    # ("slowloris") cannot hold a thread. Also the limit on any single read or write.
    request_timeout_s: float = 30.0


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _loopback_authority(authority: str) -> bool:
    """True for "localhost", "127.0.0.1:8000", "[::1]:8000" and the like."""
    return is_loopback(urlsplit(f"//{authority}").hostname or "")


def _loopback_origin(origin: str) -> bool:
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and is_loopback(parts.hostname or "")


def check_bind(host: str, api_key: str | None) -> None:
    """Anything but loopback is reachable from the network: that needs a key."""
    if not is_loopback(host) and not api_key:
        raise ConfigError(
            f"serving on {host} makes the model reachable from the network: set api_key in "
            "the config file or PHICHAT_API_KEY first (clients then send it as a Bearer token)"
        )


class Busy(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ModelGate:
    """One generation at a time, with a bounded queue in front of it."""

    def __init__(self, max_waiting: int, timeout_s: float) -> None:
        self._lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._inside = 0  # the request generating plus those waiting for it
        self._max_waiting = max_waiting
        self._timeout_s = timeout_s

    @property
    def busy(self) -> bool:
        """True while a request holds the model."""
        return self._lock.locked()

    @contextmanager
    def turn(self) -> Iterator[None]:
        with self._count_lock:
            if self._inside > self._max_waiting:
                raise Busy(429, "too many requests are waiting for the model; try again later")
            self._inside += 1
        try:
            if not self._lock.acquire(timeout=self._timeout_s):
                raise Busy(503, "the model stayed busy with other requests; try again later")
            try:
                yield
            finally:
                self._lock.release()
        finally:
            with self._count_lock:
                self._inside -= 1


class ChatServer(ThreadingHTTPServer):
    daemon_threads = True
    # Let a restarted server take over the port at once.
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        model: ChatModel,
        options: ServeOptions,
        log: Callable[[str], None] | None = None,
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.model = model
        self.options = options
        self.gate = ModelGate(options.max_waiting, options.queue_timeout_s)
        self.log = log
        self.created = int(time.time())
        super().__init__(address, ChatHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else str(host)
        shown = f"[{name}]" if ":" in name else name
        return f"http://{shown}:{port}/v1"


class RequestDeadline:
    """Shuts a connection down unless ``disarm()`` is called within ``seconds``.

    A socket timeout bounds each read, not the request: a client sending one byte every
    few seconds never trips it. A timer bounds the whole wait instead.
    """

    def __init__(self, connection: socket.socket, seconds: float) -> None:
        self._connection = connection
        self._lock = threading.Lock()
        self._armed = True
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def _expire(self) -> None:
        with self._lock:
            if not self._armed:
                return
            self._armed = False
        # The handler's blocked read then sees end of file and gives up on the request.
        with suppress(OSError):
            self._connection.shutdown(socket.SHUT_RDWR)

    def disarm(self) -> None:
        with self._lock:
            self._armed = False
        self._timer.cancel()


class ClientGone(Exception):
    """The client closed the connection; generation for it should stop."""


class DisconnectProbe:
    """Tells, without blocking, whether the client has closed its end of the connection.

    A whole (non-streamed) answer writes nothing until it is done, so a write cannot reveal
    a client that left; the socket can: readable with nothing to read means end of file.
    A selector rather than select(): it also works for descriptors above 1023.
    """

    def __init__(self, connection: socket.socket) -> None:
        self._connection = connection
        self._selector = selectors.DefaultSelector()
        self._selector.register(connection, selectors.EVENT_READ)

    def client_left(self) -> bool:
        if not self._selector.select(timeout=0):
            return False
        try:
            # Readable because of a pipelined next request: the client is still there.
            return not self._connection.recv(1, socket.MSG_PEEK)
        except OSError:
            return True

    def close(self) -> None:
        self._selector.close()


class ChatHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ChatServer
    server_version = "phichat"
    _response_started = False  # headers are out: an error can no longer be a JSON reply
    _chunked = True  # a stream's body is sent in chunks (HTTP/1.1) or as is (HTTP/1.0)

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.options.request_timeout_s)  # each read or write

    def handle_one_request(self) -> None:
        # Armed while waiting for a request (also between kept-alive ones): only the time
        # to generate the answer is unbounded.
        self._deadline = RequestDeadline(self.connection, self.server.options.request_timeout_s)
        try:
            super().handle_one_request()
        finally:
            self._deadline.disarm()

    # ---- routing ---------------------------------------------------------------------
    def do_GET(self) -> None:
        self._handle({"/v1/models": self._models, "/health": self._health})

    def do_POST(self) -> None:
        self._handle(
            {
                "/v1/chat/completions": self._chat,
                "/tokenize": self._tokenize,
                "/v1/tokenize": self._tokenize,
            }
        )

    def _handle(self, routes: dict[str, Callable[[], None]]) -> None:
        self._response_started = False
        path = self.path.split("?", 1)[0]
        try:
            route = routes.get(path)
            if route is None:
                raise RequestError(f"no such endpoint: {self.command} {path}", 404, "not_found")
            if self.command != "POST":
                self._deadline.disarm()  # the whole request is in: it has no body
            self._check_browser_access()
            if path != "/health":
                self._check_key()
            route()
        except RequestError as exc:
            # The body may be unread (a 401 comes before reading it): a kept-alive connection
            # would then parse it as the next request, so errors close the connection.
            self.close_connection = True
            self._send_json(exc.status, protocol.error_body(str(exc), exc.code))
        except Busy as exc:
            self._send_json(
                exc.status,
                protocol.error_body(str(exc), "busy", "rate_limit_error"),
                {"Retry-After": "5"},
            )
        except ClientGone:
            self.close_connection = True
        except PhichatError as exc:
            self._send_json(500, protocol.error_body(str(exc), "server_error", "server_error"))
        except Exception as exc:
            # A bug or an input nobody foresaw: the client still gets an answer (or, once a
            # stream has begun, a closed connection), never a silently dropped socket.
            self.close_connection = True
            self._log(f"internal error: {type(exc).__name__}: {exc}")
            if not self._response_started:
                failure = f"internal server error ({type(exc).__name__})"
                self._send_json(500, protocol.error_body(failure, "server_error", "server_error"))

    def _check_browser_access(self) -> None:
        """Without a key, only this machine's own clients: no foreign web page gets in.

        A keyless server listens on loopback, but a browser on this machine will still send
        it requests for any web page: a cross-site POST (CSRF), which the browser labels
        with the page's Origin, or, after DNS rebinding points the page's own name at
        127.0.0.1, same-origin requests whose Host header still carries that name. With a
        key set, the key is the guard (a page cannot know it).
        """
        if self.server.options.api_key:
            return
        host = self.headers.get("Host")
        if host is not None and not _loopback_authority(host):
            raise RequestError(
                f"Host {one_line(host, 80)!r} is not this machine; a server without an API "
                "key answers only requests addressed to localhost or a loopback address",
                403,
                "forbidden_host",
            )
        origin = self.headers.get("Origin")
        if origin is not None and not _loopback_origin(origin):
            raise RequestError(
                f"requests from web pages ({one_line(origin, 80)}) are refused by a server "
                "without an API key",
                403,
                "forbidden_origin",
            )

    def _check_key(self) -> None:
        key = self.server.options.api_key
        if not key:
            return
        given = self.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {key}".encode()):
            raise RequestError("a valid API key is required", 401, "invalid_api_key")

    # ---- endpoints -------------------------------------------------------------------
    def _health(self) -> None:
        self._send_json(200, {"status": "ok"})

    def _models(self) -> None:
        card = protocol.model_card(
            self.server.options.model_id, self.server.model.context_window, self.server.created
        )
        self._send_json(200, {"object": "list", "data": [card]})

    def _tokenize(self) -> None:
        body = self._read_json()
        model = self.server.model
        try:
            if isinstance(body.get("messages"), list):
                request = protocol.parse_chat_request(
                    {"model": self.server.options.model_id, "messages": body["messages"]},
                    self.server.options.defaults,
                )
                self._check_text_size(sum(len(m["content"]) for m in request.messages))
                count = model.count_tokens(request.messages)
            elif isinstance(body.get("prompt"), str):
                self._check_text_size(len(body["prompt"]))
                count = model.count_text_tokens(body["prompt"])
            else:
                raise RequestError("send 'prompt' (text) or 'messages' (a chat)")
        except PhichatError as exc:
            raise RequestError(str(exc), 500, "server_error") from exc
        self._send_json(200, {"count": count, "max_model_len": model.context_window})

    def _chat(self) -> None:
        options = self.server.options
        request = protocol.parse_chat_request(self._read_json(), options.defaults)
        if request.model != options.model_id:
            raise RequestError(
                f"model {request.model!r} is not served here; this server has {options.model_id!r}",
                404,
                "model_not_found",
            )
        model = self.server.model
        window = model.context_window
        self._check_text_size(sum(len(message["content"]) for message in request.messages))
        with self.server.gate.turn():
            with closing(DisconnectProbe(self.connection)) as probe:
                if probe.client_left():
                    # A queue of departed clients would otherwise cost a prefill each.
                    self._log("client left before its turn; nothing generated")
                    raise ClientGone
            # Tokenized inside the gate: one prompt at a time, never next to a generation.
            prompt_tokens = model.count_tokens(request.messages)
            if prompt_tokens + request.options.max_new_tokens > window:
                raise RequestError(
                    f"the prompt ({prompt_tokens} tokens) plus max_tokens "
                    f"({request.options.max_new_tokens}) exceeds the {window}-token context "
                    "window",
                    400,
                    "context_length_exceeded",
                )
            if request.stream:
                self._stream_answer(request, prompt_tokens)
            else:
                self._whole_answer(request, prompt_tokens)

    def _check_text_size(self, chars: int) -> None:
        """Refuse, without tokenizing it, text too long for the window whatever its tokens."""
        window = self.server.model.context_window
        if chars > window * MAX_CHARS_PER_TOKEN:
            raise RequestError(
                f"the text ({chars} characters) cannot fit the {window}-token context window",
                400,
                "context_length_exceeded",
            )

    def _generate(
        self, request: protocol.ChatRequest, stop: threading.Event, stats: GenerationStats
    ) -> Generator[str, None, None]:
        """The model's pieces, cut at the client's own stop sequences."""
        scanner = StopScanner(request.stop)
        pieces = self.server.model.stream(request.messages, request.options, stop, stats)
        # Leaving early ends the model's stream (and its worker) right here.
        with closing(pieces), closing(DisconnectProbe(self.connection)) as probe:
            for piece in pieces:
                if probe.client_left():
                    stop.set()
                    raise ClientGone
                shown = scanner.feed(piece)
                if shown:
                    yield shown
                if scanner.stopped:
                    return
        rest = scanner.flush()
        if rest:
            yield rest

    def _whole_answer(self, request: protocol.ChatRequest, prompt_tokens: int) -> None:
        stats = GenerationStats()
        try:
            text = "".join(self._generate(request, threading.Event(), stats))
        except ClientGone:
            self.close_connection = True
            self._log(f"client left after {stats.new_tokens} tokens; generation stopped")
            return
        except PhichatError as exc:
            self._send_json(500, protocol.error_body(str(exc), "server_error", "server_error"))
            return
        finish = _finish_reason(stats, request)
        counts = protocol.usage(prompt_tokens, stats.new_tokens)
        answer = protocol.completion(protocol.completion_id(), request.model, text, finish, counts)
        self._send_json(200, answer)
        self._log_turn(stats)

    def _stream_answer(self, request: protocol.ChatRequest, prompt_tokens: int) -> None:
        ident = protocol.completion_id()
        self._response_started = True
        # HTTP/1.0 has no chunked encoding: the events go as they are, ended by closing.
        self._chunked = self.request_version != "HTTP/1.0"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        if self._chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.close_connection = True
            self.send_header("Connection", "close")
        self.end_headers()
        stop = threading.Event()
        stats = GenerationStats()
        send = self._send_event
        pieces = self._generate(request, stop, stats)
        try:
            send(protocol.chunk(ident, request.model, {"role": "assistant", "content": ""}))
            with closing(pieces):
                for piece in pieces:
                    send(protocol.chunk(ident, request.model, {"content": piece}))
            finish = _finish_reason(stats, request)
            send(protocol.chunk(ident, request.model, {}, finish))
            if request.include_usage:
                counts = protocol.usage(prompt_tokens, stats.new_tokens)
                send(protocol.usage_chunk(ident, request.model, counts))
        except ClientGone:
            # Leaving the generator's loop stopped the model; nobody is left to tell.
            stop.set()
            self.close_connection = True
            self._log(f"client left after {stats.new_tokens} tokens; generation stopped")
            return
        except PhichatError as exc:
            failure = protocol.error_body(str(exc), "server_error", "server_error")
            self._try_send(encode_event(json.dumps(failure)))
        self._try_send(b"data: [DONE]\n\n")
        if self._chunked:
            self._try_send(b"")  # the last chunk of a chunked body
        self._log_turn(stats)

    # ---- plumbing --------------------------------------------------------------------
    def _read_json(self) -> dict[str, Any]:
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            raise RequestError("the request needs a Content-Length", 411, "length_required")
        # Digits only: int() also takes "-1" (and rfile.read(-1) reads to EOF, unbounded),
        # "+5" and "1_000".
        if not _DIGITS.fullmatch(length_header.strip()):
            raise RequestError("Content-Length must be a whole number of bytes")
        length = int(length_header)
        if length > self.server.options.max_body_bytes:
            self.close_connection = True
            raise RequestError("the request body is too large", 413, "too_large")
        raw = self.rfile.read(length)
        self._deadline.disarm()
        if len(raw) < length:
            raise RequestError("the request body ended before Content-Length bytes arrived")
        try:
            body = json.loads(raw)
        except ValueError:
            raise RequestError("the request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise RequestError("the request body must be a JSON object")
        return body

    def _send_json(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        # "replace": a lone surrogate echoed from a request must not fail the reply itself.
        data = json.dumps(body, ensure_ascii=False).encode(errors="replace")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            self.close_connection = True

    def _send_event(self, payload: dict[str, Any]) -> None:
        self._write_chunk(encode_event(json.dumps(payload, ensure_ascii=False)))

    def _write_chunk(self, data: bytes) -> None:
        try:
            framed = f"{len(data):x}\r\n".encode() + data + b"\r\n" if self._chunked else data
            self.wfile.write(framed)
            self.wfile.flush()
        except OSError as exc:  # BrokenPipe, ConnectionReset: the client went away
            raise ClientGone from exc

    def _try_send(self, data: bytes) -> None:
        try:
            self._write_chunk(data)
        except ClientGone:
            self.close_connection = True

    def _log_turn(self, stats: GenerationStats) -> None:
        self._log(
            f"answered {stats.new_tokens} tokens after a {stats.prompt_tokens}-token prompt "
            f"in {stats.total_s:.1f} s"
        )

    def _log(self, text: str) -> None:
        if self.server.log is not None:
            self.server.log(one_line(f"{self.client_address[0]} {text}", 400))

    def log_message(self, format: str, *args: Any) -> None:
        # The request line is client-controlled text: one_line strips control characters.
        self._log(format % args)


def _finish_reason(stats: GenerationStats, request: protocol.ChatRequest) -> str:
    return "length" if stats.new_tokens >= request.options.max_new_tokens else "stop"


def make_server(
    model: ChatModel,
    options: ServeOptions,
    host: str = "127.0.0.1",
    port: int = 8000,
    log: Callable[[str], None] | None = None,
) -> ChatServer:
    """A bound server, not yet serving: call ``serve_forever()`` (the model must be loaded)."""
    check_bind(host, options.api_key)
    try:
        return ChatServer((host, port), model, options, log)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
