"""``phichat search QUESTION``: run retrieval alone and show what the model would be given."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from phichat.cli.common import add_model_flags, settings_from_args
from phichat.config import Settings
from phichat.errors import ConfigError, PhichatError
from phichat.textsafe import one_line, strip_control

if TYPE_CHECKING:
    from phichat.retrieval.types import Retrieval

STAGE_TIMINGS = ("search_s", "fetch_s", "extract_s", "rank_s", "total_s")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "search",
        help="run web retrieval alone and print the packed context (no model needed)",
        description="Search, fetch, rank and pack web passages for QUESTION, and print the "
        "numbered sources and the exact context the model would be given.",
    )
    parser.add_argument("question", help="the question, or - to read it from stdin")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--previous",
        action="append",
        default=[],
        metavar="TEXT",
        help="an earlier user message of the conversation (repeat, oldest first): the query "
        "is then built for a follow-up exactly as the app builds it",
    )
    add_model_flags(parser, on_subcommand=True)
    parser.set_defaults(handler=run)


def status(text: str) -> None:
    print(f"· {one_line(text)}", file=sys.stderr, flush=True)


def load_token_counter(settings: Settings) -> Callable[[str], int] | None:
    """The model's tokenizer, if it is already on disk; None otherwise (never downloads)."""
    try:
        from phichat.models.hub import resolve_model_path

        path = resolve_model_path(settings.model)
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception:
        return None
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


def search_json(retrieval: Retrieval, context_tokens: int | None) -> dict[str, Any]:
    return {
        "query": retrieval.query,
        "sources": [{"n": s.n, "title": s.title, "url": s.url} for s in retrieval.sources],
        "context": retrieval.context_text,
        "context_chars": len(retrieval.context_text),
        "context_tokens": context_tokens,
        "pages": [
            {"url": page.url, "ok": page.fetched_ok, "error": page.error, "chars": page.chars}
            for page in retrieval.pages
        ],
        "timings": {key: round(retrieval.timings.get(key, 0.0), 4) for key in STAGE_TIMINGS},
    }


def print_report(retrieval: Retrieval, context_tokens: int | None) -> None:
    out = sys.stdout
    out.write(f"query: {one_line(retrieval.query)}\n\n")
    if retrieval.sources:
        out.write("Sources:\n")
        for source in retrieval.sources:
            out.write(f"[{source.n}] {one_line(source.title)} <{one_line(source.url)}>\n")
    else:
        out.write("No sources.\n")
    size = f"{len(retrieval.context_text)} characters"
    if context_tokens is not None:
        size += f", {context_tokens} tokens"
    out.write(f"\nContext ({size}):\n")
    out.write(strip_control(retrieval.context_text) + "\n")
    out.write("\nPages:\n")
    for page in retrieval.pages:
        state = f"ok, {page.chars} characters" if page.fetched_ok else page.error or "failed"
        out.write(f"  {one_line(page.url)}: {one_line(state)}\n")
    figures = ", ".join(f"{key} {retrieval.timings.get(key, 0.0):.2f}" for key in STAGE_TIMINGS)
    out.write(f"\nTimings (s): {figures}\n")
    out.flush()


def run(args: argparse.Namespace) -> int:
    from phichat.cli.ask import read_question, stop_on_ctrl_c
    from phichat.retrieval.pipeline import WebRetriever
    from phichat.retrieval.search import check_search_settings
    from phichat.retrieval.searchproblems import NO_RESULTS, is_setup_problem, problem_line
    from phichat.retrieval.types import PackBudget

    settings = settings_from_args(args)
    # A setup mistake, not a network failure: say so before searching at all.
    check_search_settings(settings)
    from phichat.chat.presets import load_preset
    from phichat.chat.query import turn_query

    preset = load_preset(settings.preset) if settings.preset else None
    question = turn_query(args.previous, read_question(args.question), preset)
    stop = threading.Event()
    retriever = WebRetriever(settings)
    with stop_on_ctrl_c(stop):
        retrieval = retriever.retrieve(
            question,
            PackBudget(max_chars=settings.context_chars),
            lambda stage, detail: status(f"{stage} {detail}".strip()),
            stop,
        )
    for warning in retrieval.warnings:
        status(warning)
    count_tokens = load_token_counter(settings) if retrieval.context_text else None
    tokens = count_tokens(retrieval.context_text) if count_tokens is not None else None
    if args.json:
        json.dump(search_json(retrieval, tokens), sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
        sys.stdout.flush()
    else:
        print_report(retrieval, tokens)
    if retrieval.search_error:
        error = PhichatError(problem_line(retrieval.search_error))
        error.exit_code = ConfigError.exit_code if is_setup_problem(retrieval.search_error) else 1
        raise error
    if not retrieval.pages and not stop.is_set():
        status(NO_RESULTS)
    return 130 if stop.is_set() else 0
