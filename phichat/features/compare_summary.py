"""What changed between an answer without search and one with it: pure functions.

The summary gives each side's time to first token and total time, how many sources were
packed and how many the grounded answer cites, the facts (numbers, dates, names and
places) that appear in only one of the two answers, each checked against the packed
sources, and the values the two answers contradict each other on ("300 m" against
"330 m"), with the source that backs one side. Facts are compared normalised: units and
currencies by name ("330 m" = "330 metres"), dates by day ("31 March 1889" = "March 31,
1889"), names without case or accents; a fact the question states is never "only in one
answer". Fact finding is deliberately plain pattern matching: it is meant to point the
reader at differences worth a look, not to judge truth.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from phichat.citations import check_citations
from phichat.domain import CompareTimes, Message, Side, Source

FactKind = Literal["number", "date", "name", "place"]

_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ),
        start=1,
    )
    for name in names
}
_MONTH = r"(?:" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_DATE_PATTERNS = (
    # 2024-03-12
    re.compile(r"\b(?P<y>1\d{3}|20\d{2})-(?P<m>\d{1,2})-(?P<d>\d{1,2})\b"),
    # 12 March 2024, 12th of March
    re.compile(
        rf"\b(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<mon>{_MONTH})"
        rf"(?:,?\s+(?P<y>1\d{{3}}|20\d{{2}}))?\b",
        re.IGNORECASE,
    ),
    # March 12, 2024 / March 12
    re.compile(
        rf"\b(?P<mon>{_MONTH})\s+(?P<d>\d{{1,2}})(?:st|nd|rd|th)?(?:,?\s+(?P<y>1\d{{3}}|20\d{{2}}))?\b",
        re.IGNORECASE,
    ),
    # March 2024
    re.compile(rf"\b(?P<mon>{_MONTH})\s+(?P<y>1\d{{3}}|20\d{{2}})\b", re.IGNORECASE),
    # a year standing alone: 1889, "in 2019"
    re.compile(r"(?<![\d.,:/-])(?P<y>1[5-9]\d{2}|20\d{2})(?![\d.,:/-]\d)"),
)
_CITATION = re.compile(r"\[\s*\d{1,3}\s*(?:,\s*\d{1,3}\s*)*\]")
# A number with an optional currency before it and a unit after it: €15, 3.5 km, 24/7, 10:30.
_NUMBER = re.compile(
    r"(?P<cur>[$€£¥])?\s?(?P<num>\d+(?:[.,:]\d+)*)(?:\s?-?\s?)(?P<unit>%|km|m|kg|h|hours?|"
    r"minutes?|metres?|meters?|kilometres?|kilometers?|miles?|mi|feet|foot|ft|kilograms?|"
    r"mins?|euros?|dollars?|pounds?|am|pm|a\.m\.|p\.m\.)?(?![\w])",
    re.IGNORECASE,
)
# Every spelling of a unit, to one name: "330 m", "330 metres" and "330-meter" are equal.
_UNIT_NAMES = {
    **dict.fromkeys(("m", "metre", "metres", "meter", "meters"), "m"),
    **dict.fromkeys(("km", "kilometre", "kilometres", "kilometer", "kilometers"), "km"),
    **dict.fromkeys(("mi", "mile", "miles"), "mi"),
    **dict.fromkeys(("ft", "feet", "foot"), "ft"),
    **dict.fromkeys(("kg", "kilogram", "kilograms"), "kg"),
    **dict.fromkeys(("h", "hour", "hours"), "h"),
    **dict.fromkeys(("min", "mins", "minute", "minutes"), "min"),
    **dict.fromkeys(("€", "euro", "euros"), "EUR"),
    **dict.fromkeys(("$", "dollar", "dollars"), "USD"),
    **dict.fromkeys(("£", "pound", "pounds"), "GBP"),
    "¥": "JPY",
    "%": "%",
    **dict.fromkeys(("am", "a.m"), "am"),
    **dict.fromkeys(("pm", "p.m"), "pm"),
}
# Runs of capitalised words, allowing small linking words inside ("Museu de Arte").
_CAPITALISED = re.compile(
    r"(?<![\w'’])(?:[A-ZÀ-ÖØ-Þ][\w'’-]*)(?:\s+(?:(?:de|da|do|del|della|di|du|des|la|le|"
    r"of|the|van|von|upon|am|an|y)\s+)?[A-ZÀ-ÖØ-Þ][\w'’-]*)*"
)


def _word_set(spaced: str) -> frozenset[str]:
    return frozenset(spaced.split())


# Words that start sentences or label structure; alone they are neither names nor places.
_NOT_NAMES = _word_set(
    """a an the this that these those it its in on at to for from with by of and or but if
    when while after before then there here however also yes no not you your we our they
    their he she his her i my me what which who why how where day days morning afternoon
    evening night tip tips note notes answer sources source question start end plan option
    monday tuesday wednesday thursday friday saturday sunday today tomorrow first second
    third finally overall both each many most some all more less"""
)
_PLACE_WORDS = _word_set(
    """museum museu musée museo gallery galleria park garden gardens palace palácio palacio
    castle castelo cathedral church basilica chapel temple shrine mosque tower bridge square
    plaza praça piazza market street st road avenue av station airport beach island lake
    river mount mountain hill valley bay harbour harbor port old town city village district
    quarter monastery abbey fort fortress zoo aquarium theatre theater opera hall center
    centre"""
)
_PLACE_PREPOSITIONS = {"in", "at", "to", "from", "near", "visit", "around", "through", "into"}


@dataclass(frozen=True)
class Fact:
    kind: FactKind
    text: str  # as written in the answer
    key: str  # normalised, for comparing answers and sources
    unit: str = ""  # a number's unit or currency, normalised ("m", "EUR"); "" for none


@dataclass(frozen=True)
class UniqueFact:
    """A fact found in only one answer, and whether the packed sources mention it."""

    side: Side
    kind: FactKind
    text: str
    supported: bool


@dataclass(frozen=True)
class Conflict:
    """The two answers give different values for what looks like one quantity (the same
    unit, each value found in only one answer), and which side a source backs."""

    kind: FactKind
    without: str  # as written in the answer without search
    with_search: str  # as written in the grounded answer
    backed: Side | None  # the side a packed source agrees with; None: neither
    source: int | None  # the number of the first source that backs it


@dataclass(frozen=True)
class SideTimings:
    """Seconds from the start of the compare (both sides share one clock)."""

    ttft_s: float | None
    total_s: float | None


@dataclass(frozen=True)
class CompareSummary:
    without: SideTimings
    with_search: SideTimings
    retrieval_s: float | None
    sources_used: int
    sources_cited: int
    unknown_citations: tuple[int, ...]
    unique_facts: tuple[UniqueFact, ...]
    conflicts: tuple[Conflict, ...] = ()

    def facts_for(self, side: Side) -> list[UniqueFact]:
        return [fact for fact in self.unique_facts if fact.side == side]


# ---- finding facts -----------------------------------------------------------------------
def _norm_words(text: str) -> str:
    """Lower-case words without accents: "Trocadéro" and "Trocadero" are one name."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(re.findall(r"\w+", bare))


