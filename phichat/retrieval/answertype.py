"""Expected answer types: a question that asks "how far" is answered by a distance.

Questions as people ask them share few words with the sentence that answers them
("How far do the keys go down?" against "the key travel is one millimeter"), but they
do say what kind of thing the answer is. Classic question answering uses that: a
sentence holding a measurement, a date or a person's name is more likely to answer a
question asking for one. Ranking uses it twice: such windows a little below the keyword
candidates are embedded too, and they get a small bonus in the fused score.

The patterns are deliberately generic (English question words, SI and imperial units,
currencies, weekdays and months); nothing here knows about particular pages.
"""

from __future__ import annotations

import re
from typing import Literal

from phichat.retrieval.bm25 import STOPWORDS

AnswerKind = Literal["count", "measure", "time", "person"]

_NUMBER_WORDS = (
    "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|"
    "sixteen|seventeen|eighteen|nineteen|twenty|thirty|"
    "forty|fifty|sixty|seventy|eighty|ninety|hundred|thousand|million|billion|trillion|"
    "dozen|half|a few|several"
)
# A number word is a whole word: "ten miles", "ten-mile", not "tend" or "often".
_NUMBER = rf"(?:\d[\d,]*(?:\.\d+)?|(?:{_NUMBER_WORDS})\b)"
# Units a measured answer is given in: length, weight, time, speed, money, data,
# compute, power, energy, area, volume, temperature.
_UNITS = (
    "miles?|mi|km|kilomet(?:er|re)s?|met(?:er|re)s?|m|cm|centimet(?:er|re)s?|mm|millimet(?:er|re)s?|"
    "inch(?:es)?|feet|foot|ft|yards?|nautical|"
    "tons?|tonnes?|kg|kilograms?|grams?|pounds?|lbs?|ounces?|oz|"
    "seconds?|secs?|minutes?|mins?|hours?|hrs?|days?|nights?|weeks?|months?|years?|decades?|"
    "centur(?:y|ies)|"
    "mph|km/h|kph|knots?|"
    "dollars?|euros?|cents?|pence|yen|yuan|rupees?|francs?|"
    "bytes?|kb|mb|gb|tb|kib|mib|gib|tib|kilobytes?|megabytes?|gigabytes?|terabytes?|bits?|mbps|gbps|"
    "flops?|gflops?|tflops?|teraflops?|gigaflops?|petaflops?|hz|khz|mhz|ghz|cores?|"
    "psi|bars?|millibars?|watts?|kw|mw|gw|kwh|mwh|horsepower|hp|volts?|amps?|calories?|kcal|joules?|"
    "acres?|hectares?|square|sq|"
    "lit(?:er|re)s?|ml|gallons?|cups?|"
    "degrees?|°[cf]?|percent|per\\s+cent|%|times"
)
_MEASURE = re.compile(
    rf"(?:[$£€¥₹]\s?\d|\b(?:usd|eur|gbp)\s?\d|\b{_NUMBER}(?:\s|-)?(?:[a-z]+\s)?(?:{_UNITS})\b|\d\s?%|"
    r"\b(?:once|twice)\b)",
    re.IGNORECASE,
)
_COUNT = re.compile(rf"\b{_NUMBER}\b", re.IGNORECASE)
# Words that name a time; each is a whole word ("Mar" or "mar.", but not "market").
_TIME_WORDS = (
    "monday|tuesday|wednesday|thursday|friday|saturday|sunday|weekend|"
    "mondays|tuesdays|wednesdays|thursdays|fridays|saturdays|sundays|weekends|"
    "january|february|march|april|june|july|august|september|october|november|december|"
    "jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec|noon|midnight"
)
_TIME = re.compile(
    rf"\b(?:(?:{_TIME_WORDS})\b|may\s+\d|"
    r"(?:1[5-9]|20)\d\d|\d{1,2}[:.]\d\d|\d{1,2}\s?(?:a\.?m\b\.?|p\.?m\b\.?))",
    re.IGNORECASE,
)
ALL_KINDS: frozenset[AnswerKind] = frozenset(("count", "measure", "time", "person"))
_NUMERIC_KINDS: frozenset[AnswerKind] = frozenset(("count", "measure", "time"))
# Without a digit, a count or a measure needs one of these words, a time one of those
# (every other branch of the patterns above holds a digit).
_DIGIT = re.compile(r"\d")
_LETTERS = re.compile(r"[a-z]+")
_NUMBER_TRIGGERS = frozenset(_NUMBER_WORDS.replace("a few", "few").split("|")) | {
    "once",
    "twice",
}
_TIME_TRIGGERS = frozenset(_TIME_WORDS.split("|"))
# A capitalised word followed by another (name particles allowed in between), not at the
# start of the sentence: "developed by Laurens van der Maaten and Geoffrey Hinton".
_NAME_PARTS = r"[A-Z][a-z'’\-]+(?: (?:van|von|der|de|da|di|del|la|le|bin|al))* [A-Z][a-z'’\-]+"
_NAME = re.compile(r"(?<=[a-z,;:(] )" + _NAME_PARTS)
# The same at the very start of a sentence ("Ada Lovelace wrote the first program"): the
# usual place of the subject, so of the person a "who" question asks about. Only when the
# first word is not one that opens sentences anyway ("The Louvre", "After Lunch").
_OPENING_NAME = re.compile(r"^[\"'“‘(]?(" + _NAME_PARTS + ")")
_OPENER_TEXT = """
    all both each every many no not his her hers mine ours yours after before during since
    until while although though because once unlike like despite today yesterday tomorrow"""
