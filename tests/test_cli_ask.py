"""`phichat ask` end to end, in a real subprocess, on the tiny random Phi-3."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest


def phichat(
    *args: str, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "phichat", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
    )


def test_json_output_has_the_answer_and_timings(tiny_phi3_path: Path) -> None:
    result = phichat(
        "ask", "--model", str(tiny_phi3_path), "--max-new-tokens", "10", "--json", "hi"
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["answer"]
    assert data["model"] == str(tiny_phi3_path)
    assert data["device"] == "cpu" and data["dtype"] in ("bfloat16", "float32")
    assert data["search_used"] is False and data["sources"] == []
    timings = data["timings"]
    assert set(timings) >= {"load_s", "ttft_s", "prompt_tokens", "new_tokens", "tokens_per_s"}
    assert {"reused_tokens", "first_token_s", "prefill_s"} <= set(timings)
    assert timings["new_tokens"] == 10 and timings["prompt_tokens"] > 0 and timings["load_s"] > 0


def test_plain_output_streams_the_answer_to_stdout(tiny_phi3_path: Path) -> None:
    result = phichat(
        "ask", "--model", str(tiny_phi3_path), "--max-new-tokens", "6", "-", stdin="hi\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert "loading" in result.stderr  # progress goes to stderr, not into the answer


def test_missing_model_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    result = phichat("ask", "--model", str(tmp_path / "no-such-model"), "hi")
    assert result.returncode == 2
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.startswith("phichat:")]
    assert lines == [f"phichat: model folder {tmp_path / 'no-such-model'} does not exist"]
    assert "Traceback" not in result.stderr


def test_uncached_hub_model_says_how_to_get_it() -> None:
    result = phichat("ask", "hi", timeout=60)
    assert result.returncode == 2
    assert "phichat download microsoft/Phi-3-mini-4k-instruct" in result.stderr
    assert "Traceback" not in result.stderr


def test_empty_question_is_rejected(tiny_phi3_path: Path) -> None:
    result = phichat("ask", "--model", str(tiny_phi3_path), "   ")
    assert result.returncode == 1
    assert "phichat: the question is empty" in result.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_stops_generation_keeps_the_partial_answer_and_exits_130(
    tiny_phi3_long_path: Path,
) -> None:
    # The 128k-window model allows a very long answer, so only Ctrl+C can end this one.
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "phichat",
            "ask",
            "--model",
            str(tiny_phi3_long_path),
            "--max-new-tokens",
            "30000",
            "hi",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    assert process.stdout is not None
    first = process.stdout.read(1)  # blocks until the answer starts streaming
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert (first + out).rstrip().endswith("[stopped]")
    assert len(first + out) > len("[stopped]") + 1
    assert "Traceback" not in err


def test_download_fails_clearly_when_the_hub_is_unreachable() -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"}
    result = subprocess.run(
        [sys.executable, "-m", "phichat", "download", "microsoft/Phi-3-mini-4k-instruct"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 1
    assert "cannot reach the Hugging Face Hub" in result.stderr
    assert "Traceback" not in result.stderr
