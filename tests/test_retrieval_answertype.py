"""Expected answer types: what a question asks for, what a sentence offers, and ranking."""

from __future__ import annotations

import numpy as np
import pytest
from webfixture import WEB_DIR

from phichat.retrieval.answertype import ALL_KINDS, answer_kinds, expected_kinds
from phichat.retrieval.extract import extract_page
from phichat.retrieval.rank import WindowWeights, _ranking_text, rank_windows, typed_windows
from phichat.retrieval.types import Block, FetchedPage, Page
from phichat.retrieval.window import sentence_windows


@pytest.mark.parametrize(
    ("question", "kinds"),
    [
        ("How far is the glacier from downtown?", {"measure"}),
        ("How long does the train ride take?", {"measure", "time"}),
        ("How much does the tramway cost?", {"measure"}),
        ("What is the price of a ferry ticket?", {"measure"}),
        ("How many totem poles stand in the park?", {"count"}),
        ("When does the museum open?", {"time"}),
        ("Is the ferry running, and when?", {"time"}),
        ("Which day of the week is the market held?", {"time"}),
        ("Who built the Red Onion Saloon?", {"person"}),
        ("Which architects designed the depot?", {"person"}),
        ("What stone was the monument built from?", set()),
        ("Where can I eat near the docks?", set()),
    ],
)
def test_the_question_says_what_kind_of_answer_it_wants(question: str, kinds: set[str]) -> None:
    assert expected_kinds(question) == kinds


def test_when_and_who_inside_a_clause_ask_for_nothing() -> None:
    # A conjunction and a relative pronoun, not questions about a time or a person.
    assert expected_kinds("How far do the keys go down when you type?") == {"measure"}
    assert "person" not in expected_kinds("What did the guide whose tour we took say?")
    assert expected_kinds("Is there a guide who speaks German?") == set()


def _sentences(name: str) -> list[str]:
    body = (WEB_DIR / name).read_text(encoding="utf-8")
    page = extract_page(FetchedPage(url="https://t.example/", content_type="text/html", body=body))
    return [w.sentences[w.centre] for w in sentence_windows(page)]


def test_measurements_times_and_names_are_recognised_in_page_sentences() -> None:
    juneau = _sentences("juneau.html")
    glacier = next(s for s in juneau if "thirteen miles" in s)
    tramway = next(s for s in juneau if "1,800 feet" in s)
    assert "measure" in answer_kinds(glacier) and "measure" in answer_kinds(tramway)
    stampeders = next(s for s in _sentences("skagway.html") if "1897" in s)
    assert "time" in answer_kinds(stampeders)
    assert answer_kinds("Trails lead through the rainforest to a quiet lake.") == frozenset()
    assert "person" in answer_kinds("It was developed by Laurens van der Maaten and a colleague.")
    assert answer_kinds("Prices start at $25 for adults.") >= {"measure", "count"}
    assert "measure" in answer_kinds("Cargo of up to 100 metric tons can be landed.")
    assert "time" in answer_kinds("Doors open at 9.30 a.m. on Tuesday.")


def test_month_and_number_words_count_only_as_whole_words() -> None:
    # "mar", "dec" and "sep" opened "market", "decided" and "separate"; "ten" opened "tent".
    assert "time" not in answer_kinds("The market decided to separate the stalls.")
    assert answer_kinds("A tent minimum applies.") == frozenset()
    assert "time" in answer_kinds("Open Mar. 3 to Oct. 9, and on Sundays.")
    assert "measure" in answer_kinds("It is a ten-mile walk.")


def test_asking_for_some_kinds_gives_the_same_answer_as_asking_for_all() -> None:
    sentences = [
        s for name in ("juneau.html", "skagway.html", "ketchikan.html") for s in _sentences(name)
    ] + ["It takes twice as long.", "Closed on Sundays.", "A few people came at noon."]
    for sentence in sentences:
        every = answer_kinds(sentence)
        for kind in ALL_KINDS:
            assert answer_kinds(sentence, frozenset({kind})) == every & {kind}, sentence
    assert answer_kinds("Closed on Sundays.") == {"time"}
    assert answer_kinds("A few people came at noon.") == {"count", "time"}


def test_a_name_opening_a_sentence_is_a_person() -> None:
    # The subject of "won" is the answer to "who won".
    assert "person" in answer_kinds("Mary Okafor, a teacher, won the chili contest.")
    assert "person" in answer_kinds('"Ivan Petrov won the race," the paper said.')
    # Sentences open with capitalised words that are no names all the time.
    for sentence in ("The Louvre opens at nine.", "After Lunch the tour resumes."):
        assert "person" not in answer_kinds(sentence)
    assert "person" not in answer_kinds("Ferries leave from the pier.")


def _page(url: str, *sentences: str) -> Page:
    blocks = tuple(Block(sentence) for sentence in sentences)
    return Page(url=url, title="Guide", fetched_ok=True, blocks=blocks)


class _Flat:
    """Every text gets the same vector: the embedding ranking then decides nothing."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def encode(self, texts: list[str]) -> np.ndarray:
        self.texts.extend(texts)
        return np.ones((len(texts), 2)) / np.sqrt(2)


def test_a_window_holding_the_asked_for_kind_gets_the_fused_bonus() -> None:
    windows = sentence_windows(
        _page("https://a.example/", "The glacier visitor centre shows a film about the glacier.")
    ) + sentence_windows(_page("https://b.example/", "The glacier lies thirteen miles from town."))
    query = "How far away is the glacier?"
    assert typed_windows(query, windows) == {1}
    plain = rank_windows(query, windows, _Flat(), WindowWeights(answer_type_share=0.0))
    assert plain[0].chunk.source_url == "https://a.example/"  # more keywords
    typed = rank_windows(query, windows, _Flat(), WindowWeights(answer_type_share=0.5))
    assert typed[0].chunk.source_url == "https://b.example/"


def test_typed_windows_below_the_keyword_candidates_are_embedded_too() -> None:
    filler = [f"The glacier trail number {n} follows the glacier ridge." for n in range(6)]
    page = _page("https://a.example/", *filler, "It lies thirteen miles away.")
    windows = sentence_windows(page)
    answer = _ranking_text(windows[-1])  # the window built around the distance
    query = "How far is the glacier ridge?"
    narrow = WindowWeights(candidates=2, per_source=1, typed_candidates=0)
    flat = _Flat()
    rank_windows(query, windows, flat, narrow)
    assert len(flat.texts) == 1 + 2 and answer not in flat.texts

    flat = _Flat()
    rank_windows(query, windows, flat, WindowWeights(candidates=2, per_source=1))
    assert answer in flat.texts


def test_a_question_without_a_kind_embeds_only_the_keyword_candidates() -> None:
    page = _page("https://a.example/", *(f"Trail {n} is 3 miles long." for n in range(8)))
    flat = _Flat()
    rank_windows("Which trail is prettiest?", sentence_windows(page), flat, WindowWeights(3, 1))
    assert len(flat.texts) == 1 + 3  # the query and the keyword candidates
