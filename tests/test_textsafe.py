"""phichat.textsafe: what untrusted text loses before it reaches a terminal or a prompt."""

from __future__ import annotations

from phichat.textsafe import has_lone_surrogates, replace_lone_surrogates


def test_lone_surrogates_are_found_and_replaced() -> None:
    assert has_lone_surrogates("a\ud800b")
    assert has_lone_surrogates("\udfff")
    assert not has_lone_surrogates("emoji 🙂 and ü")  # real astral characters are fine
    assert replace_lone_surrogates("a\ud800b\udc00") == "a\ufffdb\ufffd"
    replace_lone_surrogates("x\udcff").encode()  # the result always encodes to UTF-8


def test_bidi_controls_and_invisible_characters_are_stripped() -> None:
    from phichat.textsafe import one_line, strip_control

    # "Trojan source": U+202E shows "txt.exe" as "exe.txt"; isolates (U+2066-2069) likewise.
    hostile = "invoice\u202etxt.exe \u2066a\u2067b\u2068c\u2069 "
    hostile += "\u200bz\u2060w\ufeffj \u200e\u200f\u061c"
    assert strip_control(hostile) == "invoicetxt.exe abc zwj "
    assert one_line("a\u202ab\u202bc\u202cd\u202de") == "abcde"
    # Joiners shape Persian and Indic words and emoji sequences: they stay.
    assert strip_control("می\u200cخواهم 👩\u200d💻") == "می\u200cخواهم 👩\u200d💻"


def test_page_text_and_titles_lose_bidi_controls_at_extraction() -> None:
    from phichat.retrieval.extract import extract_page
    from phichat.retrieval.types import FetchedPage

    walk = "<p>" + "The harbour walk passes the old cannery and the ferry terminal. " * 3 + "</p>"
    html = (
        "<html><head><title>Harbour \u202eklaw&#8238; guide</title></head><body><article>"
        f"<h1>Harbour</h1>{walk}<p>Open \u2067daily\u2069 from&#x200B; nine.</p>{walk}"
        "</article></body></html>"
    )
    page = extract_page(
        FetchedPage(url="http://x.test/", final_url="http://x.test/", body=html, content_type="")
    )
    assert page.title == "Harbour klaw guide"
    assert "Open daily from nine." in page.text
    assert not any(ch in page.text for ch in "\u202e\u2067\u2069\u200b")


def test_a_control_character_reference_does_not_cost_the_page() -> None:
    # lxml refuses the whole document over one "&#27;" (ESC): "no readable text".
    from phichat.retrieval.extract import extract_page
    from phichat.retrieval.types import FetchedPage

    walk = "<p>" + "The harbour walk passes the old cannery and the ferry terminal. " * 3 + "</p>"
    for reference in ("&#27;", "&#x1B;", "&#x1b", "&#12;", "&#0000027;", "&#1;", "&#65535;"):
        html = (
            f"<html><head><title>Walk{reference}s</title></head><body><article>"
            f"<h1>Harbour</h1>{walk}<p>Esc{reference}[2J here.</p>{walk}</article></body></html>"
        )
        page = extract_page(
            FetchedPage(url="http://x.test/", final_url="http://x.test/", body=html)
        )
        assert page.error is None, reference
        assert "Esc[2J here." in page.text
        assert page.title == "Walks"
    # Other references are left to the parser: C1 ones are Windows-1252 characters in HTML.
    kept = extract_page(
        FetchedPage(
            url="http://x.test/",
            final_url="http://x.test/",
            body=html.replace("Esc", "&#x85;&amp;"),
        )
    )
    assert "…&[2J here." in kept.text


def test_special_token_strings_in_page_text_never_reach_the_tokenizer_as_tokens() -> None:
    from tiny_phi3 import build_tokenizer

    from phichat.retrieval.pack import clean_passage, clean_title
    from phichat.textsafe import neutralize_special_tokens

    tokenizer = build_tokenizer()
    special = set(tokenizer.all_special_ids)
    page = "Use <s>bold</s> markup, <unk> words, <|user|> turns and <|end|> tags. <|endoftext|>"
    assert special & set(tokenizer(page, add_special_tokens=False)["input_ids"])  # the danger
    for cleaned in (neutralize_special_tokens(page), clean_passage(page), clean_title(page)):
        ids = tokenizer(cleaned, add_special_tokens=False)["input_ids"]
        assert not special & set(ids), cleaned
    assert neutralize_special_tokens("a<s>b") == "a b"
    assert neutralize_special_tokens("<sup>2</sup> and <S> stay") == "<sup>2</sup> and <S> stay"
