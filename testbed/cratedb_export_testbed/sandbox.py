"""`make run`: start the Dagster UI (`dg dev`) with the export pipeline, against a local sandbox when nothing
is configured.

With CRATEDB_URL set, it runs `dg dev` against that CrateDB and whatever S3 the environment names.
Without it, it starts a real SeaweedFS S3 server and the CrateDB STAND-IN from this test package (a test
double, not CrateDB), preloads the tutorial's `doc.metrics` table with the last days of sample rows, and
points the code location at both, with partitions that start at the first sample day, so that pressing
Materialize lands files in S3.

The Dagster instance is the one `dg dev` makes when DAGSTER_HOME is not set: its storage in a temporary
directory (removed on exit), its settings from the repository's dagster.yaml, read where it lies. (Copying
dagster.yaml into a DAGSTER_HOME of our own made `dg dev` warn, falsely, that the file in the current
folder would not be used.) With CRATEDB_URL and DAGSTER_HOME set, your DAGSTER_HOME is used.

Ctrl-C stops everything, and `make run` exits with status 0: this process takes the terminal's foreground
away from `make` (which would otherwise get the SIGINT too and exit with an error), forwards one SIGINT to
`dg dev`, waits for it and the sandbox's servers to stop, and hands the terminal back.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]  # the repository: the test bed is installed editable from it
SANDBOX_KEYS = ("sandbox-access-key", "sandbox/secret+key=")
SAMPLE_DAYS = 7
# The sandbox's settings for a second terminal (`set -a; source .sandbox/env; set +a`), removed on exit.
SANDBOX_ENV = ROOT / ".sandbox" / "env"
TMP_DAGSTER_HOME = ".tmp_dagster_home_"  # where `dg dev` without DAGSTER_HOME keeps its temporary instance
STOP_TIMEOUT = 90.0
TUTORIAL_EXPORT = {
    "table": "doc.metrics",
    "timestamp_column": "timestamp",
    "target": "crate-astro-tutorial/metrics",
}
TUTORIAL_DDL = """CREATE TABLE IF NOT EXISTS "doc"."metrics" (
  "hash_id" BIGINT, "timestamp" TIMESTAMP WITH TIME ZONE, "name" TEXT,
  "tags" OBJECT(DYNAMIC), "fields" OBJECT(DYNAMIC),
  "month" TIMESTAMP AS date_trunc('quarter', "timestamp"))"""


def sample_days(today: date) -> list[date]:
    """The days that hold sample rows: the SAMPLE_DAYS complete days before today (UTC)."""
    return [today - timedelta(days=back) for back in range(SAMPLE_DAYS, 0, -1)]


def _sample_rows(today: date) -> list[list]:
    rows = []
    for day in sample_days(today):
        for hour in range(0, 24, 2):
            moment = datetime(day.year, day.month, day.day, hour, 15, tzinfo=UTC)
            ident = int(moment.timestamp())
            rows.append(
                [
                    ident,
                    int(moment.timestamp() * 1000),
                    "cpu",
                    {"host": f"host-{hour % 3}"},
                    {"usage_idle": 50 + hour},
                ]
            )
    return rows


def sandbox_config(first_day: date, source: Path = ROOT / "exports.yaml") -> dict[str, Any]:
    """exports.yaml's doc.metrics entry (or the tutorial's) with partitions from the first sample day."""
    entry: dict[str, Any] = dict(TUTORIAL_EXPORT)
    with contextlib.suppress(OSError, yaml.YAMLError, AttributeError, TypeError):
        document = yaml.safe_load(source.read_text(encoding="utf-8"))
        defaults = document.get("defaults") or {}
        for candidate in document.get("exports") or []:
            if candidate.get("table") == "doc.metrics":
                entry = {**defaults, **candidate}
    entry["start_date"] = first_day.isoformat()
    # What the UI shows on the asset: this is a sandbox, not a real cluster.
    entry["description"] = (
        "SANDBOX (make run): sample days of doc.metrics in the CrateDB stand-in — a test double, not CrateDB "
        "— exported to a throwaway SeaweedFS S3 server. Set CRATEDB_URL and the S3 variables to export real data."
    )
    return {"exports": [entry]}


def _dg_environment(extra: dict[str, str], *, keep_dagster_home: bool, drop: tuple[str, ...] = ()) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(extra)
    if not keep_dagster_home:
        env.pop("DAGSTER_HOME", None)
    if sys.prefix != sys.base_prefix:  # this venv: `dg` checks that the project's .venv is the active one
        env["VIRTUAL_ENV"] = sys.prefix
    return env


@contextlib.contextmanager
def terminal_foreground() -> Iterator[None]:
    """Make this process's own group the terminal's foreground group while it runs.

    The terminal sends Ctrl-C's SIGINT to its foreground process group. Under `make run` that group holds
    make too, and make answers SIGINT by exiting with an error whatever its recipe does. In a group of its
    own, this process alone gets the SIGINT, stops everything and exits 0, and make exits 0 after it.
    Without a terminal (CI, tests) or when not in the foreground, nothing changes.
    """
    try:
        tty = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        yield
        return
    original: int | None = None
    try:
        if os.tcgetpgrp(tty) == os.getpgrp():
            with contextlib.suppress(PermissionError):  # a session leader keeps its group
                os.setpgid(0, 0)
            if os.getpgrp() != os.tcgetpgrp(tty):
                original = os.tcgetpgrp(tty)
                _set_foreground(tty, os.getpgrp())
        yield
    finally:
        if original is not None:
            with contextlib.suppress(OSError):
                _set_foreground(tty, original)
        os.close(tty)


def _set_foreground(tty: int, group: int) -> None:
    # A process that is not in the foreground group gets SIGTTOU for tcsetpgrp unless it ignores it.
    previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        os.tcsetpgrp(tty, group)
    finally:
        signal.signal(signal.SIGTTOU, previous)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _dg_dev(env: dict[str, str]) -> int:
    """Run `dg dev` until it exits, or until Ctrl-C (or SIGTERM): then stop it and return 0."""
    port = os.environ.get("DAGSTER_PORT", "3000")
    dg = Path(sys.executable).with_name("dg")
    command = [str(dg), "dev", "-h", "127.0.0.1", "-p", port]
    print(f"\nDagster UI: http://127.0.0.1:{port}  (Ctrl-C stops everything)\n", flush=True)
    # Its own process group: it gets exactly one SIGINT, from here, however the stop was asked for.
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, process_group=0)
    try:
        return process.wait()
    except KeyboardInterrupt:
        print("\nStopping Dagster and the sandbox ...", flush=True)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        try:
            code = _wait_ignoring_interrupts(process, STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            print(f"dg dev did not stop within {STOP_TIMEOUT:.0f} s; killing it", flush=True)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return 1
        if code not in (0, -signal.SIGINT):
            # Interrupted while still starting, dg dev (click) says "Aborted!" and exits 1. The stop was
            # asked for and everything is stopped: say so, and exit 0 like any other Ctrl-C.
            print(f"(dg dev exited with status {code}: it was stopped while starting)", flush=True)
        return 0


def _wait_ignoring_interrupts(process: subprocess.Popen[bytes], timeout: float) -> int:
    """Wait for the stopping process; further Ctrl-Cs do not cut its shutdown short."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return process.wait(timeout=timeout)
    finally:
        signal.signal(signal.SIGINT, previous)


