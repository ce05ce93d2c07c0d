"""Turn a fetched body into a page's readable text: title, headings and paragraphs.

HTML goes through trafilatura (main content only, comments dropped); plain text passes
through split into paragraphs. A page with no readable text is marked as skipped.
"""

from __future__ import annotations

import html as html_lib
import re
from typing import Any
from urllib.parse import urlsplit

from phichat.retrieval.types import Block, FetchedPage, Page
from phichat.textsafe import one_line

# Below this many characters of text a page is navigation, a cookie wall or an error page.
MIN_PAGE_CHARS = 80
# trafilatura is fast on ordinary pages but its cost grows with the tree; fetch already
# caps the body, and this caps what reaches the parser even if the cap was raised.
MAX_HTML_CHARS = 2_000_000
# trafilatura's time grows faster than the number of paragraphs: a page of 50,000 tiny
# paragraphs took a minute. Of 72 real article pages measured, none had more than about
# 2,200 block elements (p, li, div, tr, td) or 5,500 elements in all, so the HTML is cut
# after these many, which bounds one page's extraction to about a second.
MAX_BLOCK_ELEMENTS = 4_000
MAX_ELEMENTS = 12_000
# What one page may contribute to ranking: beyond this its text is dropped, like a body
# beyond the fetch cap. It bounds the sentence windows that one page can produce.
MAX_TEXT_CHARS = 150_000
# A table row with more text than this is page layout, not data.
LAYOUT_ROW_CHARS = 2_000
_START_TAG = re.compile(r"<([A-Za-z][A-Za-z0-9]*)")
_BLOCK_TAGS = frozenset({"p", "li", "div", "tr", "td", "dd", "dt", "section", "article"})

_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.I | re.S)
_OG_TITLE = re.compile(
    r"""<meta[^>]+property\s*=\s*["']og:title["'][^>]*content\s*=\s*["']([^"']*)["']""", re.I
)
_TAG = re.compile(r"<[^>]+>")
# A numeric character reference, "&#27;" or "&#x1b;" (the semicolon is optional in HTML).
_CHAR_REFERENCE = re.compile(r"&#(?:[xX]([0-9a-fA-F]{1,8})|([0-9]{1,10}));?")
_BLANK_LINES = re.compile(r"\n\s*\n")


_NOT_TEXT = re.compile(r"<(script|style|noscript|svg)\b.*?</\1\s*>", re.I | re.S)


def text_estimate(fetched: FetchedPage) -> int:
    """About how many characters of text a fetched body holds, without parsing it."""
    if fetched.content_type == "text/plain":
        return len(fetched.body)
    visible = _TAG.sub(" ", _NOT_TEXT.sub(" ", fetched.body[:MAX_HTML_CHARS]))
    return len(" ".join(visible.split()))


def _clean(text: str) -> str:
    """One line of plain text: control characters gone, whitespace collapsed.

    Not cut short: a whole story can sit in one element (a layout table's cell), and
    the chunker splits long blocks into sentences anyway; the page's share is capped
    by ``bounded_blocks``.
    """
    return " ".join(one_line(text, MAX_TEXT_CHARS).split())


def page_title(html: str, fallback: str) -> str:
    head = html[:200_000]
    for pattern in (_TITLE, _OG_TITLE):
        match = pattern.search(head)
        if match:
            title = _clean(html_lib.unescape(_TAG.sub("", match.group(1))))
            if title:
                return one_line(title, 200)
    return fallback


def _url_fallback_title(url: str) -> str:
    parts = urlsplit(url)
    host = (parts.hostname or url).removeprefix("www.")
    return host + (parts.path if parts.path not in ("", "/") else "")


def _inline_text(element: Any, skip: tuple[str, ...] = ()) -> str:
    """Text of an element and its inline children; ``lb`` (line break) becomes a space."""
    pieces = [element.text or ""]
    for child in element:
        if child.tag in skip:
            pieces.append(child.tail or "")
            continue
        if child.tag == "lb":
            pieces.append(" ")
        else:
            pieces.append(_inline_text(child, skip))
        pieces.append(child.tail or "")
    return "".join(pieces)


