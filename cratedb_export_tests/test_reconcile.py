"""Late rows reconciled: the days of the reconcile window whose source changed since their export are found by
the sensor, with the old and new numbers, exported again through Dagster, and then quiet.

End to end on the stand-in in CI and against a real CrateDB (CRATEDB_TEST_URL): days are exported by the
daily job, then rows arrive late for one day, a row is updated in place in another (same count), a row is
deleted from a third, a fourth is left alone, and a day outside the window changes too.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from cratedb_export_testbed.support import (
    TEST_SECRETS,
    create_metrics_table,
    epoch_ms,
    instance_text,
    run_export,
    spec_for,
)
from dagster import AssetKey, build_sensor_context

from cratedb_export.core.config import parse_export_specs
from cratedb_export.core.cratedb import CrateDB, Reply
from cratedb_export.core.reconcile import (
    CHANGED,
    EMPTIED,
    SKIPPED,
    UNCHANGED,
    compare_day,
    reconcile,
    reconcile_window,
)
from cratedb_export.core.schema import Column, SourceTable
from cratedb_export.core.source import Digest, SourceDigests, read_digests
from cratedb_export.core.statement import digest_statement, hourly_digest_statement
from cratedb_export.core.storage import DELETION_RECORD, LEASE, MANIFEST
from cratedb_export.core.window import DayWindow
from cratedb_export.orchestration.build import build_definitions, resource_from_env
from cratedb_export.orchestration.reconcile import REASON_TAG, SENSOR, today_of
from cratedb_export.orchestration.schedules import JOB

TODAY = datetime.now(UTC).date()
D1, D2, D3, D4 = (TODAY - timedelta(days=i) for i in range(1, 5))
OLD = TODAY - timedelta(days=10)  # outside the default window of 7 days


def _export_spec(spec: dict) -> Any:
    (parsed,) = parse_export_specs([spec])
    return parsed


def _manifest(s3, spec, day: date) -> dict:
    import json

    directory = _export_spec(spec).directory_for(day)
    body = s3.client().get_object(Bucket=directory.bucket, Key=directory.key(MANIFEST))["Body"].read()
    return json.loads(body)


def _put(s3, spec, day: date, name: str) -> None:
    directory = _export_spec(spec).directory_for(day)
    s3.client().put_object(Bucket=directory.bucket, Key=directory.key(name), Body=b"{}")


def _evaluate(defs, instance):
    """One tick, as the daemon evaluates it: the code location's sensor with its resource."""
    repository = defs.get_repository_def()
    sensor = repository.get_sensor_def(SENSOR)
    resources = repository.get_top_level_resources()
    with build_sensor_context(instance=instance, repository_def=repository, resources=resources) as context:
        # evaluate_tick, as the daemon does (a direct call would pass the resource as an argument).
        return sensor.evaluate_tick(context)


def _late_row(table, day: date, hash_id: int) -> list:
    moment = datetime(day.year, day.month, day.day, 12, 30, tzinfo=UTC)
    return [hash_id, epoch_ms(moment), "cpu", {"host": "late"}, {"usage_idle": 1.0}]


def _insert(crate, table, rows: list[list]) -> None:
    crate.sql(
        f'INSERT INTO "doc"."{table.name}" ("hash_id", "timestamp", "name", "tags", "fields") VALUES (?, ?, ?, ?, ?)',
        bulk_args=rows,
    )