def _norm_number(number: str) -> str:
    """ "1,200" and "1200" compare equal; "3.50" and "3.5" too; clock times keep their colon."""
    if re.fullmatch(r"\d{1,2}:\d{2}", number):
        hours, _, minutes = number.partition(":")
        return f"{int(hours)}:{minutes}"
    if not re.fullmatch(r"\d+(?:[.,]\d+)*", number) or number.count(".") > 1:
        return number  # a version, an address or a ratio: compared as written
    if re.fullmatch(r"\d{1,3}(,\d{3})+", number):
        number = number.replace(",", "")
    number = number.replace(",", ".")
    try:
        value = float(number)
    except ValueError:
        return number
    return f"{value:g}"


def _date_key(match: re.Match[str]) -> str:
    parts = match.groupdict()
    year = parts.get("y") or ""
    month = parts.get("m") or (
        str(_MONTHS[parts["mon"].lower().rstrip(".")]) if parts.get("mon") else ""
    )
    day = parts.get("d") or ""
    return "-".join(str(int(p)) if p else "?" for p in (year, month, day)).rstrip("-?")


_URL = re.compile(r"\b(?:https?|ftp)://[^\s\"'<>)\]]+", re.IGNORECASE)


def _strip_citations(text: str) -> str:
    # Citations and web addresses are not facts; blank them out keeping offsets.
    text = _URL.sub(lambda m: " " * len(m.group(0)), text)
    return _CITATION.sub(lambda m: " " * len(m.group(0)), text)


