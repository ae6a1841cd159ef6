"""The two servers the benchmark runs against, each in a process of its own.

The CrateDB stand-in is started through its CLI rather than in-process: in-process it would share the
GIL with the code being measured, and every COPY it serves would slow our own threads down. SeaweedFS
(`weed mini`) is a separate process anyway. Both are stopped in `finally`, whatever happens.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cratedb_export_testbed.seaweedfs import SeaweedS3
from procstat import machine_busy_cpu_seconds, process_cpu_seconds

from cratedb_export.core.redaction import Redactor
from cratedb_export.core.target import S3Access

ROOT = Path(__file__).resolve().parent.parent
# Keys with the characters that must be percent-encoded in s3:// URIs, as in the test suite.
ACCESS_KEY = "AKIDBENCHEXPORT42"
SECRET_KEY = "bench/Secr+etKey=Q7"
STARTUP_TIMEOUT = 60.0


@dataclass(frozen=True)
class Services:
    crate_url: str
    crate_pid: int | None  # None for a CrateDB someone else started (its CPU is not on this machine's books)
    s3: SeaweedS3

    @property
    def crate_name(self) -> str:
        return "CrateDB stand-in" if self.crate_pid is not None else "CrateDB"

    @property
    def access(self) -> S3Access:
        return S3Access(ACCESS_KEY, SECRET_KEY, endpoint=self.s3.endpoint, protocol="http")

    def cpu_seconds(self) -> dict[str, float]:
        """CPU used so far by each process on the path of an export: where the 2 cores' time goes."""
        assert self.s3.pid is not None
        ours = {
            self.crate_name: process_cpu_seconds(self.crate_pid) if self.crate_pid is not None else 0.0,
            "SeaweedFS": process_cpu_seconds(self.s3.pid),
            "this process": process_cpu_seconds(os.getpid()),
        }
        # Everything else: other people's work on a shared machine, which makes the phases noisy.
        # (Clock-tick rounding can make it slightly negative on an idle machine.)
        return {**ours, "other processes": machine_busy_cpu_seconds() - sum(ours.values())}

    def export_env(self) -> dict[str, str]:
        """The variables of docs/configuration.md's Environment table, pointing at these servers."""
        return {
            "CRATEDB_URL": self.crate_url,
            "ACCESS_KEY_ID": ACCESS_KEY,
            "SECRET_ACCESS_KEY": SECRET_KEY,
            "S3_ENDPOINT": self.s3.endpoint,
            "S3_PROTOCOL": "http",
            "CRATEDB_TIMEOUT": "600",
        }


def redacted(text: str) -> str:
    """A child's output with the benchmark's S3 keys masked before it is shown (a traceback may echo them)."""
    redactor = Redactor()
    redactor.add(ACCESS_KEY, SECRET_KEY)
    return redactor.redact(text)


def log_tail(path: Path, lines: int = 20) -> str:
    """The last lines of a child's log file, redacted, to show when the child failed."""
    return redacted("\n".join(path.read_text(errors="replace").splitlines()[-lines:]))


def run_child(script: Path, *args: str, what: str, **env: str) -> dict:
    """Run a measuring child script in a fresh interpreter; it prints its figures as JSON on the last line."""
    done = subprocess.run(
        [sys.executable, str(script), *args],
        env=child_env(**env),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{redacted(done.stderr[-3000:])}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def child_env(**extra: str) -> dict[str, str]:
    """This environment without anything a developer's shell may set for CrateDB, S3 or Dagster."""
    prefixes = ("CRATEDB_", "S3_", "ACCESS_KEY_ID", "SECRET_ACCESS_KEY", "DAGSTER_", "AWS_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**env, **extra}


@contextlib.contextmanager
def running_services(workdir: Path, crate_url: str | None = None) -> Iterator[Services]:
    """SeaweedFS and the CrateDB stand-in, both stopped on exit (also on errors and Ctrl-C); with `crate_url`,
    a CrateDB someone started instead of the stand-in (it must reach SeaweedFS on 127.0.0.1)."""
    with SeaweedS3(ACCESS_KEY, SECRET_KEY) as s3:
        if crate_url:
            yield Services(crate_url=crate_url, crate_pid=None, s3=s3)
            return
        with crate_stand_in(workdir / "crate-stand-in.log") as crate:
            yield Services(crate_url=crate[0], crate_pid=crate[1], s3=s3)


@contextlib.contextmanager
def crate_stand_in(log_path: Path) -> Iterator[tuple[str, int]]:
    """`python -m cratedb_export_testbed.standin --port N` in its own process group; yields URL and pid."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "cratedb_export_testbed.standin", "--port", str(_free_port())],
            cwd=ROOT,
            env=child_env(),
            stdin=subprocess.DEVNULL,
            stdout=log,  # a file, not a pipe: a full pipe would block the stand-in mid-benchmark
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield _wait_for_url(process, log_path), process.pid
    finally:
        _stop(process)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_url(process: subprocess.Popen[bytes], log_path: Path) -> str:
    """The stand-in prints its URL once it answers; anything else before that is start-up noise."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        for line in log_path.read_text(errors="replace").splitlines():
            word = line.strip().split()[-1] if line.strip() else ""
            if word.startswith("http://"):
                return word
        if process.poll() is not None:
            break
        time.sleep(0.1)
    tail = log_tail(log_path, 30)
    raise RuntimeError(f"the CrateDB stand-in did not print its URL (exit code {process.poll()}):\n{tail}")


def _stop(process: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM the stand-in's process group, SIGKILL it if it lingers; only the group we started."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def temporary_workdir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="cratedb-export-bench-")
