"""phichat.textsafe: what untrusted text loses before it reaches a terminal or a prompt."""

from __future__ import annotations

from phichat.textsafe import has_lone_surrogates, replace_lone_surrogates


def test_lone_surrogates_are_found_and_replaced() -> None:
    assert has_lone_surrogates("a\ud800b")
    assert has_lone_surrogates("\udfff")
    assert not has_lone_surrogates("emoji 🙂 and ü")  # real astral characters are fine
    assert replace_lone_surrogates("a\ud800b\udc00") == "a\ufffdb\ufffd"
    replace_lone_surrogates("x\udcff").encode()  # the result always encodes to UTF-8
