"""The one table of key bindings: it builds every ``Binding``, the F1 help and the README.

Each row has a stable id, which is what ``[keys]`` in the config file remaps (Textual's
keymap), so the help screen and the README always show the keys that actually work.

Run ``python -m phichat.ui.keys`` to print the Markdown table for the README.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from textual.binding import Binding, BindingType
from textual.keys import Keys

Scope = Literal["app", "composer", "sources"]

SCOPE_TITLES: dict[Scope, str] = {
    "app": "Anywhere",
    "composer": "In the message box",
    "sources": "In a list of sources",
}


@dataclass(frozen=True)
class KeySpec:
    id: str
    key: str  # Textual key names, comma-separated for alternatives
    action: str
    description: str
    scope: Scope = "app"
    show: bool = True  # shown in the footer
    priority: bool = False
    label: str = ""  # the footer's short name; the description when empty


KEYS: tuple[KeySpec, ...] = (
    KeySpec("send", "enter", "submit", "Send the message", "composer", priority=True, label="Send"),
    KeySpec(
        "newline",
        "shift+enter,ctrl+j",
        "newline",
        "Start a new line in the message",
        "composer",
        show=False,
        priority=True,
    ),
    KeySpec(
        "recall_previous",
        "up",
        "recall_previous",
        "Recall an earlier prompt (from the first line)",
        "composer",
        show=False,
    ),
    KeySpec(
        "recall_next",
        "down",
        "recall_next",
        "Recall a later prompt (from the last line)",
        "composer",
        show=False,
    ),
    KeySpec(
        "toggle_search",
        "ctrl+t",
        "toggle_search",
        "Web search on or off for the next message",
        label="Search",
    ),
    KeySpec(
        "cancel",
        "escape",
        "cancel",
        "Stop retrieval or generation, keeping the partial answer",
        label="Stop",
    ),
    KeySpec(
        "regenerate", "ctrl+r", "regenerate", "Answer the last message again", label="Regenerate"
    ),
    KeySpec(
        "regenerate_flipped",
        "ctrl+g",
        "regenerate_flipped",
        "Answer the last message again with search flipped",
        show=False,
    ),
    KeySpec(
        "sources", "ctrl+o", "focus_sources", "Go to the sources of the last answer", show=False
    ),
    KeySpec(
        "show_context", "f4", "show_context", "Show the passages packed into the prompt", show=False
    ),
    KeySpec(
        "new_conversation", "ctrl+n", "new_conversation", "Start a new conversation", label="New"
    ),
    KeySpec(
        "toggle_sidebar",
        "ctrl+b",
        "toggle_sidebar",
        "Show or hide the conversation list",
        label="Chats",
    ),
    KeySpec("rename", "f2", "rename_conversation", "Rename the conversation", show=False),
    KeySpec(
        "delete", "f8", "delete_conversation", "Delete the conversation (asks first)", show=False
    ),
    KeySpec(
        "export", "ctrl+s", "export_conversation", "Export the conversation to Markdown", show=False
    ),
    KeySpec(
        "export_calendar",
        "f3",
        "export_calendar",
        "Export the trip plan to a calendar file (.ics)",
        show=False,
    ),
    KeySpec(
        "compare",
        "f5",
        "compare",
        "Compare: answer the question without and with search, side by side",
        show=False,
    ),
    # Not F6 or F7: the message box (a TextArea) uses those to select text.
    KeySpec("preset", "f12", "pick_preset", "Pick an answer preset, such as itinerary", show=False),
    KeySpec(
        "pin_sources",
        "ctrl+l",
        "pin_sources",
        "Pin the last answer's sources for the next questions (again: unpin)",
        show=False,
    ),
    KeySpec("theme", "f9", "change_theme", "Pick a colour theme (remembered)", show=False),
    KeySpec("help", "f1", "help", "Show this list of keys", label="Help"),
    KeySpec("quit", "ctrl+q", "quit", "Quit", priority=True),
    KeySpec(
        "open_source",
        "o",
        "open_source",
        "Open the source in the browser (or Enter)",
        "sources",
        label="Open",
    ),
    KeySpec(
        "copy_source", "c", "copy_source", "Copy the source's URL", "sources", label="Copy URL"
    ),
    KeySpec(
        "source_context",
        "x",
        "source_context",
        "Show the passages taken from it",
        "sources",
        label="Context",
    ),
)

# Not a Binding of ours (Textual owns it), but users need to know it.
COMMAND_PALETTE = KeySpec("command_palette", "ctrl+p", "command_palette", "Every action, by name")

_KEY_NAMES = {
    "enter": "Enter",
    "escape": "Esc",
    "up": "↑",
    "down": "↓",
    "shift": "Shift",
    "ctrl": "Ctrl",
}


def key_label(key: str) -> str:
    """``ctrl+shift+r,f5`` becomes ``Ctrl+Shift+R / F5``: the way keys appear on keyboards."""
    labels = []
    for combo in key.split(","):
        parts = [_KEY_NAMES.get(part, part.upper()) for part in combo.strip().split("+")]
        labels.append("+".join(parts))
    return " / ".join(labels)


def bindings(scope: Scope) -> list[BindingType]:
    """The Textual bindings for one scope, each with its id and a tooltip."""
    return [
        Binding(
            spec.key,
            spec.action,
            spec.label or spec.description,
            show=spec.show,
            priority=spec.priority,
            tooltip=spec.description,
            id=spec.id,
        )
        for spec in KEYS
        if spec.scope == scope
    ]


def effective_keys(keymap: Mapping[str, str]) -> list[KeySpec]:
    """The table with the user's remapping applied, as F1 shows it."""
    rows = [KeySpec(s.id, keymap.get(s.id, s.key), s.action, s.description, s.scope) for s in KEYS]
    return [*rows, COMMAND_PALETTE]


