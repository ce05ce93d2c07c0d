"""Make the README screenshots: the real app, run headless, saved as SVG and PNG.

    .venv/bin/python screenshots/make_screenshots.py

Everything on screen is the real phichat app, with two stand-ins, because no Phi-3
weights or network are assumed: the answer text comes from ``ScriptedModel``, and the
sources from a stand-in retriever that reports the same progress steps as the web one.
Conversations go to a throw-away data folder, never yours.

PNGs need ``rsvg-convert`` (Debian/Ubuntu: ``apt-get install -y librsvg2-bin``); without
it only the SVGs are written.
"""

from __future__ import annotations

import asyncio
import html
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIZE = (112, 34)
# The compare shows two answers and a summary: it needs a taller window.
SIZES = {"compare": (120, 40), "itinerary": (112, 36)}

QUESTION = "Why are there two high tides a day?"
ANSWER = """\
Because the Moon pulls on the whole Earth, not just the water facing it [1].

- On the side **facing the Moon**, its pull is strongest, so the ocean bulges towards it.
- On the **far side**, the pull is weakest: the Earth is pulled away from the water,
  leaving a second bulge behind [1].

The Earth turns under both bulges once a day, so most coasts see two high tides, about
12 hours and 25 minutes apart. When the Sun and Moon line up, at new and full moon, their
pulls add up to larger *spring tides* [2].
"""


# The compare and itinerary scenes' answers are scripted text too, written for the pictures.
COMPARE_QUESTION = "How tall is the Eiffel Tower, and when did it open?"
COMPARE_OFFLINE = """\
The Eiffel Tower is about **300 metres** tall. It was built for the 1889 World's Fair
and opened in **May 1889**, designed by Gustave Eiffel.
"""
COMPARE_GROUNDED = """\
The tower is **330 metres** tall including its antennas [1]. It opened to the public on
**31 March 1889** [2], for the World's Fair; Gustave Eiffel's company built it [2].
"""
TRIP_QUESTION = "Plan me a one-day trip to Lisbon"
TRIP_PLAN = """\
### Day 1: Alfama and Belém
- Morning — **Castelo de São Jorge**: walk the walls. Tip: opens 09:00. [1]
- Lunch — **Time Out Market**: try the food stalls. [2]
- Afternoon — **Jerónimos Monastery**: see the cloister. Tip: closed Mondays. [3]
- Evening — **Miradouro da Graça**: sunset over the river.

Tram 28 links Alfama with the centre; allow 40 minutes to Belém by tram 15 [2].
"""


def _trip_sources():  # type: ignore[no-untyped-def]
    from phichat.domain import Source, SourcePassage

    return [
        Source(
            1,
            "Castelo de São Jorge: visit",
            "https://castelo.example.pt/en/visit",
            (SourcePassage("Open daily from 09:00.", 0.8, "Hours"),),
        ),
        Source(
            2,
            "Lisbon in a day",
            "https://travel.example.com/lisbon-one-day",
            (SourcePassage("Time Out Market; tram 28; tram 15 to Belém.", 0.7, ""),),
        ),
        Source(
            3,
            "Jerónimos Monastery",
            "https://mosteiro.example.pt/",
            (SourcePassage("Closed on Mondays.", 0.6, ""),),
        ),
    ]


def _tower_sources():  # type: ignore[no-untyped-def]
    from phichat.domain import Source, SourcePassage

    return [
        Source(
            1,
            "Eiffel Tower: facts and figures",
            "https://tower.example.org/facts",
            (SourcePassage("Height with antennas: 330 metres.", 0.8, "Figures"),),
        ),
        Source(
            2,
            "History of the tower",
            "https://history.example.fr/eiffel",
            (SourcePassage("The tower opened to the public on 31 March 1889.", 0.7, ""),),
        ),
    ]


def _sources():  # type: ignore[no-untyped-def]
    from phichat.domain import Source, SourcePassage

    return [
        Source(
            1,
            "Tides and Water Levels",
            "https://oceanservice.example.gov/education/tides",
            (
                SourcePassage(
                    "The gravitational pull of the Moon is the main cause of the tides; the "
                    "ocean bulges on the side facing the Moon and on the opposite side.",
                    0.812,
                    "What causes tides?",
                ),
            ),
        ),
        Source(
            2,
            "Spring and neap tides explained",
            "https://www.sea-science.example.org/spring-neap",
            (
                SourcePassage(
                    "Spring tides occur when the Sun, Moon and Earth are aligned, at new "
                    "and full moon.",
                    0.734,
                    "Spring tides",
                ),
            ),
        ),
        Source(
            3,
            "Tide - Encyclopedia entry",
            "https://encyclopedia.example.com/wiki/Tide",
            (SourcePassage("Most places have two high and two low tides a day.", 0.655, ""),),
        ),
    ]