def test_changed_days_of_the_window_are_requested_with_their_numbers_exported_again_and_then_quiet(
    export_env, instance, dagster_home, s3, bucket, crate
):
    table = create_metrics_table(crate, [OLD, D4, D3, D2, D1], per_day=4)
    spec = spec_for(table, bucket)
    assert run_export([spec], instance, partition=OLD.isoformat()).success
    assert run_export([spec], instance, partition_range=(D4.isoformat(), D1.isoformat())).success
    before = {day: _manifest(s3, spec, day) for day in (D1, D2, D3, D4)}
    # The digest is taken before each day's COPY and recorded beside the verified rows.
    assert all(m["source_digest"]["rows"] == m["totals"]["source_rows"] == 4 for m in before.values())

    defs = build_definitions([spec], resource=resource_from_env())
    quiet = _evaluate(defs, instance)
    assert not quiet.run_requests and not quiet.asset_events  # nothing changed: a quiet tick

    _insert(crate, table, [_late_row(table, D1, 901), _late_row(table, D1, 902), _late_row(table, OLD, 903)])
    (updated,) = sorted(table.hash_ids(D2))[1:2]
    assert crate.sql(f'UPDATE "doc"."{table.name}" SET "name" = ? WHERE "hash_id" = ?', ["mem", updated]) == 1
    (deleted,) = sorted(table.hash_ids(D3))[1:2]
    assert crate.sql(f'DELETE FROM "doc"."{table.name}" WHERE "hash_id" = ?', [deleted]) == 1
    crate.sql(f'REFRESH TABLE "doc"."{table.name}"')

    result = _evaluate(defs, instance)
    requests = {r.partition_key: r for r in result.run_requests}
    assert set(requests) == {D1.isoformat(), D2.isoformat(), D3.isoformat()}  # not D4, not OLD (outside)
    key = AssetKey(["cratedb_export", "doc", table.name])
    for request in requests.values():
        assert request.asset_selection == [key]
        assert {k.name for k in request.asset_check_keys} == {"matches_source", "no_unexpected_empty_day"}
        assert request.run_key.startswith(f"reconcile:{table.table}:{request.partition_key}:")
    reasons = {day: r.tags[REASON_TAG] for day, r in requests.items()}
    assert reasons[D1.isoformat()].startswith("source rows 4 → 6 since exported ")
    assert reasons[D3.isoformat()].startswith("source rows 4 → 3 since exported ")
    assert reasons[D2.isoformat()].startswith("rows unchanged (4) but updated in place (seq_no sum ")
    observed = {e.partition: e.metadata for e in result.asset_events}
    assert set(observed) == set(requests)
    assert all(e.asset_key == key for e in result.asset_events)
    assert (observed[D1.isoformat()]["rows_archived"].value, observed[D1.isoformat()]["rows_now"].value) == (4, 6)
    assert (observed[D3.isoformat()]["rows_archived"].value, observed[D3.isoformat()]["rows_now"].value) == (4, 3)
    in_place = observed[D2.isoformat()]
    assert in_place["rows_archived"].value == in_place["rows_now"].value == 4
    assert in_place["seq_no_sum_archived"].value == before[D2]["source_digest"]["seq_no_sum"]
    assert in_place["seq_no_sum_now"].value > in_place["seq_no_sum_archived"].value
    # _seq_no counts per shard: the day's max moves only when the updated row's shard holds it (on a real
    # CrateDB not always), so the sum is what shows the update; the max never goes down.
    assert in_place["seq_no_max_now"].value >= in_place["seq_no_max_archived"].value
    assert in_place["reason"].value == reasons[D2.isoformat()]

    # The requested runs, as the sensor's runs execute: the day exported again, with every check.
    for request in requests.values():
        run = defs.resolve_job_def(JOB).execute_in_process(
            instance=instance,
            partition_key=request.partition_key,
            tags=request.tags,
            asset_selection=request.asset_selection,
            raise_on_error=False,
        )
        assert run.success
    after = {day: _manifest(s3, spec, day) for day in (D1, D2, D3)}
    assert after[D1]["totals"]["exported_rows"] == after[D1]["source_digest"]["rows"] == 6
    assert after[D3]["totals"]["exported_rows"] == 3
    assert after[D2]["totals"]["exported_rows"] == 4
    assert after[D2]["source_digest"]["seq_no_sum"] == in_place["seq_no_sum_now"].value
    materializations = {
        r.partition_key: r.asset_materialization.metadata
        for r in instance.fetch_materializations(key, limit=100).records  # newest first
        if r.partition_key in requests and "reconciled_because" in r.asset_materialization.metadata
    }
    assert {day: m["reconciled_because"].value for day, m in materializations.items()} == reasons
    assert materializations[D1.isoformat()]["rows_exported"].value == 6

    again = _evaluate(defs, instance)
    assert not again.run_requests and not again.asset_events  # converged: the manifests hold the new numbers
    assert not TEST_SECRETS.leaks_in(instance_text(dagster_home))


