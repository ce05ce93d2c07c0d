"""``phichat download [MODEL]``: fetch weights from the Hugging Face Hub with progress."""

from __future__ import annotations

import argparse
import sys

from phichat.config import DEFAULT_MODEL, LONG_MODEL


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "download",
        help="download model weights from the Hugging Face Hub",
        description=f"Download a model into the Hugging Face cache. Phi-3 choices: "
        f"{DEFAULT_MODEL} (default, 4k context) or {LONG_MODEL} (128k context). "
        "--gguf fetches the 4-bit Phi-3-mini file for the gguf backend instead.",
    )
    parser.add_argument("model", nargs="?", default=None, help="Hugging Face model id")
    parser.add_argument(
        "--gguf",
        action="store_true",
        help="download the 4-bit Phi-3-mini GGUF file (about 2.2 GB) for --backend gguf",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.gguf:
        result = run_gguf(args)
    else:
        from phichat.models.hub import download

        model = args.model or DEFAULT_MODEL
        print(f"downloading {model} (Phi-3-mini is about 7.6 GB)…", file=sys.stderr)
        path = download(model)
        print(f"saved to {path}", file=sys.stderr)
        print(f"run: phichat --model {model}", file=sys.stderr)
        result = 0
    fetch_embedder()
    return result


def fetch_embedder() -> None:
    """Web search ranks passages with a small embedding model; fetch it now, not mid-search."""
    from phichat.config import load_settings
    from phichat.models.hub import download_embedder

    name = load_settings().embedder
    print(f"downloading {name}, the ranking model for web search (about 90 MB)…", file=sys.stderr)
    path = download_embedder(name)
    if path is not None:
        print(f"saved to {path}", file=sys.stderr)


def run_gguf(args: argparse.Namespace) -> int:
    from phichat.errors import PhichatError
    from phichat.models.hub import GGUF_FILE, GGUF_REPO, download_gguf

    if args.model:
        raise PhichatError("--gguf downloads the 4-bit Phi-3-mini; it takes no model id")
    print(f"downloading {GGUF_FILE} from {GGUF_REPO} (about 2.2 GB)…", file=sys.stderr)
    path = download_gguf()
    print(f"saved to {path}", file=sys.stderr)
    print("run: phichat --backend gguf   (needs: pip install 'phichat[gguf]')", file=sys.stderr)
    return 0
