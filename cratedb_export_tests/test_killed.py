"""Killed at any step: a day's export SIGKILLed at each step boundary, then run again.

The export runs in a child process (cratedb_export_testbed/killing.py) that stops at a boundary of
core/export.py so that the kill lands exactly there; a COPY in flight is killed while `sys.jobs` shows it.
After the kill the day must be safe — no `_SUCCESS` on an incomplete day, no manifest claiming more than
is there — and a re-run must leave what an uninterrupted run leaves, without ever running two COPYs of the
day at once. Every wait is bounded in time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest
import yaml
from cratedb_export_testbed.killing import STEPS, ChildRun, child_environment, holder, wait_until
from cratedb_export_testbed.support import (
    CrateUnderTest,
    create_metrics_table,
    materialize_command,
    read_rows,
)

from cratedb_export.core.config import parse_export_specs
from cratedb_export.core.connection import ConnectionSettings
from cratedb_export.core.copy_jobs import COMMENT_PREFIX, day_copy_running
from cratedb_export.core.export import ExportRun
from cratedb_export.core.storage import LEASE, MANIFEST, SUCCESS

DAY = date(2024, 6, 12)
SLOW_COPY = 3.0  # seconds a stand-in COPY runs when it must be killed in flight
REAL_ROWS = 1_000_000  # on a real CrateDB, enough rows that the day's COPY runs for seconds


@dataclass
class Table:
    """A source table with rows on DAY, and what an uninterrupted export of DAY leaves (filled on first use)."""

    name: str
    rows: int
    reference: dict | None = None

    @property
    def table(self) -> str:
        return f"doc.{self.name}"

    def spec(self, bucket: str) -> dict:
        return {"table": self.table, "timestamp_column": "timestamp", "target": f"{bucket}/{self.name}"}

    def prefix(self) -> str:
        return f"{self.name}-{DAY.isoformat()}/"


@pytest.fixture(scope="module")
def tables(crate: CrateUnderTest) -> Iterator[dict[str, Table]]:
    """The module's tables by role, dropped at its end (a real CrateDB keeps what a test creates)."""
    made: dict[str, Table] = {}
    yield made
    for table in made.values():
        crate.sql(f'DROP TABLE "doc"."{table.name}"')


@pytest.fixture(scope="module")
def small(crate: CrateUnderTest, tables: dict[str, Table]) -> Table:
    metrics = create_metrics_table(crate, [date(2024, 6, 11), DAY, date(2024, 6, 13)], per_day=7)
    tables["small"] = Table(metrics.name, len(metrics.rows_by_day[DAY]))
    return tables["small"]


def _in_flight_table(crate: CrateUnderTest, small: Table, tables: dict[str, Table]) -> Table:
    """A table whose COPY of DAY can run long enough to be killed in flight: on the stand-in any (its next
    COPY is made slow by `_slow_next_copy`), on a real CrateDB one with REAL_ROWS rows on DAY (made once)."""
    if crate.double is not None:
        return small
    if "big" not in tables:
        name = f"killed_{uuid.uuid4().hex[:10]}"
        crate.sql(
            f'CREATE TABLE "doc"."{name}" ("id" BIGINT, "timestamp" TIMESTAMP WITH TIME ZONE, "name" TEXT) '
            "CLUSTERED INTO 4 SHARDS"
        )
        start = int(datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC).timestamp() * 1000)
        crate.sql(
            f'INSERT INTO "doc"."{name}" ("id", "timestamp", "name") '
            f"(SELECT x, {start} + x * {86_400_000 // REAL_ROWS}, 'row ' || x "
            f"FROM generate_series(0, {REAL_ROWS - 1}) AS g(x))"
        )
        crate.sql(f'REFRESH TABLE "doc"."{name}"')
        tables["big"] = Table(name, REAL_ROWS)
    return tables["big"]


