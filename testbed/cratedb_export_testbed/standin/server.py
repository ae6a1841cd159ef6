"""CrateDB's HTTP endpoint (``GET /``, ``POST /_sql``) in a thread, plus a test-only admin path.

``POST /_double/faults`` (and ``GET`` to read the armed faults) is not part of CrateDB's API: it
lets a test that runs the double in another process (``python -m ...crate_double``) arm the
same faults as ``CrateDouble.faults``. It needs no credentials.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import os
import platform
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cratedb_export_testbed.standin.engine import Engine
from cratedb_export_testbed.standin.errors import CrateError, sql_parse
from cratedb_export_testbed.standin.faults import Faults, node_id

FAULTS_PATH = "/_double/faults"


class CrateDouble:
    """A stand-in CrateDB node on 127.0.0.1; see the package docstring for what it covers."""

    def __init__(
        self,
        users: dict[str, str] | None = None,
        version: str = "5.10.4",
        default_shards: int = 4,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        arch: str = "amd64",
        stats_enabled: bool = True,
        jobs_log_size: int = 10_000,
    ) -> None:
        """``version``: what ``GET /`` and ``sys.nodes.version['number']`` report, and the wording of
        version-dependent fault messages. ``arch``: ``sys.nodes.os_info['arch']``, Java's ``os.arch``
        (CrateDB reports Lucene's ``Constants.OS_ARCH``): ``amd64`` on x86_64 Linux, ``aarch64`` on ARM64.
        ``stats_enabled`` / ``jobs_log_size``: the ``stats.enabled`` (default true) and
        ``stats.jobs_log_size`` (default 10000) cluster settings that govern sys.jobs and sys.jobs_log."""
        self.users = dict(users) if users is not None else None
        self.version = version
        self._address = (host, port)
        version_info = {"number": version, "build_hash": "crate-double", "build_snapshot": False}
        self.node_info = {
            "id": node_id(),
            "name": "crate-double",
            "hostname": host,
            "version": version_info,
            "os_info": {
                "available_processors": os.cpu_count() or 1,
                "name": platform.system(),
                "arch": arch,
                "version": platform.release(),
            },
        }
        self.faults = Faults(version)
        self.engine = Engine(
            self.node_info,
            self.faults,
            default_shards,
            stats_enabled=stats_enabled,
            jobs_log_size=jobs_log_size,
            version=version,
        )
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def jobs_log(self) -> list[dict[str, Any]]:
        """The ``sys.jobs_log`` rows, oldest first (live list: copy it before iterating while busy)."""
        return self.engine.jobs_log

    @property
    def jobs(self) -> list[dict[str, Any]]:
        """The ``sys.jobs`` rows: statements running right now."""
        return [job.row() for job in list(self.engine.active_jobs.values())]

    @property
    def node_id(self) -> str:
        return str(self.node_info["id"])

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("CrateDouble is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> CrateDouble:
        if self._server is None:
            server = ThreadingHTTPServer(self._address, _Handler)
            server.daemon_threads = True
            server.double = self  # type: ignore[attr-defined]
            self._server = server
            self._thread = threading.Thread(target=server.serve_forever, name="crate-double", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def execute(
        self, stmt: str, args: list[Any] | None = None, bulk_args: list[list[Any]] | None = None
    ) -> dict[str, Any]:
        """Run SQL in-process with the same engine; returns the JSON reply (the error reply too)."""
        try:
            return self.engine.execute(stmt, args, bulk_args, types=True)
        except CrateError as error:
            return error.reply()

    def __enter__(self) -> CrateDouble:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "CrateDB-test-double"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall

    @property
    def double(self) -> CrateDouble:
        return self.server.double  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet, like a test fixture

    def do_GET(self) -> None:
        self._read_body()
        path = urlsplit(self.path).path
        if path == FAULTS_PATH:
            self._send_json(200, self.double.faults.state())
        elif self._authenticated():
            if path == "/":
                self._send_json(
                    200,
                    {
                        "ok": True,
                        "status": 200,
                        "name": self.double.node_info["name"],
                        "cluster_name": "crate-double",
                        "version": self.double.node_info["version"],
                    },
                )
            else:
                self._send_text(404, f"No handler found for uri [{path}] and method [GET]")

    def do_POST(self) -> None:
        body = self._read_body()
        url = urlsplit(self.path)
        if url.path == FAULTS_PATH:
            self._configure_faults(body)
        elif self._authenticated():
            if url.path == "/_sql":
                self._sql(body, parse_qs(url.query, keep_blank_values=True))
            else:
                self._send_text(404, f"No handler found for uri [{url.path}] and method [POST]")

    def setup(self) -> None:
        super().setup()
        self.session_id = self.double.engine.next_session_id()  # one session per connection, as CrateDB
        self.user = "crate"

    def _sql(self, body: bytes, query: dict[str, list[str]]) -> None:
        failure = self.double.faults.take_failure()
        if failure is not None:
            self._send_json(*failure)
            return
        try:
            request = _parse_request(body)
            schema = self.headers.get("Default-Schema") or "doc"
            reply = self.double.engine.execute(
                request.get("stmt"),
                request.get("args"),
                request.get("bulk_args"),
                schema,
                types=_flag(query, "types"),
                username=self.user,
                session_id=self.session_id,
            )
            self._send_json(200, reply)
        except CrateError as error:
            reply = error.reply()
            if _flag(query, "error_trace"):
                reply["error_trace"] = "".join(traceback.format_exception(error))
            self._send_json(error.status, reply)

    def _configure_faults(self, body: bytes) -> None:
        try:
            self._send_json(200, self.double.faults.configure(json.loads(body or b"{}")))
        except (ValueError, TypeError) as error:
            self._send_json(400, {"error": str(error)})

    def _authenticated(self) -> bool:
        """HTTP Basic auth when users are configured; otherwise trust (user ``crate``)."""
        users = self.double.users
        user, password = "crate", None
        header = self.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                decoded = base64.b64decode(header[6:], validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            name, _, password = decoded.partition(":")
            user = name or "crate"
        if users is None:
            self.user = "crate"  # trust: the double has no other users
            return True
        if user in users and users[user] == password:
            self.user = user
            return True
        self._send_text(
            401,
            f'password authentication failed for user "{user}"',
            {"WWW-Authenticate": 'Basic realm="CrateDB Authenticator"'},
        )
        return False

    def _read_body(self) -> bytes:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            try:
                body = gzip.decompress(body)
            except (OSError, EOFError):
                body = b""  # answered as an unparsable source
        return body

    def _send_json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json; charset=UTF-8")

    def _send_text(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, text.encode(), "text/plain; charset=UTF-8", headers)

    def _send(self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (a read timeout): nothing to answer


def _flag(query: dict[str, list[str]], name: str) -> bool:
    """CrateDB's ``paramContainFlag``: ``?name`` or ``?name=true``."""
    return query.get(name) in ([""], ["true"])


def _parse_request(body: bytes) -> dict[str, Any]:
    """The ``{"stmt", "args" | "bulk_args"}`` body, refused as CrateDB's ``SQLRequestParser`` refuses it:
    SQLParseException (4000) for a missing or unparsable body or an unknown field, and
    ``SQLParseSourceException`` (an ElasticsearchException without an own status: 5000, HTTP 500) for
    fields of the wrong shape. Nothing of this reaches sys.jobs_log."""
    if not body:
        raise sql_parse("Missing request body")
    source = body.decode("utf-8", "replace")
    cannot_parse = sql_parse(
        f"Can't parse [{source}]. Expecting payload with `stmt` string and `args` or `bulk_args` arrays"
    )
    try:
        request = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise cannot_parse from None
    if not isinstance(request, dict):
        raise cannot_parse
    parsed: dict[str, Any] = {}
    for key, value in request.items():
        if key == "stmt":
            if value is None or isinstance(value, dict | list):
                raise _source_error("Field [stmt] has an invalid value")
            text = _java_text(value)
            if not text:
                raise _source_error("Field [stmt] has no value")
            parsed["stmt"] = text
        elif key == "args":
            if not isinstance(value, list):
                raise _source_error(f"`args` must start with an array, not `{_token(value)}`")
            parsed["args"] = value
        elif key == "bulk_args":
            if not isinstance(value, list):
                raise _source_error("Field [bulk_args] has an invalid value")
            for row in value:
                if not isinstance(row, list):
                    raise _source_error(
                        f"`bulk_args` must contain a list of `args` (values list). Got unexpected: {_token(row)}"
                    )
            parsed["bulk_args"] = value
        else:
            raise cannot_parse  # "No parser for element [...]", re-thrown as the generic parse error
    if "stmt" not in parsed:
        raise _source_error("Field [stmt] is missing")
    return parsed


def _source_error(text: str) -> CrateError:
    return CrateError("SQLParseSourceException", text, 5000)


def _token(value: Any) -> str:
    """The name of the XContent token a JSON value starts with."""
    if value is None:
        return "VALUE_NULL"
    if isinstance(value, bool):
        return "VALUE_BOOLEAN"
    if isinstance(value, int | float):
        return "VALUE_NUMBER"
    if isinstance(value, str):
        return "VALUE_STRING"
    return "START_OBJECT" if isinstance(value, dict) else "START_ARRAY"


def _java_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
