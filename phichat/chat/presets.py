"""Answer presets: a system prompt plus an answer format, kept in Markdown files.

Built-in presets ship in ``phichat/prompts/presets/``; users add their own as
``<config dir>/presets/NAME.md`` (a user file with a built-in's name replaces it).

A preset file is optional front matter, the system prompt, then an ``## Answer format``
section::

    ---
    description: One line shown in the picker
    plan: itinerary        (optional: parse answers as a trip plan)
    query: trip            (optional: shape the search query for trip planning)
    ---
    You are ...

    ## Answer format

    ...
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from phichat import paths
from phichat.errors import PresetError
from phichat.textsafe import one_line

# The picker lists built-ins in this order first; the trip planner is the reason presets exist.
BUILT_IN_ORDER = ("itinerary", "brief")

PLAN_KINDS = ("itinerary",)
QUERY_KINDS = ("trip",)
_KEYS = {"description", "plan", "query"}
_FORMAT_HEADING = re.compile(r"^##\s*answer format\s*$", re.IGNORECASE | re.MULTILINE)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    system: str  # replaces the default system prompt; empty keeps the default
    answer_format: str  # added to the user turn, after the question
    plan: str | None = None  # "itinerary": the answer is parsed into a trip plan
    query: str | None = None  # "trip": the search query is shaped for trip planning
    origin: str = "built-in"  # or the path of the user's file


def user_presets_dir() -> Path:
    return paths.config_dir() / "presets"


def parse_preset(name: str, text: str, origin: str = "built-in") -> Preset:
    """Read one preset file's text; a mistake is a ``PresetError`` naming the file."""
    meta: dict[str, str] = {}
    body = text.replace("\r\n", "\n")
    if body.startswith("---\n"):
        head, separator, rest = body[4:].partition("\n---")
        if not separator:
            raise PresetError(f"preset {origin}: the front matter has no closing '---' line")
        body = rest.partition("\n")[2]
        for line in head.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            key, colon, value = line.partition(":")
            key = key.strip().lower()
            if not colon or key not in _KEYS:
                raise PresetError(
                    f"preset {origin}: cannot read the line {one_line(line, 60)!r} "
                    f"(known keys: {', '.join(sorted(_KEYS))})"
                )
            meta[key] = value.strip()
    parts = _FORMAT_HEADING.split(body, maxsplit=1)
    system = parts[0].strip()
    answer_format = parts[1].strip() if len(parts) > 1 else ""
    if not system and not answer_format:
        raise PresetError(f"preset {origin}: it is empty")
    plan = meta.get("plan") or None
    query = meta.get("query") or None
    if plan is not None and plan not in PLAN_KINDS:
        raise PresetError(f"preset {origin}: plan must be {', '.join(PLAN_KINDS)}, not {plan!r}")
    if query is not None and query not in QUERY_KINDS:
        raise PresetError(f"preset {origin}: query must be {', '.join(QUERY_KINDS)}, not {query!r}")
    return Preset(
        name=name,
        description=one_line(meta.get("description", ""), 120),
        system=system,
        answer_format=answer_format,
        plan=plan,
        query=query,
        origin=origin,
    )


def _built_in_files() -> dict[str, str]:
    folder = resources.files("phichat.prompts").joinpath("presets")
    return {
        entry.name.removesuffix(".md"): entry.read_text(encoding="utf-8")
        for entry in folder.iterdir()
        if entry.name.endswith(".md")
    }


def _user_files() -> dict[str, Path]:
    folder = user_presets_dir()
    try:
        return {path.stem: path for path in folder.glob("*.md") if _NAME.match(path.stem)}
    except OSError:
        return {}


def preset_names() -> list[str]:
    """Every preset name: built-ins in their set order, then the user's, alphabetically."""
    built_in = _built_in_files()
    ordered = [name for name in BUILT_IN_ORDER if name in built_in]
    ordered += sorted(set(built_in) - set(ordered))
    ordered += sorted(set(_user_files()) - set(ordered))
    return ordered


def load_preset(name: str) -> Preset:
    """The preset called ``name``: the user's file if there is one, else the built-in."""
    wanted = name.strip().removesuffix(".md")
    user_file = _user_files().get(wanted)
    if user_file is not None:
        try:
            text = user_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PresetError(f"cannot read the preset file {user_file}: {exc}") from None
        return parse_preset(wanted, text, str(user_file))
    built_in = _built_in_files()
    if wanted in built_in:
        return parse_preset(wanted, built_in[wanted])
    raise PresetError(
        f"no preset is called '{one_line(wanted, 60)}'; choose one of "
        f"{', '.join(preset_names())}, or add {user_presets_dir() / (wanted + '.md')}"
    )


def load_presets() -> tuple[list[Preset], list[str]]:
    """Every preset that loads, and one line for each file that does not (for the picker)."""
    loaded: list[Preset] = []
    problems: list[str] = []
    for name in preset_names():
        try:
            loaded.append(load_preset(name))
        except PresetError as exc:
            problems.append(str(exc))
    return loaded, problems
