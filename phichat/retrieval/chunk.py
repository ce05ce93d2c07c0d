"""Cut a page into passages of whole sentences, each labelled with its title and heading.

Chunks are the unit of ranking and packing. They end on sentence boundaries, so a packed
passage never stops mid-fact, and a new heading starts a new chunk once the current one
is long enough, so a passage mostly speaks about one thing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from phichat.retrieval.types import Block, Chunk, Page

# Sized by the quality benchmark: long enough that a fact keeps its context, short enough
# that several sources fit in a 4,000-character budget and that MiniLM (which reads at
# most 256 word pieces) sees the whole passage.
TARGET_WORDS = 90
MAX_WORDS = 150
# A heading closes the current chunk only if it already has this many words; tiny
# sections ("Address", "Opening hours") stay with their neighbours.
MIN_WORDS_BEFORE_HEADING = 40

# A sentence ends at . ! ? (optionally followed by a closing quote or bracket) and the
# next one starts with a capital, digit or opening quote. Good enough for web prose,
# and it never splits inside numbers such as 3.5 or abbreviations before lowercase.
_SENTENCE_END = re.compile(r"(?:(?<=[.!?…])|(?<=[.!?…][\"'”’)\]]))\s+(?=[\"'“‘(\[]?[A-Z0-9À-Ý])")


def split_sentences(text: str) -> list[str]:
    return [piece for piece in _SENTENCE_END.split(text) if piece.strip()]


def word_pieces(sentence: str, max_words: int) -> Iterator[str]:
    """Split a run-on "sentence" (a list without punctuation, a table) by words."""
    words = sentence.split()
    for start in range(0, len(words), max_words):
        yield " ".join(words[start : start + max_words])


@dataclass
class _Section:
    """A heading and the sentences under it, as (sentence, starts a paragraph) pairs."""

    heading: str
    sentences: list[tuple[str, bool]] = field(default_factory=list)

    @property
    def words(self) -> int:
        return sum(len(sentence.split()) for sentence, _ in self.sentences)


def _sections(blocks: tuple[Block, ...], max_words: int) -> list[_Section]:
    """Group sentences under their headings; a short section joins the one after it."""
    sections = [_Section("")]
    for block in blocks:
        if block.is_heading:
            if sections[-1].words >= MIN_WORDS_BEFORE_HEADING:
                sections.append(_Section(block.text))
            elif not sections[-1].sentences:
                sections[-1].heading = block.text
            # The heading line stays in the text: it often names the fact that follows.
            sections[-1].sentences.append((block.text, True))
            continue
        first = True
        for sentence in split_sentences(block.text):
            for piece in word_pieces(sentence, max_words):
                sections[-1].sentences.append((piece, first))
                first = False
    return [section for section in sections if section.sentences]


def _split_section(
    sentences: list[tuple[str, bool]], target_words: int, max_words: int
) -> list[str]:
    """Cut a section into pieces of nearly equal size, so no piece is a stray tail."""
    pieces: list[str] = []
    remaining = sum(len(sentence.split()) for sentence, _ in sentences)
    parts: list[str] = []
    words = 0
    goal = 0.0

    def flush() -> None:
        nonlocal parts, words
        if parts:
            pieces.append("".join(parts).strip())
        parts, words = [], 0

    for sentence, new_paragraph in sentences:
        count = len(sentence.split())
        if parts and words + count > max_words:
            flush()
        if not parts:
            # Spread what is left evenly over as many pieces as the target suggests.
            goal = remaining / max(1, round(remaining / target_words))
        else:
            parts.append("\n" if new_paragraph else " ")
        parts.append(sentence)
        words += count
        remaining -= count
        if words >= goal:
            flush()
    flush()
    return pieces


def chunk_page(
    page: Page, target_words: int = TARGET_WORDS, max_words: int = MAX_WORDS
) -> list[Chunk]:
    """Sentence-bounded chunks of about ``target_words`` words, never over ``max_words``."""
    chunks: list[Chunk] = []
    for section in _sections(page.blocks, max_words):
        for text in _split_section(section.sentences, target_words, max_words):
            chunks.append(Chunk(page.url, text, len(chunks), page.title, section.heading))
    return chunks
