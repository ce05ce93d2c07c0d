"""``phichat download [MODEL]``: fetch weights from the Hugging Face Hub with progress."""

from __future__ import annotations

import argparse
import sys

from phichat.config import DEFAULT_MODEL, LONG_MODEL


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser(
        "download",
        help="download model weights from the Hugging Face Hub",
        description=f"Download a model into the Hugging Face cache. Phi-3 choices: "
        f"{DEFAULT_MODEL} (default, 4k context) or {LONG_MODEL} (128k context).",
    )
    parser.add_argument("model", nargs="?", default=DEFAULT_MODEL, help="Hugging Face model id")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from phichat.models.hub import download

    print(f"downloading {args.model} (Phi-3-mini is about 7.6 GB)…", file=sys.stderr)
    path = download(args.model)
    print(f"saved to {path}", file=sys.stderr)
    print(f"run: phichat --model {args.model}", file=sys.stderr)
    return 0
