"""Markdown export: role headings, badges, footnoted sources, and untrusted text kept literal."""

from __future__ import annotations

import re

from phichat.domain import Conversation, Message, Source
from phichat.features.export.markdown import link_citations, to_markdown

PARIS = Source(1, "Paris — Wikipedia", "https://en.wikipedia.org/wiki/Paris")
SEINE = Source(2, "The Seine", "https://example.org/seine")


def conversation_with(*messages: Message, title: str = "Capitals") -> Conversation:
    return Conversation(title=title, created_at=0.0, messages=list(messages))


def grounded(text: str, *sources: Source, **extra: object) -> Message:
    return Message(
        role="assistant",
        text=text,
        search_used=True,
        grounded=True,
        sources=list(sources),
        **extra,  # type: ignore[arg-type]
    )


def test_document_has_title_role_headings_and_a_search_badge() -> None:
    markdown = to_markdown(
        conversation_with(
            Message(role="user", text="What is the capital of France?"),
            grounded("Paris [1].", PARIS, query="capital of France"),
            Message(role="user", text="Thanks"),
            Message(role="assistant", text="You're welcome."),
        )
    )
    assert markdown.startswith("# Capitals\n")
    assert "1970-01-01 00:00 UTC; 4 messages" in markdown
    headings = re.findall(r"^## .*$", markdown, re.MULTILINE)
    assert headings == ["## User", "## Assistant `search`", "## User", "## Assistant"]
    assert "*Searched for:* capital of France" in markdown
    assert markdown.endswith("You're welcome.\n")


def test_search_without_sources_is_badged_differently() -> None:
    answer = Message(role="assistant", text="From memory.", search_used=True, grounded=False)
    assert "## Assistant `search: no sources`" in to_markdown(conversation_with(answer))


def test_citations_become_footnotes_defined_with_title_and_url() -> None:
    answer = grounded("Paris [1], on the Seine [1, 2].", PARIS, SEINE)
    markdown = to_markdown(conversation_with(answer))
    assert "Paris [^1], on the Seine [^1][^2]." in markdown
    assert "[^1]: Paris — Wikipedia — https://en.wikipedia.org/wiki/Paris" in markdown
    assert "[^2]: The Seine — https://example.org/seine" in markdown
    # Every definition is referenced at least once, so renderers do not drop any.
    assert "Sources: [^1] [^2]" in markdown


def test_unknown_citation_numbers_are_flagged_not_linked() -> None:
    markdown = to_markdown(conversation_with(grounded("A [1], B [7], C [1, 9].", PARIS)))
    assert "A [^1], B [7?], C [^1][9?]." in markdown
    assert "> ⚠ Check before trusting: [7] points at no source; [9] points at no source." in (
        markdown
    )
    assert "[^7]" not in markdown
    assert "[^9]" not in markdown


def test_answers_without_sources_link_nothing() -> None:
    plain = Message(role="assistant", text="See [1].")
    assert "See [1]." in to_markdown(conversation_with(plain))
    assert "[^" not in to_markdown(conversation_with(plain))


def test_code_is_never_rewritten() -> None:
    text = "Use `items[1]` [1].\n\n```python\nprint(items[1])\n```\n\nDone [1]."
    assert link_citations(text, {1}) == (
        "Use `items[1]` [^1].\n\n```python\nprint(items[1])\n```\n\nDone [^1]."
    )


def test_several_grounded_answers_get_distinct_footnote_labels() -> None:
    markdown = to_markdown(
        conversation_with(
            Message(role="user", text="q1"),
            grounded("First [1].", PARIS),
            Message(role="user", text="q2"),
            grounded("Second [1] and [2].", PARIS, SEINE),
        )
    )
    assert "First [^1-1]." in markdown
    assert "Second [^2-1] and [^2-2]." in markdown
    definitions = re.findall(r"^\[\^([^\]]+)\]:", markdown, re.MULTILINE)
    assert definitions == ["1-1", "2-1", "2-2"]


def test_stopped_and_failed_answers_are_marked() -> None:
    markdown = to_markdown(
        conversation_with(
            Message(role="assistant", text="Half an ans", stopped=True),
            Message(role="assistant", text="", error="the model ran out of memory"),
        )
    )
    assert "Half an ans\n\n*(stopped before the end)*" in markdown
    assert "> **Error:** the model ran out of memory" in markdown


def test_markup_and_escape_payloads_stay_literal_text() -> None:
    payload = "[bold red]x[/] and [/foo] and \x1b[2Jcleared"
    source = Source(1, "Evil [/foo]\x1b]0;pwned\x07\ntitle", "https://example.org/\x1b[31mred")
    markdown = to_markdown(
        conversation_with(
            Message(role="user", text=payload),
            grounded(f"{payload} [1]", source),
            title=f"Title {payload}",
        )
    )
    assert "\x1b" not in markdown
    assert "\x07" not in markdown
    assert markdown.startswith("# Title [bold red]x[/] and [/foo] and cleared\n")
    assert "\n[bold red]x[/] and [/foo] and cleared\n" in markdown
    assert "[bold red]x[/] and [/foo] and cleared [^1]" in markdown
    # The title's newline cannot break the footnote out onto a second line.
    assert "[^1]: Evil [/foo] title — https://example.org/red" in markdown


def test_a_source_without_a_title_is_footnoted_by_its_url_alone() -> None:
    untitled = Source(1, "", "https://example.org/bare")
    markdown = to_markdown(conversation_with(grounded("Bare [1].", untitled)))
    assert "\n[^1]: https://example.org/bare\n" in markdown + "\n"


def test_links_that_are_not_sources_are_marked_unverified() -> None:
    text = (
        "Read [the guide](https://evil.example/steal) or https://en.wikipedia.org/wiki/Paris "
        "[1], and see <http://made.up/page>. `https://in.code/x` is code."
    )
    markdown = to_markdown(conversation_with(grounded(text, PARIS)))
    assert (
        "Read [the guide](https://evil.example/steal) *(⚠ unverified link "
        "`https://evil.example/steal`)* or https://en.wikipedia.org/wiki/Paris [^1], and see "
        "<http://made.up/page> *(⚠ unverified link)*. `https://in.code/x` is code."
    ) in markdown
    assert (
        "> ⚠ Check before trusting: `https://evil.example/steal` is not one of its sources; "
        "`http://made.up/page` is not one of its sources."
    ) in markdown


def test_an_answer_without_sources_has_every_link_unverified() -> None:
    plain = Message(role="assistant", text="Try https://example.org/x.")
    markdown = to_markdown(conversation_with(plain))
    assert "Try https://example.org/x *(⚠ unverified link)*." in markdown
