"""A misbehaving HTTP proxy on loopback, for tests that play a load balancer in front of CrateDB.

Put it in front of a CrateDB HTTP URL (the stand-in or a real CrateDB) and point the client at
``proxy.url``. By default it passes every request through. Armed, it misbehaves the way nginx or
HAProxy do when an upstream is slow, for the first ``count`` requests whose body contains a given
substring (``"COPY "``), once the upstream has not answered for ``patience`` seconds:

* :meth:`MisbehavingProxy.answer_status`: answer ``504 Gateway Time-out`` (or 502, 503, 509) with a
  small HTML body, as nginx (default) or HAProxy word it;
* :meth:`MisbehavingProxy.reset`: reset the client connection (TCP RST, ``SO_LINGER`` 0);
* :meth:`MisbehavingProxy.close_without_answer`: close the client connection without an answer;
* :meth:`MisbehavingProxy.break_tls` (with ``tls``, an ``ssl.SSLContext`` for the client side: the proxy
  then serves https, as CrateDB Cloud's endpoint does): write bytes that are not TLS under the session,
  as a broken middlebox does, so the client's TLS layer fails (an SSL error, not a lost connection).

In every case the request was already forwarded upstream in full, and the upstream connection stays
open, its answer read and dropped, until the upstream finishes: the statement keeps running in
CrateDB, as behind a real proxy. An upstream that answers within the patience is passed through.
:meth:`MisbehavingProxy.forwarded` counts the requests forwarded upstream whose body (or JSON
``stmt``) contains a substring, so a test can assert that a client sent a statement once.

One upstream connection per request (``Connection: close`` upstream), keep-alive towards the client.
Bounded: at most ``max_connections`` client connections (more are closed at once), request bodies
up to ``max_body`` bytes (413 beyond), the last ``history`` requests kept. ``close()`` (or leaving the
``with`` block) closes every socket and joins every thread it started.
"""

from __future__ import annotations

import collections
import contextlib
import gzip
import json
import os
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

ACTIONS = ("status", "reset", "close", "garble")
_REASONS = {
    408: "Request Time-out",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
    504: "Gateway Time-out",
    509: "Bandwidth Limit Exceeded",
    524: "A Timeout Occurred",  # Cloudflare's: the origin took too long
}
_HAPROXY_TEXT = {
    408: "Your browser didn't send a complete request in time.",
    500: "An internal error occurred.",
    502: "The server returned an invalid or incomplete response.",
    503: "No server is available to handle this request.",
    504: "The server didn't respond in time.",
    509: "Bandwidth limit exceeded.",
    524: "The origin web server timed out responding to this request.",
}
_HEAD_LIMIT = 64 * 1024
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}


def error_page(status: int, style: str = "nginx") -> tuple[str, bytes]:
    """(reason phrase, HTML body) of a proxy's own error answer."""
    if status not in _REASONS:
        raise ValueError(f"status must be one of {sorted(_REASONS)}")
    reason = _REASONS[status]
    if style == "nginx":
        body = (
            f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
            f"<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
        )
    elif style == "haproxy":
        reason = {503: "Service Unavailable"}.get(status, reason)
        body = f"<html><body><h1>{status} {reason}</h1>\n{_HAPROXY_TEXT[status]}\n</body></html>\n"
    else:
        raise ValueError("style must be 'nginx' or 'haproxy'")
    return reason, body.encode()


@dataclass
class Rule:
    action: str  # one of ACTIONS
    match: str
    remaining: int
    patience: float
    status: int = 504
    style: str = "nginx"


@dataclass
class Forwarded:
    """One request the proxy forwarded upstream, and what the client got."""

    method: str
    path: str
    body: str  # decoded (gunzipped) request body
    stmt: str | None  # the JSON body's "stmt", when there is one
    outcome: str = "pending"  # "answered <status>", "status <n>", "reset", "closed", "upstream failed: ..."
    upstream_status: int | None = None
    upstream_seconds: float | None = None  # until the upstream's answer was complete

    def contains(self, text: str) -> bool:
        return text in self.body or (self.stmt is not None and text in self.stmt)


