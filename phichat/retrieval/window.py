"""Cut a page into sentence windows: each sentence with its neighbours, for ranking.

A fact usually sits in one sentence, but that sentence often leans on the one before
("It was finished in 1884") or after. Scoring a window of a sentence and its neighbours
finds the fact; packing the window's sentences (without repeating any already packed)
keeps the context that makes it readable, at a fraction of a full chunk's characters.
"""

from __future__ import annotations

from phichat.retrieval.chunk import split_sentences, word_pieces
from phichat.retrieval.types import Chunk, Page

# Sentences on each side of the centre one. One each side scored best on paraphrased
# questions: wider windows blur the match, a lone sentence loses "it" and "there".
NEIGHBOURS = 1
# A run-on "sentence" (a table row, a list without punctuation) is cut into pieces of
# this many words, so one piece never crowds out a window's neighbours.
MAX_SENTENCE_WORDS = 60


def page_sentences(page: Page) -> list[tuple[str, str]]:
    """The page's sentences in order, each with the heading it sits under."""
    sentences: list[tuple[str, str]] = []
    heading = ""
    for block in page.blocks:
        if block.is_heading:
            heading = block.text
            sentences.append((block.text, heading))
            continue
        for sentence in split_sentences(block.text):
            for piece in word_pieces(sentence, MAX_SENTENCE_WORDS):
                sentences.append((piece, heading))
    return sentences


def sentence_windows(page: Page, neighbours: int = NEIGHBOURS) -> list[Chunk]:
    """One window per sentence: ``position`` is its first sentence's index in the page."""
    sentences = page_sentences(page)
    windows = []
    for centre, (_, heading) in enumerate(sentences):
        first = max(0, centre - neighbours)
        texts = tuple(text for text, _ in sentences[first : centre + neighbours + 1])
        windows.append(
            Chunk(
                source_url=page.url,
                text=" ".join(texts),
                position=first,
                title=page.title,
                heading=heading,
                sentences=texts,
                centre=centre - first,
            )
        )
    return windows
