"""Talking to CrateDB through the `crate` client, with our own retry policy.

A statement that only reads (counts, sys.jobs lookups) is retried on transient failures with backoff and
jitter, on the next server. A COPY is sent exactly once per call: the crate client on its own re-sends a
statement to the next server after a timeout or a 502/503/504/509, and to the same server, endlessly,
after a reset connection — while the first COPY keeps running in CrateDB, which does not stop a job when
its connection goes away. So every connection here is pinned to one server and never re-posts; when a
COPY's answer is lost, `copy_jobs` asks CrateDB what became of it.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from crate import client as crate_client
from crate.client import exceptions as crate_errors
from crate.client.http import Client as _HttpClient
from urllib3.util.retry import Retry

from cratedb_export.core.errors import AnswerLost, ExportError, PermanentError, TransientError, classify_crate_error
from cratedb_export.core.statement import Statement


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 30.0

    def delay(self, attempt: int) -> float:
        """Full-jitter exponential backoff: spreads retries of a large backfill instead of aligning them."""
        return random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


@dataclass(frozen=True)
class Reply:
    rowcount: int
    rows: list[list[Any]] = field(default_factory=list)


class CrateDB:
    """A CrateDB cluster reached over HTTP; thread-safe, so one instance serves concurrent exports."""

    def __init__(
        self,
        servers: Sequence[str],
        *,
        username: str | None = None,
        password: str | None = None,
        verify_ssl_cert: bool = True,
        timeout: float | None = None,
        retry: RetryPolicy = RetryPolicy(),
        pool_size: int = 8,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not servers:
            raise PermanentError("no CrateDB server configured (set CRATEDB_URL)")
        self._servers = list(servers)
        self._options = dict(
            username=username,
            password=password,
            verify_ssl_cert=verify_ssl_cert,
            timeout=timeout,
            pool_size=pool_size,
        )
        self._retry = retry
        self._sleep = sleep
        self._connections: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._next = 0

    def execute(
        self,
        statement: Statement,
        *,
        what: str,
        on_retry: Callable[[str], None] | None = None,
    ) -> Reply:
        """Run a statement that is safe to repeat; retries transient failures, raises a redacted ExportError."""
        last: ExportError | None = None
        for attempt in range(1, self._retry.attempts + 1):
            server = self._pick_server(attempt > 1)
            try:
                return self._run(server, statement, what)
            except ExportError as error:
                if not error.retryable:
                    raise
                last = error
            if attempt < self._retry.attempts:
                pause = self._retry.delay(attempt)
                if on_retry:
                    on_retry(f"{last} — attempt {attempt}/{self._retry.attempts}, retrying in {pause:.1f}s")
                self._sleep(pause)
        raise TransientError(f"{last} (gave up after {self._retry.attempts} attempts)")

    def execute_once(self, statement: Statement, *, what: str, rotate: bool = False) -> Reply:
        """Send a statement once, to one server; never re-sent here nor by the client.

        Raises AnswerLost when the request may have reached CrateDB without an answer coming back,
        TransientError when it surely did not run or CrateDB answered a transient error, else PermanentError.
        `rotate` moves to the next server first (after a failure on the current one).
        """
        return self._run(self._pick_server(rotate), statement, what)

    def server_version(self) -> str:
        """The lowest CrateDB version among the servers answered so far (the client asks each on connect)."""
        for server in self._servers:
            try:
                return str(self._connection(server, "connecting").lowest_server_version)
            except ExportError:
                continue
        return "unknown"

    def _pick_server(self, rotate: bool) -> str:
        with self._lock:
            if rotate:
                self._next = (self._next + 1) % len(self._servers)
            return self._servers[self._next]

    def _connection(self, server: str, what: str) -> Any:
        with self._lock:
            connection = self._connections.get(server)
        if connection is not None:
            return connection
        message = None
        try:
            connection = crate_client.connect(client=_SingleServerClient(server, **self._options))
        except crate_errors.ConnectionError as exc:
            message = f"{what} failed: CrateDB at {server} is unreachable: {exc}"
        except crate_errors.Error as exc:
            message = f"{what} failed: cannot connect to CrateDB at {server}: {exc}"
        if message is not None:
            # Raised outside the except block, so the client's unredacted exception is not chained.
            raise _connect_error(message)
        with self._lock:
            return self._connections.setdefault(server, connection)

    def _run(self, server: str, statement: Statement, what: str) -> Reply:
        connection = self._connection(server, what)
        error: ExportError | None = None
        cursor = connection.cursor()
        try:
            cursor.execute(statement.sql, list(statement.args))
            rows = cursor.fetchall() if cursor.description else []
            return Reply(rowcount=cursor.rowcount, rows=[list(r) for r in rows])
        except (crate_errors.ConnectionError, crate_errors.ProgrammingError) as exc:
            error = self._classify(exc, server, what)
        except crate_errors.Error as exc:
            error = PermanentError(f"{what} failed: {type(exc).__name__}: {exc}")
        finally:
            cursor.close()
        raise error

    @staticmethod
    def _classify(exc: Exception, server: str, what: str) -> ExportError:
        """Decide what a failed request means: not sent, answered with an error, or answer lost.

        With the server pinned, the client reports a failure on the way (refused or reset connection, read
        timeout) as ConnectionError('Server not available, exception: ...'), a 503 as ConnectionError
        ('503 Server Error: ...'), and any other answer without CrateDB's JSON as ProgrammingError('<status>
        Server Error: ...' or '<status> Client Error: ...'). CrateDB's own errors are JSON and become
        ProgrammingError('<ExceptionName>[...]'). A page of a proxy's own (a 5xx, 408 or 499) may come after
        the statement reached CrateDB, so its answer counts as lost; any other 4xx page means it was refused
        on the way.
        """
        text = str(exc)
        if isinstance(exc, crate_errors.ConnectionError) or _GATEWAY_ERROR.match(text):
            if any(marker in text for marker in _NOT_SENT):
                return TransientError(f"{what} failed: CrateDB at {server} is unreachable: {text}")
            return AnswerLost(
                f"{what}: no answer from CrateDB at {server} ({text}); the statement may have reached CrateDB"
            )
        return classify_crate_error(text, what=what)


# A failure before the request left this process: the statement surely did not run.
_NOT_SENT = ("NewConnectionError", "Connection refused", "ConnectTimeoutError", "NameResolutionError")
# An answer without CrateDB's JSON error body that a proxy may give after forwarding the statement: any 5xx
# (502/504 gateway, 500, Cloudflare's 520-524, ...), a request timeout (408) or a closed client request (499).
_GATEWAY_ERROR = re.compile(r"^(5\d\d Server Error|(408|499) Client Error)")


class _SingleServerClient(_HttpClient):
    """The crate HTTP client held to its one server, each request sent at most once.

    Given an explicit server, the client's request loop raises on a failure instead of re-posting the
    statement (it re-posts to the same server after a reset connection, and to the next after a timeout).
    Below it, urllib3 is given no retries: the client's `Retry(read=0)` still re-sends a request after
    an SSL error (counted against a total of 10), which over TLS would repeat a COPY. A failure raises
    at once; the exporter decides what may be sent again (RetryPolicy, copy_jobs.py).
    """

    def __init__(self, server: str, **options: Any) -> None:
        super().__init__([server], **options)
        self._server = next(iter(self.server_pool))

    def _create_server(self, server, **pool_kw):  # type: ignore[no-untyped-def]
        super()._create_server(server, **pool_kw)
        pool = self.server_pool[server].pool
        urlopen = pool.urlopen

        def send_once(*args: Any, **kwargs: Any) -> Any:
            kwargs["retries"] = Retry(total=0, read=0, redirect=False)  # the first failure raises
            return urlopen(*args, **kwargs)

        pool.urlopen = send_once

    def _request(self, method, path, server=None, **kwargs):  # type: ignore[no-untyped-def]
        return super()._request(method, path, server=server or self._server, **kwargs)


def _connect_error(message: str) -> ExportError:
    if "401" in message or "Unauthorized" in message:
        return PermanentError(message + " (check CRATEDB_USERNAME / CRATEDB_PASSWORD)")
    return TransientError(message)
