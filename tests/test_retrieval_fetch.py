"""Fetching from the loopback web: timeouts, redirects, the guard, caps and charsets."""

from __future__ import annotations

import threading

import pytest
from webfixture import LoopbackWeb, loopback_web_fixture  # noqa: F401

from phichat.retrieval import urlguard
from phichat.retrieval.fetch import FetchLimits, decode_body, fetch_pages

OPEN = FetchLimits(connect_timeout=1.0, read_timeout=1.0, deadline=5.0, allow_private=True)


def fetch_one(web: LoopbackWeb, path: str, limits: FetchLimits = OPEN):
    [page] = fetch_pages([web.url(path)], limits)
    return page


def test_normal_article_is_fetched_whole(loopback_web: LoopbackWeb) -> None:
    page = fetch_one(loopback_web, "/skagway.html")
    assert page.ok and not page.truncated
    assert page.content_type == "text/html"
    assert "White Pass and Yukon Route" in page.body


def test_requests_carry_an_honest_user_agent(loopback_web: LoopbackWeb) -> None:
    fetch_one(loopback_web, "/skagway.html")
    [agent] = loopback_web.user_agents
    assert agent.startswith("phichat/") and "local assistant" in agent


def test_pages_keep_their_order_and_failures_do_not_raise(loopback_web: LoopbackWeb) -> None:
    urls = [loopback_web.url(p) for p in ("/juneau.html", "/missing", "/ketchikan.html")]
    pages = fetch_pages(urls, OPEN)
    assert [p.url for p in pages] == urls
    assert pages[0].ok and pages[2].ok
    assert pages[1].error == "HTTP 404"


def test_slow_page_times_out_without_holding_up_the_others(loopback_web: LoopbackWeb) -> None:
    limits = FetchLimits(connect_timeout=0.5, read_timeout=0.5, deadline=5.0, allow_private=True)
    slow, fast = fetch_pages(
        [loopback_web.url("/slow.html"), loopback_web.url("/juneau.html")], limits
    )
    assert slow.error is not None and "timed out" in slow.error
    assert fast.ok


def test_overall_deadline_cuts_off_pages_still_loading(loopback_web: LoopbackWeb) -> None:
    limits = FetchLimits(connect_timeout=1.0, read_timeout=10.0, deadline=0.5, allow_private=True)
    [page] = fetch_pages([loopback_web.url("/slow.html")], limits)
    assert page.error == "overall fetch deadline reached"


def test_stop_event_abandons_the_fetch(loopback_web: LoopbackWeb) -> None:
    stop = threading.Event()
    stop.set()
    [page] = fetch_pages([loopback_web.url("/slow.html")], OPEN, stop=stop)
    assert page.error == "stopped"


def test_redirects_are_followed_to_the_final_page(loopback_web: LoopbackWeb) -> None:
    page = fetch_one(loopback_web, "/hop")
    assert page.ok
    assert page.final_url == loopback_web.url("/skagway.html")
    assert page.url == loopback_web.url("/hop")


def test_redirect_loop_stops_after_five_hops(loopback_web: LoopbackWeb) -> None:
    page = fetch_one(loopback_web, "/loop")
    assert page.error == "more than 5 redirects"
    assert loopback_web.requests.count("/loop") == 6  # the first request plus five redirects


def test_loopback_url_is_refused_before_any_connection(loopback_web: LoopbackWeb) -> None:
    guarded = FetchLimits(connect_timeout=1.0, read_timeout=1.0, deadline=5.0)
    for url in (loopback_web.url("/skagway.html"), f"http://localhost:{loopback_web.port}/"):
        [page] = fetch_pages([url], guarded)
        assert page.error is not None and page.error.startswith("refused")
    assert loopback_web.requests == []


