"""The ``phichat`` command: the TUI by default, and ask / search / download / history.

Only argparse and the settings are imported here; each subcommand imports what it needs
when it runs, so ``phichat --help`` answers instantly and never loads torch.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Sequence

from phichat import __version__
from phichat.cli import ask, compare, download, history, search, serve
from phichat.cli.common import add_model_flags, settings_from_args
from phichat.errors import PhichatError
from phichat.textsafe import one_line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="phichat",
        description="Chat with Phi-3-mini in your terminal, optionally grounded in web search.",
    )
    parser.add_argument("--version", action="version", version=f"phichat {__version__}")
    parser.add_argument(
        "--cid",
        metavar="ID",
        help="open the app on saved conversation ID (any unique prefix; see `phichat history`)",
    )
    add_model_flags(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    ask.register(commands)
    compare.register(commands)
    download.register(commands)
    history.register(commands)
    search.register(commands)
    serve.register(commands)
    return parser


def run_tui(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    conversation = None
    if args.cid is not None:
        # Resolved before the app starts, so a wrong id is a one-line error (exit 2).
        from phichat.cli.conversations import load_conversation
        from phichat.storage import ConversationStore

        with ConversationStore() as store:
            conversation = load_conversation(store, args.cid)
    from phichat.ui.app import run_app

    return run_app(settings, conversation)


# Writing the output failed for a reason of the output's own (a full disk, a closed or
# broken file): one line, not a traceback.
_OUTPUT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EBADF, errno.EIO, errno.EFBIG}


def main(argv: Sequence[str] | None = None) -> int:
    if sys.stdout is None:  # started with stdout closed (`phichat ... >&-`)
        print("phichat: standard output is closed: nowhere to write to", file=sys.stderr)
        return 1
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", run_tui)
    try:
        code = int(handler(args) or 0)
        sys.stdout.flush()  # so a full disk is reported here, not ignored at exit
        return code
    except PhichatError as exc:
        print(f"phichat: {one_line(str(exc), 500)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `phichat ask ... | head` closed the pipe: not an error worth a traceback.
        _discard_stdout()
        return 0
    except OSError as exc:
        if exc.errno not in _OUTPUT_ERRNOS:
            raise
        _discard_stdout()
        print(f"phichat: cannot write the output: {exc.strerror or exc}", file=sys.stderr)
        return 1


def _discard_stdout() -> None:
    """Point stdout at the null device, so the flush at exit does not fail a second time."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (OSError, ValueError):
        pass
