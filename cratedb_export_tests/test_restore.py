"""Restoring archived days: exported days come back into CrateDB row for row, through the restore job; what
cannot be restored as asked is refused before anything is written, saying what to do."""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml
from cratedb_export_testbed.dg_project import ROOT, dg_env, run_dg
from cratedb_export_testbed.support import create_metrics_table, failure_message, list_keys, run_export, spec_for
from dagster import AssetKey, DagsterInstance

from cratedb_export.core.storage import LEASE, MANIFEST
from cratedb_export.core.target import DayDirectory
from cratedb_export.orchestration.build import build_definitions, resource_from_env
from cratedb_export.orchestration.restore import RESTORE_JOB

DAYS = [date(2024, 4, 1) + timedelta(days=n) for n in range(3)]
COLUMNS = '"hash_id", "timestamp", "name", "tags", "fields", "month"'


def _restore(spec: dict, instance, **config):
    defs = build_definitions([spec], resource=resource_from_env())
    run_config = {"ops": {"restore_days": {"config": {"table": spec["table"], **config}}}}
    return defs.resolve_job_def(RESTORE_JOB).execute_in_process(
        instance=instance, run_config=run_config, raise_on_error=False
    )


def start_of(day: date) -> int:
    return int((day - date(1970, 1, 1)).total_seconds() * 1000)


def _rows(crate, table: str, day: date | None = None) -> list[list]:
    where, args = "", []
    if day is not None:
        start = start_of(day)
        where, args = ' WHERE "timestamp" >= ? AND "timestamp" < ?', [start, start + 86_400_000]
    crate.sql(f"REFRESH TABLE {table}")
    return crate.sql(f'SELECT {COLUMNS} FROM {table}{where} ORDER BY "hash_id"', args)


def _table_exists(crate, schema: str, name: str) -> bool:
    found = crate.sql(
        'SELECT count(*) FROM "information_schema"."columns" WHERE "table_schema" = ? AND "table_name" = ?',
        [schema, name],
    )
    return found[0][0] > 0


@pytest.fixture
def exported(export_env, crate, bucket, instance):
    """A tutorial-shaped table with three exported (archived) days, and its spec."""
    table = create_metrics_table(crate, DAYS, per_day=4)
    spec = spec_for(table, bucket)
    assert run_export([spec], instance, partition_range=(DAYS[0].isoformat(), DAYS[-1].isoformat())).success
    return table, spec


def test_archived_days_come_back_row_for_row_into_a_new_table(exported, crate, instance, secrets):
    table, spec = exported
    result = _restore(spec, instance, first_day=DAYS[0].isoformat(), last_day=DAYS[-1].isoformat())
    assert result.success, failure_message(result)

    restored = f'"doc"."{table.name}_restored"'
    assert _rows(crate, restored) == _rows(crate, f'"doc"."{table.name}"')  # every row, every column
    # The proof of each day is in the run, on the export's partition.
    observations = instance.fetch_observations(AssetKey(["cratedb_export", "doc", table.name]), limit=10).records
    by_day = {r.partition_key: r.asset_observation.metadata for r in observations}
    assert set(by_day) == {d.isoformat() for d in DAYS}
    for metadata in by_day.values():
        assert metadata["rows_archived"].value == metadata["rows_loaded"].value == metadata["rows_in_target"].value == 4
        assert metadata["restored_into"].value == f"doc.{table.name}_restored"
    logs = json.dumps([str(e) for e in instance.all_logs(result.run_id)])
    assert not secrets.leaks_in(logs)


def test_rows_already_there_are_refused_unless_replace_or_append_is_asked_for(exported, crate, instance):
    table, spec = exported
    day = DAYS[1].isoformat()
    assert _restore(spec, instance, first_day=day).success
    target = f'"doc"."{table.name}_restored"'

    again = _restore(spec, instance, first_day=DAYS[0].isoformat(), last_day=day)
    message = failure_message(again)
    assert not again.success
    assert f"doc.{table.name}_restored already holds 4 row(s) of {day}" in message and "'replace'" in message
    assert len(_rows(crate, target)) == 4  # nothing was written: not even the day that was not there

    assert _restore(spec, instance, first_day=day, mode="replace").success
    assert _rows(crate, target) == _rows(crate, f'"doc"."{table.name}"', DAYS[1])
    assert _restore(spec, instance, first_day=day, mode="append").success
    assert len(_rows(crate, target, DAYS[1])) == 8


