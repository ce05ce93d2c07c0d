"""Okapi BM25 keyword scoring over a handful of chunks.

Small and dependency-free: a query scores a few hundred chunks in a millisecond or two,
which is why it runs on every chunk while embeddings only see the best candidates.
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from collections.abc import Sequence

_WORD = re.compile(r"\w+", re.UNICODE)

# Function words carry no topic; dropping them from the query keeps "the" and "of" from
# rewarding long chunks. Question words go too: pages answer questions, they rarely ask them.
_STOPWORD_TEXT = """
    a an and are as at be been but by can could did do does for from had has have how i
    if in into is it its me my of on or our should so than that the their them then there
    these they this to was we were what when where which who whom why will with would you
    your about any some such more most very just also"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


@functools.lru_cache(maxsize=65536)  # a page repeats its words; stemming each once is enough
def _stem(word: str) -> str:
    """A deliberately light stemmer: plural and a few verb endings, never below 3 letters."""
    for suffix, replacement in (("ies", "y"), ("sses", "ss"), ("ing", ""), ("ed", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "s" and word.endswith(("ss", "us", "is")):
                return word
            return word[: len(word) - len(suffix)] + replacement
    return word


def tokenize(text: str) -> list[str]:
    return [_stem(word) for word in _WORD.findall(text.lower())]


def query_terms(query: str) -> list[str]:
    terms = [_stem(w) for w in _WORD.findall(query.lower()) if w not in STOPWORDS]
    # A query made only of stopwords ("who is it?") still needs something to match.
    return terms or tokenize(query)


class BM25:
    def __init__(self, documents: Sequence[str], k1: float = 1.2, b: float = 0.75) -> None:
        self._index([Counter(tokenize(doc)) for doc in documents], k1, b)

    @classmethod
    def from_counts(cls, term_counts: list[Counter[str]], k1: float = 1.2, b: float = 0.75) -> BM25:
        """An index over documents already tokenized (overlapping windows share work)."""
        index = cls.__new__(cls)
        index._index(term_counts, k1, b)
        return index

    def _index(self, term_counts: list[Counter[str]], k1: float, b: float) -> None:
        self.k1 = k1
        self.b = b
        self.term_counts = term_counts
        self.lengths = [sum(counts.values()) for counts in self.term_counts]
        self.average_length = (sum(self.lengths) / len(self.lengths)) if self.lengths else 0.0
        document_frequency: Counter[str] = Counter()
        for counts in self.term_counts:
            document_frequency.update(counts.keys())
        total = len(term_counts)
        # The "plus one" form of IDF stays positive even for terms in most documents.
        self.idf = {
            term: math.log(1 + (total - df + 0.5) / (df + 0.5))
            for term, df in document_frequency.items()
        }

    def scores(self, query: str) -> list[float]:
        terms = Counter(query_terms(query))
        results = []
        for counts, length in zip(self.term_counts, self.lengths, strict=True):
            norm = self.k1 * (1 - self.b + self.b * length / (self.average_length or 1))
            score = 0.0
            for term, repeats in terms.items():
                frequency = counts.get(term)
                if frequency:
                    idf = self.idf[term]
                    score += repeats * idf * frequency * (self.k1 + 1) / (frequency + norm)
            results.append(score)
        return results