class StandInRetriever:
    """Reports searching, fetching, reading n of m and ranking, then returns fixed sources."""

    def __init__(self, hold: threading.Event | None = None, sources=None) -> None:  # type: ignore[no-untyped-def]
        self.hold = hold
        self.sources = sources

    def retrieve(self, query, budget, progress, stop):  # type: ignore[no-untyped-def]
        from phichat.retrieval.types import Retrieval

        progress("searching", query)
        progress("fetching", "fetching 6 pages")
        for n in range(1, 5):
            progress("reading", f"reading {n} of 6 pages")
        if self.hold is not None:
            while not self.hold.is_set() and not stop.is_set():
                stop.wait(0.02)
        progress("ranking", "ranking 41 passages")
        sources = self.sources if self.sources is not None else _sources()
        context = "\n\n".join(p.text for s in sources for p in s.passages)
        return Retrieval(query=query, sources=sources, context_text=context)


def build_app(data_dir: Path, retriever: object | None, search: bool, replies: list[str]):  # type: ignore[no-untyped-def]
    from phichat.chat.factory import turn_options
    from phichat.chat.session import Session
    from phichat.config import Settings
    from phichat.models.scripted import ScriptedModel
    from phichat.storage.conversations import ConversationStore
    from phichat.ui.app import PhichatApp

    settings = Settings(search=search)
    store = ConversationStore(data_dir / "phichat.db")
    # A small delay per word gives a believable tokens-per-second figure in the footer.
    model = ScriptedModel(replies, token_delay_s=0.02)
    session = Session(model, turn_options(settings), retriever=retriever, store=store)  # type: ignore[arg-type]
    return PhichatApp(settings, session=session, store=store)


async def _until(pilot, done: Callable[[], bool], limit_s: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(limit_s / 0.05)):
        if done():
            return
        await pilot.pause(0.05)
    raise RuntimeError("the app never reached the state to capture")


async def _ask(pilot, app, text: str) -> None:  # type: ignore[no-untyped-def]
    app.composer.load_text(text)
    await pilot.press("enter")
    await pilot.pause(0.1)
    await _until(pilot, lambda: not app.runner.running)
    await pilot.pause(0.3)


async def scene_grounded(pilot, app) -> None:  # type: ignore[no-untyped-def]
    await _until(pilot, app.loader.ready.is_set)
    await _ask(pilot, app, QUESTION)


async def scene_retrieving(pilot, app) -> None:  # type: ignore[no-untyped-def]
    await _until(pilot, app.loader.ready.is_set)
    app.composer.load_text(QUESTION)
    await pilot.press("enter")

    def reading() -> bool:
        answer = app.view.last_answer()
        return answer is not None and "4 of 6" in answer.query_one(".steps").render().plain

    await _until(pilot, reading)
    await pilot.pause(0.3)


async def scene_sidebar(pilot, app) -> None:  # type: ignore[no-untyped-def]
    await _until(pilot, app.loader.ready.is_set)
    for question in ("Best way to learn Rust as a Python developer?", QUESTION):
        await pilot.press("ctrl+n")
        await _ask(pilot, app, question)
    await pilot.press("ctrl+b")
    await pilot.pause(0.3)


async def scene_compare(pilot, app) -> None:  # type: ignore[no-untyped-def]
    await _until(pilot, app.loader.ready.is_set)
    app.composer.load_text(COMPARE_QUESTION)
    await pilot.press("f5")
    await pilot.pause(0.1)
    await _until(pilot, lambda: not app.runner.running)
    await pilot.pause(0.3)


async def scene_itinerary(pilot, app) -> None:  # type: ignore[no-untyped-def]
    import dataclasses

    from phichat.chat.presets import load_preset

    await _until(pilot, app.loader.ready.is_set)
    preset = load_preset("itinerary")
    app.session.options = dataclasses.replace(app.session.options, preset=preset)
    app._show_mode()
    await _ask(pilot, app, TRIP_QUESTION)


