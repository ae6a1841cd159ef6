"""Killed at any step of a retention run: SIGKILLed at each step boundary of core/retention/delete.py, then run again.

The run is a child process (cratedb_export_testbed/killing.py) stopped at a step for one day — of a whole
January partition dropped (JAN3) or of a day deleted by its window (FEB5) — or killed while its DELETE runs
in CrateDB. After the kill no day may be gone from CrateDB without a complete archive and its record; a re-run
must end as an uninterrupted run ends: the days' rows 0, their archives intact, their records final, January
dropped whole, February not left write-blocked. Every wait is bounded in time.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest
from cratedb_export_testbed.killing import RETENTION_STEPS, ChildRun, child_environment, holder, wait_until
from cratedb_export_testbed.support import CrateUnderTest

from cratedb_export.core.archive import read_archived_day
from cratedb_export.core.config import ExportSpec, parse_export_specs
from cratedb_export.core.connection import ConnectionSettings
from cratedb_export.core.copy_jobs import day_copy_running
from cratedb_export.core.export import ExportRun
from cratedb_export.core.lease import DayLeases
from cratedb_export.core.retention.delete import TableRetention, retain_table
from cratedb_export.core.storage import DELETION_RECORD, LEASE, ObjectStore

SLOW_DELETE = 5.0  # seconds the stand-in holds the DELETE that is killed in flight


@pytest.fixture(scope="module")
def tables(crate: CrateUnderTest) -> Iterator[list[str]]:
    """The module's tables, dropped at its end (a real CrateDB keeps what a test creates)."""
    made: list[str] = []
    yield made
    for name in made:
        crate.sql(f'DROP TABLE "doc"."{name}"')


JAN3, FEB5, FEB20 = date(2024, 1, 3), date(2024, 2, 5), date(2024, 2, 20)
ROWS = {JAN3: 4, FEB5: 2, FEB20: 1}  # January holds only JAN3 (dropped whole); FEB20 is never archived
TODAY = date(2024, 4, 1)  # with keep_days 30, January and February are due
MONTH_DDL = (
    'CREATE TABLE "doc"."{name}" ("ts" TIMESTAMP WITH TIME ZONE, "v" BIGINT, "month" TIMESTAMP WITH TIME ZONE '
    'GENERATED ALWAYS AS date_trunc(\'month\', "ts")) CLUSTERED INTO 2 SHARDS PARTITIONED BY ("month")'
)
RETENTION_KILLS = [*RETENTION_STEPS, "delete_in_flight"]


def _ms_of(day: date, hour: int = 0) -> int:
    return int(datetime(day.year, day.month, day.day, hour, tzinfo=UTC).timestamp() * 1000)


def _insert(crate: CrateUnderTest, name: str, day: date, count: int, first_hour: int = 1) -> None:
    args = [[_ms_of(day, first_hour + n), n] for n in range(count)]
    crate.sql(f'INSERT INTO "doc"."{name}" ("ts", "v") VALUES (?, ?)', bulk_args=args)
    crate.sql(f'REFRESH TABLE "doc"."{name}"')


def _count(crate: CrateUnderTest, name: str, day: date) -> int:
    crate.sql(f'REFRESH TABLE "doc"."{name}"')
    where = '"ts" >= ? AND "ts" < ?'
    return crate.sql(f'SELECT count(*) FROM "doc"."{name}" WHERE {where}', [_ms_of(day), _ms_of(day) + 86_400_000])[0][
        0
    ]


def _deletes(crate: CrateUnderTest, name: str) -> list[tuple[str, int, int, str | None]]:
    rows = crate.sql(
        'SELECT "stmt", "started", "ended", "error" FROM "sys"."jobs_log" WHERE "stmt" LIKE ?',
        [f'%DELETE FROM "doc"."{name}"%'],
    )
    return sorted(((r[0], r[1], r[2], r[3]) for r in rows), key=lambda r: r[1])


def _retain(settings: ConnectionSettings, spec: ExportSpec, run_id: str) -> TableRetention:
    """An uninterrupted retention run in this process, taking over the leases of dead harness children."""
    connected = settings.open()
    crate = connected.crate
    leases = DayLeases(connected.store, holder(run_id), lambda t, d: day_copy_running(crate, t, d), poll=0.2)
    return retain_table(crate, connected.store, spec, leases, endpoint=connected.access.endpoint, today=TODAY)


def _assert_no_day_lost(crate, s3, store, spec: ExportSpec, name: str) -> None:
    """Never a deleted day without a complete archive: every day is either in CrateDB or proved in S3."""
    for day, rows in ROWS.items():
        if _count(crate, name, day) < rows:
            archived = read_archived_day(store, spec, day)  # raises unless _SUCCESS, manifest, files, sizes
            assert archived.rows == rows
            assert store.read_json(spec.directory_for(day), DELETION_RECORD) is not None, f"{day} deleted unrecorded"