def test_a_day_that_is_not_archived_is_refused_before_anything_is_written(exported, crate, instance, s3, bucket):
    table, spec = exported
    missing_day = DAYS[-1] + timedelta(days=1)
    result = _restore(spec, instance, first_day=DAYS[0].isoformat(), last_day=missing_day.isoformat())
    assert not result.success
    message = failure_message(result)
    assert f"{spec['table']} {missing_day} is not archived" in message and "has no _SUCCESS" in message
    assert not _table_exists(crate, "doc", f"{table.name}_restored")

    # A manifest that is gone, or a file that is not the size the manifest says, cannot be proved either.
    client = s3.client()
    client.delete_object(Bucket=bucket, Key=f"{table.name}-{DAYS[0]}/{MANIFEST}")
    (data_key, *_) = _data_files(client, bucket, f"{table.name}-{DAYS[1]}/")
    client.put_object(Bucket=bucket, Key=data_key, Body=b"{}\n")
    result = _restore(spec, instance, first_day=DAYS[0].isoformat(), last_day=DAYS[1].isoformat())
    message = failure_message(result)
    assert f"{DAYS[0]}: " in message and f"has _SUCCESS but no {MANIFEST}" in message
    assert f"file {Path(data_key).name} has 3 bytes, the manifest says" in message
    assert not _table_exists(crate, "doc", f"{table.name}_restored")


def test_a_cluster_at_its_shard_limit_refuses_the_new_table_and_says_what_to_do(exported, crate, instance):
    table, spec = exported
    with crate.shard_limit(1):  # the source's shards alone are more than that
        result = _restore(spec, instance, first_day=DAYS[0].isoformat())
    message = failure_message(result)
    assert not result.success
    assert f"creating doc.{table.name}_restored failed" in message and "maximum shards open" in message
    assert "CrateDB is at its shard limit" in message and "cluster.max_shards_per_node" in message
    assert not _table_exists(crate, "doc", f"{table.name}_restored")
    assert _restore(spec, instance, first_day=DAYS[0].isoformat()).success  # with room again


def test_a_target_whose_columns_differ_is_refused_naming_them(exported, crate, instance):
    table, spec = exported
    crate.sql(f'CREATE TABLE "doc"."{table.name}_other" ("hash_id" TEXT, "timestamp" TIMESTAMP WITH TIME ZONE)')
    result = _restore(spec, instance, first_day=DAYS[0].isoformat(), target_table=f"doc.{table.name}_other")
    message = failure_message(result)
    assert "hash_id is text, archived as bigint" in message and "name is missing" in message
    assert crate.sql(f'SELECT count(*) FROM "doc"."{table.name}_other"') == [[0]]


def test_rows_crate_refuses_fail_the_day_with_the_numbers_and_crates_errors(exported, crate, instance, s3, bucket):
    table, spec = exported
    client = s3.client()
    prefix = f"{table.name}-{DAYS[0]}/"
    (data_key, *_) = [k for k in _data_files(client, bucket, prefix) if _size(client, bucket, k)]
    body = client.get_object(Bucket=bucket, Key=data_key)["Body"].read()
    broken = b"x" * (len(body.split(b"\n")[0])) + body[len(body.split(b"\n")[0]) :]  # same size, first line garbage
    client.put_object(Bucket=bucket, Key=data_key, Body=broken)
    result = _restore(spec, instance, first_day=DAYS[0].isoformat())
    message = failure_message(result)
    assert not result.success
    assert "CrateDB refused 1 row(s) or file(s)" in message and "Failed to parse content to map" in message


def _data_files(client, bucket: str, prefix: str) -> list[str]:
    """The day's files COPY TO wrote (not the manifest or the marker)."""
    return [k for k in list_keys(client, bucket, prefix) if not Path(k).name.startswith("_")]


def _size(client, bucket: str, key: str) -> int:
    return client.head_object(Bucket=bucket, Key=key)["ContentLength"]


@pytest.mark.slow
def test_dg_launch_restores_a_day_from_the_command_line(tmp_path, exported, crate, secrets):
    table, spec = exported
    config = tmp_path / "exports.yaml"
    config.write_text(yaml.safe_dump({"exports": [spec]}))
    home = tmp_path / "cli_home"  # an instance of its own, as a user's DAGSTER_HOME
    home.mkdir()
    env = dg_env({"CRATEDB_EXPORT_CONFIG": str(config), "DAGSTER_HOME": str(home)})
    run_config = {"ops": {"restore_days": {"config": {"table": spec["table"], "first_day": DAYS[2].isoformat()}}}}
    launched = run_dg("launch", "--job", RESTORE_JOB, "--config-json", json.dumps(run_config), cwd=ROOT, env=env)
    output = launched.stdout + launched.stderr
    assert launched.returncode == 0, output[-4000:]
    assert not secrets.leaks_in(output)
    assert _rows(crate, f'"doc"."{table.name}_restored"') == _rows(crate, f'"doc"."{table.name}"', DAYS[2])
    with DagsterInstance.from_config(str(home)) as instance:
        (record,) = instance.fetch_observations(AssetKey(["cratedb_export", "doc", table.name]), limit=5).records
    assert record.partition_key == DAYS[2].isoformat()
    assert record.asset_observation.metadata["rows_in_target"].value == 4


