"""The core exports a range of days without Dagster: every (table, day) verified and marked, each outcome
reported as it finishes, a failing table failing only its own days, and a stopped run starting no new day."""

from __future__ import annotations

import contextlib
from datetime import date, timedelta

from cratedb_export_testbed.support import create_metrics_table, list_keys, read_rows, spec_for

from cratedb_export.core.config import parse_export_specs
from cratedb_export.core.connection import ConnectionSettings
from cratedb_export.core.export import ExportRun
from cratedb_export.core.fanout import export_days
from cratedb_export.core.lease import Holder
from cratedb_export.core.storage import SUCCESS

FIRST = date(2024, 3, 1)
DAYS = [FIRST + timedelta(days=n) for n in range(6)]


def _start(connection: ConnectionSettings, specs, run_id: str = "core-run") -> ExportRun:
    return ExportRun.start(specs, connected=connection.open(), holder=Holder(run_id, lambda _: False))


def test_a_range_of_two_tables_is_exported_day_by_day(crate, s3, bucket, connection):
    first, second = create_metrics_table(crate, DAYS, per_day=4), create_metrics_table(crate, DAYS, per_day=3)
    specs = parse_export_specs([spec_for(first, bucket), spec_for(second, bucket)])
    progress: list[str] = []
    outcomes = list(export_days(_start(connection, specs), specs, DAYS, progress=progress.append, copy_slots=2))

    assert sorted((o.spec.table, o.day) for o in outcomes) == sorted((s.table, d) for s in specs for d in DAYS)
    assert [o.error for o in outcomes] == [None] * len(outcomes)
    client = s3.client()
    for outcome in outcomes:
        table = first if outcome.spec.table == first.table else second
        assert outcome.export is not None and outcome.export.source_rows == len(table.hash_ids(outcome.day))
        prefix = f"{table.name}-{outcome.day.isoformat()}/"
        assert f"{prefix}{SUCCESS}" in list_keys(client, bucket, prefix)
        assert {r["hash_id"] for r in read_rows(client, bucket, prefix)} == table.hash_ids(outcome.day)
    assert progress[-1] == f"progress: {len(outcomes)}/{len(outcomes)} table-days done, 0 failed"


def test_a_table_that_cannot_be_exported_fails_only_its_days(crate, bucket, connection):
    good = create_metrics_table(crate, DAYS[:2])
    specs = parse_export_specs(
        [spec_for(good, bucket), {**spec_for(good, bucket), "table": "doc.no_such_table", "target": f"{bucket}/x"}]
    )
    outcomes = list(export_days(_start(connection, specs), specs, DAYS[:2]))
    failed = {o.day: str(o.error) for o in outcomes if o.spec.table == "doc.no_such_table"}
    assert set(failed) == set(DAYS[:2]) and all("no_such_table" in text for text in failed.values())
    assert all(o.export is not None for o in outcomes if o.spec.table == good.table)


def test_a_stopped_run_starts_no_new_day(crate, s3, bucket, connection):
    table = create_metrics_table(crate, DAYS)
    specs = parse_export_specs([spec_for(table, bucket)])
    outcomes = export_days(_start(connection, specs), specs, DAYS, copy_slots=1)  # 2 threads, 6 days queued
    with contextlib.closing(outcomes):
        first = next(outcomes)
    assert first.error is None
    marked = [key for key in list_keys(s3.client(), bucket, table.name) if key.endswith(SUCCESS)]
    # The day reported, the one running beside it, and the one its thread took up while the run was being
    # stopped (two threads for one COPY slot); the other days were never started.
    assert 1 <= len(marked) <= 3 < len(DAYS), marked


def test_a_day_exported_by_another_run_after_this_runs_listing_is_cleared_and_exported_again(
    crate, s3, bucket, connection
):
    """A run lists the range's directories once, before it holds any day's lease; another run may export a
    day in between. Its marker and manifest are cleared all the same, so the day is exported again cleanly
    (not failed over a 'stray' manifest, and never left with the other run's marker over this run's COPY)."""
    table = create_metrics_table(crate, DAYS[:2], per_day=3)
    (spec,) = parse_export_specs([spec_for(table, bucket)])
    this_run = _start(connection, [spec], "run-a")
    batch = this_run.batch(spec, DAYS[:2], lambda _: None)
    assert batch.uploads.below(spec.directory_for(FIRST)) == []  # the run's listing of uploads, taken now
    other = _start(connection, [spec], "run-b").export_day(spec, FIRST)
    assert other.source_rows == 3
    again = this_run.export_day(spec, FIRST, batch=batch)
    assert again.exported_rows == 3
    prefix = f"{table.name}-{FIRST.isoformat()}/"
    assert f"{prefix}{SUCCESS}" in list_keys(s3.client(), bucket, prefix)
    assert {r["hash_id"] for r in read_rows(s3.client(), bucket, prefix)} == table.hash_ids(FIRST)
