"""``phichat serve`` against hostile or broken HTTP clients, on loopback, with raw sockets.

Each test speaks HTTP by hand, because the point is what a well-behaved client library
would never send: a negative Content-Length, a request that never finishes arriving, a
foreign Host header, a client that hangs up while its answer is being generated.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace

from phichat.models.base import ChatModel, GenerationOptions
from phichat.models.scripted import ScriptedModel
from phichat.server.app import MAX_CHARS_PER_TOKEN, ChatServer, ServeOptions, make_server

SHORT = GenerationOptions(max_new_tokens=12)
OPTIONS = ServeOptions(model_id="tiny", defaults=SHORT)
MESSAGES = [{"role": "user", "content": "Plan a day in Belize City."}]
# The longest any test waits for the server; a passing test never gets near it.
PATIENCE_S = 30.0


@contextmanager
def serving(
    model: ChatModel, options: ServeOptions = OPTIONS, log: list[str] | None = None
) -> Iterator[ChatServer]:
    server = make_server(model, options, "127.0.0.1", 0, log=None if log is None else log.append)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def scripted(reply: str = "one two three", token_delay_s: float = 0.0) -> ScriptedModel:
    model = ScriptedModel([reply], token_delay_s=token_delay_s)
    model.load()
    return model


def connect(server: ChatServer) -> socket.socket:
    host, port = server.server_address[:2]
    sock = socket.create_connection((str(host), int(port)), timeout=PATIENCE_S)
    return sock


def read_to_close(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while True:
        try:
            piece = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not piece:
            return data
        data += piece


def request_bytes(
    body: dict[str, object] | bytes,
    *,
    path: str = "/v1/chat/completions",
    version: str = "HTTP/1.1",
    headers: dict[str, str] | None = None,
) -> bytes:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    fields = {"Host": "127.0.0.1", "Content-Length": str(len(payload)), "Connection": "close"}
    fields.update(headers or {})
    head = f"POST {path} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    return head.encode() + b"\r\n" + payload


def exchange(server: ChatServer, data: bytes, *, half_close: bool = False) -> bytes:
    with connect(server) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        return read_to_close(sock)


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def json_body(response: bytes) -> dict[str, object]:
    return json.loads(response.split(b"\r\n\r\n", 1)[1])


CHAT = {"model": "tiny", "messages": MESSAGES}


# ---- the body limit ------------------------------------------------------------------------
def test_a_negative_content_length_is_refused_without_reading_the_body() -> None:
    # rfile.read(-1) reads to EOF: the server read whatever the client sent, unbounded.
    with serving(scripted()) as server:
        data = request_bytes(CHAT, headers={"Content-Length": "-1"})
        response = exchange(server, data, half_close=True)
    assert status_of(response) == 400
    assert "Content-Length" in json_body(response)["error"]["message"]  # type: ignore[index]


def test_a_body_over_the_limit_is_refused_unread() -> None:
    options = replace(OPTIONS, max_body_bytes=1000)
    with serving(scripted(), options) as server:
        padded = {**CHAT, "padding": "x" * 2000}
        assert status_of(exchange(server, request_bytes(padded))) == 413
        assert status_of(exchange(server, request_bytes(CHAT))) == 200


# ---- text that is not Unicode --------------------------------------------------------------
def test_a_lone_surrogate_gets_a_400_not_a_dropped_connection(tiny_phi3) -> None:
    # JSON may spell a lone surrogate ("\ud800"); the tokenizer cannot take one.
    body = b'{"model": "tiny", "messages": [{"role": "user", "content": "\\ud800"}]}'
    with serving(tiny_phi3) as server:
        response = exchange(server, request_bytes(body))
        assert status_of(response) == 400
        assert "surrogate" in json_body(response)["error"]["message"]  # type: ignore[index]
        # The same in a stop sequence, which is matched against the answer's text.
        stop = b'{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], '
        stop += b'"stop": "\\udfff"}'
        assert status_of(exchange(server, request_bytes(stop))) == 400


class BrokenTokenizer(ScriptedModel):
    def count_tokens(self, messages: list) -> int:  # type: ignore[override,type-arg]
        raise TypeError("a tokenizer bug")


def test_an_unexpected_error_is_a_500_with_a_json_error() -> None:
    model = BrokenTokenizer(["never"])
    model.load()
    log: list[str] = []
    with serving(model, log=log) as server:
        response = exchange(server, request_bytes(CHAT))
    assert status_of(response) == 500
    assert "TypeError" in json_body(response)["error"]["message"]  # type: ignore[index]
    assert any("internal error: TypeError: a tokenizer bug" in line for line in log)


# ---- a client that leaves ------------------------------------------------------------------
def wait_until(condition: Callable[[], bool]) -> None:
    pause = threading.Event()
    for _ in range(int(PATIENCE_S / 0.01)):
        if condition():
            return
        pause.wait(0.01)
    raise AssertionError("the server never got there")


def wait_for_line(log: list[str], *markers: str) -> str:
    """The first log line holding any of ``markers``, waiting for it up to PATIENCE_S."""
    done = threading.Event()
    for _ in range(int(PATIENCE_S / 0.05)):
        for line in list(log):
            if any(marker in line for marker in markers):
                return line
        done.wait(0.05)
    raise AssertionError(f"no log line with {markers}: {log}")


def test_a_client_that_leaves_a_whole_answer_stops_its_generation() -> None:
    words = " ".join(f"w{index}" for index in range(400))
    log: list[str] = []
    model = scripted(words, token_delay_s=0.02)
    with serving(model, log=log) as server:
        with connect(server) as sock:
            sock.sendall(request_bytes({**CHAT, "max_tokens": 400}))
            wait_until(lambda: bool(model.prompts))  # generation has begun
        # Hung up without reading: the answer (8 s of tokens) has nobody to go to.
        line = wait_for_line(log, "client left", "answered")
    assert "client left" in line
    assert int(line.split("after ")[1].split()[0]) < 400


# ---- slow clients --------------------------------------------------------------------------
def server_closes(sock: socket.socket, drip: bytes) -> bool:
    """Send ``drip`` a byte at a time, 0.1 s apart; True once the server has hung up."""
    sock.settimeout(0.1)
    for index in range(int(PATIENCE_S / 0.1)):
        try:
            if index < len(drip):
                sock.sendall(drip[index : index + 1])
            if sock.recv(65536) == b"":
                return True
        except TimeoutError:
            continue
        except OSError:  # reset, broken pipe: closed too
            return True
    return False


QUICK = replace(OPTIONS, request_timeout_s=0.5)
HEADERS_ONLY = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


def test_a_connection_that_sends_nothing_is_closed() -> None:
    with serving(scripted(), QUICK) as server, connect(server) as sock:
        assert server_closes(sock, b"")


def test_headers_dripped_a_byte_at_a_time_are_cut_off() -> None:
    # Each byte arrives well within any per-read timeout: only a deadline stops this.
    with serving(scripted(), QUICK) as server, connect(server) as sock:
        assert server_closes(sock, HEADERS_ONLY + b"a" * 1000)


def test_a_body_that_never_arrives_is_cut_off() -> None:
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{"
    with serving(scripted(), QUICK) as server, connect(server) as sock:
        sock.sendall(head)
        assert server_closes(sock, b"")


def test_a_prompt_client_is_unaffected_by_the_deadline() -> None:
    with serving(scripted(), QUICK) as server, connect(server) as sock:
        # Two requests on one kept-alive connection, each sent at once.
        keep = {"Connection": "keep-alive"}
        for _ in range(2):
            sock.sendall(request_bytes(CHAT, headers=keep))
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(1)
            assert status_of(head) == 200
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            body = b""
            while len(body) < length:
                body += sock.recv(length - len(body))
            assert json.loads(body)["choices"][0]["message"]["content"] == "one two three"


# ---- browsers: CSRF and DNS rebinding ------------------------------------------------------
def test_a_keyless_server_refuses_foreign_hosts_and_cross_origin_pages() -> None:
    with serving(scripted()) as server:
        port = server.server_address[1]

        def status(headers: dict[str, str]) -> int:
            return status_of(exchange(server, request_bytes(CHAT, headers=headers)))

        # DNS rebinding: the attacker's name now points at 127.0.0.1, the Host header keeps it.
        assert status({"Host": f"rebind.attacker.example:{port}"}) == 403
        # CSRF: any web page can POST to localhost; the browser names the page's origin.
        assert status({"Origin": "https://attacker.example"}) == 403
        assert status({"Origin": "null"}) == 403  # a sandboxed frame or a file:// page
        response = exchange(server, request_bytes(CHAT, headers={"Host": "evil.example"}))
        assert "Host" in json_body(response)["error"]["message"]  # type: ignore[index]
        # Loopback names, and pages served from loopback, are this machine's own.
        for host in ("localhost", f"localhost:{port}", f"127.0.0.1:{port}", "[::1]:8000"):
            assert status({"Host": host}) == 200, host
        assert status({"Origin": "http://localhost:3000"}) == 200
        assert status({"Origin": f"http://127.0.0.1:{port}"}) == 200


def test_with_an_api_key_the_key_is_the_guard() -> None:
    keyed = replace(OPTIONS, api_key="s3cret")
    with serving(scripted(), keyed) as server:
        headers = {"Host": "gpu-box.lan:8000", "Authorization": "Bearer s3cret"}
        assert status_of(exchange(server, request_bytes(CHAT, headers=headers))) == 200


# ---- the wire format -----------------------------------------------------------------------
def test_stream_must_be_a_boolean() -> None:
    with serving(scripted()) as server:
        for flag in ("false", 0, "yes"):
            response = exchange(server, request_bytes({**CHAT, "stream": flag}))
            assert status_of(response) == 400, flag
            assert "'stream'" in json_body(response)["error"]["message"]  # type: ignore[index]
        options = {**CHAT, "stream": True, "stream_options": {"include_usage": "no"}}
        assert status_of(exchange(server, request_bytes(options))) == 400


def test_a_stream_to_an_http_1_0_client_is_not_chunked() -> None:
    # HTTP/1.0 has no chunked encoding: the body is the events themselves, ended by closing.
    with serving(scripted()) as server:
        data = request_bytes({**CHAT, "stream": True}, version="HTTP/1.0")
        head, body = exchange(server, data).split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.0 200") or head.startswith(b"HTTP/1.1 200")
    assert b"chunked" not in head.lower()
    events = [line for line in body.split(b"\n") if line]
    assert all(line.startswith(b"data: ") for line in events), body
    pieces = [json.loads(line[6:]) for line in events[:-1]]
    assert "".join(p["choices"][0]["delta"].get("content", "") for p in pieces) == "one two three"
    assert events[-1] == b"data: [DONE]"


def test_a_stream_to_an_http_1_1_client_is_still_chunked() -> None:
    with serving(scripted()) as server:
        head, body = exchange(server, request_bytes({**CHAT, "stream": True})).split(b"\r\n\r\n", 1)
    assert b"transfer-encoding: chunked" in head.lower()
    assert body.endswith(b"0\r\n\r\n")


# ---- expensive work ------------------------------------------------------------------------
class GateWatcher(ScriptedModel):
    """Records, each time the prompt is tokenized, whether the model gate was held."""

    def __init__(self) -> None:
        super().__init__(["one two three"])
        self.server: ChatServer | None = None
        self.gate_held: list[bool] = []

    def count_tokens(self, messages: list) -> int:  # type: ignore[override,type-arg]
        assert self.server is not None
        self.gate_held.append(self.server.gate.busy)
        return super().count_tokens(messages)


def test_a_chat_prompt_is_tokenized_inside_the_model_gate() -> None:
    # Tokenizing a large prompt takes seconds of CPU: outside the gate, any number of
    # requests would do it at once, next to the generation under way.
    model = GateWatcher()
    model.load()
    with serving(model) as server:
        model.server = server
        assert status_of(exchange(server, request_bytes(CHAT))) == 200
    assert model.gate_held and all(model.gate_held)


def test_text_far_beyond_the_window_is_refused_without_tokenizing() -> None:
    model = GateWatcher()
    model.load()
    huge = [{"role": "user", "content": "a" * (model.context_window * MAX_CHARS_PER_TOKEN + 1)}]
    with serving(model) as server:
        model.server = server
        response = exchange(server, request_bytes({**CHAT, "messages": huge}))
        assert status_of(response) == 400
        assert json_body(response)["error"]["code"] == "context_length_exceeded"  # type: ignore[index]
        tokenize = exchange(
            server,
            request_bytes({"prompt": "a" * (4096 * MAX_CHARS_PER_TOKEN + 1)}, path="/tokenize"),
        )
        assert status_of(tokenize) == 400
    assert model.gate_held == []


def test_a_client_that_leaves_while_queued_costs_the_model_nothing() -> None:
    model = scripted(" ".join(f"w{index}" for index in range(40)), token_delay_s=0.02)
    log: list[str] = []
    with serving(model, log=log) as server, connect(server) as first:
        first.sendall(request_bytes({**CHAT, "max_tokens": 40, "stream": True}))
        assert first.recv(1)  # the first answer is under way and holds the model
        with connect(server) as second:
            second.sendall(request_bytes(CHAT))
        # The second client hung up while waiting; the first one reads its whole answer.
        read_to_close(first)
        line = wait_for_line(log, "before its turn", "client left")
    assert "before its turn" in line
    assert len(model.prompts) == 1  # only the first request reached the model