def _slow_next_copy(crate: CrateUnderTest, seconds: float) -> None:
    if crate.double is not None:
        crate.double.faults.slow_next_copy(seconds=seconds)


def _day(s3, bucket: str, table: Table) -> dict:
    """A day's directory as it stands: names relative to it, the manifest, unfinished uploads."""
    client, prefix = s3.client(), table.prefix()
    objects = {
        o["Key"][len(prefix) :]: o["Size"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for o in page.get("Contents", ())
    }
    manifest = None
    if MANIFEST in objects:
        manifest = json.loads(client.get_object(Bucket=bucket, Key=prefix + MANIFEST)["Body"].read())
    uploads = client.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", [])
    return {"objects": objects, "manifest": manifest, "uploads": [u["Key"] for u in uploads]}


def _data(state: dict) -> dict[str, int]:
    return {name: size for name, size in state["objects"].items() if not name.startswith("_")}


def _assert_safe(state: dict, rows: int) -> None:
    """What any reader may rely on at any moment: a manifest claims only what is there, `_SUCCESS` only a
    complete, verified day."""
    manifest, objects = state["manifest"], state["objects"]
    if manifest is not None:
        for listed in manifest["files"]:
            assert objects.get(listed["name"]) == listed["size"], f"the manifest claims {listed} but S3 has {objects}"
    if SUCCESS in objects:
        assert manifest is not None, "_SUCCESS without a manifest"
        assert {f["name"]: f["size"] for f in manifest["files"]} == _data(state), "_SUCCESS beside stray files"
        totals = manifest["totals"]
        assert totals["source_rows"] == rows and totals["copy_rowcount"] in (rows, None)
        assert totals["exported_rows"] in (rows, None)


def _export(settings: ConnectionSettings, table: Table, bucket: str, run_id: str, log: list[str]) -> None:
    """An uninterrupted export of DAY in this process, taking over the leases of dead harness children."""
    (spec,) = parse_export_specs([table.spec(bucket)])
    run = ExportRun.start([spec], connected=settings.open(), holder=holder(run_id), log=log.append, max_wait=120)
    run.export_day(spec, DAY, log=log.append)


def _reference(settings: ConnectionSettings, s3, table: Table) -> dict:
    """What an uninterrupted run leaves for DAY (its own bucket), with the rows it exported."""
    if table.reference is None:
        bucket = f"reference-{uuid.uuid4().hex[:10]}"
        s3.create_bucket(bucket)
        _export(settings, table, bucket, f"reference-{uuid.uuid4().hex[:6]}", [])
        table.reference = {**_day(s3, bucket, table), "rows": _rows(s3, bucket, table)}
    return table.reference


def _rows(s3, bucket: str, table: Table) -> list[str]:
    return sorted(json.dumps(r, sort_keys=True) for r in read_rows(s3.client(), bucket, table.prefix()))


def _assert_converged(s3, bucket: str, table: Table, reference: dict) -> None:
    """Exactly what an uninterrupted run leaves: the same objects, rows and totals; no lease, nothing stray."""
    state = _day(s3, bucket, table)
    _assert_safe(state, table.rows)
    assert sorted(state["objects"]) == sorted(reference["objects"])
    assert LEASE not in state["objects"] and SUCCESS in state["objects"] and not state["uploads"]
    manifest, expected = state["manifest"], reference["manifest"]
    assert [(f["name"], f["rows"]) for f in manifest["files"]] == [(f["name"], f["rows"]) for f in expected["files"]]
    assert manifest["totals"]["source_rows"] == manifest["totals"]["exported_rows"] == table.rows
    assert manifest["copy_answer"] == "answered"
    if table.rows <= 1000:  # a real CrateDB's large day is checked by the manifest's read-back alone
        assert _rows(s3, bucket, table) == reference["rows"]


def _copies(crate: CrateUnderTest, table: Table) -> list[tuple[str, int, int, str | None]]:
    """(statement, started, ended, error) of the exporter's COPYs of DAY in sys.jobs_log, oldest first."""
    rows = crate.sql(
        'SELECT "stmt", "started", "ended", "error" FROM "sys"."jobs_log" WHERE "stmt" LIKE ?',
        [f"%{COMMENT_PREFIX}% {table.table} {DAY.isoformat()} */%"],
    )
    return sorted(((r[0], r[1], r[2], r[3]) for r in rows), key=lambda r: r[1])


def _no_copy_running(connection: ConnectionSettings, table: Table, when: str) -> None:
    """Bounded wait until CrateDB runs no COPY of DAY (a failed earlier test may have left one running)."""
    crate = connection.open().crate
    wait_until(lambda: not day_copy_running(crate, table.table, DAY), f"no COPY of {table.table} {DAY} {when}", 120)


def _expected_after_kill(step: str, earlier: bool) -> tuple[set[str], bool]:
    """(the markers a day killed at `step` holds, whether its data files are there for sure). Over an
    `earlier` complete export the day is untouched until it is cleared (marker first)."""
    if earlier and step == "leased":
        return {LEASE, MANIFEST, SUCCESS}, True
    return {
        "leased": ({LEASE}, False),
        "cleared": ({LEASE}, False),
        "copy_sent": ({LEASE}, False),  # the COPY still runs in CrateDB: its files may be landing
        "verified": ({LEASE}, True),
        "manifest_written": ({LEASE, MANIFEST}, True),
        "marked": ({LEASE, MANIFEST, SUCCESS}, True),
    }[step]


# Over an earlier complete export the day differs only until it is cleared; after that it is as fresh.
KILLS = [(step, "nothing") for step in STEPS] + [(step, "an earlier export") for step in STEPS[:3]]


@pytest.mark.parametrize(("step", "over"), KILLS)
def test_an_export_killed_at_a_step_is_safe_and_a_rerun_converges(
    step, over, crate, small, tables, s3, bucket, connection, secrets
):
    if crate.double is not None:
        crate.double.faults.reset()
    table = _in_flight_table(crate, small, tables) if step == "copy_sent" else small
    reference = _reference(connection, s3, table)
    _no_copy_running(connection, table, "before the test")
    if over == "an earlier export":  # a re-export (a re-run, a reconciled day) is killed
        _export(connection, table, bucket, f"earlier-{uuid.uuid4().hex[:6]}", [])
    if step == "copy_sent":
        _slow_next_copy(crate, SLOW_COPY)
    before = len(_copies(crate, table))
    env = child_environment(connection, table.spec(bucket), os.environ)
    stop_at = None if step == "copy_sent" else step  # a COPY in flight is killed while CrateDB runs it
    with ChildRun(env, DAY, stop_at=stop_at) as child:
        child.wait_for_step(step)
        if step == "copy_sent":
            crate_client = connection.open().crate
            wait_until(lambda: day_copy_running(crate_client, table.table, DAY), "the COPY in sys.jobs", 60)
        child.kill()
        killed_run = child.run_id
    assert child.steps == list(STEPS[: STEPS.index(step) + 1])
    assert not any(a in arg for arg in child.process.args for a in secrets.forms())  # settings via the env only
    assert not secrets.leaks_in(child.output)

    killed = _day(s3, bucket, table)
    _assert_safe(killed, table.rows)
    markers, with_files = _expected_after_kill(step, earlier=over != "nothing")
    assert {name for name in killed["objects"] if name.startswith("_")} == markers
    if with_files:
        assert sorted(_data(killed)) == sorted(_data(reference))

    log: list[str] = []
    started = time.monotonic()
    _export(connection, table, bucket, f"rerun-{uuid.uuid4().hex[:6]}", log)
    assert time.monotonic() - started < 120
    assert any(f"took over the lease left by run {killed_run}, which has ended" in line for line in log), log
    assert not secrets.leaks_in("\n".join(log))
    running = day_copy_running(connection.open().crate, table.table, DAY)
    assert not running, "a COPY of the day still runs after the re-run marked it complete"
    _assert_converged(s3, bucket, table, reference)

    copies = _copies(crate, table)[before:]
    if STEPS.index(step) < STEPS.index("copy_sent"):
        assert len(copies) == 1  # the killed run sent none
    else:
        # The killed run's COPY ran to its end in CrateDB; the re-run sent its own only after that.
        assert len(copies) == 2, copies
        (first, first_start, first_end, first_error), (second, second_start, _, second_error) = copies
        assert first_error is None and second_error is None
        assert second_start >= first_end, "the re-run started a COPY of the day while the killed one still ran"
        assert first.split(COMMENT_PREFIX)[1][:32] != second.split(COMMENT_PREFIX)[1][:32]  # two CopyTags
    if step == "copy_sent" and crate.double is not None:
        assert any("is exporting this day" in line for line in log), log  # it waited for the COPY to end


def test_a_dagster_run_killed_during_its_copy_converges_when_materialized_again(
    export_env, crate, small, tables, s3, bucket, connection, tmp_path, secrets
):
    """End to end: `dagster asset materialize` SIGKILLed while its COPY runs, then materialized again.

    A run killed outright stays STARTED in Dagster: nothing is left to report its end (run monitoring only
    detects a dead run worker with a launcher that checks workers' health, not the default one). The re-run
    sees from the lease that the killed run's process is gone from this machine (core/process.py), waits for
    the COPY that outlived it, and takes the day over — nobody has to terminate the dead run first.
    """
    from dagster import DagsterInstance, DagsterRunStatus

    if crate.double is not None:
        crate.double.faults.reset()
    table = _in_flight_table(crate, small, tables)
    reference = _reference(connection, s3, table)
    _no_copy_running(connection, table, "before the test")
    config = tmp_path / "exports.yaml"
    config.write_text(yaml.safe_dump({"exports": [{**table.spec(bucket), "start_date": "2024-01-01"}]}))
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    DagsterInstance.from_config(str(home)).dispose()  # create its storage before the process that is killed
    env = {**os.environ, "DAGSTER_HOME": str(home), "CRATEDB_EXPORT_CONFIG": str(config)}
    command = materialize_command(["cratedb_export", "doc", table.name], DAY.isoformat())
    before = len(_copies(crate, table))
    _slow_next_copy(crate, 10.0)  # outlasts the second CLI's start-up (slower in CI): the re-run finds it running
    crate_client = connection.open().crate
    with (tmp_path / "killed.log").open("w+") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_until(lambda: day_copy_running(crate_client, table.table, DAY), "the COPY in sys.jobs", 90, 0.1)
        finally:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        output.seek(0)
        assert not secrets.leaks_in(output.read())

    killed = _day(s3, bucket, table)
    _assert_safe(killed, table.rows)
    assert SUCCESS not in killed["objects"] and LEASE in killed["objects"]
    with DagsterInstance.from_config(str(home)) as instance:
        (run,) = instance.get_runs()
        assert run.status == DagsterRunStatus.STARTED  # Dagster cannot know the process died

    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert again.returncode == 0, again.stderr[-3000:]
    assert not secrets.leaks_in(again.stdout + again.stderr)
    assert f"took over the lease left by run {run.run_id}" in again.stderr
    if crate.double is not None:
        assert "is exporting this day" in again.stderr  # it found the killed run's COPY running and waited
    assert not day_copy_running(crate_client, table.table, DAY)
    _assert_converged(s3, bucket, table, reference)
    with DagsterInstance.from_config(str(home)) as instance:
        latest = instance.get_runs(limit=1)[0]
        assert latest.run_id != run.run_id and latest.status == DagsterRunStatus.SUCCESS
    copies = _copies(crate, table)[before:]
    assert len(copies) == 2 and copies[1][1] >= copies[0][2], "two COPYs of the day ran at once"
