"""Order sentence windows by how well they answer the query: BM25 first, MiniLM on the best.

Embedding every window of six pages costs seconds on a laptop CPU; BM25 over all of them
costs milliseconds. So BM25 picks the candidates (the best overall plus the best few of
each page, so no page is judged on keywords alone), windows holding the kind of answer
asked for join them, MiniLM scores those, and reciprocal-rank fusion combines the two.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from phichat.retrieval.answertype import answer_kinds, expected_kinds
from phichat.retrieval.bm25 import BM25, tokenize
from phichat.retrieval.types import Chunk, Passage

# Texts per embedding call: a stop is noticed between two batches.
EMBED_BATCH = 16
# Windows tokenized between two looks at the stop event (a few milliseconds' work).
STOP_CHECK_WINDOWS = 256


class TextEmbedder(Protocol):
    def encode(self, texts: list[str]) -> object:
        """Unit-length vectors, one row per text (anything numpy can multiply)."""
        ...


def _ranking_text(chunk: Chunk) -> str:
    # The title names what the page is about, which the chunk's own words often leave out.
    return (
        f"{chunk.title}\n{chunk.heading}\n{chunk.text}"
        if chunk.heading
        else (f"{chunk.title}\n{chunk.text}")
    )


def window_keyword_scores(
    query: str, windows: Sequence[Chunk], stop: threading.Event | None = None
) -> list[float]:
    """BM25 scores of the windows (with their title and heading), tokenizing each
    sentence only once: neighbouring windows share two of their three sentences.

    Raises ``RankingStopped`` when ``stop`` is set (checked every STOP_CHECK_WINDOWS).
    """
    tokens: dict[str, Counter[str]] = {}

    def counts(text: str) -> Counter[str]:
        if text not in tokens:
            tokens[text] = Counter(tokenize(text))
        return tokens[text]

    documents = []
    for index, window in enumerate(windows):
        if stop is not None and index % STOP_CHECK_WINDOWS == 0 and stop.is_set():
            raise RankingStopped
        total = counts(window.title) + counts(window.heading)
        for sentence in window.sentences or (window.text,):
            total.update(counts(sentence))
        documents.append(total)
    return BM25.from_counts(documents).scores(query) if documents else []


def pick_candidates(
    chunks: Sequence[Chunk], scores: Sequence[float], candidates: int, per_source: int
) -> list[int]:
    """Indexes of the chunks worth embedding, at most ``candidates``: the best
    ``per_source`` of each source first, then the best overall."""
    order = sorted(range(len(chunks)), key=lambda i: scores[i], reverse=True)
    chosen: list[int] = []
    taken: Counter[str] = Counter()
    for index in order:
        url = chunks[index].source_url
        if taken[url] < per_source:
            chosen.append(index)
            taken[url] += 1
    picked = set(chosen[:candidates])
    for index in order:
        if len(picked) >= candidates:
            break
        picked.add(index)
    return sorted(picked, key=lambda i: scores[i], reverse=True)


def _dedupe(chunks: Sequence[Chunk]) -> list[Chunk]:
    """Drop repeated chunks (syndicated copies, boilerplate shared by two pages)."""
    seen: set[str] = set()
    unique = []
    for chunk in chunks:
        key = " ".join(chunk.text.lower().split())
        if key not in seen:
            seen.add(key)
            unique.append(chunk)
    return unique


def rank_all_by_embedding(
    query: str, chunks: Sequence[Chunk], embedder: TextEmbedder
) -> list[Passage]:
    """Embed every chunk (what HuggingChat and Open WebUI do); for the benchmark to compare."""
    chunks = _dedupe(chunks)
    vectors = embedder.encode([query] + [_ranking_text(chunk) for chunk in chunks])
    similarity = (vectors[1:] @ vectors[0]).tolist()  # type: ignore[index]
    scored = [Passage(chunk, s) for chunk, s in zip(chunks, similarity, strict=True)]
    return sorted(scored, key=lambda p: p.score, reverse=True)


class RankingStopped(Exception):
    """The user stopped the turn while candidates were being embedded."""


@dataclass(frozen=True)
class WindowWeights:
    """Sentence-window ranking: BM25 picks the candidates, RRF fuses it with MiniLM."""

    candidates: int = 48  # windows embedded, at most
    per_source: int = 3  # of which the best few of every page
    # Reciprocal-rank fusion constant: small values trust the top of each ranking more.
    fusion_k: float = 10.0
    # BM25's part of the fused score, against the embedding's. 40% was best before answer
    # types; with the typed candidates embedded too, 30% (see the README's figures).
    keyword_share: float = 0.3
    # When the question asks for a kind of answer (a distance, a date, a name), windows
    # whose centre sentence holds one are embedded too (the best of them by BM25 below
    # the candidates above), and every such window gets this share of a first place in
    # the fused score.
    typed_candidates: int = 24
    answer_type_share: float = 0.5


def embed_similarity(
    query: str, texts: list[str], embedder: TextEmbedder, stop: threading.Event | None = None
) -> list[float]:
    """Cosine similarity of each text to the query, embedded in small batches."""
    query_vector = embedder.encode([query])[0]  # type: ignore[index]
    similarity: list[float] = []
    for start in range(0, len(texts), EMBED_BATCH):
        if stop is not None and stop.is_set():
            raise RankingStopped
        vectors = embedder.encode(texts[start : start + EMBED_BATCH])
        similarity.extend((vectors @ query_vector).tolist())
    return similarity


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[float]], shares: Sequence[float], k: float
) -> list[float]:
    """Fuse score lists over the same items by rank: sum of share / (k + rank)."""
    fused = [0.0] * len(rankings[0]) if rankings else []
    for scores, share in zip(rankings, shares, strict=True):
        order = sorted(range(len(scores)), key=lambda i: scores[i], reverse=True)
        for rank, index in enumerate(order, start=1):
            fused[index] += share / (k + rank)
    return fused


def typed_windows(query: str, windows: Sequence[Chunk]) -> set[int]:
    """Indexes of the windows whose centre sentence holds the kind of answer asked for."""
    wanted = expected_kinds(query)
    if not wanted:
        return set()
    return {
        index for index, window in enumerate(windows) if answer_kinds(_centre_text(window), wanted)
    }


def _centre_text(window: Chunk) -> str:
    return window.sentences[window.centre] if window.sentences else window.text


def rank_windows(
    query: str,
    windows: Sequence[Chunk],
    embedder: TextEmbedder | None,
    weights: WindowWeights = WindowWeights(),
    stop: threading.Event | None = None,
) -> list[Passage]:
    """Sentence windows, best first: BM25 over all, RRF with MiniLM over the candidates."""
    windows = _dedupe(windows)
    if not windows:
        return []
    bm25 = window_keyword_scores(query, windows, stop)
    picked = pick_candidates(windows, bm25, weights.candidates, weights.per_source)
    typed = typed_windows(query, windows)
    if typed and weights.typed_candidates:
        # The answer's window often ranks just below the candidates by keywords: a
        # paraphrased question shares few of its words. Those holding the kind of
        # answer asked for are worth embedding.
        already = set(picked)
        extra = sorted(
            (i for i in typed if i not in already and bm25[i] > 0), key=lambda i: -bm25[i]
        )
        picked += extra[: weights.typed_candidates]
    if embedder is None:
        fused = [bm25[i] for i in picked]
    else:
        similarity = embed_similarity(
            query, [_ranking_text(windows[i]) for i in picked], embedder, stop
        )
        fused = reciprocal_rank_fusion(
            [[bm25[i] for i in picked], similarity],
            [weights.keyword_share, 1 - weights.keyword_share],
            weights.fusion_k,
        )
        # As if a third ranking put every window of the asked-for kind first.
        bonus = weights.answer_type_share / (weights.fusion_k + 1)
        fused = [f + bonus * (i in typed) for i, f in zip(picked, fused, strict=True)]
    ranked = sorted(
        (Passage(windows[i], score) for i, score in zip(picked, fused, strict=True)),
        key=lambda p: p.score,
        reverse=True,
    )
    floor = min((p.score for p in ranked), default=0.0)
    chosen = set(picked)
    rest = sorted((i for i in range(len(windows)) if i not in chosen), key=lambda i: -bm25[i])
    ranked.extend(Passage(windows[i], floor - 1.0 - rank) for rank, i in enumerate(rest))
    return ranked