def test_deleted_leased_and_unarchived_days_are_skipped_and_a_table_that_fails_does_not_stop_the_others(
    export_env, instance, s3, bucket, crate, connection, capfd
):
    table = create_metrics_table(crate, [D4, D3, D2, D1], per_day=2)
    spec = spec_for(table, bucket)
    assert run_export([spec], instance, partition_range=(D3.isoformat(), D1.isoformat())).success
    _insert(crate, table, [_late_row(table, day, 900 + i) for i, day in enumerate((D1, D2, D3, D4))])
    crate.sql(f'REFRESH TABLE "doc"."{table.name}"')
    _put(s3, spec, D1, DELETION_RECORD)  # retention deleted it: never exported again
    _put(s3, spec, D2, LEASE)  # a run is exporting it right now

    connected = connection.open()
    findings = {f.day: f for f in reconcile(_export_spec(spec), TODAY, crate=connected.crate, store=connected.store)}
    assert set(findings) == set(reconcile_window(_export_spec(spec), TODAY))
    assert (findings[D1].status, findings[D2].status, findings[D4].status) == (SKIPPED, SKIPPED, SKIPPED)
    assert "retention" in findings[D1].reason
    assert "being exported" in findings[D2].reason
    assert "not archived" in findings[D4].reason
    assert findings[D3].status == CHANGED and findings[D3].reason.startswith("source rows 2 → 3")

    # Through the sensor: only D3; a missing table beside it is a warning naming it, not a failed tick.
    missing = {**spec, "table": "doc.no_such_table_here", "target": f"{bucket}/missing"}
    _put(s3, missing, D1, "_SUCCESS")  # archived once, the table dropped since
    defs = build_definitions([spec, missing], resource=resource_from_env())
    capfd.readouterr()
    result = _evaluate(defs, instance)
    assert [r.partition_key for r in result.run_requests] == [D3.isoformat()]
    logged = capfd.readouterr().err
    (warning,) = [line for line in logged.splitlines() if "no_such_table_here" in line]
    assert "WARNING - reconcile: doc.no_such_table_here skipped this tick" in warning and "no such table" in warning
    assert not TEST_SECRETS.leaks_in(logged)


def test_reconcile_days_0_turns_it_off(export_env, bucket, crate, connection):
    table = create_metrics_table(crate, [D1], per_day=1)
    spec = spec_for(table, bucket, reconcile_days=0)
    defs = build_definitions([spec], resource=resource_from_env())
    assert not list(defs.sensors or [])
    connected = connection.open()
    assert reconcile(_export_spec(spec), TODAY, crate=connected.crate, store=connected.store) == []


def test_the_window_is_the_days_before_today_never_before_start_date():
    spec = _export_spec({"table": "doc.t", "timestamp_column": "ts", "target": "bucket/t", "start_date": "2026-12-01"})
    assert reconcile_window(spec, date(2026, 12, 5)) == [date(2026, 12, d) for d in (1, 2, 3, 4)]
    week = _export_spec({"table": "doc.t", "timestamp_column": "ts", "target": "bucket/t", "start_date": "2026-01-01"})
    assert reconcile_window(week, date(2026, 12, 5)) == [date(2026, 11, 28) + timedelta(days=i) for i in range(7)]
    tokyo = _export_spec({"table": "doc.t", "timestamp_column": "ts", "target": "bucket/t", "timezone": "Asia/Tokyo"})
    assert today_of(tokyo, datetime(2026, 12, 4, 16, 0, tzinfo=UTC)) == date(2026, 12, 5)


def test_a_day_emptied_in_the_source_is_reported_not_exported_again():
    """Exporting it again would empty the archive, by then the only copy of its rows."""
    spec = _export_spec({"table": "doc.t", "timestamp_column": "ts", "target": "bucket/t"})
    manifest = {"totals": {"exported_rows": 5}, "source_digest": Digest(5, 20, 7).as_json()}
    emptied = compare_day(spec, D1, manifest, Digest.EMPTY)
    assert (emptied.status, emptied.changed) == (EMPTIED, False)
    assert emptied.reason.startswith("source rows 5 → 0: deleted from CrateDB, but not by retention")
    assert compare_day(spec, D1, manifest, Digest(5, 20, 7)).status == UNCHANGED
    assert compare_day(spec, D1, {"totals": {"source_rows": 5}}, Digest(5, 99, 9)).status == UNCHANGED  # no digest
    assert compare_day(spec, D1, None, Digest(5, 20, 7)).status == CHANGED  # no manifest: proved by exporting