def test_redirect_to_a_private_address_is_refused_before_connecting(
    loopback_web: LoopbackWeb, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pretend the test server's own address is public, so the first hop is allowed and
    # only the redirect's target (another loopback address) meets the guard.
    real = urlguard.is_public_address
    monkeypatch.setattr(
        urlguard, "is_public_address", lambda ip: str(ip) == "127.0.0.1" or real(ip)
    )
    attempted: list[object] = []
    import socket

    guarded_connect = socket.socket.connect

    def recording_connect(self: socket.socket, address: object) -> None:
        attempted.append(address)
        guarded_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", recording_connect)
    guarded = FetchLimits(connect_timeout=1.0, read_timeout=1.0, deadline=5.0)
    page = fetch_one(loopback_web, "/to-other-loopback", guarded)
    assert page.error is not None
    assert page.error.startswith("refused") and "127.0.0.2" in page.error
    assert loopback_web.requests == ["/to-other-loopback"]
    assert all(address[0] != "127.0.0.2" for address in attempted)  # type: ignore[index]


def test_non_html_content_is_skipped(loopback_web: LoopbackWeb) -> None:
    page = fetch_one(loopback_web, "/report.pdf")
    assert page.error == "not HTML or text (application/pdf)"
    assert page.body == ""


def test_plain_text_is_accepted(loopback_web: LoopbackWeb) -> None:
    page = fetch_one(loopback_web, "/ferry-notes.txt")
    assert page.ok and page.content_type == "text/plain"
    assert "forty-five minutes" in page.body


def test_body_over_the_cap_is_cut_at_the_cap(loopback_web: LoopbackWeb) -> None:
    limits = FetchLimits(
        connect_timeout=1.0, read_timeout=1.0, max_bytes=50_000, allow_private=True
    )
    page = fetch_one(loopback_web, "/big.html", limits)
    assert page.ok and page.truncated
    assert len(page.body.encode()) == 50_000


def test_compressed_body_is_capped_after_inflating(loopback_web: LoopbackWeb) -> None:
    # About 20 KB on the wire inflates to 20 MB; the cap must apply to the inflated bytes.
    assert len(loopback_web.routes["/bomb.html"].body) < 100_000
    limits = FetchLimits(
        connect_timeout=1.0, read_timeout=1.0, max_bytes=100_000, allow_private=True
    )
    page = fetch_one(loopback_web, "/bomb.html", limits)
    assert page.ok and page.truncated
    assert len(page.body) == 100_000
    assert page.body.startswith("<html><body><p>aaaa")


def test_mislabelled_charset_still_decodes(loopback_web: LoopbackWeb) -> None:
    page = fetch_one(loopback_web, "/latin1.html")
    assert page.ok
    assert "café" in page.body and "crème brûlée" in page.body


def test_unknown_charset_name_falls_back(loopback_web: LoopbackWeb) -> None:
    page = fetch_one(loopback_web, "/bogus-charset.html")
    assert page.ok and "Plain words in plain ASCII" in page.body


@pytest.mark.parametrize(
    ("raw", "content_type", "expected"),
    [
        ("naïve".encode(), "text/html", "naïve"),
        ("naïve".encode("latin-1"), "text/html; charset=utf-8", "naïve"),
        ("привет".encode("koi8-r"), "text/html; charset=koi8-r", "привет"),
        (b'<meta charset="windows-1252"><p>\x93quoted\x94', "text/html", "“quoted”"),
        (b"\xff\xfe broken \x81", "text/html; charset=utf-8", " broken "),
    ],
)
def test_decode_body_never_fails(raw: bytes, content_type: str, expected: str) -> None:
    assert expected in decode_body(raw, content_type)


def test_the_connection_goes_to_the_vetted_address_not_a_second_lookup(
    loopback_web: LoopbackWeb, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Against DNS rebinding: the address the guard approved is the one dialled.

    The guard is stood in for by one that vets "pinned.test" as the loopback server's
    address, and any other lookup of that name fails. So the page can only load if the
    fetch connects to the vetted address instead of resolving the name again.
    """
    import socket

    from phichat.retrieval import fetch

    port = loopback_web.base.rsplit(":", 1)[1]
    monkeypatch.setattr(fetch, "check_url", lambda url, allow_private: ["127.0.0.1"])
    real = socket.getaddrinfo

    def no_second_lookup(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host == "pinned.test":
            raise socket.gaierror(-2, "a second lookup of pinned.test was made")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", no_second_lookup)
    [page] = fetch_pages([f"http://pinned.test:{port}/skagway.html"], OPEN)
    assert page.ok, page.error
    assert "White Pass and Yukon Route" in page.body
    assert page.url == f"http://pinned.test:{port}/skagway.html"
    # The server still sees the real host name.
    assert loopback_web.hosts == [f"pinned.test:{port}"]


def test_check_url_returns_the_address_to_pin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(urlguard, "resolve", lambda host, port: ["93.184.216.34"])
    assert urlguard.check_url("https://example.org/page", allow_private=False) == ["93.184.216.34"]
    assert urlguard.check_url("https://93.184.216.34/page", allow_private=False) == []
    assert urlguard.check_url("https://example.org/page", allow_private=True) == []


# ---- every vetted address, in the resolver's order ------------------------------------------
def test_check_url_keeps_the_resolvers_order(monkeypatch: pytest.MonkeyPatch) -> None:
    # Sorted as strings, the IPv6 address came first, and IPv4-only networks failed.
    monkeypatch.setattr(urlguard, "resolve", lambda host, port: ["52.84.1.1", "2600:9000:1::1"])
    assert urlguard.check_url("https://example.org/", allow_private=False) == [
        "52.84.1.1",
        "2600:9000:1::1",
    ]


def test_resolve_keeps_order_and_drops_repeats(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    def fake_getaddrinfo(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))
            for address in ("93.184.216.34", "52.84.1.1", "93.184.216.34")
        ]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    assert urlguard.resolve("example.org", 443) == ["93.184.216.34", "52.84.1.1"]


class _OtherLoopbackPage:
    """A one-page server on 127.0.0.2, so 127.0.0.1 on the same port refuses connections."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Page(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = b"<html><body><p>Reached the second address.</p></body></html>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.2", 0), Page)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _OtherLoopbackPage:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _pin_to(monkeypatch: pytest.MonkeyPatch, addresses: list[str]) -> list[object]:
    """Make "dual.test" resolve to ``addresses``, all vetted; returns the connects made."""
    import socket

    monkeypatch.setattr(urlguard, "resolve", lambda host, port: list(addresses))
    monkeypatch.setattr(urlguard, "is_public_address", lambda ip: True)
    attempted: list[object] = []
    real_connect = socket.socket.connect  # the loopback-only guard from conftest

    def recording_connect(self: socket.socket, address: object) -> None:
        attempted.append(address[0] if isinstance(address, tuple) else address)
        real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", recording_connect)
    return attempted


def test_the_fetch_falls_back_to_the_next_vetted_address(monkeypatch: pytest.MonkeyPatch) -> None:
    with _OtherLoopbackPage() as page:
        attempted = _pin_to(monkeypatch, ["127.0.0.1", "127.0.0.2"])  # the first refuses
        guarded = FetchLimits(connect_timeout=1.0, read_timeout=1.0, deadline=5.0)
        [fetched] = fetch_pages([f"http://dual.test:{page.port}/"], guarded)
    assert fetched.ok, fetched.error
    assert "Reached the second address" in fetched.body
    assert attempted == ["127.0.0.1", "127.0.0.2"]


def test_the_fetch_tries_addresses_in_the_resolvers_order(monkeypatch: pytest.MonkeyPatch) -> None:
    with _OtherLoopbackPage() as page:
        attempted = _pin_to(monkeypatch, ["127.0.0.2", "127.0.0.1"])
        guarded = FetchLimits(connect_timeout=1.0, read_timeout=1.0, deadline=5.0)
        [fetched] = fetch_pages([f"http://dual.test:{page.port}/"], guarded)
    assert fetched.ok, fetched.error
    assert attempted == ["127.0.0.2"]  # the first answered: the other was never tried


def test_when_every_address_refuses_the_page_fails_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on, on either address
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    attempted = _pin_to(monkeypatch, ["127.0.0.1", "127.0.0.3"])
    guarded = FetchLimits(connect_timeout=1.0, read_timeout=1.0, deadline=5.0)
    [fetched] = fetch_pages([f"http://dual.test:{port}/"], guarded)
    assert fetched.error is not None and fetched.error.startswith("cannot connect")
    assert attempted == ["127.0.0.1", "127.0.0.3"]
