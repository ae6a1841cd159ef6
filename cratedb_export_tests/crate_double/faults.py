"""Test-only fault injection: failing, slow and lying answers, armed per request or per COPY.

Nothing here exists in CrateDB. It lets the exporter's tests provoke what a real cluster does
now and then: 503s while a node is unavailable, answers slower than the client's timeout, and a
COPY that reports more rows than landed in S3 (CrateDB swallows IOExceptions on close).
All state sits behind one lock because the server answers requests on many threads.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any


@dataclass
class _Failure:
    remaining: int
    status: int
    code: int
    message: str


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Disarm every fault."""
        with self._lock:
            self._failure: _Failure | None = None
            self._delays: list[float] = []
            self._truncations: list[int] = []
            self._inflations: list[int] = []

    def fail_next(self, count: int = 2, status: int = 503, code: int = 5030, message: str | None = None) -> None:
        """Answer the next ``count`` ``POST /_sql`` requests with this error, without running them.

        ``message`` is the whole ``Name[text]`` string. The crate client turns any 503 into
        ``ConnectionError`` (and tries the next server) whatever the body says.
        """
        text = message or "NodeNotConnectedException[fault injected by the CrateDB test double]"
        with self._lock:
            self._failure = _Failure(count, status, code, text)

    def delay_next(self, seconds: float, count: int = 1) -> None:
        """Sleep ``seconds`` before running each of the next ``count`` ``POST /_sql`` requests.

        The statement still runs after the sleep, as a real statement keeps running after the
        client gave up on it; only the answer is late (or unread).
        """
        with self._lock:
            self._delays.extend([float(seconds)] * count)

    def truncate_next_copy(self, drop_rows: int = 1) -> None:
        """The next COPY drops ``drop_rows`` lines from its largest object but reports them."""
        with self._lock:
            self._truncations.append(drop_rows)

    def inflate_next_copy_rowcount(self, extra: int = 1) -> None:
        """The next COPY reports ``extra`` rows more than it wrote."""
        with self._lock:
            self._inflations.append(extra)

    def configure(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Arm a fault from the admin endpoint's JSON: ``{"fault": "fail_next", "count": 2, ...}``."""
        spec = dict(spec)
        name = spec.pop("fault", None)
        actions = {
            "fail_next": self.fail_next,
            "delay_next": self.delay_next,
            "truncate_next_copy": self.truncate_next_copy,
            "inflate_next_copy_rowcount": self.inflate_next_copy_rowcount,
            "reset": self.reset,
        }
        if name not in actions:
            raise ValueError(f"unknown fault {name!r}; one of {sorted(actions)}")
        actions[name](**spec)
        return self.state()

    def state(self) -> dict[str, Any]:
        with self._lock:
            failure = self._failure
            return {
                "fail_next": failure.__dict__.copy() if failure and failure.remaining > 0 else None,
                "delays": list(self._delays),
                "truncations": list(self._truncations),
                "inflations": list(self._inflations),
            }

    # -- consumed by the server and the COPY executor ----------------------------------------------

    def take_failure(self) -> tuple[int, dict[str, Any]] | None:
        """(HTTP status, JSON body) to answer instead of running the request, if one is armed."""
        with self._lock:
            failure = self._failure
            if failure is None or failure.remaining <= 0:
                return None
            failure.remaining -= 1
        return failure.status, {"error": {"message": failure.message, "code": failure.code}}

    def take_delay(self) -> float:
        with self._lock:
            return self._delays.pop(0) if self._delays else 0.0

    def take_copy_faults(self) -> tuple[int, int]:
        """(lines to drop, rows to add to the rowcount) for the COPY that starts now."""
        with self._lock:
            drop = self._truncations.pop(0) if self._truncations else 0
            extra = self._inflations.pop(0) if self._inflations else 0
            return drop, extra