_OPENERS = STOPWORDS | frozenset(_OPENER_TEXT.split())

# "when" and "who" ask only where they open a question or a clause; elsewhere they
# are a conjunction ("keys go down when you type") or a relative ("the man who").
_OPENS = r"(?:^|[.?!,;:]\s+|\band\s+|\bor\s+)"

_QUESTION_KINDS: tuple[tuple[re.Pattern[str], AnswerKind], ...] = (
    (
        re.compile(r"\bhow many\b|\b(?:death )?toll\b|\bwhat(?: is| was)?(?: the)? number\b"),
        "count",
    ),
    (
        re.compile(
            r"\bhow (?:much|far|long|tall|high|deep|wide|big|large|heavy|fast|quick(?:ly)?|"
            r"old|often|soon|hot|cold|warm|expensive|cheap|powerful|strong|loud|thick|"
            r"small|short|frequent(?:ly)?)\b|\bwhat(?: is| was| are| were)?(?: the)? "
            r"(?:price|cost|size|length|height|weight|distance|speed|population|percentage|"
            r"share|rate|temperature|capacity|fee|budget|amount|area|depth|width|duration)\b"
        ),
        "measure",
    ),
    (
        re.compile(
            _OPENS
            + r"when\b|\b(?:what|which)(?: \w+)? (?:time|times|day|days|date|dates|year|month|"
            r"weekday|hour|hours|season|century)\b|\bhow long\b|\bweekdays?\b|\bday of the week\b"
        ),
        "time",
    ),
    (
        re.compile(
            _OPENS + r"whom?\b|\b(?:which|what) (?:\w+ )?(?:person|people|researchers?|"
            r"scientists?|inventors?|authors?|founders?|designers?|architects?|players?|"
            r"artists?|writers?|actors?|actress(?:es)?|singers?|chefs?|owners?|"
            r"directors?|engineers?|winners?|champions?)\b"
        ),
        "person",
    ),
)


def expected_kinds(question: str) -> frozenset[AnswerKind]:
    """The kinds of answer the question asks for; empty when it does not say."""
    text = question.lower()
    return frozenset(kind for pattern, kind in _QUESTION_KINDS if pattern.search(text))


def answer_kinds(sentence: str, wanted: frozenset[AnswerKind] = ALL_KINDS) -> frozenset[AnswerKind]:
    """The kinds of answer a sentence could give (a count, a measurement, a time, a name),
    of those in ``wanted``.

    The number and time patterns are the costly ones, and most sentences hold neither a
    digit nor a number or time word: those are told apart by a set lookup of their words
    first, which gives the same answer as the patterns at a fraction of their cost.
    """
    kinds: set[AnswerKind] = set()
    numeric = wanted & _NUMERIC_KINDS
    if numeric and _DIGIT.search(sentence) is None:
        words = set(_LETTERS.findall(sentence.lower()))
        if words.isdisjoint(_NUMBER_TRIGGERS):
            numeric -= {"count", "measure"}
        if words.isdisjoint(_TIME_TRIGGERS):
            numeric -= {"time"}
    if "count" in numeric and _COUNT.search(sentence):
        kinds.add("count")
    if "measure" in numeric and _MEASURE.search(sentence):
        kinds.add("measure")
    if "time" in numeric and _TIME.search(sentence):
        kinds.add("time")
    if "person" in wanted and (_NAME.search(sentence) or _opens_with_a_name(sentence)):
        kinds.add("person")
    return frozenset(kinds)


def _opens_with_a_name(sentence: str) -> bool:
    match = _OPENING_NAME.match(sentence)
    return match is not None and match.group(1).split()[0].lower() not in _OPENERS