def test_digest_statements_hold_no_value_or_secret():
    spec = _export_spec({"table": "doc.metrics", "timestamp_column": "ts", "target": "bucket/m"})
    first, last = DayWindow.for_day("2026-12-01"), DayWindow.for_day("2026-12-04")
    for statement in (digest_statement(spec, first), hourly_digest_statement(spec, first, last)):
        assert statement.args == (first.start_ms, (first if statement.sql.count("GROUP") == 0 else last).end_ms)
        assert str(first.start_ms) not in statement.sql and "2026" not in statement.sql
        assert 'sum("_seq_no")' in statement.sql and 'max("_seq_no")' in statement.sql
        assert '"ts" >= ? AND "ts" < ?' in statement.sql
        assert not TEST_SECRETS.leaks_in(statement.sql)


class _Counting:
    """A real CrateDB client (of the stand-in, or of a real CrateDB) that counts the statements sent through it."""

    def __init__(self, crate) -> None:
        self.client, self.sent = CrateDB([crate.url], username=crate.username, password=crate.password), []

    def execute(self, statement, *, what: str, on_retry=None) -> Reply:
        self.sent.append(statement)
        return self.client.execute(statement, what=what, on_retry=on_retry)


def _table(crate, timezone: str = "UTC", column_type: str = "timestamp with time zone") -> SourceTable:
    name = f"digests_{uuid.uuid4().hex[:10]}"
    crate.sql(f'CREATE TABLE "doc"."{name}" ("ts" {column_type.upper()}, "v" INTEGER) CLUSTERED INTO 2 SHARDS')
    spec = _export_spec({"table": f"doc.{name}", "timestamp_column": "ts", "target": "bucket/t", "timezone": timezone})
    return SourceTable(spec, (Column("ts", column_type),))


@pytest.mark.parametrize(
    ("timezone", "column_type", "statements"),
    [
        ("UTC", "timestamp with time zone", 1),  # one statement per hour, added up per day
        ("Europe/Berlin", "timestamp with time zone", 1),  # whole UTC hours too
        ("Asia/Kolkata", "timestamp with time zone", 3),  # UTC+05:30: each day on its own
        ("UTC", "bigint", 3),  # date_trunc cannot bucket BIGINT: each day on its own
    ],
)
def test_digests_of_a_span_are_bucketed_per_day(crate, timezone, column_type, statements):
    table = _table(crate, timezone, column_type)
    name = table.spec.table.split(".")[1]
    days = [date(2026, 12, 1), date(2026, 12, 2), date(2026, 12, 3)]
    windows = [table.window(day) for day in days]
    rows = []
    for index, window in enumerate(windows):  # the first and last millisecond of each day, and noon
        rows += [[window.start_ms, index], [window.start_ms + 43_200_000, index], [window.end_ms - 1, index]]
    crate.sql(f'INSERT INTO "doc"."{name}" ("ts", "v") VALUES (?, ?)', bulk_args=rows)
    crate.sql(f'UPDATE "doc"."{name}" SET "v" = 9 WHERE "ts" = ?', [windows[1].start_ms])  # a higher _seq_no
    crate.sql(f'REFRESH TABLE "doc"."{name}"')
    expected = {}
    for day, window in zip(days, windows, strict=True):
        ((count, total, highest),) = crate.sql(
            f'SELECT count(*), sum("_seq_no"), max("_seq_no") FROM "doc"."{name}" WHERE "ts" >= ? AND "ts" < ?',
            [window.start_ms, window.end_ms],
        )
        expected[day] = Digest(count, total, highest)

    counting = _Counting(crate)
    found = read_digests(table, days, counting)  # type: ignore[arg-type]
    crate.sql(f'DROP TABLE "doc"."{name}"')

    assert len(counting.sent) == statements
    assert found == expected and all(digest.rows == 3 for digest in found.values())


def test_a_digest_that_cannot_be_read_leaves_the_day_without_one(crate, double):
    table = _table(crate)
    logged: list[str] = []
    days = [date(2026, 12, 1), date(2026, 12, 2)]
    digests = SourceDigests(table, days, _Counting(crate).client, logged.append)
    double.faults.fail_next(count=2, status=500, code=5000, message="SQLParseException[fault injected]")
    assert digests.of(days[0]) is None
    crate.sql(f"DROP TABLE {table.spec.table}")
    assert any("exported without it" in line for line in logged)
    assert Digest.from_json(None) is None and Digest.from_json({"rows": 1}) is None
    assert Digest.from_json(Digest(2, 5, 3).as_json()) == Digest(2, 5, 3)