def find_facts(text: str) -> list[Fact]:
    """Numbers, dates, names and places in ``text``, in order, each once."""
    clean = _strip_citations(text)
    taken: list[tuple[int, int]] = []
    found: dict[tuple[str, str], Fact] = {}

    def free(start: int, end: int) -> bool:
        return all(end <= a or start >= b for a, b in taken)

    for pattern in _DATE_PATTERNS:
        for match in pattern.finditer(clean):
            if free(*match.span()):
                taken.append(match.span())
                key = _date_key(match)
                found.setdefault(("date", key), Fact("date", match.group(0).strip(), key))
    for match in _NUMBER.finditer(clean):
        start, end = match.span("num")
        if not free(start, end):
            continue
        # Ordinals like "Day 1" or list numbers "1." are structure, not facts.
        before = clean[max(0, start - 4) : start].lower()
        if before.endswith("day ") or re.match(r"\s*\d+\.\s", clean[start - 1 : end + 2]):
            continue
        taken.append((start, end))
        key = _norm_number(match.group("num"))
        spelled = (match.group("cur") or match.group("unit") or "").lower().rstrip(".")
        unit = _UNIT_NAMES.get(spelled, spelled)
        written = match.group(0).strip()
        found.setdefault(("number", f"{key}|{unit}"), Fact("number", written, key, unit))
    mid_sentence = _mid_sentence_capitals(clean)
    for match in _CAPITALISED.finditer(clean):
        if not free(*match.span()):
            continue
        phrase = match.group(0).strip()
        words = phrase.split()
        while words and words[0].lower() in _NOT_NAMES:
            words.pop(0)
        if not words or all(w.lower() in _NOT_NAMES for w in words):
            continue
        if (
            len(words) == 1
            and _starts_sentence(clean, match.start())
            and words[0] not in mid_sentence
        ):
            continue  # "Tickets cost ...": capitalised only because a sentence starts there
        phrase = re.sub(r"['’]s$", "", " ".join(words))  # "Eiffel's" names Eiffel
        if len(phrase) < 3:
            continue
        kind: FactKind = "name"
        preceding = [w.lower() for w in clean[: match.start()].split()[-2:]]
        if preceding[-1:] == ["the"]:
            preceding = preceding[:-1]
        if any(w.lower().strip(".,") in _PLACE_WORDS for w in words) or (
            preceding and preceding[-1] in _PLACE_PREPOSITIONS
        ):
            kind = "place"
        key = _norm_words(phrase)
        found.setdefault(("name", key), Fact(kind, phrase, key))
    return list(found.values())


_SENTENCE_START = re.compile(r"(?:^|[.!?:]\s+|\n\s*(?:[-*+]|\d+\.|#+)?\s*)(?:\*\*|_)?$")


def _starts_sentence(text: str, position: int) -> bool:
    return bool(_SENTENCE_START.search(text[max(0, position - 12) : position]))


def _mid_sentence_capitals(text: str) -> set[str]:
    """Capitalised words that also occur inside a sentence: those are real names."""
    return {match.group(0) for match in re.finditer(r"(?<=[a-z,;] )[A-ZÀ-ÖØ-Þ][\w'’-]*", text)}


# ---- comparing ---------------------------------------------------------------------------
def _mentions(fact: Fact, numbers: dict[str, set[str]], dates: set[str], words: str) -> bool:
    """Whether a text (digested into numbers with their units, dates and words) mentions
    ``fact``. A number matches the same value in the same unit, or the bare value where
    either side gives no unit ("330" and "330 m"); "300 m" never matches "300 km"."""
    if fact.kind == "number":
        units = numbers.get(fact.key, set())
        return fact.unit in units or (bool(units) and (not fact.unit or "" in units))
    if fact.kind == "date":
        if fact.key in dates:
            return True
        # "12 March 2024" is supported by a source that says "2024-03-12", and a year alone
        # by any date in that year.
        return any(d == fact.key or d.startswith(fact.key + "-") for d in dates)
    return f" {fact.key} " in f" {words} "


class _Digest:
    """A text broken down once for repeated ``_mentions`` checks."""

    def __init__(self, text: str) -> None:
        facts = find_facts(text)
        self.numbers: dict[str, set[str]] = {}
        for fact in facts:
            if fact.kind == "number":
                self.numbers.setdefault(fact.key, set()).add(fact.unit)
        self.dates = {f.key for f in facts if f.kind == "date"}
        # A year inside a full date still counts as the year being mentioned.
        self.dates |= {d.split("-")[0] for d in self.dates if d[:1].isdigit()}
        self.words = _norm_words(text)

    def mentions(self, fact: Fact) -> bool:
        return _mentions(fact, self.numbers, self.dates, self.words)


def sources_text(sources: Iterable[Source], context: str = "") -> str:
    """All the web text the grounded answer saw: the packed block, or the passages."""
    if context:
        return context
    return "\n".join(f"{s.title}\n" + "\n".join(p.text for p in s.passages) for s in sources)


def unique_facts(
    without: str, with_search: str, evidence: str, question: str = ""
) -> list[UniqueFact]:
    """Facts that appear in only one answer, each marked supported if ``evidence`` has it.

    A fact the question itself states (its subject, a date it gives) is never listed: both
    answers were asked about it.
    """
    digests = {"without": _Digest(without), "with": _Digest(with_search)}
    asked = _Digest(question)
    source = _Digest(evidence)
    result: list[UniqueFact] = []
    for side, text, other in (
        ("without", without, "with"),
        ("with", with_search, "without"),
    ):
        for fact in find_facts(text):
            if digests[other].mentions(fact) or asked.mentions(fact):
                continue
            result.append(UniqueFact(side, fact.kind, fact.text, source.mentions(fact)))  # type: ignore[arg-type]
    return result


