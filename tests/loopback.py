"""A programmable HTTP(S) server on 127.0.0.1 for tests: each test says what every request gets.

`LoopbackServer(handler)` hands `handler` every request (a `Request`: method, path, query, headers, body, when
it came and how many times that path and query came before) and sends what it returns:

- `(status, headers, body)`: a body that is str or bytes is sent as it is, any other as JSON (with its
  Content-Type, unless the headers name one); an iterable of bytes is streamed a piece at a time, flushed
  after each (a generator that sleeps between pieces drips), with no Content-Length unless the headers
  declare one, and the connection closed after it;
- `Slow(seconds)`: nothing for `seconds`, then the server's `late(request)` answer (a client with a shorter
  read timeout has given up by then);
- `DROP`: the connection closed without an answer;
- `Raw(pieces)`: the bytes of `pieces` written to the connection as they are, status line and headers
  included, flushed after each, then the connection closed (a generator that sleeps between pieces sends
  headers a byte at a time).

Every request is recorded in `requests`, in the order they came.
"""
from __future__ import annotations

import contextlib
import json
import ssl
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

# (status, headers, body): see the module's docstring for what a body may be.
Reply = tuple[int, dict[str, str], Any]
DROP = "drop"  # a reply that closes the connection without an answer


@dataclass(frozen=True)
class Slow:
    """A reply sent only after `seconds`: past the client's read timeout, it has given up by then."""

    seconds: float


@dataclass(frozen=True)
class Raw:
    """A reply written byte for byte, status line and headers included: see the module's docstring."""

    pieces: Iterable[bytes]


@dataclass
class Request:
    """One request as the server saw it: header names are lower case, repeated headers all kept."""

    method: str
    target: str  # the path and query as sent
    path: str
    query: dict[str, str]
    headers: dict[str, list[str]]
    body: bytes = b""
    at: float = 0.0  # time.monotonic() when it arrived
    wall: float = 0.0  # time.time(), to count requests per calendar second
    attempt: int = 1  # 1 for the first request of this path and query, 2 for the next, ...
    client_port: int = 0
    form: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.form = dict(parse_qsl(self.body.decode(errors="replace"), keep_blank_values=True))

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[-1] if values else None

    def json(self) -> Any:
        """Return the body read as JSON, or None when it is empty or not JSON (a form, say)."""
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None


Handler = Callable[[Request], "Reply | Slow | Raw | str"]


def empty_page(request: Request) -> Reply:
    return 200, {}, {"results": []}


class LoopbackServer:
    """Serve `handler(request)` on a free loopback port; record every request in `requests`.

    `tls` (certificate and key files) serves HTTPS; `keep_alive` answers in HTTP/1.1, keeping connections
    open between requests; `late` answers what a `Slow` reply sends at last.
    """

    def __init__(self, handler: Handler, *, tls: tuple[Path, Path] | None = None, keep_alive: bool = False,
                 late: Callable[[Request], Reply] = empty_page):
        self.handler = handler
        self.late = late
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        outer = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

            def _serve(self) -> None:
                request = outer._record(self)
                reply = outer.handler(request)
                if reply == DROP:
                    self.close_connection = True
                    return
                if isinstance(reply, Raw):
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        for piece in reply.pieces:
                            self.wfile.write(piece)
                            self.wfile.flush()
                    return
                if isinstance(reply, Slow):
                    time.sleep(reply.seconds)
                    reply = outer.late(request)
                # The client hanging up, or giving up waiting, is what some tests make it do.
                with contextlib.suppress(OSError):
                    self._send(*reply)

            def _send(self, status: int, headers: dict[str, str], body: Any) -> None:
                declared = {name.lower() for name in headers}
                if isinstance(body, str | bytes):
                    payload = body.encode() if isinstance(body, str) else body
                elif isinstance(body, Iterable) and not isinstance(body, dict | list):
                    self._stream(status, headers, body)
                    return
                else:
                    payload = json.dumps(body).encode()
                    if "content-type" not in declared:
                        headers = {"Content-Type": "application/json", **headers}
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if "content-length" not in declared:
                    self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _stream(self, status: int, headers: dict[str, str], pieces: Iterable[bytes]) -> None:
                self.close_connection = True  # the end of the body is the end of the connection
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                for piece in pieces:
                    self.wfile.write(piece)
                    self.wfile.flush()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve  # noqa: N815 - http.server's names

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class _Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                # A client that went away is part of some tests; anything else is a test's mistake to show.
                if not isinstance(sys.exc_info()[1], OSError):
                    super().handle_error(request, client_address)

        self._server = _Server(("127.0.0.1", 0), _Handler)
        self.scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(certfile=tls[0], keyfile=tls[1])
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def _record(self, handler: BaseHTTPRequestHandler) -> Request:
        parts = urlsplit(handler.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        headers: dict[str, list[str]] = {}
        for name, value in handler.headers.items():
            headers.setdefault(name.lower(), []).append(value)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        with self._lock:
            attempt = 1 + sum(1 for seen in self.requests if (seen.path, seen.query) == (parts.path, query))
            request = Request(
                method=handler.command, target=handler.path, path=parts.path, query=query, headers=headers,
                body=body, at=time.monotonic(), wall=time.time(), attempt=attempt,
                client_port=handler.client_address[1],
            )
            self.requests.append(request)
        return request

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self._server.server_address[1]}"

    def of(self, path: str, **query: str) -> list[Request]:
        """Return the requests of one path and query, in order."""
        return [request for request in self.requests if request.path == path and request.query == query]

    def per_second(self) -> Counter[int]:
        """Return how many requests arrived in each calendar second."""
        return Counter(int(request.wall) for request in self.requests)

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def gaps(requests: list[Request]) -> list[float]:
    """Return the seconds between each request and the one before it."""
    return [later.at - earlier.at for earlier, later in zip(requests, requests[1:], strict=False)]
