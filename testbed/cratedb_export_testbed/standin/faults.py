"""Test-only fault injection: failing, slow and lying answers, armed per request or per COPY.

Nothing here exists in CrateDB. It lets the exporter's tests provoke what a real cluster does
now and then: 503s while a node is unavailable, answers slower than the client's timeout, a COPY
that runs for minutes, a COPY that fails half-way (S3 permissions, a node leaving), and a COPY
that reports more rows than landed in S3 (CrateDB swallows IOExceptions on close, and up to 6.2
leaves an unfinished multipart upload when a background part upload fails).
All state sits behind one lock because the server answers requests on many threads.

The failure messages of :func:`s3_access_denied` and :func:`participating_node_disconnected` have
CrateDB's shapes (read in CrateDB's source, see each function); the ids in them are made up.
"""

from __future__ import annotations

import base64
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

from cratedb_export_testbed.standin.errors import http_status

COPY_FAILURE_SHAPES = ("s3_access_denied", "node_disconnected")


@dataclass
class _Failure:
    remaining: int
    status: int
    code: int
    message: str


@dataclass(frozen=True)
class CopyFailure:
    """A COPY that starts, writes ``files_written`` of its objects, then fails with ``message``."""

    message: str  # the whole ``Name[text]``
    code: int
    files_written: int

    @property
    def name(self) -> str:
        return self.message.partition("[")[0]

    @property
    def text(self) -> str:
        return self.message.partition("[")[2].removesuffix("]")


@dataclass(frozen=True)
class CopyFaults:
    """What the COPY that starts now has to suffer."""

    drop_rows: int = 0
    extra_rows: int = 0
    slow_seconds: float = 0.0
    failure: CopyFailure | None = None
    abandon_upload: bool = False


