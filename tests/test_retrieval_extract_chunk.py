"""Extraction keeps the article and its title; chunking keeps sentences and headings."""

from __future__ import annotations

from pathlib import Path

import pytest
from webfixture import EVIL_TITLE, WEB_DIR, long_page

from phichat.retrieval.chunk import chunk_page, split_sentences
from phichat.retrieval.extract import extract_page
from phichat.retrieval.types import Block, FetchedPage, Page


def fetched(name: str, content_type: str = "text/html") -> FetchedPage:
    body = (WEB_DIR / name).read_text(encoding="utf-8")
    return FetchedPage(url=f"http://example.test/{name}", content_type=content_type, body=body)


def test_normal_article_keeps_title_headings_and_text() -> None:
    page = extract_page(fetched("skagway.html"))
    assert page.fetched_ok and page.error is None
    assert page.title == "One day in Skagway, Alaska: a walking guide"
    assert "White Pass and Yukon Route railroad" in page.text
    headings = [block.text for block in page.blocks if block.is_heading]
    assert "The railway over White Pass" in headings
    assert page.chars == len(page.text)


def test_navigation_and_ads_are_left_out() -> None:
    page = extract_page(fetched("nav-heavy.html"))
    assert page.fetched_ok
    assert "8th to the 12th of November" in page.text
    for boilerplate in ("luxury yacht", "Miracle weight loss", "celebrity diets", "cookies"):
        assert boilerplate not in page.text


def test_navigation_only_page_is_skipped() -> None:
    page = extract_page(fetched("menu-only.html"))
    assert not page.fetched_ok
    assert page.error == "no readable text"


def test_plain_text_passes_through_as_paragraphs() -> None:
    page = extract_page(fetched("ferry-notes.txt", "text/plain"))
    assert page.fetched_ok
    assert page.title == "Alaska Marine Highway notes"
    assert [b.text for b in page.blocks][1].startswith("The ferry from Haines to Skagway")


def test_failed_fetch_stays_failed_with_its_reason() -> None:
    page = extract_page(FetchedPage(url="http://x.test/", error="timed out"))
    assert page == Page(url="http://x.test/", fetched_ok=False, error="timed out")


def test_very_long_page_keeps_the_buried_fact() -> None:
    page = extract_page(
        FetchedPage(url="http://x.test/long", content_type="text/html", body=long_page().decode())
    )
    assert page.fetched_ok and page.chars > 50_000
    assert "harbour froze solid in 1899" in page.text
    chunks = chunk_page(page)
    holding = [c for c in chunks if "froze solid in 1899" in c.text]
    assert len(holding) == 1 and holding[0].heading == "Section 200"


def test_title_markup_and_escapes_are_plain_text() -> None:
    html = f"<html><head><title>{EVIL_TITLE.replace('<', '&lt;')}</title></head><body>"
    html += "<article><p>" + "A long enough paragraph about museums and their hours. " * 5
    html += "</p></article></body></html>"
    page = extract_page(FetchedPage(url="http://x.test/", content_type="text/html", body=html))
    assert "\x1b" not in page.title and "\x07" not in page.title
    assert "[bold red]Pwned[/]" in page.title  # kept as literal text, never interpreted


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("One. Two! Three? Four", ["One.", "Two!", "Three?", "Four"]),
        ("It costs 3.5 dollars. Then more.", ["It costs 3.5 dollars.", "Then more."]),
        ('He said "Go." Then left.', ['He said "Go."', "Then left."]),
        ("lowercase after e.g. this stays", ["lowercase after e.g. this stays"]),
    ],
)
def test_sentence_split(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


def _page(blocks: list[Block]) -> Page:
    text = "\n\n".join(b.text for b in blocks)
    return Page("http://x.test/", "A title", text, True, None, len(text), tuple(blocks))


def test_chunks_end_on_sentences_and_respect_the_size_bounds() -> None:
    sentence = "The quick brown fox jumps over the lazy dog near the river bank today."
    page = _page([Block(" ".join([sentence] * 12)) for _ in range(6)])
    chunks = chunk_page(page, target_words=100, max_words=160)
    assert len(chunks) > 3
    for chunk in chunks:
        words = len(chunk.text.split())
        assert words <= 160
        assert chunk.text.endswith(".")
        assert chunk.title == "A title"
    assert [c.position for c in chunks] == list(range(len(chunks)))
    # Nothing is lost or duplicated.
    assert sum(c.text.count("fox") for c in chunks) == 72


def test_each_chunk_carries_its_nearest_heading() -> None:
    body = "Words about this part of the trip that run on for a while. " * 8
    page = _page(
        [Block("Morning", True), Block(body), Block("Afternoon", True), Block(body + "Tea.")]
    )
    chunks = chunk_page(page)
    assert [c.heading for c in chunks] == ["Morning", "Afternoon"]
    assert chunks[1].text.startswith("Afternoon\n")
    assert "Tea." in chunks[1].text


def test_unpunctuated_run_on_text_is_still_split() -> None:
    page = _page([Block(" ".join(["item"] * 500))])
    chunks = chunk_page(page, target_words=100, max_words=150)
    assert all(len(c.text.split()) <= 150 for c in chunks)
    assert sum(len(c.text.split()) for c in chunks) == 500


def test_pages_under_tests_web_are_project_written() -> None:
    # The fixtures are ours; nothing here may come from ../shared.
    assert all("shared" not in str(p) for p in Path(WEB_DIR).iterdir())
