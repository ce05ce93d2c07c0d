"""Fetch the result pages, all at once, safely and within a deadline.

Every page is fetched concurrently on one ``httpx.AsyncClient``. Each hop of a redirect
chain passes the address guard first, bodies are read as a stream and capped after
decompression (so a small gzip bomb cannot fill memory), and only HTML and plain text
are kept. A page that fails becomes a ``FetchedPage`` with an ``error``; it never raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit, urlunsplit

from phichat import threads
from phichat.retrieval.search import USER_AGENT
from phichat.retrieval.types import FetchedPage
from phichat.retrieval.urlguard import UrlRefused, check_url
from phichat.textsafe import one_line

if TYPE_CHECKING:
    import httpx

MAX_REDIRECTS = 5
_REDIRECT_CODES = {301, 302, 303, 307, 308}
_TEXT_TYPES = ("text/html", "application/xhtml+xml", "text/plain")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.I)
_STOP_POLL_S = 0.05

# progress(pages finished, pages in all)
FetchProgress = Callable[[int, int], None]
# enough(pages read so far): True once they hold enough text; the rest then get ``grace``.
EnoughPages = Callable[[list[FetchedPage]], bool]


@dataclass(frozen=True)
class FetchLimits:
    connect_timeout: float = 3.0
    read_timeout: float = 5.0
    deadline: float = 10.0
    max_bytes: int = 2_000_000
    max_redirects: int = MAX_REDIRECTS
    allow_private: bool = False
    # Once the pages read hold enough text, stragglers get this long, not the deadline.
    grace: float = 2.0


class PageFailed(Exception):
    """A page cannot be used; the message is the short reason recorded with it."""


class _CappedDecoder:
    """Undo gzip/deflate incrementally, never producing more than ``limit`` bytes.

    httpx's own decoders inflate each network chunk in full; a 100 KB chunk of a crafted
    gzip stream can inflate a thousandfold, so the cap must apply inside decompression.
    """

    def __init__(self, encoding: str, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.truncated = False
        self._pieces: list[bytes] = []
        encoding = encoding.strip().lower()
        if encoding in ("", "identity"):
            self._inflater = None
        elif encoding in ("gzip", "x-gzip"):
            self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._inflater = zlib.decompressobj()
            self._deflate_sniffed = False
        else:
            raise PageFailed(f"unsupported content encoding {encoding!r}")
        self._encoding = encoding

    def feed(self, data: bytes) -> bool:
        """Add raw bytes; returns False once the cap is reached (stop reading)."""
        room = self.limit - self.size
        if self._inflater is None:
            piece = data[: room + 1]
        else:
            if self._encoding == "deflate" and not self._deflate_sniffed and data:
                # "deflate" is sometimes sent as a raw stream without the zlib header.
                self._deflate_sniffed = True
                if (data[0] & 0x0F) != 8:
                    self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            try:
                piece = self._inflater.decompress(data, room + 1)
            except zlib.error:
                raise PageFailed("corrupt compressed body") from None
        if len(piece) > room:
            self._pieces.append(piece[:room])
            self.size = self.limit
            self.truncated = True
            return False
        self._pieces.append(piece)
        self.size += len(piece)
        return True

    def body(self) -> bytes:
        return b"".join(self._pieces)


def _charset_from_header(content_type: str) -> str | None:
    match = re.search(r"charset\s*=\s*[\"']?([A-Za-z0-9._:-]+)", content_type, re.I)
    return match.group(1) if match else None


def decode_body(raw: bytes, content_type: str) -> str:
    """Bytes to text: the declared charset if it decodes cleanly, then UTF-8, then cp1252.

    Pages lie about their encoding often enough (a UTF-8 header over Latin-1 bytes, an
    unknown charset name) that a wrong or broken declaration must never fail the page.
    """
    declared = [_charset_from_header(content_type)]
    meta = _META_CHARSET.search(raw[:4096])
    if meta:
        declared.append(meta.group(1).decode("ascii", "ignore"))
    for candidate in [*declared, "utf-8"]:
        if not candidate:
            continue
        try:
            return raw.decode(candidate)
        except (LookupError, UnicodeDecodeError):
            continue
    # cp1252 decodes nearly every byte; "replace" covers the five it leaves undefined.
    return raw.decode("cp1252", errors="replace")


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _request_to(client: httpx.AsyncClient, url: str, address: str | None) -> httpx.Request:
    """A GET for ``url`` that connects to the vetted ``address`` when one is given.

    The URL's host is swapped for the address, while the Host header and the TLS server
    name (which the certificate is checked against) keep the real host name.
    """
    if address is None:
        return client.build_request("GET", url)
    parts = urlsplit(url)
    netloc = f"[{address}]" if ":" in address else address
    if parts.port is not None:
        netloc += f":{parts.port}"
    host_header = parts.netloc.rsplit("@", 1)[-1]  # URLs with credentials were refused
    extensions = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
    return client.build_request(
        "GET",
        urlunsplit(parts._replace(netloc=netloc)),
        headers={"Host": host_header},
        extensions=extensions,
    )


async def _send_to_first_reachable(
    client: httpx.AsyncClient, url: str, addresses: list[str]
) -> httpx.Response:
    """Send the GET to each vetted address in turn, until one accepts the connection.

    A dual-stack site's first address can be unreachable from here (IPv6 on an IPv4-only
    network); only a failed connect moves on to the next, any later failure is the page's.
    """
    import httpx

    targets: list[str | None] = [*addresses] or [None]
    try:
        for address in targets[:-1]:
            with contextlib.suppress(httpx.ConnectError, httpx.ConnectTimeout):
                return await client.send(_request_to(client, url, address), stream=True)
        return await client.send(_request_to(client, url, targets[-1]), stream=True)
    except httpx.TimeoutException:
        raise PageFailed("timed out") from None
    except httpx.HTTPError as exc:
        reason = one_line(str(exc) or type(exc).__name__, 120)
        raise PageFailed(f"cannot connect: {reason}") from None


async def _fetch_one(client: httpx.AsyncClient, url: str, limits: FetchLimits) -> FetchedPage:
    import httpx

    current = url
    for _hop in range(limits.max_redirects + 1):
        try:
            # Not asyncio.to_thread: a stuck lookup would then hold up Esc, the fetch
            # deadline and quitting, which join the default executor's threads.
            addresses = await threads.call_async(
                partial(check_url, current, limits.allow_private), name="phichat-resolve"
            )
        except UrlRefused as exc:
            raise PageFailed(f"refused: {exc}") from None
        response = await _send_to_first_reachable(client, current, addresses)
        try:
            if response.status_code in _REDIRECT_CODES and "location" in response.headers:
                current = urljoin(current, response.headers["location"])
                continue
            if response.status_code >= 400:
                raise PageFailed(f"HTTP {response.status_code}")
            content_type = response.headers.get("content-type", "")
            media = _media_type(content_type)
            # A missing type is read as HTML: small sites often omit it.
            if media and media not in _TEXT_TYPES:
                raise PageFailed(f"not HTML or text ({one_line(media, 60)})")
            decoder = _CappedDecoder(response.headers.get("content-encoding", ""), limits.max_bytes)
            try:
                async for data in response.aiter_raw():
                    if not decoder.feed(data):
                        break
            except httpx.TimeoutException:
                raise PageFailed("timed out while reading") from None
            except httpx.HTTPError as exc:
                reason = one_line(str(exc) or type(exc).__name__, 120)
                raise PageFailed(f"read failed: {reason}") from None
            return FetchedPage(
                url=url,
                final_url=current,
                content_type=media or "text/html",
                body=decode_body(decoder.body(), content_type),
                truncated=decoder.truncated,
            )
        finally:
            await response.aclose()
    raise PageFailed(f"more than {limits.max_redirects} redirects")


async def _fetch_guarded(client: httpx.AsyncClient, url: str, limits: FetchLimits) -> FetchedPage:
    try:
        return await _fetch_one(client, url, limits)
    except PageFailed as exc:
        return FetchedPage(url=url, error=str(exc))
    except Exception as exc:  # a page must never fail the turn, whatever went wrong
        return FetchedPage(url=url, error=f"failed: {one_line(type(exc).__name__, 80)}")


async def fetch_pages_async(
    urls: list[str],
    limits: FetchLimits,
    progress: FetchProgress | None = None,
    stop: threading.Event | None = None,
    enough: EnoughPages | None = None,
) -> list[FetchedPage]:
    """Fetch ``urls`` concurrently; the result keeps their order, one entry per URL.

    All pages get ``limits.deadline``; once ``enough`` says the pages read so far
    suffice, the ones still loading get at most ``limits.grace`` more seconds.
    """
    import httpx

    if not urls:
        return []
    timeout = httpx.Timeout(
        limits.read_timeout, connect=limits.connect_timeout, pool=limits.deadline
    )
    headers = {
        "User-Agent": USER_AGENT,
        "Accept": "text/html,application/xhtml+xml,text/plain;q=0.9,*/*;q=0.1",
        "Accept-Language": "en;q=1.0, *;q=0.5",
        "Accept-Encoding": "gzip, deflate",
    }
    # No keep-alive: requests are pinned to vetted IP addresses, and one address often
    # serves many sites (a CDN). A pooled connection opened for one site's TLS name must
    # never carry a request for another.
    async with httpx.AsyncClient(
        timeout=timeout,
        headers=headers,
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits(max_keepalive_connections=0),
    ) as client:
        tasks = [asyncio.create_task(_fetch_guarded(client, url, limits)) for url in urls]
        pending = set(tasks)
        ends_at = time.monotonic() + limits.deadline
        soft = False
        while pending:
            remaining = ends_at - time.monotonic()
            if remaining <= 0 or (stop is not None and stop.is_set()):
                break
            done, pending = await asyncio.wait(
                pending, timeout=min(_STOP_POLL_S, remaining), return_when=asyncio.FIRST_COMPLETED
            )
            if done and progress is not None:
                progress(len(tasks) - len(pending), len(tasks))
            if done and pending and enough is not None and not soft:
                read = [t.result() for t in tasks if t.done() and not t.cancelled()]
                if enough([page for page in read if page.ok]):
                    soft = True
                    ends_at = min(ends_at, time.monotonic() + limits.grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
    stopped = stop is not None and stop.is_set()
    if stopped:
        reason = "stopped"
    elif soft:
        reason = "too slow: the other pages were enough"
    else:
        reason = "overall fetch deadline reached"
    return [
        task.result()
        if task.done() and not task.cancelled()
        else FetchedPage(url=url, error=reason)
        for url, task in zip(urls, tasks, strict=True)
    ]


def fetch_pages(
    urls: list[str],
    limits: FetchLimits,
    progress: FetchProgress | None = None,
    stop: threading.Event | None = None,
    enough: EnoughPages | None = None,
) -> list[FetchedPage]:
    """Blocking wrapper: runs the fetch on a fresh event loop in the calling thread."""
    return asyncio.run(fetch_pages_async(urls, limits, progress, stop, enough))
