"""The HTTP side of an OpenAI-compatible server: one client, one-line errors, streamed events.

httpx is imported only when a client is opened, so importing this module stays cheap.
Every failure becomes a ``ModelServerError`` that says in one line what went wrong and
what to check; nothing here knows about prompts or token counts.
"""

from __future__ import annotations

import json
import socket
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from phichat.errors import ConfigError, ModelServerError, PhichatError
from phichat.models.sse import event_data
from phichat.textsafe import one_line
from phichat.threads import Sink

CONNECT_TIMEOUT_S = 10.0


def normalize_base_url(url: str) -> str:
    """``http://host:port`` becomes ``http://host:port/v1``; a URL with a path is kept."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"base_url must be an http(s) URL such as http://127.0.0.1:8000/v1, got {url!r}"
        )
    path = parts.path.rstrip("/") or "/v1"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


class ServerLink:
    """The connection to one server: its URLs, its client and the wording of its errors."""

    def __init__(self, base_url: str, api_key: str | None, timeout: float) -> None:
        self.base_url = normalize_base_url(base_url)
        parts = urlsplit(self.base_url)
        # Tokenize endpoints live at the server's root, beside /v1 rather than under it.
        root_path = parts.path.removesuffix("/v1")
        self.root_url = urlunsplit((parts.scheme, parts.netloc, root_path, "", ""))
        self.host = parts.netloc
        self.timeout = timeout
        self._api_key = api_key
        self.client: Any = None  # set by attach(), once the server has answered
        # The model named in error messages (the server's default until one is chosen).
        self.model: str | None = None

    def open(self) -> Any:
        """A new client for this server, not yet attached (``attach`` once it works)."""
        import httpx

        headers = {"User-Agent": "phichat"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(self.timeout, connect=min(CONNECT_TIMEOUT_S, self.timeout)),
        )

    def attach(self, client: Any) -> None:
        self.client = client

    # ---- requests --------------------------------------------------------------------
    def send(self, client: Any, method: str, url: str, **kwargs: Any) -> Any:
        try:
            return client.request(method, url, **kwargs)
        except Exception as exc:
            raise self.transport_error(exc) from exc

    def post_json(self, url: str, body: dict[str, Any], doing: str) -> Any:
        response = self.send(self.client, "POST", url, json=body)
        if response.status_code != 200:
            raise self.status_error(response, doing)
        answer = json_or_none(response)
        if answer is None:
            raise ModelServerError(f"the model server at {self.host} did not answer in JSON")
        return answer

    def stream_events(self, url: str, body: dict[str, Any], sink: Sink[str]) -> None:
        """POST ``body`` and put the data of each server-sent event into ``sink``.

        Meant to run in a daemon thread (``threads.Stream``): a stop shuts the socket,
        which wakes a read blocked on a silent server at once, and the server sees the
        client going away and stops generating.
        """
        with self.client.stream("POST", url, json=body) as reply:
            sink.on_stop(lambda: _shut_socket(reply))
            if reply.status_code != 200:
                reply.read()
                raise self.status_error(reply, "answering")
            for data in event_data(reply.iter_lines()):
                if sink.stopping.is_set():
                    return
                sink.put(data)

    # ---- errors ----------------------------------------------------------------------
    def transport_error(self, exc: BaseException) -> PhichatError:
        if isinstance(exc, PhichatError):
            return exc
        import httpx

        where = f"the model server at {self.base_url}"
        if isinstance(exc, httpx.ConnectTimeout):
            return ModelServerError(f"{where} did not accept a connection in time")
        if isinstance(exc, httpx.ConnectError):
            return ModelServerError(
                f"cannot connect to {where} ({_reason(exc)}); is it running, and is base_url right?"
            )
        if isinstance(exc, httpx.TimeoutException):
            return ModelServerError(f"{where} sent nothing for {self.timeout:g} s; gave up")
        if isinstance(exc, httpx.RemoteProtocolError):
            return ModelServerError(f"{where} broke off the connection mid-answer")
        if isinstance(exc, httpx.HTTPError):
            return ModelServerError(f"the request to {where} failed: {_reason(exc)}")
        return ModelServerError(f"talking to {where} failed: {_reason(exc)}")

    def status_error(self, response: Any, doing: str) -> ModelServerError:
        status = response.status_code
        detail = error_text(json_or_none(response)) or one_line(response.text, 200)
        where = f"the model server at {self.host}"
        if status in (401, 403):
            return ModelServerError(
                f"{where} refused the API key (HTTP {status}): set api_key in the config file "
                "or PHICHAT_API_KEY"
            )
        if status == 404:
            return ModelServerError(
                f"{where} answered 404 while {doing} (model {self.model!r}): {detail}; "
                "check --api-model and --base-url"
            )
        if status == 429:
            retry = response.headers.get("retry-after")
            after = f"; retry after {one_line(retry, 20)} s" if retry else ""
            return ModelServerError(f"{where} is busy or rate-limited (HTTP 429){after}: {detail}")
        if status >= 500:
            return ModelServerError(f"{where} failed (HTTP {status}) while {doing}: {detail}")
        return ModelServerError(f"{where} rejected the request (HTTP {status}): {detail}")


def parse_chunk(data: str, host: str) -> tuple[str, bool, dict[str, Any] | None]:
    """(text, finished, usage) from one ``chat.completion.chunk`` event."""
    try:
        event = json.loads(data)
    except ValueError:
        raise ModelServerError(
            f"the model server at {host} sent a malformed event: {one_line(data, 80)}"
        ) from None
    if not isinstance(event, dict):
        raise ModelServerError(f"the model server at {host} sent a malformed event")
    if "error" in event:
        raise ModelServerError(f"the model server at {host} failed mid-answer: {error_text(event)}")
    usage = event.get("usage") if isinstance(event.get("usage"), dict) else None
    choices = event.get("choices")
    if choices is None and usage is not None:
        return "", False, usage
    if not isinstance(choices, list):
        raise ModelServerError(f"the model server at {host} sent an event without choices")
    if not choices:
        return "", False, usage
    choice = choices[0]
    delta = choice.get("delta") if isinstance(choice, dict) else None
    content = delta.get("content") if isinstance(delta, dict) else None
    if delta is None or not (content is None or isinstance(content, str)):
        raise ModelServerError(f"the model server at {host} sent a malformed event")
    return content or "", bool(choice.get("finish_reason")), usage


def _shut_socket(reply: Any) -> None:
    """Wake a read blocked on a silent server: shutting the socket down ends it at once."""
    try:
        stream = reply.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
    except (OSError, AttributeError):
        pass


def json_or_none(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def error_text(answer: Any) -> str:
    """The message from an error body: {"error": {"message"}}, {"error": "..."}, {"detail"}."""
    if not isinstance(answer, dict):
        return ""
    error = answer.get("error", answer.get("detail", answer.get("message")))
    if isinstance(error, dict):
        error = error.get("message", "")
    return one_line(str(error), 200) if error else ""


def _reason(exc: BaseException) -> str:
    return one_line(str(exc) or type(exc).__name__, 160)
