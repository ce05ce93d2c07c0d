"""The whole-turn benchmark in its tiny mode, so that it keeps running as the code changes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))


def test_the_tiny_turn_benchmark_prints_its_table_and_reuses_the_prefix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import turn

    args = turn.parse_args(
        [
            *("--tiny", "--turns=2", "--pages=2", "--answer-tokens=4", "--raw-decode=2"),
            *("--context-chars=1000", "--page-delay=0", "--sweep", "500"),
        ]
    )
    args.folder = tmp_path / "model"
    turn.prepare_folder(args.folder, args.shape, args.vocab)
    result = turn.measure(args)
    turn.print_result(result, "a test machine")
    printed = capsys.readouterr().out
    assert "| turn | first token | query | retrieval | prefill |" in printed
    assert "raw transformers forward" in printed and "| 500 chars |" in printed
    first, follow_up = result["turns"]
    assert first["reused_tokens"] == 0 and first["context_chars"] > 0
    # The follow-up's prompt starts with turn 1's prompt and answer, as sent.
    assert follow_up["reused_tokens"] >= first["prompt_tokens"]
    assert follow_up["shared_tokens"] >= first["prompt_tokens"] - 1
    assert follow_up["prompt_tokens"] > follow_up["reused_tokens"]
    assert result["sweep"][500]["prompt_tokens"] < first["prompt_tokens"]
    assert all(turn["ttft_s"] > 0 and turn["new_tokens"] > 0 for turn in result["turns"])