def main() -> int:
    signal.signal(signal.SIGTERM, _raise_interrupt)  # `kill`, or make being stopped: the same clean stop
    with terminal_foreground():
        try:
            return _run()
        except KeyboardInterrupt:  # before dg dev started (it handles its own): servers are stopped already
            print("\nStopped.", flush=True)
            return 0


def _run() -> int:
    if os.environ.get("CRATEDB_URL"):
        print(f"Using CrateDB at {os.environ['CRATEDB_URL'].split('@')[-1]} and the S3 settings in the environment.")
        return _dg_dev(_dg_environment({}, keep_dagster_home=True))

    from cratedb_export_testbed.seaweedfs import SeaweedS3
    from cratedb_export_testbed.standin import CrateDouble

    print(
        "No CRATEDB_URL set: starting a local sandbox.\n"
        "  S3      : a real SeaweedFS server on 127.0.0.1 (data is discarded on exit)\n"
        "  CrateDB : a STAND-IN — the test double of cratedb_export_testbed, which speaks CrateDB's HTTP\n"
        "            protocol and runs COPY TO for this project's statements. It is NOT CrateDB.\n"
        "  Dagster : a temporary instance with the settings of dagster.yaml (run history is discarded on exit)\n"
        "  Set CRATEDB_URL, ACCESS_KEY_ID, SECRET_ACCESS_KEY (and S3_ENDPOINT for MinIO/SeaweedFS) to use\n"
        "  real services instead; see docs/configuration.md.",
        flush=True,
    )
    if os.environ.get("DAGSTER_HOME"):
        print("  (DAGSTER_HOME is set; the sandbox does not use it, so its runs stay out of your instance)")
    today = datetime.now(UTC).date()
    days = sample_days(today)
    config = sandbox_config(days[0])
    (entry,) = config["exports"]
    bucket = str(entry["target"]).split("/")[0]
    access_key, secret_key = SANDBOX_KEYS
    with (
        tempfile.TemporaryDirectory(prefix="cratedb-export-sandbox-") as workdir,
        SeaweedS3(access_key, secret_key) as s3,
        CrateDouble() as crate,
    ):
        config_path = Path(workdir) / "exports.yaml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        s3.create_bucket(bucket)
        rows = _sample_rows(today)
        insert = 'INSERT INTO "doc"."metrics" ("hash_id", "timestamp", "name", "tags", "fields") VALUES (?, ?, ?, ?, ?)'
        for statement, bulk_args in ((TUTORIAL_DDL, None), (insert, rows), ('REFRESH TABLE "doc"."metrics"', None)):
            reply = crate.execute(statement, bulk_args=bulk_args)
            if "error" in reply:
                raise SystemExit(f"sandbox: preloading doc.metrics failed: {reply['error']['message']}")
        print(
            f"  doc.metrics holds {len(rows) // len(days)} rows on each of the {len(days)} days "
            f"{days[0].isoformat()} … {days[-1].isoformat()} (UTC), and no others.\n"
            f"  Its partitions start at {days[0].isoformat()}, so every day in the partition bar has data;\n"
            f"  today's appears after midnight. Materialize any of them (or all: one run) and look in S3.\n"
            f"  CrateDB stand-in: {crate.url}   S3: {s3.endpoint_url} (bucket {bucket}, "
            f"keys {access_key} / {secret_key} — sandbox-only)",
            flush=True,
        )
        settings = {
            "CRATEDB_URL": crate.url,
            "ACCESS_KEY_ID": access_key,
            "SECRET_ACCESS_KEY": secret_key,
            "S3_ENDPOINT": s3.endpoint,
            "S3_PROTOCOL": "http",
            "CRATEDB_EXPORT_CONFIG": str(config_path),
        }
        env = _dg_environment(
            settings,
            keep_dagster_home=False,
            drop=("CRATEDB_USERNAME", "CRATEDB_PASSWORD"),  # the stand-in trusts everyone
        )
        with _settings_file(settings):
            return _dg_dev(env)


