"""What the subcommands that talk to the model share: their flags and the settings from
them, reading the question, Ctrl+C, the conversation they answer in, and the output
pieces ``ask`` and ``compare`` both print."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from phichat.cli.conversations import ShellConversation, open_conversation
from phichat.config import Settings, load_settings
from phichat.domain import Message, Source, TurnStats
from phichat.errors import PhichatError
from phichat.textsafe import one_line, replace_lone_surrogates

EXIT_INTERRUPTED = 130

# argparse destinations that map one-to-one onto settings of the same name.
_SETTING_FLAGS = (
    "backend",
    "base_url",
    "api_model",
    "model",
    "gguf_file",
    "device",
    "dtype",
    "max_new_tokens",
    "temperature",
    "top_p",
    "seed",
    "search",
    "engine",
    "searxng_url",
    "allow_private_urls",
    "context_chars",
    "preset",
)


def add_model_flags(parser: argparse.ArgumentParser, *, on_subcommand: bool = False) -> None:
    """Add the settings flags; a flag the user does not give stays unset.

    On a subcommand the flags default to SUPPRESS, so that an absent flag there does not
    overwrite the same flag given before the subcommand name.
    """
    group = parser.add_argument_group(
        "model and search settings (override the config file)",
        argument_default=argparse.SUPPRESS if on_subcommand else None,
    )
    group.add_argument("--config", type=Path, metavar="FILE", help="read settings from FILE")
    group.add_argument("--backend", help="transformers, openai (a model server) or gguf")
    # There is deliberately no --api-key: a key on the command line ends up in shell history
    # and in `ps`; it comes from the config file or PHICHAT_API_KEY.
    group.add_argument(
        "--base-url", metavar="URL", help="OpenAI-compatible server, e.g. http://host:8000/v1"
    )
    group.add_argument("--api-model", metavar="NAME", help="model name to ask the server for")
    group.add_argument("--model", metavar="ID_OR_PATH", help="Hugging Face id or local folder")
    group.add_argument(
        "--gguf-file", metavar="PATH", help="the .gguf file to run (with --backend gguf)"
    )
    group.add_argument("--device", help="auto, cuda, mps or cpu")
    group.add_argument("--dtype", help="auto, bfloat16, float16 or float32")
    group.add_argument("--max-new-tokens", metavar="N", help="longest answer, in tokens")
    group.add_argument("--temperature", metavar="T", help="0 for greedy decoding")
    group.add_argument("--top-p", metavar="P", help="nucleus sampling cut-off")
    group.add_argument("--seed", metavar="N", help="random seed for sampling")
    group.add_argument(
        "--search",
        action=argparse.BooleanOptionalAction,
        help="ground the answer in web search (--no-search: never touch the network)",
    )
    group.add_argument("--engine", help="duckduckgo or searxng")
    group.add_argument("--searxng-url", metavar="URL", help="base URL of a SearxNG instance")
    group.add_argument(
        "--allow-private-urls",
        action="store_const",
        const=True,
        help="allow fetching loopback and private-network pages",
    )
    group.add_argument("--context-chars", metavar="N", help="most characters of web text to pack")
    group.add_argument(
        "--preset", metavar="NAME", help="answer preset, such as itinerary (see README: Presets)"
    )


def settings_from_args(args: argparse.Namespace) -> Settings:
    flags = {name: getattr(args, name, None) for name in _SETTING_FLAGS}
    return load_settings(flags, config_file=getattr(args, "config", None))


def in_conversation(
    args: argparse.Namespace,
    settings: Settings,
    work: Callable[[ShellConversation], int],
    searches: bool,
) -> int:
    """Run ``work`` in the conversation the flags name (closed after), once a search
    that ``searches`` needs is known to be configured."""
    if searches:
        from phichat.retrieval.search import check_search_settings

        check_search_settings(settings)
    shell = open_conversation(args, settings)
    try:
        return work(shell)
    finally:
        shell.close()


def read_question(raw: str) -> str:
    """The question from the argument, or stdin for ``-``; undecodable bytes become U+FFFD."""
    if raw == "-":
        buffer = getattr(sys.stdin, "buffer", None)  # absent on a replaced (text) stdin
        if buffer is not None:
            data: bytes = buffer.read()
            text = data.decode(sys.stdin.encoding or "utf-8", "replace")
        else:
            text = replace_lone_surrogates(sys.stdin.read())
    else:
        text = replace_lone_surrogates(raw)  # argv bytes that are not UTF-8 arrive as surrogates
    if not text.strip():
        raise PhichatError("the question is empty")
    return text


@contextmanager
def stop_on_ctrl_c(stop: threading.Event) -> Iterator[None]:
    """First Ctrl+C asks generation to stop (keeping the partial answer); a second one quits."""

    def handle(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = signal.signal(signal.SIGINT, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def status(text: str) -> None:
    print(f"· {one_line(text)}", file=sys.stderr, flush=True)


def answer_json(message: Message, model_facts: dict[str, str]) -> dict[str, Any]:
    return {
        "answer": message.text,
        "model": model_facts.get("model", ""),
        "device": model_facts.get("device", ""),
        "dtype": model_facts.get("dtype", ""),
        "search_used": message.search_used,
        "grounded": message.grounded,
        "query": message.query,
        "sources": [{"n": s.n, "title": s.title, "url": s.url} for s in message.sources],
        "stopped": message.stopped,
        "timings": timings_json(message.timings),
    }


def timings_json(stats: TurnStats) -> dict[str, float]:
    """The documented figures first (0 where a turn has none), then every other time."""
    first = {
        "load_s": stats.load_s or 0.0,
        "ttft_s": stats.ttft_s or 0.0,
        "prompt_tokens": stats.prompt_tokens or 0,
        "reused_tokens": stats.reused_tokens or 0,
        "new_tokens": stats.new_tokens or 0,
        "tokens_per_s": stats.tokens_per_s or 0.0,
    }
    rest = {k: v for k, v in stats.as_dict().items() if k.endswith("_s") and k not in first}
    return {**first, **rest}


def unverified_urls(message: Message) -> list[str]:
    """The links in the answer that are not among its sources (once each, in order)."""
    from phichat.links import unverified_links

    urls = [one_line(link.url, 2000) for link in unverified_links(message.text, message.sources)]
    return list(dict.fromkeys(urls))


def write_unverified_links(message: Message) -> None:
    urls = unverified_urls(message)
    if urls:
        sys.stdout.write("\nUnverified links (not among the sources; check before opening):\n")
        sys.stdout.writelines(f"  ⚠ {url}\n" for url in urls)


def write_sources(sources: list[Source]) -> None:
    if sources:
        sys.stdout.write("\nSources:\n")
        for source in sources:
            sys.stdout.write(f"[{source.n}] {one_line(source.title)} <{one_line(source.url)}>\n")
