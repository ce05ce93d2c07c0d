"""``phichat history``: list saved conversations, show one (``history show ID``) or export
one (``history export ID``)."""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime
from pathlib import Path

from phichat.errors import PhichatError
from phichat.features.export import EXPORT_FORMATS, render
from phichat.textsafe import one_line

# Ids are 12 hex characters; show at least this many, more where two would look alike.
SHORT_ID_MIN = 8


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "history",
        help="list saved conversations, show one, or export one",
        description="List saved conversations, newest first. "
        "`phichat history show ID` prints one with its sources; "
        "`phichat history export ID` writes one as Markdown, or its trip plan as an iCalendar "
        "file (--format ics); any unique prefix of the id works.",
    )
    parser.set_defaults(handler=run_list)
    actions = parser.add_subparsers(dest="history_command", metavar="ACTION")
    listing = actions.add_parser("list", help="list saved conversations (the default)")
    listing.set_defaults(handler=run_list)
    export = actions.add_parser(
        "export",
        help="write a conversation as Markdown, or its trip plan as iCalendar",
        description="Write a conversation, with its sources as footnotes, to stdout or FILE. "
        "--format ics writes the newest day-by-day plan in it as calendar events instead.",
    )
    export.add_argument("id", metavar="ID", help="conversation id or a unique prefix of it")
    export.add_argument(
        "--format", choices=EXPORT_FORMATS, default="md", help="output format (default: md)"
    )
    export.add_argument(
        "--start",
        type=parse_day,
        metavar="YYYY-MM-DD",
        help="ics: the date of the plan's day 1 (default: tomorrow)",
    )
    export.add_argument("--output", "-o", type=Path, metavar="FILE", help="write to FILE")
    export.set_defaults(handler=run_export)
    show = actions.add_parser(
        "show",
        help="print one conversation: answers, citations and their sources",
        description="Print a conversation to stdout, each answer with its [n] citations and "
        "its sources under it: plain text when piped, formatted on a terminal. "
        "Any unique prefix of the id works.",
    )
    show.add_argument("id", metavar="ID", help="conversation id or a unique prefix of it")
    show.add_argument("--json", action="store_true", help="print the stored records as JSON")
    show.set_defaults(handler=run_show)


def run_list(args: argparse.Namespace) -> int:
    from phichat.storage import ConversationStore

    with ConversationStore() as store:
        conversations = store.list_conversations()
        damaged = store.damaged_conversations()
    if damaged:
        print(
            f"· skipped {damaged} conversation{'s' * (damaged != 1)} with damaged data",
            file=sys.stderr,
        )
    if not conversations:
        print("no saved conversations yet", file=sys.stderr)
        return 0
    width = short_id_length([c.id for c in conversations])
    print(f"{'ID':<{width}}  {'UPDATED':<16}  {'MSGS':>4}  TITLE")
    for conversation in conversations:
        updated = datetime.fromtimestamp(conversation.updated_at).strftime("%Y-%m-%d %H:%M")
        title = one_line(conversation.title, 80) or "(untitled)"
        short_id = conversation.id[:width]
        print(f"{short_id:<{width}}  {updated:<16}  {conversation.message_count:>4}  {title}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from phichat.storage import ConversationStore

    with ConversationStore() as store:
        conversation = store.load(store.resolve_id(args.id))
    text = render(conversation, args.format, start=getattr(args, "start", None))
    if args.output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return 0
    try:
        args.output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise PhichatError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def run_show(args: argparse.Namespace) -> int:
    from phichat.cli.history_show import show
    from phichat.storage import ConversationStore

    with ConversationStore() as store:
        conversation = store.load(store.resolve_id(args.id))
    show(conversation, sys.stdout, as_json=args.json)
    return 0


def parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date in the form YYYY-MM-DD: {text!r}") from None


def short_id_length(ids: list[str]) -> int:
    """The shortest prefix length (at least SHORT_ID_MIN) that tells every id apart."""
    length = SHORT_ID_MIN
    while length < max(map(len, ids), default=0) and len({i[:length] for i in ids}) < len(ids):
        length += 1
    return length