@contextlib.contextmanager
def _settings_file(settings: dict[str, str]) -> Iterator[None]:
    """Write the sandbox's settings where a second terminal can read them: `dg launch` runs the day in that
    terminal's process, so it needs them too. Once `dg dev` has made its temporary instance, its directory
    is added as DAGSTER_HOME, so runs launched there show in the UI. The file goes when the sandbox stops."""
    SANDBOX_ENV.parent.mkdir(exist_ok=True)
    SANDBOX_ENV.write_text("".join(f"{name}={shlex.quote(value)}\n" for name, value in settings.items()))
    print(f"  Its settings, for commands in another terminal: set -a; source {SANDBOX_ENV.relative_to(ROOT)}; set +a")
    before = set(ROOT.glob(f"{TMP_DAGSTER_HOME}*"))
    stop = threading.Event()

    def add_instance() -> None:
        deadline = time.monotonic() + 120
        while not stop.wait(0.5) and time.monotonic() < deadline:
            if made := sorted(set(ROOT.glob(f"{TMP_DAGSTER_HOME}*")) - before):
                with SANDBOX_ENV.open("a") as file:
                    file.write(f"DAGSTER_HOME={shlex.quote(str(made[-1]))}\n")
                return

    watcher = threading.Thread(target=add_instance, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()
        SANDBOX_ENV.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
