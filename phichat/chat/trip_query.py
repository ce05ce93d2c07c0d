"""Shape a web search query for trip planning: the destination, "things to do", "itinerary".

Search engines answer "Plan me a relaxed one-day trip to Lisbon with kids" poorly; they
answer "Lisbon things to do itinerary" well. The destination is found with a few phrase
patterns per language ("trip to X", "Reise nach X", "voyage à X", ...), and the added words
come from the same language as the pattern that matched. Nothing is translated: when no
pattern matches, the query is left exactly as it was.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


def _words(spaced: str) -> frozenset[str]:
    return frozenset(spaced.split())


@dataclass(frozen=True)
class _Language:
    code: str
    trip_words: str  # nouns and verbs that introduce a destination
    prepositions: str
    added: str  # "things to do" and "itinerary" in this language
    stop_words: frozenset[str]  # words that end a lowercase destination
    direct_words: str = ""  # verbs followed by the destination itself ("visit Rome")


_LANGUAGES = (
    _Language(
        "en",
        r"trip|travel|journey|visit|visiting|itinerary|holiday|vacation|getaway|weekend|"
        r"days?|tour|break|stay|plan",
        r"to|in|around|through|of",
        "things to do itinerary",
        _words("for with next this in on and at from by during over the a"),
        r"visit|visiting|explore|exploring",
    ),
    _Language(
        "de",
        r"reise|ausflug|urlaub|tagesausflug|städtereise|wochenende|tag|tage|besuch|trip",
        r"nach|in|durch",
        "Sehenswürdigkeiten Reiseplan",
        _words("für mit nächste nächsten diese dieses und im am an ab"),
    ),
    _Language(
        "fr",
        r"voyage|séjour|visite|excursion|journée|jours?|week-end|itinéraire|escapade",
        r"à|en|au|aux|dans|pour",
        "que faire itinéraire",
        _words("pour avec ce cette et en le la les un une"),
    ),
    _Language(
        "es",
        r"viaje|visita|excursión|escapada|itinerario|días?|fin de semana",
        r"a|en|por",
        "qué hacer itinerario",
        _words("para con este esta y el la los las un una"),
    ),
    _Language(
        "it",
        r"viaggio|gita|visita|giornata|giorni|giorno|itinerario|vacanza|weekend",
        r"a|in|per",
        "cosa fare itinerario",
        _words("per con questo questa e il lo la gli le un una"),
    ),
    _Language(
        "pt",
        r"viagem|passeio|visita|roteiro|dias?|férias",
        r"a|para|em|no|na|por",
        "o que fazer roteiro",
        _words("para com este esta e o a os as um uma"),
    ),
    _Language(
        "nl",
        r"reis|dagje|dagtrip|uitje|bezoek|weekend|dagen|dag|stedentrip",
        r"naar|in|door",
        "wat te doen reisschema",
        _words("voor met deze dit en de het een"),
    ),
)

# Small words that may sit inside a place name: "Stratford upon Avon", "Rio de Janeiro".
_CONNECTORS = _words("de del la le di da do dos das am an upon on sur en van von y")
_WORD = re.compile(r"[^\W\d_][\w'’.-]*", re.UNICODE)
_MAX_WORDS = 5


@dataclass(frozen=True)
class TripQuery:
    destination: str
    language: str
    query: str


def _destination(after: str, language: _Language) -> str:
    """The place name at the start of ``after``: capitalised words, or up to 3 lowercase ones."""
    clause = re.split(r"[,;:!?()\[\]\n]|\.\s|\.$", after, maxsplit=1)[0]
    words = _WORD.findall(clause)
    picked: list[str] = []
    capitalised = bool(words) and words[0][0].isupper()
    for index, word in enumerate(words[:_MAX_WORDS]):
        if capitalised:
            inside_name = (
                word.lower() in _CONNECTORS
                and index + 1 < len(words)
                and words[index + 1][0].isupper()
            )
            if not (word[0].isupper() or inside_name):
                break
            picked.append(word)
        else:
            if word.lower() in language.stop_words or len(picked) == 3:
                break
            picked.append(word)
    return " ".join(picked).strip(".'’-")


def detect_trip(text: str) -> TripQuery | None:
    """The destination and language of a trip request, or None when none is recognised."""
    flat = " ".join(text.split())
    for language in _LANGUAGES:
        lead = rf"(?:{language.trip_words})\s+(?:{language.prepositions})"
        if language.direct_words:
            lead = rf"(?:{lead}|{language.direct_words})"
        pattern = re.compile(rf"\b{lead}\s+(?P<rest>.+)", re.IGNORECASE)
        for match in pattern.finditer(flat):
            place = _destination(match.group("rest"), language)
            if place and place.lower() not in language.stop_words:
                return TripQuery(place, language.code, f"{place} {language.added}")
    return None


def trip_search_query(question: str, fallback: str) -> str:
    """The trip-shaped query for ``question`` (or for ``fallback``), else ``fallback`` itself.

    ``fallback`` is the query the session would use anyway: the question on a first turn,
    the model's standalone rewrite of a follow-up.
    """
    found = detect_trip(question) or detect_trip(fallback)
    return found.query if found is not None else fallback
