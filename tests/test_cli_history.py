"""``phichat history``: the list, Markdown export, and one-line errors for bad ids."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from phichat.cli import main
from phichat.domain import Conversation, Message, Source
from phichat.storage import ConversationStore


def save(conversation: Conversation, *messages: Message) -> Conversation:
    with ConversationStore(clock=lambda: 1_700_000_000.0 + len(conversation.title)) as store:
        for message in messages:
            conversation.messages.append(message)
            store.save_message(conversation, message)
    return conversation


@pytest.fixture
def two_conversations() -> tuple[Conversation, Conversation]:
    paris = save(
        Conversation(id="aaaa11112222", title="Capital of France"),
        Message(role="user", text="What is the capital of France?"),
        Message(
            role="assistant",
            text="Paris [1].",
            search_used=True,
            grounded=True,
            sources=[Source(1, "Paris", "https://example.org/paris")],
        ),
    )
    # A longer title gives a later "updated" time from the fixed clock above.
    hostile = save(
        Conversation(id="aaaa33334444", title="\x1b[2Jcleared [bold red]x[/] and a long title"),
        Message(role="user", text="hi"),
    )
    return paris, hostile


def test_list_shows_id_prefix_time_count_and_clean_title(
    two_conversations: tuple[Conversation, Conversation], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["history"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "UPDATED", "MSGS", "TITLE"]
    assert "\x1b" not in out
    hostile_time = datetime.fromtimestamp(1_700_000_000.0 + 42).strftime("%Y-%m-%d %H:%M")
    paris_time = datetime.fromtimestamp(1_700_000_000.0 + 17).strftime("%Y-%m-%d %H:%M")
    assert lines[1:] == [
        f"aaaa3333  {hostile_time}     1  cleared [bold red]x[/] and a long title",
        f"aaaa1111  {paris_time}     2  Capital of France",
    ]
    assert main(["history", "list"]) == 0
    assert capsys.readouterr().out == out


def test_list_with_no_conversations_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history"]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no saved conversations" in captured.err


def test_export_writes_markdown_to_stdout(
    two_conversations: tuple[Conversation, Conversation], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["history", "export", "aaaa1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# Capital of France\n")
    assert "Paris [^1]." in out
    assert "[^1]: Paris — https://example.org/paris" in out


def test_export_writes_a_file_with_output(
    two_conversations: tuple[Conversation, Conversation],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    target = tmp_path / "paris.md"
    assert main(["history", "export", "aaaa11112222", "--format", "md", "-o", str(target)]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert str(target) in captured.err
    assert target.read_text(encoding="utf-8").startswith("# Capital of France\n")


@pytest.mark.parametrize(
    ("given", "expected"),
    [("zzzz", "no saved conversation"), ("aaaa", "matches 2 conversations")],
)
def test_bad_or_ambiguous_id_exits_2_with_one_line(
    two_conversations: tuple[Conversation, Conversation],
    capsys: pytest.CaptureFixture[str],
    given: str,
    expected: str,
) -> None:
    assert main(["history", "export", given]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("phichat: ")
    assert expected in captured.err


def test_unwritable_output_is_a_one_line_error(
    two_conversations: tuple[Conversation, Conversation],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    target = tmp_path / "no" / "such" / "folder" / "x.md"
    assert main(["history", "export", "aaaa1", "-o", str(target)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "cannot write" in err
