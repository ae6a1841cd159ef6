"""Retention through Dagster: old days leave CrateDB only when the archive proves it holds them, right then.

A fully archived old month of a table partitioned by month is dropped whole; a month with a day that is not
archived (never exported, or rows that came after its export) keeps that day and loses its proved days by
window; a dry run deletes nothing; max_days_per_run caps a run; a day with a missing file, a wrong size, a
changed time zone or a manifest without today's fields is not deleted; refusals say what to change; a
deleted day is never exported again; no secret shows anywhere.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from cratedb_export_testbed.support import failure_message, list_keys, run_export
from dagster import AssetKey, DagsterEventType, DefaultScheduleStatus

from cratedb_export.core.config import ConfigError, parse_export_specs
from cratedb_export.core.errors import PermanentError
from cratedb_export.core.export import ExportRun
from cratedb_export.core.lease import DayLeases, Holder
from cratedb_export.core.retention.delete import retain_table
from cratedb_export.core.storage import DELETION_RECORD, MANIFEST, SUCCESS
from cratedb_export.orchestration.build import build_definitions, resource_from_env
from cratedb_export.orchestration.retention import RETENTION_JOB

MONTH_DDL = (
    'CREATE TABLE "doc"."{name}" ("ts" TIMESTAMP WITH TIME ZONE, "v" BIGINT, "month" TIMESTAMP WITH TIME ZONE '
    'GENERATED ALWAYS AS date_trunc(\'month\', "ts")) CLUSTERED INTO 2 SHARDS PARTITIONED BY ("month")'
)
PLAIN_DDL = 'CREATE TABLE "doc"."{name}" ("ts" TIMESTAMP WITH TIME ZONE, "v" BIGINT) CLUSTERED INTO 2 SHARDS'
RETENTION = {"keep_days": 30}


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


_CREATED: list[str] = []


@pytest.fixture(autouse=True)
def _drop_tables(crate):
    """The tables a test made are dropped after it (a real CrateDB keeps them otherwise)."""
    yield
    while _CREATED:
        crate.sql(f'DROP TABLE IF EXISTS "doc"."{_CREATED.pop()}"')


def _table(crate, rows: dict[date, int], ddl: str = MONTH_DDL) -> str:
    name = f"ret_{uuid.uuid4().hex[:10]}"
    crate.sql(ddl.format(name=name))
    _CREATED.append(name)
    for day, count in rows.items():
        _insert(crate, name, day, count)
    return name


def _insert(crate, name: str, day: date, count: int, first_hour: int = 1) -> None:
    args = [[_ms(_start(day) + timedelta(hours=first_hour + n)), n] for n in range(count)]
    crate.sql(f'INSERT INTO "doc"."{name}" ("ts", "v") VALUES (?, ?)', bulk_args=args)
    crate.sql(f'REFRESH TABLE "doc"."{name}"')


def _spec(name: str, bucket: str, **extra: Any) -> dict:
    return {
        "table": f"doc.{name}",
        "timestamp_column": "ts",
        "target": f"{bucket}/{name}",
        "start_date": "2024-01-01",
        "retention": RETENTION,
        **extra,
    }


def _export(spec: dict, instance, *days: date) -> None:
    for day in days:
        result = run_export([spec], instance, partition=day.isoformat())
        assert result.success, failure_message(result)


def _retain(spec: dict | list[dict], instance, **config):
    specs = spec if isinstance(spec, list) else [spec]
    defs = build_definitions(specs, resource=resource_from_env())
    run_config = {"ops": {"retain_days": {"config": config}}}
    return defs.resolve_job_def(RETENTION_JOB).execute_in_process(
        instance=instance, run_config=run_config, raise_on_error=False
    )


def _count(crate, name: str, day: date | None = None) -> int:
    where, args = "", []
    if day is not None:
        where, args = ' WHERE "ts" >= ? AND "ts" < ?', [_ms(_start(day)), _ms(_start(day + timedelta(days=1)))]
    crate.sql(f'REFRESH TABLE "doc"."{name}"')
    return crate.sql(f'SELECT count(*) FROM "doc"."{name}"{where}', args)[0][0]


def _partitions(crate, name: str) -> set[int]:
    rows = crate.sql(
        'SELECT "values" FROM "information_schema"."table_partitions" WHERE "table_schema" = ? AND "table_name" = ?',
        ["doc", name],
    )
    return {values["month"] for (values,) in rows}


def _record(s3, bucket: str, name: str, day: date) -> dict | None:
    client = s3.client()
    key = f"{name}-{day.isoformat()}/{DELETION_RECORD}"
    if key not in list_keys(client, bucket, f"{name}-{day.isoformat()}/"):
        return None
    return json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())


def _metadata(result) -> dict[str, Any]:
    """The retention op's output metadata, or its failure's."""
    for event in result.all_events:
        data = event.event_specific_data
        if event.event_type == DagsterEventType.STEP_OUTPUT:
            return {k: v.value for k, v in data.metadata.items()}
        if event.event_type == DagsterEventType.STEP_FAILURE and data.user_failure_data is not None:
            return {k: v.value for k, v in data.user_failure_data.metadata.items()}
    raise AssertionError("no output or failure metadata")


def _observed(instance, name: str) -> dict[str, dict]:
    records = instance.fetch_observations(AssetKey(["cratedb_export", "doc", name]), limit=100).records
    return {r.partition_key: {k: v.value for k, v in r.asset_observation.metadata.items()} for r in records}


JAN3, JAN17, FEB5, FEB20, MAR2 = (
    date(2024, 1, 3),
    date(2024, 1, 17),
    date(2024, 2, 5),
    date(2024, 2, 20),
    date(2024, 3, 2),
)
JANUARY, FEBRUARY = _ms(_start(date(2024, 1, 1))), _ms(_start(date(2024, 2, 1)))


def test_a_proved_month_is_dropped_whole_and_a_month_with_unarchived_rows_loses_only_its_proved_days(
    export_env, crate, bucket, instance, s3, secrets
):
    name = _table(crate, {JAN3: 4, JAN17: 3, FEB5: 2, FEB20: 2, MAR2: 2})
    spec = _spec(name, bucket)
    _export(spec, instance, JAN3, JAN17, FEB5, MAR2)  # FEB20 never exported
    _insert(crate, name, MAR2, 1, first_hour=20)  # a late row of MAR2, after its export

    result = _retain(spec, instance)
    assert result.success, failure_message(result)

    # January: every day with rows proved — the partition is gone; February keeps its unarchived day.
    assert JANUARY not in _partitions(crate, name) and FEBRUARY in _partitions(crate, name)
    assert [_count(crate, name, d) for d in (JAN3, JAN17, FEB5, FEB20, MAR2)] == [0, 0, 0, 2, 3]
    for day, rows, how in ((JAN3, 4, "partition"), (JAN17, 3, "partition"), (FEB5, 2, "window")):
        record = _record(s3, bucket, name, day)
        assert record is not None and record["state"] == "deleted" and record["how"] == how
        assert record["rows_deleted"] == rows == record["archive"]["rows"] and record["deleted_at"]
        assert record["archive"]["directory"].endswith(f"{bucket}/{name}-{day.isoformat()}/")
        assert record["archive"]["files"] and record["window"]["start"] == _start(day).isoformat()
    assert _record(s3, bucket, name, JAN3)["partition"]["value"] == JANUARY
    assert _record(s3, bucket, name, FEB20) is None and _record(s3, bucket, name, MAR2) is None
    # The archive itself is untouched.
    assert f"{name}-{JAN3.isoformat()}/{SUCCESS}" in list_keys(s3.client(), bucket, f"{name}-{JAN3.isoformat()}/")
    # Also in a range run that reads the run-wide listing, with retention since turned off: the record shows.
    without = {k: v for k, v in spec.items() if k != "retention"}
    ranged = run_export([without], instance, partition_range=(JAN3.isoformat(), (JAN3 + timedelta(days=1)).isoformat()))
    assert not ranged.success and f"doc.{name} {JAN3} was deleted from CrateDB by retention at" in failure_message(
        ranged
    )
    assert _record(s3, bucket, name, JAN3)["state"] == "deleted"
    assert f"{name}-{JAN3.isoformat()}/{SUCCESS}" in list_keys(s3.client(), bucket, f"{name}-{JAN3.isoformat()}/")

    observed = _observed(instance, name)
    assert set(observed) == {JAN3.isoformat(), JAN17.isoformat(), FEB5.isoformat()}
    assert observed[JAN3.isoformat()]["rows_deleted"] == 4 and observed[JAN3.isoformat()]["how"].startswith("partition")
    assert observed[FEB5.isoformat()]["how"] == "window"
    assert observed[FEB5.isoformat()]["record"].endswith(f"{name}-{FEB5.isoformat()}/{DELETION_RECORD}")
    metadata = _metadata(result)
    assert metadata["days_deleted"] == 3 and metadata["rows_deleted"] == 9
    waiting = {w["day"]: w["reason"] for w in metadata["waiting"]}
    assert "not archived" in waiting[FEB20.isoformat()]
    assert "CrateDB holds 3 row(s), the archive 2" in waiting[MAR2.isoformat()]

    # A deleted day is never exported again: its archive is the only copy.
    again = run_export([spec], instance, partition=JAN3.isoformat())
    message = failure_message(again)
    assert not again.success
    assert f"doc.{name} {JAN3} was deleted from CrateDB by retention at" in message
    assert "restore_cratedb_days" in message and "docs/restore.md" in message
    assert _record(s3, bucket, name, JAN3)["state"] == "deleted"  # never cleared
    assert f"{name}-{JAN3.isoformat()}/{SUCCESS}" in list_keys(s3.client(), bucket, f"{name}-{JAN3.isoformat()}/")

    # Run again: nothing more to delete, the same days wait.
    second = _retain(spec, instance)
    assert second.success and _metadata(second)["days_deleted"] == 0
    # No secret in the logs, the metadata or the records.
    logs = json.dumps(
        [str(e) for e in instance.all_logs(result.run_id)] + [str(e) for e in instance.all_logs(again.run_id)]
    )
    records = json.dumps([_record(s3, bucket, name, d) for d in (JAN3, JAN17, FEB5)])
    assert not secrets.leaks_in(logs + json.dumps(metadata, default=str) + records)


def test_a_record_written_after_the_run_listed_the_month_still_keeps_the_day_from_being_exported(
    crate, bucket, s3, connection
):
    """A range run starts, and lists what it shares among its days, before it holds any of them. Retention
    may delete a day and write its record meanwhile (a deployment with retention switched on, another code
    location). The day is listed under its lease, so the record stops the export and the archive, the only
    copy, is kept."""
    name = _table(crate, {JAN3: 2, JAN17: 1})
    without = {k: v for k, v in _spec(name, bucket).items() if k != "retention"}
    spec = parse_export_specs([without])[0]
    run = ExportRun.start([spec], connected=connection.open(), holder=Holder("listed-early", lambda _: False))
    batch = run.batch(spec, [JAN3, JAN17], lambda _: None)
    assert batch.uploads.below(spec.directory_for(JAN17)) == []  # what the days share is listed now

    directory = spec.directory_for(JAN17)
    record = {"state": "deleted", "deleted_at": "2024-03-01T00:00:00+00:00"}
    archive = {f"{name}_0_.json": b'{"v": 0}\n', MANIFEST: b"{}", SUCCESS: b"", DELETION_RECORD: json.dumps(record)}
    for key, body in archive.items():
        s3.client().put_object(Bucket=bucket, Key=directory.key(key), Body=body)

    with pytest.raises(PermanentError, match=f"doc.{name} {JAN17} was deleted from CrateDB by retention at"):
        run.export_day(spec, JAN17, batch=batch)
    assert list_keys(s3.client(), bucket, directory.prefix) == sorted(directory.key(k) for k in archive)
    assert _count(crate, name, JAN17) == 1  # and nothing was sent to CrateDB's table either


def test_a_dry_run_proves_and_reports_and_deletes_nothing(export_env, crate, bucket, instance, s3):
    name = _table(crate, {JAN3: 4, FEB5: 2, FEB20: 1})
    spec = _spec(name, bucket)
    _export(spec, instance, JAN3, FEB5)

    result = _retain(spec, instance, dry_run=True)
    assert result.success, failure_message(result)
    metadata = _metadata(result)
    would = {w["day"]: w["how"] for w in metadata["would_delete"]}
    assert would == {JAN3.isoformat(): "partition", FEB5.isoformat(): "window"}
    assert metadata["days_deleted"] == 0 and metadata["dry_run"] is True
    assert [_count(crate, name, d) for d in (JAN3, FEB5, FEB20)] == [4, 2, 1]
    assert {JANUARY, FEBRUARY} <= _partitions(crate, name)
    assert _record(s3, bucket, name, JAN3) is None and _record(s3, bucket, name, FEB5) is None
    assert _observed(instance, name) == {}
    # Inserts still work: no partition was left write-blocked.
    _insert(crate, name, JAN3, 1, first_hour=22)

    # The policy's dry_run is the default; the Launchpad's dry_run: false overrides it.
    assert _retain(_spec(name, bucket, retention={**RETENTION, "dry_run": True}), instance).success
    assert _count(crate, name, JAN3) == 5


def test_a_day_whose_rows_changed_since_its_export_is_not_deleted_though_its_count_is_the_same(
    export_env, crate, bucket, instance, s3
):
    """An update in place (or a delete plus an insert) keeps the day's count; the archive no longer holds
    its rows as CrateDB does. The day's source digest (rows, sum and max of `_seq_no`) tells, so the day
    waits for its re-export and its month is not dropped whole; the unchanged day is deleted."""
    name = _table(crate, {JAN3: 3, JAN17: 3})
    spec = _spec(name, bucket)
    _export(spec, instance, JAN3, JAN17)
    crate.sql(f'UPDATE "doc"."{name}" SET "v" = 99 WHERE "ts" = ?', [_ms(_start(JAN17) + timedelta(hours=1))])
    crate.sql(f'REFRESH TABLE "doc"."{name}"')

    result = _retain(spec, instance)

    assert result.success, failure_message(result)
    assert [_count(crate, name, d) for d in (JAN3, JAN17)] == [0, 3]
    assert JANUARY in _partitions(crate, name)  # not dropped whole: one of its days changed
    assert _record(s3, bucket, name, JAN3)["how"] == "window" and _record(s3, bucket, name, JAN17) is None
    waiting = {w["day"]: w["reason"] for w in _metadata(result)["waiting"]}
    assert "its rows changed since the export" in waiting[JAN17.isoformat()]

    # Exported again, the archive holds the rows as they are now: the day goes.
    _export(spec, instance, JAN17)
    again = _retain(spec, instance)
    assert again.success and _count(crate, name, JAN17) == 0 and _record(s3, bucket, name, JAN17)["state"] == "deleted"


def test_max_days_per_run_caps_a_run_oldest_first(export_env, crate, bucket, instance, s3):
    days = [date(2024, 1, 2) + timedelta(days=n) for n in range(3)]
    name = _table(crate, dict.fromkeys(days, 2), ddl=PLAIN_DDL)
    spec = _spec(name, bucket, retention={**RETENTION, "max_days_per_run": 2})
    _export(spec, instance, *days)

    first = _retain(spec, instance)
    assert first.success, failure_message(first)
    assert [_count(crate, name, d) for d in days] == [0, 0, 2]
    assert _metadata(first)["left_for_next_run"] == 1
    second = _retain(spec, instance)
    assert second.success and [_count(crate, name, d) for d in days] == [0, 0, 0]
    assert _record(s3, bucket, name, days[2])["how"] == "window"


def test_days_the_archive_does_not_prove_are_not_deleted_and_fail_the_run(export_env, crate, bucket, instance, s3):
    days = [date(2024, 1, 2) + timedelta(days=n) for n in range(4)]
    name = _table(crate, dict.fromkeys(days, 3), ddl=PLAIN_DDL)
    spec = _spec(name, bucket)
    _export(spec, instance, *days)
    client = s3.client()

    def data_files(day: date) -> list[str]:
        keys = list_keys(client, bucket, f"{name}-{day.isoformat()}/")
        return [k for k in keys if not k.endswith((SUCCESS, MANIFEST)) and _size(client, bucket, k)]

    client.delete_object(Bucket=bucket, Key=data_files(days[0])[0])  # a missing file
    client.put_object(Bucket=bucket, Key=data_files(days[1])[0], Body=b'{"v": 1}\n')  # a wrong size
    # A manifest of an earlier exporter, without the column, the window (or the columns): not proved.
    _rewrite_manifest(client, bucket, f"{name}-{days[2].isoformat()}/", drop=("window", "timestamp_column", "columns"))
    # Without only `columns` (older than today's manifests, but with its window): proved.
    _rewrite_manifest(client, bucket, f"{name}-{days[3].isoformat()}/", drop=("columns",))

    result = _retain(spec, instance)
    assert not result.success
    message = failure_message(result)
    assert [_count(crate, name, d) for d in days] == [3, 3, 3, 0]
    assert f"{days[0]} unproved" in message and "is missing in" in message
    assert f"{days[1]} unproved" in message and "bytes, the manifest says" in message
    assert f"{days[2]} unproved" in message and "lacks timestamp_column, window.start, window.end" in message
    assert "Re-export the day" in message
    assert [_record(s3, bucket, name, d) for d in days[:3]] == [None, None, None]
    assert _record(s3, bucket, name, days[3])["state"] == "deleted"

    # A changed time zone: the window a DELETE would remove is not the one exported.
    other = _table(crate, {days[0]: 3}, ddl=PLAIN_DDL)
    _export(_spec(other, bucket), instance, days[0])
    vienna = _retain(_spec(other, bucket, timezone="Europe/Vienna"), instance)
    message = failure_message(vienna)
    assert not vienna.success and "timezone 'Europe/Vienna'" in message and "set timezone back" in message
    assert _count(crate, other, days[0]) == 3 and _record(s3, bucket, other, days[0]) is None


def _size(client, bucket: str, key: str) -> int:
    return client.head_object(Bucket=bucket, Key=key)["ContentLength"]


def _rewrite_manifest(client, bucket: str, prefix: str, drop: tuple[str, ...]) -> None:
    key = prefix + MANIFEST
    manifest = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    for field in drop:
        manifest.pop(field, None)
    manifest["exporter_version"] = "0.0.9"
    client.put_object(Bucket=bucket, Key=key, Body=json.dumps(manifest).encode())


def test_retention_is_refused_before_anything_is_deleted_saying_what_to_change(export_env, crate, bucket, instance):
    name = _table(crate, {JAN3: 2})
    with_retention = _spec(name, bucket)
    without = {**_spec(f"{name}_other", bucket), "retention": None}
    _export(with_retention, instance, JAN3)

    unknown = _retain([with_retention, without], instance, tables=["doc.nosuch"])
    assert not unknown.success
    assert "doc.nosuch: not an export of this code location" in failure_message(unknown)
    off = _retain([with_retention, without], instance, tables=[f"doc.{name}", f"doc.{name}_other"])
    message = failure_message(off)
    assert not off.success and f"no retention configured for doc.{name}_other (keep_days at least 8)" in message
    assert _count(crate, name, JAN3) == 2  # refused before anything was deleted

    # A keep period shorter than the freshness deadline plus the reconcile window stops the load.
    with pytest.raises(ConfigError, match="set keep_days to at least 8"):
        build_definitions([_spec(name, bucket, retention={"keep_days": 3})], resource=resource_from_env())


def test_the_job_and_its_schedule_exist_only_with_retention(export_env, bucket):
    name = f"ret_{uuid.uuid4().hex[:10]}"
    defs = build_definitions([_spec(name, bucket)], resource=resource_from_env())
    schedule = defs.resolve_schedule_def(f"{RETENTION_JOB}_schedule")
    assert schedule.default_status == DefaultScheduleStatus.RUNNING and schedule.job_name == RETENTION_JOB
    plain = build_definitions([{**_spec(name, bucket), "retention": None}], resource=resource_from_env())
    assert RETENTION_JOB not in {job.name for job in plain.resolve_all_job_defs()}
    assert not [s for s in plain.schedules or () if s.name.startswith(RETENTION_JOB)]


class _Died(Exception):
    """Stands for the process dying at a step (the kill tests SIGKILL it; here the step raises)."""


@pytest.mark.parametrize("step", ["proved", "deleting", "deleted", "recorded"])
@pytest.mark.parametrize("day", [JAN3, FEB5], ids=["partition", "window"])
def test_a_run_that_dies_at_any_step_is_finished_by_the_next(
    export_env, connection, crate, bucket, instance, s3, step, day
):
    """Die at a step of a whole-partition drop (JAN3) or a window delete (FEB5): the next run ends where an
    uninterrupted run ends — the day gone, its record final, the partition never left write-blocked."""
    name = _table(crate, {JAN3: 4, FEB5: 2, FEB20: 1})
    spec_dict = _spec(name, bucket)
    _export(spec_dict, instance, JAN3, FEB5)
    spec = parse_export_specs([spec_dict])[0]
    connected = connection.open()
    leases = DayLeases(connected.store, Holder(uuid.uuid4().hex, lambda run: False), lambda table, d: False)
    what = f"{spec.table} {day.isoformat()}"

    def die(at: str, reached: str) -> None:
        if (at, reached) == (what, step):
            raise _Died(step)

    with pytest.raises(_Died):
        retain_table(connected.crate, connected.store, spec, leases, on_step=die)
    dying_state = _record(s3, bucket, name, day)
    assert (dying_state or {}).get("state") in {
        "proved": (None,),
        "deleting": ("deleting",),
        "deleted": ("deleting",),
        "recorded": ("deleted",),
    }[step]
    assert _count(crate, name, day) == (0 if step in ("deleted", "recorded") else {JAN3: 4, FEB5: 2}[day])

    steps: list[tuple[str, str]] = []
    again = retain_table(
        connected.crate, connected.store, spec, leases, on_step=lambda at, reached: steps.append((at, reached))
    )
    assert [_count(crate, name, d) for d in (JAN3, FEB5, FEB20)] == [0, 0, 1]
    for done in (JAN3, FEB5):
        record = _record(s3, bucket, name, done)
        assert record["state"] == "deleted" and record["rows_deleted"] == {JAN3: 4, FEB5: 2}[done]
    assert JANUARY not in _partitions(crate, name)
    assert not [o for o in again.outcomes if o.needs_action]
    _insert(crate, name, FEB20, 1, first_hour=5)  # February was never left write-blocked


def _core(connection, spec_dict: dict):
    spec = parse_export_specs([spec_dict])[0]
    connected = connection.open()
    leases = DayLeases(connected.store, Holder(uuid.uuid4().hex, lambda run: False), lambda table, d: False)
    return spec, connected, leases


def test_a_row_written_before_the_write_block_keeps_the_partition_and_its_day(
    export_env, connection, crate, bucket, instance, s3
):
    """A row of January arrives after the first count, before the block: the count under the block shows it,
    the block is reset, and January's other days go by window; the day with the new row waits."""
    name = _table(crate, {JAN3: 4, JAN17: 3})
    spec_dict = _spec(name, bucket)
    _export(spec_dict, instance, JAN3, JAN17)
    spec, connected, leases = _core(connection, spec_dict)

    arrived: list[str] = []

    def late_row(what: str, step: str) -> None:
        if (what, step) == (f"{spec.table} {JAN17.isoformat()}", "proved") and not arrived:
            arrived.append(what)  # once: the proof of January's days by window passes this step again
            _insert(crate, name, JAN3, 1, first_hour=23)

    result = retain_table(connected.crate, connected.store, spec, leases, on_step=late_row)
    by_day = {o.day: o for o in result.outcomes}
    assert by_day[JAN3].kind == "waiting" and "CrateDB holds 5 row(s), the archive 4" in by_day[JAN3].reason
    assert by_day[JAN17].kind == "deleted" and by_day[JAN17].how == "window"
    assert JANUARY in _partitions(crate, name) and _count(crate, name, JAN3) == 5
    assert _record(s3, bucket, name, JAN3) is None  # the intent was removed: nothing of the day was deleted
    _insert(crate, name, JAN3, 1, first_hour=22)  # the block was reset


def test_rows_written_between_the_recount_and_a_window_delete_fail_the_day_with_the_numbers(
    export_env, connection, crate, bucket, instance, s3
):
    """The residual window of a window delete (no write block): the DELETE's rowcount tells, and the day fails
    saying how many rows were deleted without being archived; the record says so too."""
    name = _table(crate, {FEB5: 2}, ddl=PLAIN_DDL)
    spec_dict = _spec(name, bucket)
    _export(spec_dict, instance, FEB5)
    spec, connected, leases = _core(connection, spec_dict)

    def concurrent_writer(what: str, step: str) -> None:
        if step == "deleting":
            _insert(crate, name, FEB5, 1, first_hour=23)

    result = retain_table(connected.crate, connected.store, spec, leases, on_step=concurrent_writer)
    (outcome,) = result.outcomes
    assert outcome.kind == "failed" and outcome.needs_action
    assert "the DELETE removed 3 row(s), 2 were proved archived: 1 row(s) written" in outcome.reason
    assert "NOT in the archive" in outcome.reason
    record = _record(s3, bucket, name, FEB5)
    assert record["state"] == "deleted" and record["rows_deleted"] == 3
    assert record["unarchived_rows"] == {"deleted": 1, "remaining": 0}