def _blocks_from_tree(body: Any) -> list[Block]:
    blocks: list[Block] = []

    def add(text: str, heading: bool = False) -> None:
        text = _clean(text)
        if text:
            blocks.append(Block(text, heading))

    for element in body:
        tag = element.tag
        if tag == "head":
            add(_inline_text(element), heading=True)
        elif tag == "list":
            for item in element.iter("item"):
                add(_inline_text(item, skip=("list",)))
        elif tag == "table":
            for row in element.iter("row"):
                cells = [_clean(_inline_text(cell)) for cell in row.iter("cell")]
                if sum(map(len, cells)) > LAYOUT_ROW_CHARS:
                    for cell in cells:  # a layout table: each cell is a passage of prose
                        add(cell)
                else:
                    add(" | ".join(cells))
        else:
            add(_inline_text(element))
    return blocks


def _blocks_from_plain_text(text: str) -> list[Block]:
    return [
        Block(clean)
        for paragraph in _BLANK_LINES.split(text.replace("\r\n", "\n"))
        if (clean := _clean(paragraph))
    ]


def _drop_control_references(html: str) -> str:
    """Remove references to control characters (such as "&#27;", ESC) before parsing.

    lxml rejects the whole document over a single one, so the page would be lost as
    "no readable text"; the characters would be stripped from the text anyway.
    """

    def replace(match: re.Match[str]) -> str:
        hex_digits, digits = match.groups()
        code = int(hex_digits, 16) if hex_digits else int(digits)
        # What XML forbids and lxml refuses: C0 less tab, newline and carriage return, and
        # U+FFFE/U+FFFF. C1 references are fine (HTML reads "&#x85;" as an ellipsis).
        forbidden = (code < 0x20 and code not in (0x09, 0x0A, 0x0D)) or code in (0xFFFE, 0xFFFF)
        return "" if forbidden else match.group(0)

    return _CHAR_REFERENCE.sub(replace, html)


def bounded_html(
    html: str, max_elements: int = MAX_ELEMENTS, max_blocks: int = MAX_BLOCK_ELEMENTS
) -> str:
    """The HTML cut before the element that passes either cap (and at MAX_HTML_CHARS)."""
    html = html[:MAX_HTML_CHARS]
    blocks = 0
    for count, match in enumerate(_START_TAG.finditer(html), start=1):
        blocks += match.group(1).lower() in _BLOCK_TAGS
        if count > max_elements or blocks > max_blocks:
            return html[: match.start()]
    return html


def bounded_blocks(blocks: list[Block], max_chars: int = MAX_TEXT_CHARS) -> list[Block]:
    """The leading blocks whose text adds up to at most ``max_chars`` characters."""
    kept: list[Block] = []
    total = 0
    for block in blocks:
        total += len(block.text)
        if total > max_chars:
            break
        kept.append(block)
    return kept


def _html_blocks(html: str, url: str) -> list[Block]:
    import trafilatura

    document = trafilatura.bare_extraction(
        _drop_control_references(bounded_html(html)),
        url=url or None,
        include_comments=False,
        include_tables=True,
        with_metadata=False,
    )
    # bare_extraction gives a dict only when asked for one (as_dict=True); never here.
    if document is None or isinstance(document, dict) or document.body is None:
        return []
    return _blocks_from_tree(document.body)


def extract_page(fetched: FetchedPage) -> Page:
    """The readable text of one fetched page, or a skipped ``Page`` saying why."""
    if not fetched.ok:
        return Page(url=fetched.url, fetched_ok=False, error=fetched.error)
    url = fetched.final_url or fetched.url
    if fetched.content_type == "text/plain":
        blocks = _blocks_from_plain_text(fetched.body)
        title = blocks[0].text[:120] if blocks else _url_fallback_title(url)
    else:
        try:
            blocks = _html_blocks(fetched.body, url)
        except Exception as exc:  # a parser crash on one odd page must not fail the turn
            return Page(url=fetched.url, error=f"extraction failed: {type(exc).__name__}")
        title = page_title(fetched.body, _url_fallback_title(url))
    blocks = bounded_blocks(blocks)
    text = "\n\n".join(block.text for block in blocks)
    # trafilatura answers a navigation-only page with the single word "menu".
    if len(text) < MIN_PAGE_CHARS or text.strip().lower() == "menu":
        return Page(url=fetched.url, title=title, error="no readable text")
    return Page(
        url=fetched.url,
        title=title,
        text=text,
        fetched_ok=True,
        chars=len(text),
        blocks=tuple(blocks),
    )