def unknown_ids(keymap: Iterable[str]) -> list[str]:
    known = {spec.id for spec in KEYS}
    return sorted(set(keymap) - known)


_MODIFIERS = {"ctrl", "shift", "alt", "meta", "super", "hyper"}
_NAMED_KEYS = {k.value.rsplit("+", 1)[-1] for k in Keys} | {"space", "tab", "enter"}


def is_key_name(combo: str) -> bool:
    """``ctrl+shift+r`` or ``f5`` or ``x``: modifiers, then one key Textual can report."""
    *modifiers, key = combo.strip().lower().split("+")
    if not key or any(m not in _MODIFIERS for m in modifiers):
        return False
    if key in _NAMED_KEYS or (len(key) == 1 and key.isprintable()):
        return True
    try:  # a character by its Unicode name, as Textual names keys: circumflex_accent
        unicodedata.lookup(key.replace("_", " "))
    except KeyError:
        return False
    return True


def _overlap(a: Scope, b: Scope) -> bool:
    """App keys work everywhere; the composer's and the source list's never meet."""
    return a == b or "app" in (a, b)


def keymap_problems(keymap: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """The part of a ``[keys]`` table that can be used, and a line for each entry that cannot.

    An entry is dropped when its id is unknown, its key is no key name, or its key is
    already another binding's key where both work (the built-in binding keeps it).
    """
    specs = {spec.id: spec for spec in KEYS}
    problems = [f"unknown key id '{name}'" for name in unknown_ids(keymap)]
    usable: dict[str, str] = {}
    for name, key in keymap.items():
        if name not in specs:
            continue
        bad = [combo for combo in key.split(",") if not is_key_name(combo)]
        if bad:
            problems.append(f"'{bad[0].strip()}' for {name} is not a key name")
            continue
        usable[name] = key
    effective = {spec.id: usable.get(spec.id, spec.key) for spec in KEYS}
    taken: dict[str, list[str]] = {}
    for name, key in effective.items():
        for combo in key.split(","):
            taken.setdefault(combo.strip().lower(), []).append(name)
    for name in list(usable):
        for combo in usable[name].split(","):
            others = [
                other
                for other in taken.get(combo.strip().lower(), [])
                if other != name and _overlap(specs[name].scope, specs[other].scope)
            ]
            if others and name in usable:
                problems.append(
                    f"{combo.strip()} for {name} is already the key of {others[0]}; ignored"
                )
                del usable[name]
    return usable, problems


def markdown_table(rows: Iterable[KeySpec] | None = None) -> str:
    """The README's key table: one row per binding, grouped by where it works."""
    rows = list(rows if rows is not None else [*KEYS, COMMAND_PALETTE])
    lines = ["| Key | Where | Action | Id (for `[keys]`) |", "| --- | --- | --- | --- |"]
    for spec in rows:
        where = SCOPE_TITLES[spec.scope]
        lines.append(f"| {key_label(spec.key)} | {where} | {spec.description} | `{spec.id}` |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
