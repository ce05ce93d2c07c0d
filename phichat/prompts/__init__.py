"""Prompt templates, stored as Markdown files beside this module and shipped in the wheel.

Templates use ``{name}`` placeholders filled once with ``str.format_map``; the values
(web text, user text) are inserted verbatim and never re-parsed as templates.
"""

from __future__ import annotations

from functools import cache
from importlib import resources


class _Strict(dict[str, str]):
    def __missing__(self, key: str) -> str:
        raise KeyError(f"prompt template needs a value for {{{key}}}")


@cache
def load(name: str) -> str:
    """The text of ``prompts/<name>.md``, without its trailing newline."""
    path = resources.files(__name__).joinpath(f"{name}.md")
    return path.read_text(encoding="utf-8").rstrip("\n")


def render(name: str, **values: str) -> str:
    return load(name).format_map(_Strict(values))


def available() -> list[str]:
    return sorted(
        entry.name.removesuffix(".md")
        for entry in resources.files(__name__).iterdir()
        if entry.name.endswith(".md")
    )