@dataclass
class KilledRetention:
    """A table with ROWS, JAN3 and FEB5 archived, whose retention run was SIGKILLed at a step."""

    name: str
    spec: ExportSpec
    store: ObjectStore
    killed_run: str


def _kill_retention(step: str, day: date, crate, bucket, connection, tables, secrets) -> KilledRetention:
    if step == "delete_in_flight" and crate.double is None:
        pytest.skip("a DELETE cannot be held in flight on a real CrateDB: needs the stand-in's delay_next")
    if crate.double is not None:
        crate.double.faults.reset()
    name = f"killret_{uuid.uuid4().hex[:10]}"
    crate.sql(MONTH_DDL.format(name=name))
    tables.append(name)
    for each, rows in ROWS.items():
        _insert(crate, name, each, rows)
    spec_dict = {
        "table": f"doc.{name}",
        "timestamp_column": "ts",
        "target": f"{bucket}/{name}",
        "start_date": "2024-01-01",
        "retention": {"keep_days": 30},
    }
    (spec,) = parse_export_specs([spec_dict])
    run = ExportRun.start([spec], connected=connection.open(), holder=holder("archive"))
    for archived_day in (JAN3, FEB5):
        run.export_day(spec, archived_day)

    env = child_environment(connection, spec_dict, os.environ)
    in_flight = step == "delete_in_flight"
    stop_at, hold_at = (None, "deleting") if in_flight else (step, None)
    with ChildRun(env, day, stop_at, job="retention", today=TODAY, hold_at=hold_at) as child:
        child.wait_for_step(stop_at or "deleting", day=day)
        if in_flight:
            double = crate.double
            double.faults.delay_next(seconds=SLOW_DELETE)  # exactly the child's next statement: its DELETE
            child.release()
            wait_until(lambda: _delete_running(crate, name), "the DELETE in sys.jobs", 30)
        child.kill()
    assert not secrets.leaks_in(child.output)
    return KilledRetention(name, spec, connection.open().store, child.run_id)


def _delete_running(crate: CrateUnderTest, name: str) -> bool:
    """Whether the stand-in runs a DELETE of the table right now (read in-process: no request of ours)."""
    return any(f'DELETE FROM "doc"."{name}"' in job["stmt"] for job in crate.double.jobs)


@pytest.mark.parametrize("day", [JAN3, FEB5], ids=["partition", "window"])
@pytest.mark.parametrize("step", RETENTION_KILLS)
def test_a_retention_killed_at_a_step_never_loses_a_day_and_a_rerun_finishes_it(
    step, day, crate, s3, bucket, connection, tables, secrets
):
    killed = _kill_retention(step, day, crate, bucket, connection, tables, secrets)
    name, spec, store = killed.name, killed.spec, killed.store
    _assert_no_day_lost(crate, s3, store, spec, name)
    assert _count(crate, name, FEB20) == ROWS[FEB20]

    result = _retain(connection, spec, f"rerun-{uuid.uuid4().hex[:6]}")
    assert not [o.line() for o in result.outcomes if o.needs_action]
    if step == "delete_in_flight":  # (the re-run waits for it; bounded, in case it does not)
        wait_until(lambda: not _delete_running(crate, name), "the killed DELETE to end", 30)
    _assert_no_day_lost(crate, s3, store, spec, name)
    assert [_count(crate, name, d) for d in ROWS] == [0, 0, ROWS[FEB20]]
    for deleted in (JAN3, FEB5):
        directory = spec.directory_for(deleted)
        record = store.read_json(directory, DELETION_RECORD)
        assert record is not None and record["state"] == "deleted" and record["rows_deleted"] == ROWS[deleted]
        assert read_archived_day(store, spec, deleted).rows == ROWS[deleted]  # the archive intact
        assert store.read_json(directory, LEASE) is None, "a killed run's lease is left"
    partitions = crate.sql(
        'SELECT "values" FROM "information_schema"."table_partitions" WHERE "table_schema" = ? AND "table_name" = ?',
        ["doc", name],
    )
    assert _ms_of(date(2024, 1, 1)) not in {values["month"] for (values,) in partitions}  # January dropped whole
    _insert(crate, name, FEB20, 1, first_hour=5)  # February was not left write-blocked
    assert _count(crate, name, FEB20) == ROWS[FEB20] + 1

    if step == "delete_in_flight":  # the re-run sent no DELETE of the day while the killed one still ran
        kind = '"month" = ?' if day == JAN3 else '"ts" >= ?'  # the partition's drop, or the day's window
        (killed_delete, *later) = [d for d in _deletes(crate, name) if kind in d[0]]
        assert killed_delete[3] is None  # it ran to its end in CrateDB after its client died
        assert all(started >= killed_delete[2] for _, started, _, _ in later), "a second DELETE ran meanwhile"
