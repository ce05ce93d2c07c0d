"""``phichat serve`` over the tiny Phi-3, checked by phichat's own ``openai`` backend and by
the official ``openai`` client, on loopback only."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from phichat.cli import main
from phichat.config import load_settings
from phichat.errors import ConfigError, ModelServerError
from phichat.models import create_model
from phichat.models.base import ChatMessage, ChatModel, GenerationOptions, GenerationStats
from phichat.models.openai_compat import OpenAICompatModel
from phichat.models.scripted import ScriptedModel
from phichat.server.app import ChatServer, ServeOptions, check_bind, make_server

MESSAGES: list[ChatMessage] = [
    {"role": "system", "content": "You are brief."},
    {"role": "user", "content": "Plan a day in Belize City."},
]
SHORT = GenerationOptions(max_new_tokens=12)


@contextmanager
def serving(
    model: ChatModel,
    *,
    api_key: str | None = None,
    max_waiting: int = 8,
    log: list[str] | None = None,
) -> Iterator[ChatServer]:
    options = ServeOptions(
        model_id="tiny-phi3", defaults=SHORT, api_key=api_key, max_waiting=max_waiting
    )
    server = make_server(model, options, "127.0.0.1", 0, log=None if log is None else log.append)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def local_answer(model: ChatModel, options: GenerationOptions = SHORT) -> str:
    return "".join(model.stream(MESSAGES, options, threading.Event()))


# ---- phichat's openai backend against phichat serve ---------------------------------------
def test_openai_backend_matches_the_local_model_token_for_token(tiny_phi3) -> None:
    expected = local_answer(tiny_phi3)
    assert expected.strip()
    with serving(tiny_phi3) as server:
        remote = OpenAICompatModel(server.url)
        remote.load()
        # The only served model is picked, and the server reports the window and tokenizes.
        assert remote.name == "tiny-phi3"
        assert remote.context_window == tiny_phi3.context_window
        assert remote.token_counting == "vllm"
        assert remote.count_tokens(MESSAGES) == tiny_phi3.count_tokens(MESSAGES)
        text = "Skagway harbour, 42 trains"
        assert remote.count_text_tokens(text) == tiny_phi3.count_text_tokens(text)
        stats = GenerationStats()
        answer = "".join(remote.stream(MESSAGES, SHORT, threading.Event(), stats))
    assert answer == expected  # greedy decoding of the same weights: the same text
    assert stats.prompt_tokens == tiny_phi3.count_tokens(MESSAGES)
    assert stats.new_tokens > 0


def test_stop_closes_the_stream_and_the_server_stops_generating(tiny_phi3) -> None:
    log: list[str] = []
    long = GenerationOptions(max_new_tokens=3000)
    with serving(tiny_phi3, log=log) as server:
        remote = OpenAICompatModel(server.url)
        remote.load()
        stop = threading.Event()
        pieces = []
        for piece in remote.stream(MESSAGES, long, stop):
            pieces.append(piece)
            if len(pieces) == 3:
                stop.set()
        assert len(pieces) == 3
        # The server notices the closed connection and frees the model for the next client.
        assert "".join(remote.stream(MESSAGES, SHORT, threading.Event())) == local_answer(tiny_phi3)
    left = [line for line in log if "client left" in line]
    assert len(left) == 1
    assert int(left[0].split("after ")[1].split()[0]) < 3000


def test_ask_gives_the_same_answer_through_a_server(tiny_phi3, tiny_phi3_path, capsys) -> None:
    question = ["--max-new-tokens", "8", "--no-search", "Plan a day in Belize City."]
    assert main(["ask", "--model", str(tiny_phi3_path), *question]) == 0
    local = capsys.readouterr().out
    with serving(tiny_phi3) as server:
        flags = ["--backend", "openai", "--base-url", server.url, "--api-model", "tiny-phi3"]
        code = main(["ask", *flags, *question])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert out.out == local and local.strip()
    assert "tiny-phi3" in out.err  # progress names the served model, not the local default


def test_api_key_comes_from_the_environment_and_is_enforced(tiny_phi3, monkeypatch) -> None:
    with serving(tiny_phi3, api_key="s3cret") as server:
        keyless = OpenAICompatModel(server.url)
        with pytest.raises(ModelServerError, match="refused the API key"):
            keyless.load()
        monkeypatch.setenv("PHICHAT_API_KEY", "s3cret")
        settings = load_settings({"backend": "openai", "base_url": server.url})
        assert "s3cret" not in repr(settings)  # a key never reaches a log or a traceback
        model = create_model(settings)
        model.load()
        assert "".join(model.stream(MESSAGES, SHORT, threading.Event())) == local_answer(tiny_phi3)


def test_there_is_no_api_key_flag() -> None:
    with pytest.raises(SystemExit):
        main(["ask", "--api-key", "x", "question"])


def test_an_unknown_model_is_a_clear_404(tiny_phi3) -> None:
    with serving(tiny_phi3) as server:
        remote = OpenAICompatModel(server.url, api_model="phi-9")
        remote.load()
        with pytest.raises(ModelServerError, match=r"404.*'phi-9'"):
            list(remote.stream(MESSAGES, SHORT, threading.Event()))


def test_a_second_client_beyond_the_queue_gets_429() -> None:
    slow = ScriptedModel(["one two three four five six seven eight"], token_delay_s=0.2)
    slow.load()
    with serving(slow, max_waiting=0) as server:
        first = OpenAICompatModel(server.url, api_model="tiny-phi3")
        second = OpenAICompatModel(server.url, api_model="tiny-phi3")
        first.load()
        second.load()
        stream = first.stream(MESSAGES, SHORT, threading.Event())
        assert next(stream)  # the first answer is under way and holds the model
        with pytest.raises(ModelServerError, match="429"):
            list(second.stream(MESSAGES, SHORT, threading.Event()))
        assert "".join(stream)  # the first finishes undisturbed
        stream.close()


def test_a_public_address_needs_an_api_key(capsys) -> None:
    with pytest.raises(ConfigError, match="api_key"):
        check_bind("0.0.0.0", None)
    check_bind("0.0.0.0", "key")  # allowed once a key is set
    check_bind("::1", None)
    # The CLI refuses before loading any model.
    assert main(["serve", "--host", "192.0.2.1", "--model", "/nonexistent"]) == 2
    assert "api_key" in capsys.readouterr().err


def test_bad_requests_get_openai_shaped_errors(tiny_phi3) -> None:
    with serving(tiny_phi3) as server:
        base = server.url
        bad_json = httpx.post(
            f"{base}/chat/completions", content=b"{nope", headers={"Content-Type": "x"}
        )
        assert bad_json.status_code == 400
        assert "JSON" in bad_json.json()["error"]["message"]
        too_long = httpx.post(
            f"{base}/chat/completions",
            json={"model": "tiny-phi3", "messages": MESSAGES, "max_tokens": 5000},
        )
        assert too_long.status_code == 400
        assert too_long.json()["error"]["code"] == "context_length_exceeded"
        wrong_role = httpx.post(
            f"{base}/chat/completions",
            json={"model": "tiny-phi3", "messages": [{"role": "tool", "content": "x"}]},
        )
        assert wrong_role.status_code == 400
        assert httpx.get(f"{base}/nothing").status_code == 404


# ---- the official openai client, as an independent second client ---------------------------
def test_official_openai_client_lists_and_completes(tiny_phi3) -> None:
    openai = pytest.importorskip("openai", reason="the openai package is in the test extra")
    expected = local_answer(tiny_phi3)
    with serving(tiny_phi3) as server:
        client = openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0)
        assert [m.id for m in client.models.list()] == ["tiny-phi3"]
        whole = client.chat.completions.create(
            model="tiny-phi3", messages=MESSAGES, max_tokens=SHORT.max_new_tokens
        )
        assert whole.choices[0].message.content == expected
        assert whole.choices[0].finish_reason == "length"
        assert whole.usage is not None
        assert whole.usage.prompt_tokens == tiny_phi3.count_tokens(MESSAGES)
        assert whole.usage.completion_tokens == SHORT.max_new_tokens
        chunks = list(
            client.chat.completions.create(
                model="tiny-phi3",
                messages=MESSAGES,
                max_tokens=SHORT.max_new_tokens,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert streamed == expected
        assert chunks[-1].usage is not None
        assert chunks[-1].usage.completion_tokens == SHORT.max_new_tokens


def test_official_openai_client_sees_auth_and_model_errors(tiny_phi3) -> None:
    openai = pytest.importorskip("openai", reason="the openai package is in the test extra")
    with serving(tiny_phi3, api_key="s3cret") as server:
        wrong = openai.OpenAI(base_url=server.url, api_key="guess", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            wrong.models.list()
        right = openai.OpenAI(base_url=server.url, api_key="s3cret", max_retries=0)
        with pytest.raises(openai.NotFoundError):
            right.chat.completions.create(model="gpt-9", messages=MESSAGES)


def test_phichat_serve_command_serves_until_ctrl_c(tiny_phi3_path) -> None:
    command = [sys.executable, "-m", "phichat", "serve", "--model", str(tiny_phi3_path)]
    process = subprocess.Popen(
        [*command, "--port", "0", "--served-model-name", "tiny", "--max-new-tokens", "5"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stderr is not None
        url = ""
        for line in process.stderr:
            if "serving tiny" in line:
                url = line.split(" at ")[1].split()[0]
                break
        assert url.startswith("http://127.0.0.1:")
        assert [m["id"] for m in httpx.get(f"{url}/models").json()["data"]] == ["tiny"]
        reply = httpx.post(
            f"{url}/chat/completions",
            json={"model": "tiny", "messages": MESSAGES},
            timeout=60,
        ).json()
        assert reply["usage"]["completion_tokens"] == 5  # the --max-new-tokens default
        process.send_signal(signal.SIGINT)
        rest = process.communicate(timeout=30)[1]
    finally:
        process.kill()
    assert process.returncode == 0
    assert "stopped" in rest and "Traceback" not in rest


async def test_the_tui_chats_through_a_model_server(tiny_phi3, tmp_path) -> None:
    from textual.widgets import Static
    from ui_support import make_app, send

    from phichat.chat.factory import turn_options
    from phichat.chat.session import Session
    from phichat.config import Settings
    from phichat.domain import Conversation
    from phichat.ui.widgets.answer import Answer

    question = "Plan a day in Belize City."
    local = Session(tiny_phi3, turn_options(Settings(max_new_tokens=8)))
    events = list(local.respond(Conversation(), question, False, threading.Event()))
    expected = events[-1].message.text  # type: ignore[union-attr]
    assert expected.strip()
    with serving(tiny_phi3) as server:
        app = make_app(tmp_path, model=OpenAICompatModel(server.url), max_new_tokens=8)
        async with app.run_test(size=(100, 30)) as pilot:
            await send(pilot, app, question)
            answers = list(app.query(Answer))
            assert [answer.text for answer in answers] == [expected]
            status = " ".join(
                str(w.render()) for w in app.query(Static) if "tiny-phi3" in str(w.render())
            )
            assert "127.0.0.1" in status