@dataclass
class _Response:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class _Request:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes
    keep_alive: bool = True
    record: Forwarded | None = field(default=None)


class _ClientGone(Exception):
    pass


class MisbehavingProxy:
    def __init__(
        self,
        upstream: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_connections: int = 32,
        max_body: int = 64 * 1024 * 1024,
        upstream_timeout: float = 600.0,
        history: int = 10_000,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be an http://host:port URL, got {upstream!r}")
        self.upstream = (parts.hostname, parts.port or 80)
        self._address = (host, port)
        self._max_connections = max_connections
        self._max_body = max_body
        self._upstream_timeout = upstream_timeout
        self._tls = tls
        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self._history: collections.deque[Forwarded] = collections.deque(maxlen=history)
        self._sockets: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._slots = threading.BoundedSemaphore(max_connections)
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()
        self.refused_connections = 0

    # -- life cycle --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._listener is None:
            raise RuntimeError("MisbehavingProxy is not started")
        host, port = self._listener.getsockname()[:2]
        return f"{'https' if self._tls else 'http'}://{host}:{port}"

    def start(self) -> MisbehavingProxy:
        if self._listener is None:
            listener = socket.create_server(self._address)
            listener.settimeout(0.2)
            self._listener = listener
            self._spawn(self._accept_loop, "proxy-accept")
        return self

    def close(self) -> None:
        """Stop accepting, close every client and upstream socket, join the threads."""
        self._stopping.set()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        deadline = time.monotonic() + 10
        while True:
            with self._lock:
                threads = [t for t in self._threads if t is not threading.current_thread()]
            alive = [t for t in threads if t.is_alive()]
            if not alive or time.monotonic() > deadline:
                break
            for thread in alive:
                thread.join(timeout=0.1)
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()

    def __enter__(self) -> MisbehavingProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- arming ------------------------------------------------------------------------------------

    def answer_status(
        self, match: str, status: int = 504, *, count: int = 1, patience: float = 1.0, style: str = "nginx"
    ) -> None:
        """Answer the first ``count`` requests containing ``match`` with ``status`` (one of `_REASONS`), the
        proxy's own page and no CrateDB JSON, once the upstream has kept them ``patience`` seconds unanswered."""
        error_page(status, style)  # validates
        self._arm(Rule("status", match, count, patience, status, style))

    def reset(self, match: str, *, count: int = 1, patience: float = 1.0) -> None:
        """Reset (TCP RST) the client connection of the first ``count`` requests containing ``match``."""
        self._arm(Rule("reset", match, count, patience))

    def break_tls(self, match: str, *, count: int = 1, patience: float = 1.0) -> None:
        """Answer the first ``count`` requests containing ``match`` with bytes that are not TLS (under an
        https proxy only), then close the connection."""
        if self._tls is None:
            raise ValueError("break_tls needs a proxy started with tls=")
        self._arm(Rule("garble", match, count, patience))

    def close_without_answer(self, match: str, *, count: int = 1, patience: float = 1.0) -> None:
        """Close the client connection, without an answer, of the first ``count`` requests containing ``match``."""
        self._arm(Rule("close", match, count, patience))

    def disarm(self) -> None:
        with self._lock:
            self._rules.clear()

    def _arm(self, rule: Rule) -> None:
        if rule.remaining < 1 or rule.patience < 0:
            raise ValueError("count must be >= 1 and patience >= 0")
        with self._lock:
            self._rules.append(rule)

    # -- what happened -----------------------------------------------------------------------------

    def forwarded(self, match: str = "") -> int:
        """How many requests containing ``match`` (in the body or the JSON stmt) went upstream."""
        with self._lock:
            return sum(1 for record in self._history if record.contains(match))

    @property
    def requests(self) -> list[Forwarded]:
        with self._lock:
            return list(self._history)

    # -- serving -----------------------------------------------------------------------------------

    def _spawn(self, target: Any, name: str, *args: Any) -> None:
        thread = threading.Thread(target=self._run_tracked, args=(target, *args), name=name, daemon=True)
        with self._lock:
            self._threads.add(thread)
        thread.start()

    def _run_tracked(self, target: Any, *args: Any) -> None:
        try:
            target(*args)
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _untrack(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)
        with contextlib.suppress(OSError):
            sock.close()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self._slots.acquire(blocking=False):
                self.refused_connections += 1
                client.close()
                continue
            self._track(client)
            self._spawn(self._serve_client, "proxy-client", client)

    def _serve_client(self, client: socket.socket) -> None:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = None
        try:
            if self._tls is not None:
                raw = client
                raw.settimeout(10)
                client = self._tls.wrap_socket(raw, server_side=True)  # takes over the raw socket
                client.settimeout(None)
                self._untrack(raw)
                self._track(client)
            reader = client.makefile("rb")
            while not self._stopping.is_set():
                request = self._read_request(reader, client)
                if request is None:
                    return
                if not self._handle(client, request) or not request.keep_alive:
                    return
        except (OSError, _ClientGone, ValueError):
            return
        finally:
            if reader is not None:
                with contextlib.suppress(OSError):
                    reader.close()
            self._untrack(client)
            self._slots.release()

    def _handle(self, client: socket.socket, request: _Request) -> bool:
        """Forward one request; returns whether the client connection stays usable."""
        text = _decoded_body(request)
        record = Forwarded(request.method, request.target, text, _stmt_of(text))
        rule = self._take_rule(record)
        with self._lock:
            self._history.append(record)
        answered = threading.Event()
        box: dict[str, Any] = {}
        self._spawn(self._exchange, "proxy-upstream", request, record, answered, box)
        patience = rule.patience if rule is not None else None
        if not answered.wait(timeout=patience):
            assert rule is not None
            return self._misbehave(client, rule, record, request.keep_alive)
        response: _Response | None = box.get("response")
        if response is None:
            record.outcome = f"upstream failed: {box.get('error')}"
            reason, body = error_page(502)
            self._send(client, _Response(502, reason, [("Content-Type", "text/html")], body), request.keep_alive)
            return request.keep_alive
        record.outcome = f"answered {response.status}"
        self._send(client, response, request.keep_alive)
        return request.keep_alive

    def _take_rule(self, record: Forwarded) -> Rule | None:
        with self._lock:
            for rule in self._rules:
                if rule.remaining > 0 and record.contains(rule.match):
                    rule.remaining -= 1
                    return rule
        return None

    def _misbehave(self, client: socket.socket, rule: Rule, record: Forwarded, keep_alive: bool) -> bool:
        if rule.action == "status":
            record.outcome = f"status {rule.status}"
            reason, body = error_page(rule.status, rule.style)
            server = "nginx" if rule.style == "nginx" else "haproxy"
            headers = [("Server", server), ("Content-Type", "text/html")]
            self._send(client, _Response(rule.status, reason, headers, body), keep_alive)
            return keep_alive
        if rule.action == "reset":
            record.outcome = "reset"
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()  # with linger 0: RST instead of FIN
            return False
        if rule.action == "garble":
            record.outcome = "garbled under TLS"
            with contextlib.suppress(OSError):
                os.write(client.fileno(), b"HTTP/1.1 502 Bad Gateway\r\n\r\n")  # beneath the TLS session
                client.shutdown(socket.SHUT_RDWR)
            return False
        record.outcome = "closed"
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_RDWR)
        return False

    def _exchange(self, request: _Request, record: Forwarded, answered: threading.Event, box: dict[str, Any]) -> None:
        """Send the request upstream in full and read the whole answer, whoever still waits for it."""
        started = time.monotonic()
        upstream: socket.socket | None = None
        try:
            upstream = socket.create_connection(self.upstream, timeout=self._upstream_timeout)
            self._track(upstream)
            upstream.sendall(_serialize_request(request))
            with upstream.makefile("rb") as reader:
                response = _read_response(reader, request.method)
            record.upstream_status = response.status
            box["response"] = response
        except (OSError, ValueError) as error:
            box["error"] = f"{type(error).__name__}: {error}"
        finally:
            record.upstream_seconds = time.monotonic() - started
            answered.set()
            if upstream is not None:
                self._untrack(upstream)

    def _read_request(self, reader: Any, client: socket.socket) -> _Request | None:
        line = reader.readline(_HEAD_LIMIT)
        if not line:
            return None
        parts = line.decode("latin-1").rstrip("\r\n").split(" ")
        if len(parts) != 3:
            raise ValueError("bad request line")
        method, target, version = parts
        headers = _read_headers(reader)
        names = {name.lower(): value for name, value in headers}
        if "chunked" in names.get("transfer-encoding", "").lower():
            body = _read_chunked(reader, self._max_body)
        else:
            length = int(names.get("content-length") or 0)
            if length > self._max_body:
                reason = "Request Entity Too Large"
                self._send(client, _Response(413, reason, [("Content-Type", "text/plain")], reason.encode()), False)
                raise _ClientGone
            body = reader.read(length)
            if len(body) != length:
                return None
        connection = names.get("connection", "").lower()
        keep_alive = connection != "close" and (version == "HTTP/1.1" or connection == "keep-alive")
        kept = [(n, v) for n, v in headers if n.lower() not in _HOP_BY_HOP and n.lower() != "content-length"]
        return _Request(method, target, version, kept, body, keep_alive)

    @staticmethod
    def _send(client: socket.socket, response: _Response, keep_alive: bool) -> None:
        head = [f"HTTP/1.1 {response.status} {response.reason}"]
        head += [f"{name}: {value}" for name, value in response.headers]
        head += [f"Content-Length: {len(response.body)}", f"Connection: {'keep-alive' if keep_alive else 'close'}"]
        try:
            client.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.body)
        except OSError as error:
            raise _ClientGone from error


