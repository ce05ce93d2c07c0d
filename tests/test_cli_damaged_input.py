"""Damaged data, odd bytes and impossible values: one line on stderr (or a skipped row),
never a traceback. The CLI runs in a real subprocess, as a user runs it."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from phichat.config import load_settings
from phichat.domain import Conversation, Message, Source
from phichat.errors import ConfigError
from phichat.storage import ConversationStore


def phichat(
    *args: str | bytes, stdin: bytes | None = None, stdout: int | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "phichat", *args],
        input=stdin,
        stdout=subprocess.PIPE if stdout is None else stdout,
        stderr=subprocess.PIPE,
        timeout=timeout,
        env=os.environ.copy(),
    )


def one_error_line(result: subprocess.CompletedProcess[bytes]) -> str:
    stderr = result.stderr.decode("utf-8", "replace")
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("phichat:")]
    assert len(lines) == 1, stderr
    return lines[0]


def database() -> Path:
    return Path(os.environ["PHICHAT_DATA_DIR"]) / "phichat.db"


@pytest.fixture
def saved() -> Conversation:
    conversation = Conversation(id="abcd00001111", title="Tides")
    with ConversationStore(database()) as store:
        for message in (
            Message(role="user", text="What causes tides?"),
            Message(
                role="assistant",
                text="The Moon [1].",
                sources=[Source(1, "Tides", "https://example.org/tides")],
                timings={"total_s": 1.0},
            ),
        ):
            conversation.messages.append(message)
            store.save_message(conversation, message)
    return conversation


def damage(sql: str) -> None:
    with sqlite3.connect(database()) as db:
        db.execute(sql)


# ---- lone surrogates (bug 8) ----------------------------------------------------------------
def test_undecodable_stdin_is_answered_not_a_traceback(tiny_phi3_path: Path) -> None:
    result = phichat(
        "ask", "--model", str(tiny_phi3_path), "--max-new-tokens", "3", "-", stdin=b"\xff\xfe hi"
    )
    stderr = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 0, stderr
    assert "Traceback" not in stderr


def test_an_undecodable_argument_is_answered_not_a_traceback(tiny_phi3_path: Path) -> None:
    result = phichat(
        "ask", "--model", str(tiny_phi3_path), "--max-new-tokens", "3", b"caf\xe9 \xff?"
    )
    stderr = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 0, stderr
    assert "Traceback" not in stderr


# ---- damaged data and config (bug 10) ---------------------------------------------------------
@pytest.mark.parametrize("column", ["sources", "timings"])
def test_export_with_corrupted_json_keeps_the_rest(saved: Conversation, column: str) -> None:
    damage(f"UPDATE messages SET {column} = '{{not json' WHERE role = 'assistant'")
    result = phichat("history", "export", saved.id)
    assert "Traceback" not in result.stderr.decode(), result.stderr.decode()
    assert result.returncode == 0
    assert "The Moon [" in result.stdout.decode()


def test_export_with_sources_of_the_wrong_shape_keeps_the_rest(saved: Conversation) -> None:
    damage("""UPDATE messages SET sources = '[{"n": "x"}, 5, {"passages": 3}]'""")
    result = phichat("history", "export", saved.id)
    assert "Traceback" not in result.stderr.decode(), result.stderr.decode()
    assert result.returncode == 0
    assert "The Moon [" in result.stdout.decode()


def test_history_skips_a_row_with_a_non_numeric_time(saved: Conversation) -> None:
    with ConversationStore(database()) as store:
        store.save_message(Conversation(id="ffff00002222", title="Good one"), Message("user", "x"))
    damage(f"UPDATE conversations SET updated_at = 'yesterday' WHERE id = '{saved.id}'")
    result = phichat("history")
    stderr = result.stderr.decode()
    assert "Traceback" not in stderr, stderr
    assert result.returncode == 0
    assert "Good one" in result.stdout.decode()
    assert "skipped 1" in stderr


def test_a_config_file_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_bytes(b'theme = "caf\xe9"\n')
    result = phichat("ask", "--config", str(config), "hi")
    assert result.returncode == 2
    assert "not UTF-8" in one_error_line(result)


def test_a_config_path_that_is_a_folder_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a folder"):
        load_settings(config_file=tmp_path)


def test_a_truncated_model_file_is_one_line(tiny_phi3_path: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken-model"
    broken.mkdir()
    for item in tiny_phi3_path.iterdir():
        if item.is_file():
            data = item.read_bytes()
            if item.name == "model.safetensors":
                data = data[: len(data) // 2]
            (broken / item.name).write_bytes(data)
    result = phichat("ask", "--model", str(broken), "hi")
    assert result.returncode == 2
    assert "model.safetensors" in one_error_line(result) or "damaged" in one_error_line(result)


def test_serve_refuses_a_port_out_of_range() -> None:
    result = phichat("serve", "--port", "70000")
    assert result.returncode == 2
    assert "70000" in result.stderr.decode()
    assert "Traceback" not in result.stderr.decode()


@pytest.fixture
def dev_full() -> Iterator[int]:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    fd = os.open("/dev/full", os.O_WRONLY)
    yield fd
    os.close(fd)


def test_writing_to_a_full_device_is_one_line(saved: Conversation, dev_full: int) -> None:
    result = phichat("history", "export", saved.id, stdout=dev_full)
    assert result.returncode == 1
    assert "cannot write" in one_error_line(result)


def test_a_closed_stdout_is_no_traceback(saved: Conversation) -> None:
    # `phichat history >&-`: stdout is not even open.
    result = subprocess.run(
        [sys.executable, "-m", "phichat", "history"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=os.environ.copy(),
        timeout=60,
        preexec_fn=lambda: os.close(1),
    )
    assert "Traceback" not in result.stderr.decode(), result.stderr.decode()
    assert result.returncode == 1


# ---- values accepted, then failing late (bug 12) ----------------------------------------------
def test_a_seed_too_large_for_the_model_is_refused_at_once() -> None:
    with pytest.raises(ConfigError, match="seed"):
        load_settings({"seed": str(2**70)})
    assert load_settings({"seed": str(2**32 - 1)}).seed == 2**32 - 1


def test_max_new_tokens_beyond_the_window_says_what_fits(tiny_phi3_path: Path) -> None:
    result = phichat("ask", "--model", str(tiny_phi3_path), "--max-new-tokens", "30000", "hi")
    line = one_error_line(result)
    assert "max_new_tokens" in line and "at most" in line, line
    assert "-" not in line.split("at most")[1].split()[0]


# ---- misleading messages ----------------------------------------------------------------------
@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_history_reads_a_read_only_data_folder(saved: Conversation) -> None:
    folder = database().parent
    for item in folder.iterdir():
        if item.name.endswith(("-wal", "-shm")):
            item.unlink()
    database().chmod(stat.S_IRUSR)
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        result = phichat("history")
        assert result.returncode == 0, result.stderr.decode()
        assert "Tides" in result.stdout.decode()
        exported = phichat("history", "export", saved.id)
        assert "The Moon [" in exported.stdout.decode(), exported.stderr.decode()
    finally:
        folder.chmod(stat.S_IRWXU)
        database().chmod(stat.S_IRUSR | stat.S_IWUSR)
