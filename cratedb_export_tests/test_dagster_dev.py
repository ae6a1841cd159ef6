"""End to end through a real `dagster dev`: webserver, daemon and code server, as a user runs them.

A partition backfill of two tables is launched through the GraphQL API the UI uses, the backfill daemon
turns it into runs, and every day's objects and markers are then read back from S3. The CrateDB side is
the stand-in (or a real CrateDB, see conftest.py), S3 is the session's SeaweedFS server.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from cratedb_export_testbed.support import create_metrics_table, instance_text, list_keys, read_rows, spec_for
from dagster import DagsterInstance
from dagster_graphql import DagsterGraphQLClient
from dagster_graphql.client.query import LAUNCH_PARTITION_BACKFILL_MUTATION

from cratedb_export.core.storage import MANIFEST, SUCCESS

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
LOCATION = "cratedb_export"
SCHEDULE = "daily_cratedb_export_schedule"
DAYS = [date(2024, 5, 10) + timedelta(days=i) for i in range(4)]
STARTUP_TIMEOUT = 120.0
BACKFILL_TIMEOUT = 240.0  # the backfill daemon's loop runs every 30 s: launch → run → completion
STOP_GRACE = 45.0

pytestmark = pytest.mark.slow


# --- GraphQL: the queries the UI's pages issue, trimmed to the fields checked here -------------------

WORKSPACE_QUERY = """
query Workspace {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on RepositoryLocation { name repositories { name } }
          ... on PythonError { message stack }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""

DAEMON_HEALTH_QUERY = """
query DaemonHealth {
  instance {
    daemonHealth {
      allDaemonStatuses { daemonType required healthy lastHeartbeatErrors { message } }
    }
  }
}
"""

RESOURCES_QUERY = """
query Resources($selector: RepositorySelector!) {
  allTopLevelResourceDetailsOrError(repositorySelector: $selector) {
    ... on ResourceDetailsList { results { name configuredValues { key value type } } }
  }
}
"""

SCHEDULES_QUERY = """
query Schedules($selector: RepositorySelector!) {
  schedulesOrError(repositorySelector: $selector) {
    __typename
    ... on Schedules {
      results {
        name
        cronSchedule
        executionTimezone
        pipelineName
        scheduleState { status }
      }
    }
    ... on PythonError { message }
  }
}
"""

BACKFILL_QUERY = """
query Backfill($backfillId: String!) {
  partitionBackfillOrError(backfillId: $backfillId) {
    __typename
    ... on PartitionBackfill {
      id
      status
      isAssetBackfill
      numPartitions
      error { message }
      runs {
        runId
        status
        startTime
        endTime
        tags { key value }
        assetSelection { path }
      }
    }
    ... on BackfillNotFoundError { message }
    ... on PythonError { message }
  }
}
"""

MATERIALIZATIONS_QUERY = """
query Materializations($assetKey: AssetKeyInput!, $partitions: [String!]) {
  assetOrError(assetKey: $assetKey) {
    __typename
    ... on Asset { assetMaterializations(partitions: $partitions) { partition runId } }
    ... on AssetNotFoundError { message }
  }
}
"""

FINAL_BACKFILL_STATES = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
SUCCESSFUL_BACKFILL_STATES = {"COMPLETED", "COMPLETED_SUCCESS"}
NEEDED_DAEMONS = {"SCHEDULER", "BACKFILL", "QUEUED_RUN_COORDINATOR"}


# --- processes: everything `dagster dev` starts stays in the session it was started in ---------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _session_members(session: int) -> dict[int, tuple[str, str]]:
    """pid → (state, command line) of every process in the session (dagster never calls setsid)."""
    members = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        state, _ppid, _pgrp, sid = stat.rpartition(")")[2].split()[:4]
        if int(sid) == session:
            members[int(entry.name)] = (state, cmdline.strip())
    return members


def _alive(session: int) -> dict[int, tuple[str, str]]:
    """Members that are not zombies (a zombie is gone, only its exit status waits for a reaper)."""
    return {pid: m for pid, m in _session_members(session).items() if m[0] != "Z"}


def _decode_address(hex_address: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]:
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    # /proc/net/tcp{,6} print each 32-bit word of the address in host (little-endian) byte order.
    raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    address = ipaddress.ip_address(raw)
    return address, int(port, 16)


def _is_loopback(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def _listening_sockets(pids: set[int]) -> list[tuple[int, str, Any, int]]:
    """(pid, command, address, port) of every TCP socket in LISTEN state owned by the given processes."""
    listening = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A":  # TCP_LISTEN
                    listening[fields[9]] = _decode_address(fields[1])
    found = []
    for pid in pids:
        with suppress(OSError):
            command = (Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()).strip()
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:[") and target[8:-1] in listening:
                        address, port = listening[target[8:-1]]
                        found.append((pid, command, address, port))
    return found


class DagsterDev:
    """`python -m dagster dev` in its own session, its output in a file, talked to over GraphQL."""

    def __init__(self, env: dict[str, str], cwd: Path, log_path: Path) -> None:
        self.env = env
        self.cwd = cwd
        self.log_path = log_path
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no output)"
        return "\n".join(text.splitlines()[-lines:])

    def fail(self, message: str) -> None:
        pytest.fail(f"{message}\n--- last lines of dagster dev's output ({self.log_path}) ---\n{self.tail()}")

    def start(self, attempts: int = 3) -> None:
        for _ in range(attempts):
            self.port = _free_port()
            with self.log_path.open("ab") as log:
                log.write(f"=== dagster dev on {self.url}\n".encode())
                log.flush()
                # Loaded through workspace.yaml, as a deployment's webserver and daemon load it.
                command = ["dagster", "dev", "-h", HOST, "-p", str(self.port), "-w", str(ROOT / "workspace.yaml")]
                self.process = subprocess.Popen(
                    [sys.executable, "-m", *command],
                    cwd=self.cwd,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            if self._wait_for_webserver():
                return
            # The webserver could not bind: another process took the port between picking and binding.
            self.stop()
        self.fail(f"dagster dev did not start after {attempts} attempts")

    def _wait_for_webserver(self) -> bool:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                if "address already in use" in self.tail(200).lower():
                    return False
                self.fail(f"dagster dev exited with code {self.process.returncode} while starting")
            try:
                with urllib.request.urlopen(f"{self.url}/server_info", timeout=5) as answer:
                    if answer.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        self.fail(f"the webserver did not answer on {self.url}/server_info within {STARTUP_TIMEOUT:.0f} s")
        return False

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                payload = json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            self.fail(f"GraphQL answered HTTP {exc.code}: {exc.read()[:2000]!r}")
        except (urllib.error.URLError, OSError) as exc:
            self.fail(f"GraphQL request failed: {exc}")
        if payload.get("errors"):
            self.fail(f"GraphQL errors: {json.dumps(payload['errors'], indent=2)[:4000]}")
        return payload["data"]

    def poll(self, what: str, timeout: float, probe, interval: float = 1.0):
        """Call probe() until it returns something truthy; fail with dagster dev's output on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                self.fail(f"dagster dev exited with code {self.process.returncode} while waiting for {what}")
            result = probe()
            if result:
                return result
            if time.monotonic() > deadline:
                self.fail(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(interval)

    def listening_sockets(self) -> list[tuple[int, str, Any, int]]:
        assert self.process is not None
        return _listening_sockets(set(_alive(self.process.pid)))

    def stop(self) -> dict[int, tuple[str, str]]:
        """Ctrl-C the whole session as a terminal would, then SIGTERM, then SIGKILL; returns leftovers."""
        if self.process is None:
            return {}
        session = self.process.pid  # start_new_session: the leader's pid is the session and group id
        for sig, grace in ((signal.SIGINT, STOP_GRACE), (signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
            if not _alive(session):
                break
            with suppress(ProcessLookupError):
                os.killpg(session, sig)
            if sig == signal.SIGKILL:  # anything that left the process group but not the session
                for pid in _alive(session):
                    with suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + grace
            while _alive(session) and time.monotonic() < deadline:
                if self.process.poll() is None:
                    with suppress(subprocess.TimeoutExpired):
                        self.process.wait(timeout=0.2)  # reaps the leader as soon as it exits
                else:  # the leader is gone; its children may still be shutting down
                    time.sleep(0.2)
        with suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        leftovers = _alive(session)
        self.process = None
        return leftovers


@contextmanager
def dagster_dev(env: dict[str, str], cwd: Path, log_path: Path) -> Iterator[DagsterDev]:
    dev = DagsterDev(env, cwd, log_path)
    try:
        dev.start()
        yield dev
    finally:
        started = time.monotonic()
        leftovers = dev.stop()
        print(f"\n[dagster dev] stopped in {time.monotonic() - started:.1f} s")
        if leftovers:
            message = f"processes of dagster dev still running after SIGKILL: {leftovers}"
            if sys.exc_info()[0] is None:
                raise AssertionError(message)
            print(message)  # do not hide the failure that is already on its way


# --- the test ----------------------------------------------------------------------------------------


def _asset_key(table) -> list[str]:
    return ["cratedb_export", "doc", table.name]


def _tags(run: dict) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run["tags"]}


def _day_of(directory: str) -> date | None:
    with suppress(ValueError):
        return date.fromisoformat(directory[-10:])
    return None


def _export_step_span(instance: DagsterInstance, run_id: str) -> tuple[float, float]:
    """When the run's export step started and ended (its STEP_START and STEP_SUCCESS / STEP_FAILURE)."""
    moments = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is not None and event.step_key and event.step_key.startswith("export_tables"):
            moments.setdefault(event.event_type_value, entry.timestamp)
    return moments["STEP_START"], moments.get("STEP_SUCCESS", moments.get("STEP_FAILURE", float("inf")))


def test_backfill_through_dagster_dev(tmp_path, monkeypatch, export_env, crate, s3, bucket, secrets, record_property):
    tables = [create_metrics_table(crate, DAYS, per_day=4) for _ in range(2)]
    config = tmp_path / "exports.yaml"
    config.write_text(yaml.safe_dump({"exports": [spec_for(t, bucket) for t in tables]}))
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")
    # Batching is part of what is checked: the default backfill policy, one run for the whole range.
    monkeypatch.delenv("CRATEDB_EXPORT_DAYS_PER_RUN", raising=False)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "CRATEDB_EXPORT_CONFIG": str(config),
        "PYTHONUNBUFFERED": "1",
    }
    workdir = tmp_path / "cwd"  # not the repository: its dagster.yaml is only used through DAGSTER_HOME
    workdir.mkdir()
    log_path = tmp_path / "dagster_dev.log"
    started = time.monotonic()

    with dagster_dev(env, workdir, log_path) as dev:
        # The code location loads (in dagster dev's code server) without errors.
        def location_loaded():
            data = dev.graphql(WORKSPACE_QUERY)["workspaceOrError"]
            if data["__typename"] != "Workspace":
                dev.fail(f"workspace: {data}")
            entries = {e["name"]: e for e in data["locationEntries"]}
            entry = entries.get(LOCATION)
            if entry is None or entry["loadStatus"] != "LOADED" or entry["locationOrLoadError"] is None:
                return None
            location = entry["locationOrLoadError"]
            if location["__typename"] != "RepositoryLocation":
                dev.fail(f"code location {LOCATION} failed to load: {location}")
            return location

        location = dev.poll("the code location to load", STARTUP_TIMEOUT, location_loaded, interval=0.5)
        (repository,) = location["repositories"]
        loaded_at = time.monotonic()

        # The daemons a backfill and the schedule need are up and heartbeating.
        def daemons_healthy():
            statuses = dev.graphql(DAEMON_HEALTH_QUERY)["instance"]["daemonHealth"]["allDaemonStatuses"]
            by_type = {s["daemonType"]: s for s in statuses}
            assert set(by_type) >= NEEDED_DAEMONS, f"daemons missing: {sorted(by_type)}"
            return all(by_type[t]["healthy"] for t in NEEDED_DAEMONS)

        dev.poll("the daemons to report healthy", STARTUP_TIMEOUT, daemons_healthy)

        # The schedule is listed, for the export job, and running without anyone switching it on.
        selector = {"repositoryLocationName": LOCATION, "repositoryName": repository["name"]}
        schedules = dev.graphql(SCHEDULES_QUERY, {"selector": selector})["schedulesOrError"]
        assert schedules["__typename"] == "Schedules", schedules
        by_name = {s["name"]: s for s in schedules["results"]}
        assert SCHEDULE in by_name, f"schedules listed: {sorted(by_name)}"
        schedule = by_name[SCHEDULE]
        assert schedule["scheduleState"]["status"] == "RUNNING", schedule
        assert schedule["pipelineName"] == "daily_cratedb_export"
        assert schedule["cronSchedule"] == "0 0 * * *"

        # The resource page shows the credentials as the names of environment variables, never values.
        resources = dev.graphql(RESOURCES_QUERY, {"selector": selector})["allTopLevelResourceDetailsOrError"]
        (cratedb,) = [r for r in resources["results"] if r["name"] == "cratedb"]
        shown = {v["key"]: (v["type"], v["value"]) for v in cratedb["configuredValues"]}
        assert shown["secret_access_key"] == ("ENV_VAR", "SECRET_ACCESS_KEY")
        assert shown["access_key_id"] == ("ENV_VAR", "ACCESS_KEY_ID")
        if crate.password:  # a real CrateDB under trust authentication has none
            assert shown["password"] == ("ENV_VAR", "CRATEDB_PASSWORD")
        assert not secrets.leaks_in(json.dumps(resources))

        # Launch the backfill as the UI's "Materialize → partitions" dialog does for a selection of assets.
        partition_names = [d.isoformat() for d in DAYS]
        keys = [{"path": _asset_key(t)} for t in tables]
        launched = dev.graphql(
            LAUNCH_PARTITION_BACKFILL_MUTATION,
            {
                "backfillParams": {
                    "assetSelection": keys,
                    "partitionNames": partition_names,
                    "fromFailure": False,
                    "title": "test_dagster_dev",
                }
            },
        )["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        backfill_id = launched["backfillId"]
        launched_at = time.monotonic()

        def backfill_finished():
            answer = dev.graphql(BACKFILL_QUERY, {"backfillId": backfill_id})["partitionBackfillOrError"]
            if answer["__typename"] != "PartitionBackfill":
                dev.fail(f"backfill {backfill_id}: {answer}")
            return answer if answer["status"] in FINAL_BACKFILL_STATES else None

        backfill = dev.poll(f"backfill {backfill_id} to finish", BACKFILL_TIMEOUT, backfill_finished)
        finished_at = time.monotonic()
        runs = backfill["runs"]
        if backfill["status"] not in SUCCESSFUL_BACKFILL_STATES:
            dev.fail(f"backfill ended {backfill['status']}: error={backfill['error']}, runs={runs}")
        assert backfill["isAssetBackfill"], backfill
        assert backfill["numPartitions"] == len(DAYS), backfill

        # BackfillPolicy.single_run() on the shared multi-asset: ONE run for both tables and all days.
        assert len(runs) == 1, f"expected one run for the whole backfill, got {len(runs)}: {runs}"
        (run,) = runs
        assert run["status"] == "SUCCESS", run
        tags = _tags(run)
        assert tags.get("dagster/backfill") == backfill_id, tags
        assert tags.get("dagster/asset_partition_range_start") == partition_names[0], tags
        assert tags.get("dagster/asset_partition_range_end") == partition_names[-1], tags
        assert sorted(k["path"] for k in run["assetSelection"]) == sorted(k["path"] for k in keys), run

        # Every table-day is recorded as its own materialization, by that run.
        for table, key in zip(tables, keys, strict=True):
            asset = dev.graphql(MATERIALIZATIONS_QUERY, {"assetKey": key, "partitions": partition_names})
            events = asset["assetOrError"]["assetMaterializations"]
            assert sorted(e["partition"] for e in events) == partition_names, (table.name, events)
            assert {e["runId"] for e in events} == {run["runId"]}, (table.name, events)

        # Two runs of the same day (say, the schedule and a click) never run at once: dagster.yaml limits
        # the run queue to one run per dagster/partition value, so the second waits for the first.
        graphql_client = DagsterGraphQLClient(HOST, port_number=dev.port)
        if crate.double is not None:
            crate.double.faults.delay_next(seconds=4, count=4)  # long enough that unguarded runs would overlap
        twice = [
            graphql_client.submit_job_execution("daily_cratedb_export", tags={"dagster/partition": partition_names[0]})
            for _ in range(2)
        ]

        def both_done():
            statuses = [graphql_client.get_run_status(run_id).value for run_id in twice]
            return statuses if all(s in ("SUCCESS", "FAILURE", "CANCELED") for s in statuses) else None

        assert dev.poll("two runs of the same day", BACKFILL_TIMEOUT, both_done) == ["SUCCESS", "SUCCESS"]
        with DagsterInstance.local_temp(str(home)) as stored:
            spans = sorted((r.start_time, r.end_time) for r in (stored.get_run_record_by_id(i) for i in twice))
        assert spans[0][1] <= spans[1][0], f"runs of the same day overlapped: {spans}"

        # The pool bounds export steps across runs: dagster.yaml's default_limit 2, however many runs the
        # queue starts. Three runs of other days at once, each COPY made slow: at most two export at once.
        if crate.double is not None:
            crate.double.faults.slow_next_copy(seconds=3, count=2 * len(DAYS[1:]))
        others = [
            graphql_client.submit_job_execution("daily_cratedb_export", tags={"dagster/partition": day.isoformat()})
            for day in DAYS[1:]
        ]

        def all_done():
            statuses = [graphql_client.get_run_status(run_id).value for run_id in others]
            return statuses if all(s in ("SUCCESS", "FAILURE", "CANCELED") for s in statuses) else None

        assert dev.poll("three runs of other days", BACKFILL_TIMEOUT, all_done) == ["SUCCESS"] * len(others)
        with DagsterInstance.local_temp(str(home)) as stored:
            steps = [_export_step_span(stored, run_id) for run_id in others]
        at_once = max(sum(1 for start, end in steps if start <= moment < end) for moment, _ in steps)
        assert at_once <= 2, f"export steps of {len(steps)} runs: {at_once} at once, the pool allows 2: {steps}"

        # Nothing dagster dev started listens beyond loopback: the webserver binds 127.0.0.1, the code
        # servers use Unix sockets.
        sockets = dev.listening_sockets()
        assert (HOST, dev.port) in {(str(a), p) for _, _, a, p in sockets}, sockets
        exposed = [s for s in sockets if not _is_loopback(s[2])]
        assert not exposed, f"dagster dev processes listening beyond loopback: {exposed}"

        run_seconds = (run["endTime"] or 0) - (run["startTime"] or 0)
        timing = (
            f"backfill of {len(DAYS)} days x {len(tables)} tables: launched -> {backfill['status']} in "
            f"{finished_at - launched_at:.1f} s (the run itself {run_seconds:.1f} s); dagster dev up and "
            f"loaded in {loaded_at - started:.1f} s"
        )
        print(f"\n[dagster dev] {timing}")
        record_property("backfill_seconds", round(finished_at - launched_at, 1))
        record_property("run_seconds", round(run_seconds, 1))

    # S3: each table-day's directory holds exactly that day's rows, a manifest and the _SUCCESS marker.
    client = s3.client()
    today = datetime.now(UTC).date()
    for table in tables:
        for day in DAYS:
            prefix = f"{table.name}-{day.isoformat()}/"
            keys_found = list_keys(client, bucket, prefix)
            assert f"{prefix}{SUCCESS}" in keys_found, (prefix, keys_found)
            assert f"{prefix}{MANIFEST}" in keys_found, (prefix, keys_found)
            rows = read_rows(client, bucket, prefix)
            assert sorted(r["hash_id"] for r in rows) == sorted(table.hash_ids(day)), (prefix, rows)
            manifest = json.loads(client.get_object(Bucket=bucket, Key=f"{prefix}{MANIFEST}")["Body"].read())
            assert (manifest["table"], manifest["day"]) == (table.table, day.isoformat()), manifest
            assert manifest["totals"]["exported_rows"] == len(table.rows_by_day[day]), manifest
        # No other day was written (a schedule tick at midnight may export yesterday; that is allowed).
        directories = {k.split("/", 1)[0] for k in list_keys(client, bucket, f"{table.name}-")}
        recent = today - timedelta(days=1)
        unexpected = {d for d in directories if (day := _day_of(d)) not in DAYS and not (day and day >= recent)}
        assert not unexpected, unexpected

    # Secrets stay out of everything dagster dev and the runs wrote: its output and the instance.
    written = log_path.read_text(errors="replace") + instance_text(home)
    assert not secrets.leaks_in(written), secrets.leaks_in(written)
