"""Talking to CrateDB through the `crate` client, with our own retry policy.

The client, given several servers, re-sends a statement to the next server after a read timeout or a
503 — which for a COPY can mean two COPYs writing the same day at once. So each server gets a connection
of its own (a single-server client never fails over), and this module decides what is re-sent:
connection failures, 503s and CrateDB's transient cluster errors are retried with exponential backoff
and jitter, on the next server; a COPY whose answer timed out is not, because it may still be running.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from crate import client as crate_client
from crate.client import exceptions as crate_errors

from .errors import CopyOutcomeUnknown, ExportError, PermanentError, TransientError, classify_crate_error
from .statement import Statement


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
        resend_after_timeout: bool = True,
        on_retry: Callable[[str], None] | None = None,
    ) -> Reply:
        """Run one statement; retries transient failures, raises a redacted ExportError otherwise."""
        last: ExportError | None = None
        for attempt in range(1, self._retry.attempts + 1):
            server = self._pick_server(attempt > 1)
            try:
                return self._run(server, statement, what, resend_after_timeout)
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
            connection = crate_client.connect(servers=[server], **self._options)
        except crate_errors.ConnectionError as exc:
            message = f"{what} failed: CrateDB at {server} is unreachable: {exc}"
        except crate_errors.Error as exc:
            message = f"{what} failed: cannot connect to CrateDB at {server}: {exc}"
        if message is not None:
            # Raised outside the except block, so the client's unredacted exception is not chained.
            raise _connect_error(message)
        with self._lock:
            return self._connections.setdefault(server, connection)

    def _run(self, server: str, statement: Statement, what: str, resend_after_timeout: bool) -> Reply:
        connection = self._connection(server, what)
        error: ExportError | None = None
        cursor = connection.cursor()
        try:
            cursor.execute(statement.sql, list(statement.args))
            rows = cursor.fetchall() if cursor.description else []
            return Reply(rowcount=cursor.rowcount, rows=[list(r) for r in rows])
        except (crate_errors.ConnectionError, crate_errors.ProgrammingError) as exc:
            error = self._classify(exc, server, what, resend_after_timeout)
        except crate_errors.Error as exc:
            error = PermanentError(f"{what} failed: {type(exc).__name__}: {exc}")
        finally:
            cursor.close()
        raise error

    @staticmethod
    def _classify(exc: Exception, server: str, what: str, resend_after_timeout: bool) -> ExportError:
        """Decide whether a failed request may be sent again.

        A single-server client reports an unavailable server as ConnectionError (timeouts, refused
        connections) or, for a 503 answer, as ProgrammingError('No more Servers available ...').
        """
        text = str(exc)
        unavailable = isinstance(exc, crate_errors.ConnectionError) or text.startswith("No more Servers available")
        if not unavailable:
            return classify_crate_error(text, what=what)
        if "Read timed out" in text and not resend_after_timeout:
            return CopyOutcomeUnknown(
                f"{what}: CrateDB at {server} did not answer within the timeout; the statement may still "
                "be running (see sys.jobs). It was not sent again, so that two COPYs never write the "
                "same day at once. Re-run the partition when it has finished, or raise the timeout."
            )
        return TransientError(f"{what} failed: CrateDB at {server} is unavailable: {text}")


def _connect_error(message: str) -> ExportError:
    if "401" in message or "Unauthorized" in message:
        return PermanentError(message + " (check CRATEDB_USERNAME / CRATEDB_PASSWORD)")
    return TransientError(message)
