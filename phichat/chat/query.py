"""The web search query for a turn: the user's text, carrying the subject of a follow-up.

A follow-up such as "What stone was it built from?" names nothing a search engine or a
ranker can use; the subject ("the Washington Monument in DC") is in an earlier message.
The query is the new message plus the words of the earlier user messages that it lacks,
newest message first. No model is asked: on a CPU a rewrite by Phi-3 costs seconds
before the search can even start, and this takes well under a millisecond.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from phichat.chat.presets import Preset
from phichat.chat.trip_query import trip_search_query
from phichat.retrieval.bm25 import STOPWORDS

# Earlier user messages that may hold the subject; older ones have usually moved on.
EARLIER_MESSAGES = 2
# Words carried over, at most: enough for a name and what it is, not a second question.
MAX_CARRIED_WORDS = 10
# Fewer when the question names something of its own ("Would a Florida airport be
# cheaper?"): it may have changed the subject, and its own words should lead.
MAX_CARRIED_WORDS_NAMED = 5
# Words that say how the user talks, not what about ("Tell me about...", "I'm planning...").
_CHATTER_TEXT = """
    tell know want like love need please thanks thank hi hello hey im ive ill id were
    going planning heading staying visiting reading learning looking thinking trying
    next month week weekend today tomorrow yesterday soon now really well ok okay
    us let lets get got"""
_CHATTER = frozenset(_CHATTER_TEXT.split())
# A follow-up that names nothing of its own points back with one of these.
_POINTER_TEXT = "it its they them their theirs there he him his she her this that these those"
_POINTERS = frozenset(_POINTER_TEXT.split())
_WORD = re.compile(r"[^\W_](?:[\w'’.-]*[^\W_])?")


def _words(text: str) -> list[str]:
    """Words with possessive endings dropped ("Miami's" -> "Miami")."""
    return [re.sub(r"['’]s$", "", word) for word in _WORD.findall(text)]


def _key(word: str) -> str:
    return re.sub(r"['’.]", "", word.lower())


def _content_words(text: str) -> list[str]:
    return [w for w in _words(text) if _key(w) not in STOPWORDS and _key(w) not in _CHATTER]


def _names_its_own_subject(question: str) -> bool:
    """A capitalised word past the first (not "I") and no word pointing back."""
    words = _words(question)
    if {_key(word) for word in words} & _POINTERS:
        return False
    return any(word[0].isupper() and word != "I" for word in words[1:])


def follow_up_query(previous: Sequence[str], question: str) -> str:
    """The search query for ``question``, given the earlier user messages, oldest first.

    A first question is used as it is. A follow-up is followed by the content words of the
    most recent earlier messages that it lacks, newest message first.
    """
    question = " ".join(question.split())
    earlier = [" ".join(text.split()) for text in previous if text.strip()]
    if not earlier:
        return question
    limit = MAX_CARRIED_WORDS_NAMED if _names_its_own_subject(question) else MAX_CARRIED_WORDS
    seen = {_key(word) for word in _words(question)}
    carried: list[str] = []
    for message in reversed(earlier[-EARLIER_MESSAGES:]):
        for word in _content_words(message):
            if _key(word) not in seen and len(carried) < limit:
                seen.add(_key(word))
                carried.append(word)
    return f"{question} {' '.join(carried)}".strip()


def turn_query(previous: Sequence[str], question: str, preset: Preset | None = None) -> str:
    """The query the app searches for: ``follow_up_query``, shaped for a trip preset.

    ``phichat search --previous`` calls this too, so both build the same query.
    """
    query = follow_up_query(previous, question)
    if preset is not None and preset.query == "trip":
        query = trip_search_query(question, query)
    return query