_SOURCE_BLOCK = re.compile(r'<source n="(\d+)"[^>]*>(.*?)</source>', re.DOTALL)


def numbered_evidence(sources: Iterable[Source], context: str = "") -> list[tuple[int, str]]:
    """Each source's text with its number: its passages, or its block of the packed text."""
    listed = list(sources)
    if any(source.passages for source in listed) or not context:
        return [(s.n, f"{s.title}\n" + "\n".join(p.text for p in s.passages)) for s in listed]
    return [(int(n), body) for n, body in _SOURCE_BLOCK.findall(context)]


def find_conflicts(
    without: str, with_search: str, facts: list[UniqueFact], evidence: list[tuple[int, str]]
) -> list[Conflict]:
    """Values the two answers disagree on, and the source backing either side.

    A conflict is a number with a unit (or a currency) found in only one answer, where the
    other answer has exactly one such value in the same unit and it too is its own: "300 m"
    against "330 m". With several values of one unit on a side, which pairs with which is
    a guess, so none is reported.
    """
    unique = {(f.side, f.text) for f in facts}

    def by_unit(text: str, side: Side) -> dict[str, list[Fact]]:
        grouped: dict[str, list[Fact]] = {}
        for fact in find_facts(text):
            if fact.kind == "number" and fact.unit:
                grouped.setdefault(fact.unit, []).append(fact)
        return {
            unit: found
            for unit, found in grouped.items()
            if len(found) == 1 and (side, found[0].text) in unique
        }

    offline, grounded = by_unit(without, "without"), by_unit(with_search, "with")
    digests = [(n, _Digest(text)) for n, text in evidence]
    conflicts = []
    for unit in offline.keys() & grounded.keys():
        [left], [right] = offline[unit], grounded[unit]
        backed: Side | None = None
        number: int | None = None
        for n, digest in digests:
            if digest.mentions(right):
                backed, number = "with", n
                break
            if digest.mentions(left):
                backed, number = "without", n
                break
        conflicts.append(Conflict("number", left.text, right.text, backed, number))
    return conflicts


def _timings(message: Message | None) -> SideTimings:
    if message is None:
        return SideTimings(None, None)
    stats = message.timings
    compare = stats.compare or CompareTimes()
    total = compare.total_s if compare.total_s is not None else stats.total_s
    return SideTimings(compare.ttft_s, total)


def summarize(
    without: Message | None, with_search: Message | None, question: str = ""
) -> CompareSummary:
    """The summary shown under a compare, from its two answers (either may be missing) and
    the question they answer."""
    sources = list(with_search.sources) if with_search is not None else []
    check = check_citations(with_search.text, sources) if with_search is not None else None
    context = with_search.context if with_search else ""
    evidence = sources_text(sources, context)
    offline_text = without.text if without is not None else ""
    grounded_text = with_search.text if with_search is not None else ""
    facts = unique_facts(offline_text, grounded_text, evidence, question)
    conflicts = find_conflicts(
        offline_text, grounded_text, facts, numbered_evidence(sources, context)
    )
    in_conflict = {("without", c.without) for c in conflicts} | {
        ("with", c.with_search) for c in conflicts
    }
    facts = [f for f in facts if (f.side, f.text) not in in_conflict]
    compare = with_search.timings.compare if with_search is not None else None
    retrieval_s = compare.retrieval_wall_s if compare is not None else None
    return CompareSummary(
        without=_timings(without),
        with_search=_timings(with_search),
        retrieval_s=retrieval_s,
        sources_used=len(sources),
        sources_cited=len(check.cited) if check else 0,
        unknown_citations=tuple(check.unknown) if check else (),
        unique_facts=tuple(facts),
        conflicts=tuple(conflicts),
    )


def summary_json(summary: CompareSummary) -> dict[str, object]:
    """The summary as plain JSON-ready values (for ``phichat compare --json``)."""

    def timing(side: SideTimings) -> dict[str, float | None]:
        return {"ttft_s": side.ttft_s, "total_s": side.total_s}

    return {
        "without_search": timing(summary.without),
        "with_search": timing(summary.with_search),
        "retrieval_s": summary.retrieval_s,
        "sources_used": summary.sources_used,
        "sources_cited": summary.sources_cited,
        "unknown_citations": list(summary.unknown_citations),
        "only_in_one_answer": [
            {"side": f.side, "kind": f.kind, "text": f.text, "supported_by_sources": f.supported}
            for f in summary.unique_facts
        ],
        "conflicts": [
            {
                "kind": c.kind,
                "without_search": c.without,
                "with_search": c.with_search,
                "backed_by": c.backed,
                "source": c.source,
            }
            for c in summary.conflicts
        ],
    }