@pytest.mark.parametrize("format", ["json", "parquet"])
def test_a_day_of_every_type_round_trips(export_env, crate, bucket, instance, s3, format):
    """Numbers (SMALLINT and "char" too), text, booleans, timestamps with and without time zone, objects
    (nested), arrays, IPs and geo points, NULLs included, archived as JSON or as Parquet: what comes back
    equals the source, column by column."""
    name = f"types_{uuid.uuid4().hex[:10]}"
    crate.sql(
        f'CREATE TABLE "doc"."{name}" ("id" BIGINT, "i" INTEGER, "t" TEXT, "d" DOUBLE PRECISION, "r" REAL, '
        '"b" BOOLEAN, "ts" TIMESTAMP WITH TIME ZONE, "wall" TIMESTAMP WITHOUT TIME ZONE, "o" OBJECT(DYNAMIC), '
        '"a" ARRAY(BIGINT), "at" ARRAY(TEXT), "ao" ARRAY(OBJECT(DYNAMIC)), "s" SMALLINT, "c" "char", "ip" IP, '
        '"gp" GEO_POINT)'
    )
    start = int((DAYS[0] - date(1970, 1, 1)).total_seconds() * 1000)
    rows = [
        [
            1,
            7,
            "plain",
            1.5,
            2.25,
            True,
            start,
            start + 1,
            {"n": {"x": 1.1, "s": "ü"}},
            [1, 2**62],
            ["a", "b"],
            [{"k": 1}, {"k": 2, "m": "z"}],
            -32768,
            -128,
            "10.0.0.1",
            [9.5, 50.1],
        ],
        [
            2,
            -3,
            'quote " and \\ back',
            -0.1,
            0.5,
            False,
            start + 86_399_999,
            start,
            {"k": [1, 2]},
            [],
            [],
            [],
            1,
            1,
            "::1",
            [0.0, 0.0],
        ],
        [3, None, None, None, None, None, start + 3_600_000, None, None, None, None, None, None, None, None, None],
    ]
    crate.sql(
        f'INSERT INTO "doc"."{name}" ("id", "i", "t", "d", "r", "b", "ts", "wall", "o", "a", "at", "ao", "s", '
        '"c", "ip", "gp") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
        bulk_args=rows,
    )
    crate.sql(f'REFRESH TABLE "doc"."{name}"')
    spec = {
        "table": f"doc.{name}",
        "timestamp_column": "ts",
        "target": f"{bucket}/{name}",
        "start_date": "2024-01-01",
        "format": format,
        "compression": "gzip",
    }
    assert run_export([spec], instance, partition=DAYS[0].isoformat()).success
    assert _restore(spec, instance, first_day=DAYS[0].isoformat()).success

    columns = '"id", "i", "t", "d", "r", "b", "ts", "wall", "o", "a", "at", "ao", "s", "c", "ip", "gp"'
    source = crate.sql(f'SELECT {columns} FROM "doc"."{name}" ORDER BY "id"')
    crate.sql(f'REFRESH TABLE "doc"."{name}_restored"')
    assert crate.sql(f'SELECT {columns} FROM "doc"."{name}_restored" ORDER BY "id"') == source
    assert len(source) == 3
    # A Parquet day was loaded from NDJSON staged below the day's directory: nothing of it is left.
    assert not [k for k in list_keys(s3.client(), bucket, name) if "/_restore/" in k]