async def scene_context(pilot, app) -> None:  # type: ignore[no-untyped-def]
    await scene_grounded(pilot, app)
    await pilot.press("f4")
    await pilot.pause(0.3)


Scene = Callable[..., Awaitable[None]]


async def capture(name: str, scene: Scene, *, search: bool, hold: bool = False) -> Path:
    data_dir = Path(tempfile.mkdtemp(prefix="phichat-shots-"))
    release = threading.Event()
    retriever = StandInRetriever(
        release if hold else None,
        {"itinerary": _trip_sources, "compare": _tower_sources}.get(name, lambda: None)(),
    )
    replies = {
        "sidebar": [
            "Start with the official book, then port a small Python script you know well; "
            "the borrow checker makes sense once you have fought it on real code.",
            ANSWER,
        ],
        "compare": [COMPARE_OFFLINE, COMPARE_GROUNDED],
        "itinerary": [TRIP_PLAN],
    }.get(name, [ANSWER])
    app = build_app(data_dir, retriever, search, replies)
    svg_path = HERE / f"{name}.svg"
    try:
        async with app.run_test(size=SIZES.get(name, SIZE)) as pilot:
            app.composer.cursor_blink = False
            await scene(pilot, app)
            svg = app.export_screenshot(title="phichat")
            release.set()
    finally:
        release.set()
        shutil.rmtree(data_dir, ignore_errors=True)
    svg_path.write_text(pin_glyphs(svg), encoding="utf-8")
    return svg_path


_TEXT_RUN = re.compile(
    r'<text ([^>]*?)x="([\d.]+)"([^>]*?)textLength="([\d.]+)"([^>]*)>([^<]*)</text>'
)


def _pin_run(match: re.Match[str]) -> str:
    before, x, middle, length, after, body = match.groups()
    count = len(html.unescape(body))
    if count <= 1:
        return match.group(0)
    cell = float(length) / count
    xs = " ".join(f"{float(x) + i * cell:.1f}" for i in range(count))
    return f'<text {before}x="{xs}"{middle}{after}>{body}</text>'


def pin_glyphs(svg: str) -> str:
    """Give every character its own terminal cell.

    Rich's SVG places each run of text once and relies on ``textLength`` to fit it;
    rsvg-convert ignores that, so with any font whose width differs slightly the columns
    drift. One x position per character keeps the grid exact in every renderer, and
    ``xml:space`` keeps runs of spaces.
    """
    svg = svg.replace("<svg ", '<svg xml:space="preserve" ', 1)
    return _TEXT_RUN.sub(_pin_run, svg)


def to_png(svg_path: Path) -> Path | None:
    converter = shutil.which("rsvg-convert")
    if converter is None:
        return None
    png_path = svg_path.with_suffix(".png")
    subprocess.run([converter, "-o", str(png_path), str(svg_path)], check=True)
    return png_path


SCENES: list[tuple[str, Scene, bool, bool]] = [
    ("chat-grounded", scene_grounded, True, False),
    ("retrieval-in-progress", scene_retrieving, True, True),
    ("sidebar", scene_sidebar, True, False),
    ("context", scene_context, True, False),
    ("compare", scene_compare, False, False),
    ("itinerary", scene_itinerary, True, False),
]


def main() -> int:
    os.environ["HF_HUB_OFFLINE"] = "1"
    # Nothing here may touch the user's own config or conversations.
    scratch = Path(tempfile.mkdtemp(prefix="phichat-shots-home-"))
    for name in ("CONFIG", "DATA", "CACHE"):
        os.environ[f"PHICHAT_{name}_DIR"] = str(scratch / name.lower())
    sys.path.insert(0, str(HERE.parent))
    made = []
    wanted = set(sys.argv[1:])  # scene names to make; none given: all of them
    for name, scene, search, hold in SCENES:
        if wanted and name not in wanted:
            continue
        svg_path = asyncio.run(capture(name, scene, search=search, hold=hold))
        made.append(svg_path)
        png_path = to_png(svg_path)
        if png_path is not None:
            made.append(png_path)
    shutil.rmtree(scratch, ignore_errors=True)
    for path in made:
        print(path.relative_to(HERE.parent))
    if not shutil.which("rsvg-convert"):
        print("rsvg-convert not found: wrote SVGs only (apt-get install -y librsvg2-bin)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