def _read_headers(reader: Any) -> list[tuple[str, str]]:
    headers, size = [], 0
    while True:
        line = reader.readline(_HEAD_LIMIT)
        size += len(line)
        if not line or size > _HEAD_LIMIT:
            raise ValueError("truncated or oversized header")
        if line in (b"\r\n", b"\n"):
            return headers
        name, _, value = line.decode("latin-1").partition(":")
        headers.append((name.strip(), value.strip()))


def _read_chunked(reader: Any, limit: int) -> bytes:
    body = bytearray()
    while True:
        size = int(reader.readline(_HEAD_LIMIT).split(b";")[0].strip() or b"0", 16)
        if size == 0:
            _read_headers(reader)  # trailers
            return bytes(body)
        body += reader.read(size)
        reader.readline(_HEAD_LIMIT)
        if len(body) > limit:
            raise ValueError("body too large")


def _read_response(reader: Any, method: str) -> _Response:
    line = reader.readline(_HEAD_LIMIT)
    if not line:
        raise ValueError("upstream closed the connection without an answer")
    version, _, rest = line.decode("latin-1").rstrip("\r\n").partition(" ")
    code, _, reason = rest.partition(" ")
    status = int(code)
    headers = _read_headers(reader)
    names = {name.lower(): value for name, value in headers}
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        body = b""
    elif "chunked" in names.get("transfer-encoding", "").lower():
        body = _read_chunked(reader, 1 << 40)
    elif "content-length" in names:
        body = reader.read(int(names["content-length"]))
    else:
        body = reader.read()
    kept = [(n, v) for n, v in headers if n.lower() not in _HOP_BY_HOP and n.lower() != "content-length"]
    return _Response(status, reason, kept, body)


def _serialize_request(request: _Request) -> bytes:
    head = [f"{request.method} {request.target} HTTP/1.1"]
    head += [f"{name}: {value}" for name, value in request.headers]
    head += [f"Content-Length: {len(request.body)}", "Connection: close"]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + request.body


def _decoded_body(request: _Request) -> str:
    body = request.body
    encoding = next((v for n, v in request.headers if n.lower() == "content-encoding"), "")
    if "gzip" in encoding.lower():
        with contextlib.suppress(OSError, EOFError):
            body = gzip.decompress(body)
    return body.decode("utf-8", "replace")


def _stmt_of(text: str) -> str | None:
    try:
        payload = json.loads(text)
    except ValueError:
        return None
    stmt = payload.get("stmt") if isinstance(payload, dict) else None
    return stmt if isinstance(stmt, str) else None