def test_restoring_into_the_source_itself_is_refused_unless_asked_and_replace_gives_the_day_back(
    exported, crate, instance
):
    """The source is a partitioned table (by quarter, a generated column): the day's rows are deleted by
    window and loaded again, the partition value computed again by CrateDB."""
    table, spec = exported
    source = f'"doc"."{table.name}"'
    before = _rows(crate, source)
    refused = _restore(spec, instance, first_day=DAYS[1].isoformat(), target_table=spec["table"])
    assert not refused.success and f"{spec['table']} already holds 4 row(s)" in failure_message(refused)
    replaced = _restore(spec, instance, first_day=DAYS[1].isoformat(), target_table=spec["table"], mode="replace")
    assert replaced.success, failure_message(replaced)
    assert _rows(crate, source) == before

    # A row that arrived after the export is not in the archive: replacing would lose it, so it is refused.
    late = start_of(DAYS[1]) + 3_600_000
    crate.sql(f'INSERT INTO {source} ("hash_id", "timestamp", "name") VALUES (?, ?, ?)', [999, late, "late"])
    crate.sql(f"REFRESH TABLE {source}")
    refused = _restore(spec, instance, first_day=DAYS[1].isoformat(), target_table=spec["table"], mode="replace")
    message = failure_message(refused)
    assert not refused.success and "holds 5 row(s)" in message and "the archive only 4" in message
    assert len(_rows(crate, source, DAYS[1])) == 5  # nothing was deleted
    (observation, *_) = instance.fetch_observations(AssetKey(["cratedb_export", "doc", table.name]), limit=1).records
    assert observation.asset_observation.metadata["rows_deleted_first"].value == 4


def test_a_day_another_run_holds_is_not_restored_while_it_holds_it(exported, crate, instance, s3, bucket, monkeypatch):
    """A run exporting the day (or retention deleting it) holds its lease: a restore of the day waits for it
    and, past the wait, fails naming that run, having written nothing; it never reads an archive that is
    being replaced, nor deletes rows an export is reading."""
    table, spec = exported
    directory = DayDirectory(bucket, f"{table.name}-{DAYS[1].isoformat()}/")
    theirs = {"run_id": "run-exporting-the-day", "since": "2024-04-03T00:00:05+00:00", "host": "elsewhere", "pid": 7}
    s3.client().put_object(Bucket=bucket, Key=directory.key(LEASE), Body=json.dumps(theirs).encode())
    monkeypatch.setenv("CRATEDB_EXPORT_COPY_WAIT", "2")
    source = f'"doc"."{table.name}"'
    before = _rows(crate, source, DAYS[1])

    held = _restore(spec, instance, first_day=DAYS[1].isoformat(), target_table=spec["table"], mode="replace")

    assert not held.success and "is being exported by run run-exporting-the-day" in failure_message(held)
    assert _rows(crate, source, DAYS[1]) == before  # nothing deleted, nothing loaded
    s3.client().delete_object(Bucket=bucket, Key=directory.key(LEASE))  # that run finished
    again = _restore(spec, instance, first_day=DAYS[1].isoformat(), target_table=spec["table"], mode="replace")
    assert again.success and _rows(crate, source, DAYS[1]) == before
    assert list_keys(s3.client(), bucket, directory.key(LEASE)) == []  # the restore released it


def test_rows_whose_primary_key_the_target_holds_are_counted_never_silent(exported, crate, instance):
    table, spec = exported
    target = f"doc.{table.name}_pk"
    crate.sql(
        f'CREATE TABLE "doc"."{table.name}_pk" ("hash_id" BIGINT PRIMARY KEY, "timestamp" TIMESTAMP WITH TIME ZONE, '
        '"name" TEXT, "tags" OBJECT(DYNAMIC), "fields" OBJECT(DYNAMIC), "month" TIMESTAMP WITH TIME ZONE)'
    )
    day = DAYS[0].isoformat()
    assert _restore(spec, instance, first_day=day, target_table=target).success
    # Appending the same day again: every row's key is there; each is skipped and counted.
    appended = _restore(spec, instance, first_day=day, target_table=target, mode="append")
    assert appended.success, failure_message(appended)
    (latest, *_) = instance.fetch_observations(AssetKey(["cratedb_export", "doc", table.name]), limit=1).records
    metadata = latest.asset_observation.metadata
    assert (metadata["rows_skipped_as_duplicates"].value, metadata["rows_loaded"].value) == (4, 0)
    assert metadata["rows_in_target"].value == 4
    # Without append, a key the target holds on another day is a refused row: the day fails and says so.
    crate.sql(f'INSERT INTO "doc"."{table.name}_pk" ("hash_id", "timestamp") VALUES (?, ?)', [5, 1577836800000])
    crate.sql(f'REFRESH TABLE "doc"."{table.name}_pk"')
    refused = _restore(spec, instance, first_day=DAYS[1].isoformat(), target_table=target)
    message = failure_message(refused)
    assert not refused.success and "CrateDB refused 1 row(s)" in message
    assert "A document with the same primary key exists already" in message and "mode 'append'" in message
