"""Presets: built-in and user files, the prompt they shape, and trip-shaped search queries."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from phichat import paths
from phichat.chat import prompt
from phichat.chat.factory import turn_options
from phichat.chat.presets import load_preset, load_presets, parse_preset, preset_names
from phichat.chat.session import Session
from phichat.chat.trip_query import detect_trip, trip_search_query
from phichat.config import Settings, load_settings
from phichat.domain import Conversation, Message
from phichat.errors import PresetError
from phichat.models.scripted import ScriptedModel
from phichat.retrieval.types import PackBudget, Retrieval, RetrievalProgress


def user_preset(name: str, text: str) -> Path:
    folder = paths.config_dir() / "presets"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.md"
    path.write_text(text, encoding="utf-8")
    return path


def test_itinerary_is_the_first_built_in_and_asks_for_days_slots_and_citations() -> None:
    assert preset_names()[:2] == ["itinerary", "brief"]
    preset = load_preset("itinerary")
    assert preset.plan == "itinerary" and preset.query == "trip"
    assert preset.origin == "built-in"
    for wanted in ("Day 1", "Morning", "Afternoon", "Evening", "Tip:", "[n]"):
        assert wanted in preset.answer_format
    assert "never invent" in preset.system
    # The 4k window belongs to the sources: the preset must stay short.
    model = ScriptedModel()
    assert model.count_text_tokens(preset.system + preset.answer_format) < 150


def test_a_users_own_preset_file_loads_and_is_listed_after_the_built_ins() -> None:
    path = user_preset(
        "pirate",
        "---\ndescription: Talk like a pirate\n---\nYou are a pirate.\n\n"
        "## Answer format\n\nEnd with 'Arr!'\n",
    )
    assert preset_names()[-1] == "pirate"
    preset = load_preset("pirate")
    assert (preset.system, preset.answer_format) == ("You are a pirate.", "End with 'Arr!'")
    assert preset.description == "Talk like a pirate"
    assert preset.origin == str(path) and preset.plan is None


def test_a_user_file_replaces_the_built_in_of_the_same_name() -> None:
    user_preset("brief", "One sentence only.")
    preset = load_preset("brief")
    assert preset.system == "One sentence only." and preset.answer_format == ""
    assert preset_names().count("brief") == 1


def test_an_unknown_preset_names_the_choices_and_where_to_add_one() -> None:
    with pytest.raises(PresetError) as raised:
        load_preset("nope")
    message = str(raised.value)
    assert "itinerary" in message and "nope.md" in message and "\n" not in message


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("---\ndescription: x\nYou are ...", "no closing"),
        ("---\ncolour: red\n---\nYou are ...", "known keys"),
        ("---\nplan: calendar\n---\nYou are ...", "plan must be"),
        ("   \n", "empty"),
    ],
)
def test_a_broken_preset_file_gives_a_clear_error(text: str, problem: str) -> None:
    with pytest.raises(PresetError, match=problem):
        parse_preset("x", text, "x.md")


def test_the_picker_skips_a_broken_user_file_and_says_why() -> None:
    user_preset("broken", "---\nplan: nonsense\n---\nHi")
    loaded, problems = load_presets()
    assert [p.name for p in loaded][:2] == ["itinerary", "brief"]
    assert "broken" not in [p.name for p in loaded]
    assert len(problems) == 1 and "broken.md" in problems[0]


def test_preset_setting_comes_from_flags_and_a_missing_one_fails_when_wired() -> None:
    settings = load_settings({"preset": "itinerary"})
    assert turn_options(settings).preset == load_preset("itinerary")
    assert turn_options(Settings()).preset is None
    with pytest.raises(PresetError):
        turn_options(Settings(preset="missing"))


def test_the_preset_replaces_the_system_prompt_and_adds_the_format_last() -> None:
    preset = load_preset("itinerary")
    messages, _ = prompt.build_messages(
        ScriptedModel(), [], "Plan a day in Porto", "<source n=1>...</source>", 512, preset
    )
    assert messages[0]["content"] == preset.system
    user = messages[-1]["content"]
    assert user.index("<sources>") < user.index("Question: Plan a day in Porto")
    assert user.endswith("Answer format:\n" + preset.answer_format)
    plain, _ = prompt.build_messages(ScriptedModel(), [], "Hi", None, 512)
    assert plain[-1]["content"] == "Hi" and "phichat" in plain[0]["content"]


def test_history_uses_the_later_answer_when_a_question_has_two() -> None:
    history = [
        Message(role="user", text="Q"),
        Message(role="assistant", text="offline answer", compare_side="without"),
        Message(role="assistant", text="grounded answer", compare_side="with"),
    ]
    assert prompt.history_turns(history) == [
        [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "grounded answer"}]
    ]


@pytest.mark.parametrize(
    ("question", "destination", "query"),
    [
        (
            "Plan me a one-day trip to Lisbon with kids",
            "Lisbon",
            "Lisbon things to do itinerary",
        ),
        ("3 days in Rio de Janeiro, please", "Rio de Janeiro", None),
        ("plan a weekend in new york for two", "new york", None),
        ("Visit Stratford upon Avon next week", "Stratford upon Avon", None),
        (
            "Plane eine Reise nach München für zwei Tage",
            "München",
            "München Sehenswürdigkeiten Reiseplan",
        ),
        ("Un voyage à Paris en mai", "Paris", "Paris que faire itinéraire"),
        ("Un viaje a Sevilla con niños", "Sevilla", "Sevilla qué hacer itinerario"),
    ],
)
def test_trip_requests_become_destination_things_to_do_itinerary_queries(
    question: str, destination: str, query: str | None
) -> None:
    found = detect_trip(question)
    assert found is not None and found.destination == destination
    if query is not None:
        assert found.query == query


def test_a_question_with_no_destination_keeps_its_query_untouched() -> None:
    assert detect_trip("What causes tides?") is None
    assert trip_search_query("What causes tides?", "tides cause") == "tides cause"
    # A follow-up's rewritten query still gets shaped when it names the trip.
    assert trip_search_query("and the day after?", "day trip to Sintra") == (
        "Sintra things to do itinerary"
    )


class RecordingRetriever:
    def __init__(self) -> None:
        self.queries: list[str] = []

    def retrieve(
        self, query: str, budget: PackBudget, progress: RetrievalProgress, stop: threading.Event
    ) -> Retrieval:
        self.queries.append(query)
        return Retrieval(query=query, sources=[], context_text="")


def test_with_the_itinerary_preset_the_session_searches_for_the_trip() -> None:
    retriever = RecordingRetriever()
    options = turn_options(Settings(preset="itinerary"))
    session = Session(ScriptedModel(["Plan."]), options, retriever=retriever)
    list(session.respond(Conversation(), "Plan me a day trip to Kyoto", True, threading.Event()))
    assert retriever.queries == ["Kyoto things to do itinerary"]
    plain = Session(ScriptedModel(["x"]), turn_options(Settings()), retriever=retriever)
    list(plain.respond(Conversation(), "Plan me a day trip to Kyoto", True, threading.Event()))
    assert retriever.queries[-1] == "Plan me a day trip to Kyoto"
