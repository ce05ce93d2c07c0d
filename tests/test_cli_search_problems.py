"""Search trouble from the command line: one clear line, the right exit status, no traceback.

Real subprocesses against the loopback SearxNG fixture (issue 12, bug 6 and the messages
about `searxng_url`), and `compare` in-process with a retriever that fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from webfixture import LoopbackWeb, loopback_web_fixture  # noqa: F401

from phichat.cli import main
from phichat.errors import PhichatError
from phichat.retrieval.types import PackBudget, Retrieval, RetrievalProgress


def phichat(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "phichat", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
    )


def searxng(web: LoopbackWeb) -> list[str]:
    return ["--engine", "searxng", "--searxng-url", web.base, "--allow-private-urls"]


@pytest.mark.parametrize("body", [b'{"results": null}', b'{"results": 5}'])
def test_search_with_a_damaged_reply_is_one_line(loopback_web: LoopbackWeb, body: bytes) -> None:
    loopback_web.search_body = body
    result = phichat("search", *searxng(loopback_web), "--json", "anything")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert json.loads(result.stdout)["sources"] == []
    assert result.stderr.splitlines()[-1] == (
        f"phichat: search unavailable: SearxNG at {loopback_web.base} sent a malformed "
        "reply (no list of results)"
    )


def test_search_with_deeply_nested_json_is_one_line(loopback_web: LoopbackWeb) -> None:
    loopback_web.search_body = b'{"results": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    result = phichat("search", *searxng(loopback_web), "anything")
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith("phichat: search engine misconfigured:")
    assert result.returncode == 2


def test_ask_search_with_a_damaged_reply_answers_without_sources(
    tiny_phi3_path: Path, loopback_web: LoopbackWeb
) -> None:
    loopback_web.search_body = b'{"results": null}'
    result = phichat(
        "ask",
        "--model",
        str(tiny_phi3_path),
        "--max-new-tokens",
        "4",
        "--search",
        *searxng(loopback_web),
        "--json",
        "hi",
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    data = json.loads(result.stdout)
    assert data["answer"] and data["grounded"] is False and data["sources"] == []
    assert "sent a malformed reply (no list of results); answering without sources" in (
        result.stderr
    )


def test_search_with_no_results_says_so(loopback_web: LoopbackWeb) -> None:
    result = phichat("search", *searxng(loopback_web), "zzqx")
    assert result.returncode == 0, result.stderr
    assert "· no results for this query" in result.stderr.splitlines()


@pytest.mark.parametrize("command", ["search", "ask", "compare"])
def test_a_malformed_searxng_url_is_a_setup_error_at_once(command: str) -> None:
    extra = ["--search"] if command == "ask" else []
    result = phichat(
        command, *extra, "--engine", "searxng", "--searxng-url", "127.0.0.1:8888", "hi"
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        "phichat: searxng_url 127.0.0.1:8888 is not an http(s) URL with a host, such as "
        "http://127.0.0.1:8888\n"
    )


def test_credentials_in_searxng_url_stay_out_of_the_error(loopback_web: LoopbackWeb) -> None:
    loopback_web.search_status = 500
    url = loopback_web.base.replace("http://", "http://alice:s3cr3t@")
    result = phichat("search", "--engine", "searxng", "--searxng-url", url, "anything")
    assert result.returncode == 1
    assert "s3cr3t" not in result.stderr and "alice" not in result.stderr
    assert f"…@127.0.0.1:{loopback_web.port}" in result.stderr


class FailingRetriever:
    def retrieve(
        self, query: str, budget: PackBudget, progress: RetrievalProgress, stop: threading.Event
    ) -> Retrieval:
        raise PhichatError("the retriever broke")


def test_compare_exits_non_zero_when_an_answer_fails(
    tiny_phi3_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        "phichat.chat.factory.create_retriever", lambda settings: FailingRetriever()
    )
    code = main(["compare", "--model", str(tiny_phi3_path), "--max-new-tokens", "4", "hi"])
    out = capsys.readouterr().out
    assert "[failed: the retriever broke]" in out
    assert code == 1