def node_id() -> str:
    """A node id shaped like CrateDB's (``UUIDs.randomBase64UUID()``: 22 URL-safe base64 characters)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("-")[0].split(".")[:3])


def s3_access_denied(
    version: str, *, wrapped: bool = True, bucket: str = "bucket", key: str = "export/t_0_.json"
) -> str:
    """The message of a COPY TO S3 whose write is refused (403 AccessDenied), as that version says it.

    ``wrapped``: the shard was written on another node than the one that answers, so the exception
    travelled as ``NotSerializableExceptionWrapper``, whose message is ``<name>: <message>``
    (org.elasticsearch.common.io.stream.NotSerializableExceptionWrapper). ``<name>`` is
    ``ElasticsearchException.getExceptionName``: the class's simple name since 5.10.0 (commit
    cc2cb33f "Don't lowercase exception names"), ``amazon_s3_exception`` style before.
    Up to 6.2 the writer is the AWS SDK v1 (``AmazonS3Exception``, ``AmazonServiceException.getMessage``
    format); from 6.3 it is OpenDAL, and the text is laid out as a real CrateDB 6.4.3 answered a
    refused write (``PermissionDenied (permanent) at write => S3Error { ... }`` and a ``Context:``
    block); the response headers are left out here.
    """
    request_id = secrets.token_hex(12).upper()
    if _version(version) >= (6, 3):
        name = "OpenDALException"
        detail = (
            f'PermissionDenied (permanent) at write => S3Error {{ code: "AccessDenied", message: "Access Denied", '
            f'resource: "/{bucket}/{key}", request_id: "{request_id}" }}\n\nContext:\n'
            f"   uri: https://s3.amazonaws.com/{bucket}/{key}\n"
            "   response: Parts { status: 403, version: HTTP/1.1, headers: {} }\n"
            f"   service: s3\n   path: {key}\n   written: 0\n"
        )
    else:
        name = "AmazonS3Exception"
        extended = base64.b64encode(secrets.token_bytes(48)).decode()
        detail = (
            "Access Denied (Service: Amazon S3; Status Code: 403; Error Code: AccessDenied; "
            f"Request ID: {request_id}; S3 Extended Request ID: {extended}; Proxy: null)"
        )
    if not wrapped:
        return f"{name}[{detail}]"
    if _version(version) < (5, 10):
        name = {"AmazonS3Exception": "amazon_s3_exception", "OpenDALException": "open_d_a_l_exception"}[name]
    return f"NotSerializableExceptionWrapper[{name}: {detail}]"


def participating_node_disconnected(node: str) -> str:
    """``TasksService.onNodeDisconnected``: ``JobKilledException.of("Participating node <id> disconnected")``,
    which prefixes ``Job killed. `` (and adds no final period); code 5005, HTTP 500."""
    return f"JobKilledException[Job killed. Participating node {node} disconnected]"


@dataclass
class _CopyQueues:
    truncations: list[int] = field(default_factory=list)
    inflations: list[int] = field(default_factory=list)
    slow: list[float] = field(default_factory=list)
    failures: list[CopyFailure] = field(default_factory=list)
    abandons: list[bool] = field(default_factory=list)


class Faults:
    def __init__(self, version: str = "5.10.4", other_node_id: str | None = None) -> None:
        self._lock = threading.Lock()
        self.version = version
        # The node that "disconnects" in the node_disconnected shape: not the double's own node.
        self.other_node_id = other_node_id or node_id()
        self.reset()

    def reset(self) -> None:
        """Disarm every fault."""
        with self._lock:
            self._failure: _Failure | None = None
            self._delays: list[float] = []
            self._copy = _CopyQueues()

    def fail_next(self, count: int = 2, status: int = 503, code: int = 5030, message: str | None = None) -> None:
        """Answer the next ``count`` ``POST /_sql`` requests with this error, without running them.

        ``message`` is the whole ``Name[text]`` string. The crate client turns any 503 into
        ``ConnectionError`` (and tries the next server) whatever the body says. Nothing reaches
        ``sys.jobs`` or ``sys.jobs_log``: the statement never ran.
        """
        text = message or "NodeNotConnectedException[fault injected by the CrateDB test double]"
        with self._lock:
            self._failure = _Failure(count, status, code, text)

    def delay_next(self, seconds: float, count: int = 1) -> None:
        """Sleep ``seconds`` before running each of the next ``count`` ``POST /_sql`` requests.

        The statement is in ``sys.jobs`` while it waits, and still runs after the sleep, as a real
        statement keeps running after the client gave up on it; only the answer is late (or unread).
        """
        with self._lock:
            self._delays.extend([float(seconds)] * count)

    def truncate_next_copy(self, drop_rows: int = 1) -> None:
        """The next COPY drops ``drop_rows`` lines from its largest object but reports them."""
        with self._lock:
            self._copy.truncations.append(drop_rows)

    def inflate_next_copy_rowcount(self, extra: int = 1) -> None:
        """The next COPY reports ``extra`` rows more than it wrote."""
        with self._lock:
            self._copy.inflations.append(extra)

    def slow_next_copy(self, seconds: float, count: int = 1) -> None:
        """Each of the next ``count`` COPYs runs ``seconds`` (in ``sys.jobs`` all along) before it writes
        its objects and answers. It finishes, writes and lands in ``sys.jobs_log`` even when the client
        has gone: CrateDB does not stop a statement whose HTTP connection closed."""
        if seconds < 0 or count < 1:
            raise ValueError("slow_next_copy needs seconds >= 0 and count >= 1")
        with self._lock:
            self._copy.slow.extend([float(seconds)] * count)

    def fail_next_copy(
        self,
        message: str | None = None,
        code: int | None = None,
        *,
        shape: str | None = None,
        files_written: int = 1,
    ) -> str:
        """The next COPY starts (in ``sys.jobs``), writes ``files_written`` of its objects, then fails
        with ``message`` (``Name[text]``) and ``code`` (HTTP status as CrateDB maps the code); it is
        logged in ``sys.jobs_log`` with the error, unlike :meth:`fail_next`, which runs nothing.

        Instead of a message give a ``shape``: ``"s3_access_denied"`` (code 5000, the double's
        version's wording, wrapped as from another node) or ``"node_disconnected"`` (code 5005).
        Returns the message armed.
        """
        if (message is None) == (shape is None):
            raise ValueError("fail_next_copy needs either a message or a shape")
        if shape == "s3_access_denied":
            message, code = s3_access_denied(self.version), 5000 if code is None else code
        elif shape == "node_disconnected":
            message, code = participating_node_disconnected(self.other_node_id), 5005 if code is None else code
        elif shape is not None:
            raise ValueError(f"unknown shape {shape!r}; one of {list(COPY_FAILURE_SHAPES)}")
        assert message is not None
        code = 5000 if code is None else code
        http_status(code)  # refuses codes CrateDB does not answer with
        if "[" not in message or not message.endswith("]"):
            raise ValueError(f"message must read Name[text], got {message!r}")
        if files_written < 0:
            raise ValueError("files_written must be >= 0")
        with self._lock:
            self._copy.failures.append(CopyFailure(message, code, files_written))
        return message

    def abandon_next_copy_upload(self) -> None:
        """The next COPY leaves its largest object as an unfinished multipart upload (initiated, one
        part uploaded, never completed nor aborted): the object is missing, the upload stays listed,
        and the COPY still answers success with the full rowcount. CrateDB up to 6.2 does this when a
        background part upload fails (the IOException is swallowed when the writer closes)."""
        if _version(self.version) >= (6, 3):
            raise ValueError("CrateDB 6.3+ writes through OpenDAL and reports close failures: no abandoned uploads")
        with self._lock:
            self._copy.abandons.append(True)

    def configure(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Arm a fault from the admin endpoint's JSON: ``{"fault": "fail_next", "count": 2, ...}``."""
        spec = dict(spec)
        name = spec.pop("fault", None)
        actions = {
            "fail_next": self.fail_next,
            "delay_next": self.delay_next,
            "truncate_next_copy": self.truncate_next_copy,
            "inflate_next_copy_rowcount": self.inflate_next_copy_rowcount,
            "slow_next_copy": self.slow_next_copy,
            "fail_next_copy": self.fail_next_copy,
            "abandon_next_copy_upload": self.abandon_next_copy_upload,
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
                "truncations": list(self._copy.truncations),
                "inflations": list(self._copy.inflations),
                "slow_copies": list(self._copy.slow),
                "copy_failures": [f.__dict__.copy() for f in self._copy.failures],
                "abandoned_uploads": len(self._copy.abandons),
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

    def take_copy_faults(self) -> CopyFaults:
        """What the COPY that starts now suffers; each armed COPY fault is used once."""
        with self._lock:
            queues = self._copy
            return CopyFaults(
                drop_rows=queues.truncations.pop(0) if queues.truncations else 0,
                extra_rows=queues.inflations.pop(0) if queues.inflations else 0,
                slow_seconds=queues.slow.pop(0) if queues.slow else 0.0,
                failure=queues.failures.pop(0) if queues.failures else None,
                abandon_upload=queues.abandons.pop(0) if queues.abandons else False,
            )
