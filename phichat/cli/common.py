"""Flags shared by every subcommand that talks to the model, and settings from them."""

from __future__ import annotations

import argparse
from pathlib import Path

from phichat.config import Settings, load_settings

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
