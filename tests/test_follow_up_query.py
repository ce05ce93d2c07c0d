"""The follow-up search query: built from the earlier user messages, no model involved."""

from __future__ import annotations

from phichat.chat.query import MAX_CARRIED_WORDS, MAX_CARRIED_WORDS_NAMED, follow_up_query


def test_a_first_question_is_used_as_it_is() -> None:
    assert follow_up_query([], "  How long is the  White Pass railway? ") == (
        "How long is the White Pass railway?"
    )


def test_a_follow_up_carries_the_subject_it_points_back_to() -> None:
    query = follow_up_query(
        ["Tell me about the lighthouse on Kodiak Island."], "When was it built?"
    )
    assert query == "When was it built? lighthouse Kodiak Island"


def test_chatter_and_possessives_are_not_carried() -> None:
    query = follow_up_query(["I'm planning a trip to Sitka's harbour next month."], "Is it busy?")
    assert query == "Is it busy? trip Sitka harbour"


def test_words_the_question_already_has_are_not_repeated() -> None:
    query = follow_up_query(["Juneau whale watching tours"], "Which whale watching tour is best?")
    assert query == "Which whale watching tour is best? Juneau tours"


def test_the_newest_earlier_message_comes_first_and_the_carry_is_capped() -> None:
    earlier = ["Tell me about Ketchikan totem poles.", "And the Misty Fjords floatplane?"]
    query = follow_up_query(earlier, "How long does it take?")
    assert query.startswith("How long does it take? Misty Fjords floatplane Ketchikan")
    long = ["alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima"]
    assert len(follow_up_query(long, "and then?").split()) == 2 + MAX_CARRIED_WORDS


def test_a_question_naming_its_own_subject_carries_less() -> None:
    earlier = ["We are touring glaciers near Valdez with small children by rental car"]
    query = follow_up_query(earlier, "Would flying into Anchorage be cheaper?")
    assert query.split("cheaper? ")[1].split() == [
        "touring",
        "glaciers",
        "near",
        "Valdez",
        "small",
    ]
    assert MAX_CARRIED_WORDS_NAMED == 5


def test_the_trip_preset_shapes_the_query_as_the_session_does() -> None:
    from phichat.chat.presets import load_preset
    from phichat.chat.query import turn_query

    itinerary = load_preset("itinerary")
    assert turn_query([], "Plan a day trip to Lisbon", itinerary) == (
        "Lisbon things to do itinerary"
    )
    assert turn_query(["Tell me about Lisbon"], "Is it sunny?", None) == (
        follow_up_query(["Tell me about Lisbon"], "Is it sunny?")
    )
