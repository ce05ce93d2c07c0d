"""TurnStats: typed figures for one answer, stored as the same flat JSON rows always were."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from phichat.domain import CompareTimes, Conversation, Message, TurnStats
from phichat.storage import ConversationStore

# A row as phichat wrote it before TurnStats: every figure a float, compare's keys mixed in.
OLD_TIMINGS = {
    "load_s": 3.5,
    "search_s": 0.4,
    "fetch_s": 1.25,
    "query_s": 0.01,
    "sources_s": 1.7,
    "retrieval_wall_s": 1.9,
    "history_dropped": 0.0,
    "first_token_s": 2.5,
    "prefill_s": 0.75,
    "ttft_s": 0.7,
    "prompt_tokens": 980.0,
    "reused_tokens": 620.0,
    "new_tokens": 48.0,
    "tokens_per_s": 5.08,
    "total_s": 11.6,
    "compare_ttft_s": 4.0,
    "compare_total_s": 12.0,
}


def saved_with_raw_timings(tmp_path: Path, raw: str) -> tuple[Path, str]:
    path = tmp_path / "phichat.db"
    conversation = Conversation(title="old")
    with ConversationStore(path) as store:
        for message in (Message("user", "q"), Message("assistant", "a")):
            conversation.messages.append(message)
            store.save_message(conversation, message)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE messages SET timings = ? WHERE role = 'assistant'", (raw,))
    return path, conversation.id


def test_an_old_row_reads_as_typed_figures(tmp_path: Path) -> None:
    path, cid = saved_with_raw_timings(tmp_path, json.dumps(OLD_TIMINGS))
    with ConversationStore(path) as store:
        stats = store.load(cid).messages[1].timings
    assert isinstance(stats, TurnStats)
    assert (stats.prompt_tokens, stats.reused_tokens, stats.new_tokens) == (980, 620, 48)
    assert isinstance(stats.new_tokens, int) and stats.history_dropped == 0
    assert stats.load_s == 3.5 and stats.total_s == 11.6 and stats.first_token_s == 2.5
    assert stats.stages == {"search_s": 0.4, "fetch_s": 1.25}
    assert stats.compare == CompareTimes(ttft_s=4.0, total_s=12.0, retrieval_wall_s=1.9)
    # And it reads as the flat mapping it was stored as, figure for figure.
    assert dict(stats) == OLD_TIMINGS


def test_a_row_saved_again_keeps_the_same_flat_json(tmp_path: Path) -> None:
    path, cid = saved_with_raw_timings(tmp_path, json.dumps(OLD_TIMINGS))
    with ConversationStore(path) as store:
        conversation = store.load(cid)
        store.save_message(conversation, conversation.messages[1])
    with sqlite3.connect(path) as db:
        (raw,) = db.execute("SELECT timings FROM messages WHERE role = 'assistant'").fetchone()
    stored = json.loads(raw)
    assert stored == OLD_TIMINGS
    assert isinstance(stored["new_tokens"], int)  # a count is written as a count now


def test_damaged_figures_are_left_out_and_the_rest_kept(tmp_path: Path) -> None:
    raw = '{"new_tokens": "many", "total_s": NaN, "ttft_s": true, "prefill_s": 0.5, "x": [1]}'
    path, cid = saved_with_raw_timings(tmp_path, raw)
    with ConversationStore(path) as store:
        stats = store.load(cid).messages[1].timings
    assert dict(stats) == {"prefill_s": 0.5}


def test_unset_figures_are_absent_not_zero() -> None:
    stats = TurnStats(new_tokens=3, total_s=1.0)
    assert "load_s" not in stats and "first_token_s" not in stats
    assert stats.get("new_tokens") == 3 and len(stats) == 2
    assert Message("assistant", "x", timings={"new_tokens": 3.0, "total_s": 1.0}).timings == stats
