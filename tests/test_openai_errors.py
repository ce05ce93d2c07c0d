"""The ``openai`` backend against a loopback server that misbehaves on purpose.

Every failure must end as one clear ``ModelServerError`` line, never a traceback, and the
text that did arrive before a failure must reach the caller.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from phichat.errors import ConfigError, ModelServerError
from phichat.models.base import ChatMessage, GenerationOptions
from phichat.models.openai_compat import OpenAICompatModel, normalize_base_url

MESSAGES: list[ChatMessage] = [{"role": "user", "content": "Hello"}]
OPTIONS = GenerationOptions(max_new_tokens=16)

Behaviour = Callable[[BaseHTTPRequestHandler], None]


def chunk(text: str | None = None, finish: str | None = None) -> bytes:
    delta = {} if text is None else {"content": text}
    event = {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return f"data: {json.dumps(event)}\n\n".encode()


def reply_json(handler: BaseHTTPRequestHandler, status: int, body: object, **headers: str) -> None:
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    for name, value in headers.items():
        handler.send_header(name.replace("_", "-"), value)
    handler.end_headers()
    handler.wfile.write(data)


def start_stream(handler: BaseHTTPRequestHandler) -> None:
    """Headers of a close-delimited event stream (HTTP/1.0: the body ends when we close)."""
    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream")
    handler.end_headers()


def send(handler: BaseHTTPRequestHandler, *events: bytes) -> None:
    for event in events:
        handler.wfile.write(event)
        handler.wfile.flush()


def model_list(handler: BaseHTTPRequestHandler) -> None:
    reply_json(handler, 200, {"object": "list", "data": [{"id": "m", "object": "model"}]})


@contextmanager
def misbehaving(routes: dict[str, Behaviour]) -> Iterator[str]:
    """A loopback server answering each path with its behaviour; 404 for the rest."""
    routes = {"/v1/models": model_list, **routes}

    class Handler(BaseHTTPRequestHandler):
        def _route(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.body = json.loads(self.rfile.read(length) or b"{}")
            behaviour = routes.get(self.path)
            if behaviour is None:
                reply_json(self, 404, {"error": {"message": "no such route"}})
            else:
                behaviour(self)

        do_GET = do_POST = _route

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def connected(url: str, **kwargs: object) -> OpenAICompatModel:
    model = OpenAICompatModel(url, api_model="m", **kwargs)  # type: ignore[arg-type]
    model.load()
    return model


def stream_error(behaviour: Behaviour) -> str:
    """The one-line error the backend gives for a chat answered by ``behaviour``."""
    with misbehaving({"/v1/chat/completions": behaviour}) as url:
        model = connected(url)
        with pytest.raises(ModelServerError) as caught:
            collect(model)
    return str(caught.value)


def collect(model: OpenAICompatModel, stop: threading.Event | None = None) -> list[str]:
    return list(model.stream(MESSAGES, OPTIONS, stop or threading.Event()))


# ---- connecting --------------------------------------------------------------------------
def test_connection_refused_says_so() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    model = OpenAICompatModel(f"http://127.0.0.1:{port}/v1", api_model="m")
    with pytest.raises(ModelServerError, match=r"cannot connect .* is it running"):
        model.load()
    assert not model.loaded


def test_base_url_gets_v1_and_must_be_http() -> None:
    assert normalize_base_url("http://127.0.0.1:8080/") == "http://127.0.0.1:8080/v1"
    assert normalize_base_url("http://h:1/api/v1/") == "http://h:1/api/v1"
    with pytest.raises(ConfigError, match="base_url"):
        normalize_base_url("127.0.0.1:8080")


def test_401_points_at_the_api_key_setting() -> None:
    def refuse(handler: BaseHTTPRequestHandler) -> None:
        reply_json(handler, 401, {"error": {"message": "bad key"}})

    with misbehaving({"/v1/models": refuse}) as url:
        model = OpenAICompatModel(url, api_key="wrong")
        with pytest.raises(ModelServerError, match=r"refused the API key.*PHICHAT_API_KEY"):
            model.load()


def test_several_models_and_none_chosen_asks_for_api_model() -> None:
    def two(handler: BaseHTTPRequestHandler) -> None:
        reply_json(handler, 200, {"data": [{"id": "phi3:mini"}, {"id": "llama3"}]})

    with misbehaving({"/v1/models": two}) as url:
        model = OpenAICompatModel(url)
        with pytest.raises(ConfigError, match=r"2 models \(llama3, phi3:mini\).*--api-model"):
            model.load()


# ---- answering ---------------------------------------------------------------------------
def test_429_is_reported_with_retry_after() -> None:
    def busy(handler: BaseHTTPRequestHandler) -> None:
        reply_json(handler, 429, {"error": {"message": "slow down"}}, Retry_After="7")

    assert re.search(r"HTTP 429.*retry after 7 s.*slow down", stream_error(busy))


def test_5xx_is_reported_with_the_servers_message() -> None:
    def broken(handler: BaseHTTPRequestHandler) -> None:
        reply_json(handler, 503, {"detail": "model is loading"})

    assert re.search(r"HTTP 503.*model is loading", stream_error(broken))


def test_a_stream_cut_mid_answer_keeps_the_text_that_arrived() -> None:
    def cut(handler: BaseHTTPRequestHandler) -> None:
        start_stream(handler)
        send(handler, chunk("Belize "), chunk("City"))  # then the connection closes

    with misbehaving({"/v1/chat/completions": cut}) as url:
        model = connected(url)
        pieces: list[str] = []
        with pytest.raises(ModelServerError, match="ended the stream mid-answer"):
            for piece in model.stream(MESSAGES, OPTIONS, threading.Event()):
                pieces.append(piece)
    assert "".join(pieces) == "Belize City"


def test_a_body_shorter_than_promised_is_a_broken_connection() -> None:
    def short(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Content-Length", "10000")
        handler.end_headers()
        send(handler, chunk("Hi"))

    assert re.search("broke off the connection", stream_error(short))


def test_a_malformed_event_is_named() -> None:
    def garbled(handler: BaseHTTPRequestHandler) -> None:
        start_stream(handler)
        send(handler, chunk("Hi"), b"data: {not json\n\n")

    assert re.search(r"malformed event: \{not json", stream_error(garbled))


def test_an_event_of_the_wrong_shape_is_malformed() -> None:
    def odd(handler: BaseHTTPRequestHandler) -> None:
        start_stream(handler)
        send(handler, b'data: {"choices": [{"delta": {"content": 5}}]}\n\n')

    assert re.search("malformed event", stream_error(odd))


def test_an_error_event_mid_stream_carries_its_message() -> None:
    def fails(handler: BaseHTTPRequestHandler) -> None:
        start_stream(handler)
        send(handler, chunk("Hi"), b'data: {"error": {"message": "out of memory"}}\n\n')

    assert re.search("failed mid-answer: out of memory", stream_error(fails))


def test_a_silent_server_times_out() -> None:
    release = threading.Event()

    def silent(handler: BaseHTTPRequestHandler) -> None:
        start_stream(handler)
        release.wait(10)

    with misbehaving({"/v1/chat/completions": silent}) as url:
        try:
            with pytest.raises(ModelServerError, match=r"sent nothing for 0\.3 s"):
                collect(connected(url, timeout=0.3))
        finally:
            release.set()


def test_stop_ends_the_stream_while_the_server_is_silent() -> None:
    release = threading.Event()
    closed = threading.Event()

    def stalls(handler: BaseHTTPRequestHandler) -> None:
        start_stream(handler)
        send(handler, chunk("Hi"))
        release.wait(10)
        try:  # the client has gone: writing now fails (or is the last thing it ignores)
            for _ in range(50):
                send(handler, chunk(" more"))
        except OSError:
            closed.set()

    with misbehaving({"/v1/chat/completions": stalls}) as url:
        model = connected(url)
        stop = threading.Event()
        pieces = []
        for piece in model.stream(MESSAGES, OPTIONS, stop):
            pieces.append(piece)
            stop.set()  # the server now sends nothing; the stream must end anyway
        release.set()
        assert closed.wait(5)
    assert pieces == ["Hi"]


def test_stop_sequences_are_cut_even_when_the_server_ignores_them() -> None:
    def chatty(handler: BaseHTTPRequestHandler) -> None:
        assert "<|end|>" in handler.body["stop"]  # type: ignore[attr-defined]
        start_stream(handler)
        send(handler, chunk("Hello<|e"), chunk("nd|>\n<|user|>"), chunk(None, "stop"))
        send(handler, b"data: [DONE]\n\n")

    with misbehaving({"/v1/chat/completions": chatty}) as url:
        assert "".join(collect(connected(url))) == "Hello"


def test_finish_reason_without_done_is_a_complete_answer() -> None:
    def terse(handler: BaseHTTPRequestHandler) -> None:
        start_stream(handler)
        send(handler, b": keep-alive\n\n", chunk("All "), chunk("done", "stop"))

    with misbehaving({"/v1/chat/completions": terse}) as url:
        assert "".join(collect(connected(url))) == "All done"


# ---- token counting ----------------------------------------------------------------------
def test_without_a_tokenize_endpoint_counts_are_a_generous_estimate() -> None:
    with misbehaving({}) as url:
        model = connected(url)
        assert model.token_counting == "estimate"
        assert model.count_text_tokens("x" * 30) == 10
        # Four tokens of template per message and two for the answer's header.
        assert model.count_tokens([{"role": "user", "content": "x" * 30}]) == 10 + 4 + 2
        assert model.context_window == 4096


def test_llama_cpp_tokenize_and_apply_template_are_used() -> None:
    def tokenize(handler: BaseHTTPRequestHandler) -> None:
        content = handler.body.get("content")  # type: ignore[attr-defined]
        tokens = list(range(len(content.split()))) if isinstance(content, str) else []
        reply_json(handler, 200, {"tokens": tokens})

    def template(handler: BaseHTTPRequestHandler) -> None:
        turns = handler.body["messages"]  # type: ignore[attr-defined]
        prompt = " ".join(f"<|{m['role']}|> {m['content']} <|end|>" for m in turns)
        reply_json(handler, 200, {"prompt": prompt + " <|assistant|>"})

    with misbehaving({"/tokenize": tokenize, "/apply-template": template}) as url:
        model = connected(url)
        assert model.token_counting == "llamacpp"
        assert model.count_text_tokens("one two three") == 3
        assert model.count_tokens([{"role": "user", "content": "one two"}]) == 5


def test_the_context_window_setting_wins_over_the_default() -> None:
    with misbehaving({}) as url:
        assert connected(url, context_window=8192).context_window == 8192
