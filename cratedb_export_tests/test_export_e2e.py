"""End to end through Dagster: materialize day partitions, then read what landed in S3 back."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime

import pytest
from cratedb_export_testbed.support import (
    create_metrics_table,
    failure_message,
    instance_text,
    list_keys,
    read_rows,
    run_export,
    spec_for,
    tick,
)
from dagster import AssetKey

from cratedb_export.orchestration.build import build_definitions, resource_from_env

D0, D1, D2 = date(2024, 3, 30), date(2024, 3, 31), date(2024, 4, 1)  # D2 starts a new quarter partition


@pytest.fixture
def metrics(crate):
    return create_metrics_table(crate, [D0, D1, D2], per_day=6)


def _materializations(instance, key):
    return {
        e.partition_key: e.asset_materialization.metadata
        for e in instance.fetch_materializations(AssetKey(key), limit=1000).records
    }


def test_materializing_a_day_exports_exactly_that_days_rows(export_env, instance, s3, bucket, metrics, crate):
    spec = spec_for(metrics, bucket)
    result = run_export([spec], instance, partition=D1.isoformat())
    assert result.success

    client = s3.client()
    prefix = f"{metrics.name}-{D1.isoformat()}/"
    rows = read_rows(client, bucket, prefix)
    assert {r["hash_id"] for r in rows} == metrics.hash_ids(D1)
    assert len(rows) == len(metrics.rows_by_day[D1])
    # Both boundary rows are in, and nothing from the neighbouring days leaked in.
    assert all(datetime(2024, 3, 31, tzinfo=UTC).timestamp() * 1000 <= r["timestamp"] for r in rows)
    assert all(r["timestamp"] < datetime(2024, 4, 1, tzinfo=UTC).timestamp() * 1000 for r in rows)

    keys = list_keys(client, bucket)
    assert all(k.startswith(prefix) for k in keys), keys  # no other day was touched
    data = [k.removeprefix(prefix) for k in keys if not k.endswith(("_SUCCESS", "_manifest.json"))]
    assert data and all(re.fullmatch(rf"{metrics.name}_\d+_[a-z0-9]*\.json", name) for name in data)
    assert f"{prefix}_SUCCESS" in keys

    metadata = _materializations(instance, ["cratedb_export", "doc", metrics.name])[D1.isoformat()]
    assert metadata["dagster/row_count"].value == len(metrics.rows_by_day[D1])
    # The location as any S3 tool reads it, Dagster's standard keys, the endpoint on its own.
    assert metadata["dagster/uri"].value == metadata["location"].value == f"s3://{bucket}/{prefix}"
    assert metadata["s3_endpoint"].value == f"http://{s3.endpoint}"
    assert "s3_console" not in metadata  # only for AWS
    files = metadata["files"].value
    names = {record.data["name"] for record in files.records}
    assert names == {k.removeprefix(prefix) for k in keys if not k.endswith(("_SUCCESS", "_manifest.json"))}
    assert sum(record.data["rows"] for record in files.records) == len(rows)
    assert sum(record.data["bytes"] for record in files.records) == metadata["bytes"].value > 0
    assert all(record.data["size"].endswith(" B") for record in files.records)  # a few rows: bytes
    assert metadata["file_count"].value == len(files.records)
    assert metadata["size"].value == f"{metadata['bytes'].value} B"
    assert 'WHERE "timestamp" >= ? AND "timestamp" < ? TO DIRECTORY ?' in metadata["statement"].value
    assert metadata["duration_s"].value > 0

    manifest = json.loads(client.get_object(Bucket=bucket, Key=f"{prefix}_manifest.json")["Body"].read())
    assert manifest["day"] == D1.isoformat()
    assert manifest["totals"]["source_rows"] == manifest["totals"]["exported_rows"] == len(rows)


def test_gzip_and_hive_style_directory(export_env, instance, s3, bucket, metrics):
    spec = spec_for(metrics, bucket, compression="gzip", directory="{target}/dt={date}/")
    assert run_export([spec], instance, partition=D2.isoformat()).success
    prefix = f"{metrics.name}/dt={D2.isoformat()}/"
    keys = list_keys(s3.client(), bucket)
    data = [k for k in keys if k.startswith(prefix) and k.endswith(".json.gz")]
    assert data, keys
    assert {r["hash_id"] for r in read_rows(s3.client(), bucket, prefix)} == metrics.hash_ids(D2)


def test_column_list_exports_objects_with_those_columns(export_env, instance, s3, bucket, metrics):
    spec = spec_for(metrics, bucket, columns=["hash_id", "timestamp", "tags['host']"], compression="gzip")
    assert run_export([spec], instance, partition=D0.isoformat()).success
    rows = read_rows(s3.client(), bucket, f"{metrics.name}-{D0.isoformat()}/")
    assert {r["hash_id"] for r in rows} == metrics.hash_ids(D0)
    assert all(set(r) == {"hash_id", "timestamp", "tags['host']"} for r in rows)


def test_uncompressed_column_list_fails_saying_to_compress(export_env, instance, s3, bucket, metrics):
    # CrateDB 5.10 and 6.4 close each uncompressed file of a COPY with a column list twice, which S3
    # (SeaweedFS here) refuses: the day fails, unmarked, with the fix in the message.
    spec = spec_for(metrics, bucket, columns=["hash_id", "timestamp"])
    result = run_export([spec], instance, partition=D0.isoformat())
    assert not result.success
    message = failure_message(result)
    assert "closes each file twice); set 'compression: gzip' for doc." in message
    assert f"{metrics.name}-{D0.isoformat()}/_SUCCESS" not in list_keys(s3.client(), bucket)


def test_a_day_without_rows_is_exported_as_empty_and_marked(export_env, instance, s3, bucket, metrics):
    empty_day = "2024-02-10"
    assert run_export([spec_for(metrics, bucket)], instance, partition=empty_day).success
    prefix = f"{metrics.name}-{empty_day}/"
    assert read_rows(s3.client(), bucket, prefix) == []
    assert f"{prefix}_SUCCESS" in list_keys(s3.client(), bucket, prefix)


def test_range_backfill_records_one_materialization_per_day(export_env, instance, s3, bucket, metrics, crate):
    result = run_export([spec_for(metrics, bucket)], instance, partition_range=(D0.isoformat(), D2.isoformat()))
    assert result.success
    # The three days are counted at the source with one statement, not one per day.
    statements = [s for (s,) in crate.sql("SELECT stmt FROM sys.jobs_log") if f'"{metrics.name}"' in s]
    copies = [s for s in statements if "COPY " in s]
    assert len(copies) == 3 and all(s.startswith("/* cratedb-export copy=") for s in copies)
    assert {s.split()[4] for s in copies} == {D0.isoformat(), D1.isoformat(), D2.isoformat()}  # tagged per day
    counted = [s for s in statements if s.startswith("SELECT") and "count(*)" in s]
    # One source digest (rows, sum and max of _seq_no) for the three days, per hour, read before the first
    # COPY: it goes into the manifests, and its rows are the count each COPY's rowcount is checked against.
    (digest,) = counted
    assert "_seq_no" in digest and "GROUP BY" in digest
    materialized = _materializations(instance, ["cratedb_export", "doc", metrics.name])
    assert set(materialized) == {D0.isoformat(), D1.isoformat(), D2.isoformat()}
    for day in (D0, D1, D2):
        assert materialized[day.isoformat()]["dagster/row_count"].value == len(metrics.rows_by_day[day])
        rows = read_rows(s3.client(), bucket, f"{metrics.name}-{day.isoformat()}/")
        assert {r["hash_id"] for r in rows} == metrics.hash_ids(day)


def test_schedule_tick_on_day_d_requests_d_minus_1_for_every_table(export_env, instance, crate, bucket):
    first = create_metrics_table(crate, [D1], per_day=1)
    second = create_metrics_table(crate, [D1], per_day=1)
    defs = build_definitions([spec_for(first, bucket), spec_for(second, bucket)], resource=resource_from_env())
    schedule = defs.resolve_schedule_def("daily_cratedb_export_schedule")
    assert schedule.default_status.value == "RUNNING"
    (request,) = tick(defs, schedule.name, instance, datetime(2024, 4, 1, tzinfo=UTC))
    assert request.partition_key == D1.isoformat()
    job = defs.resolve_job_def(schedule.job_name)
    assert set(job.asset_layer.executable_asset_keys) >= {
        AssetKey(["cratedb_export", "doc", first.name]),
        AssetKey(["cratedb_export", "doc", second.name]),
    }


def test_secret_stays_out_of_statement_text_and_everything_dagster_stored(
    export_env, instance, dagster_home, s3, bucket, metrics, crate, secrets
):
    assert run_export([spec_for(metrics, bucket)], instance, partition=D1.isoformat()).success
    statements = crate.sql("SELECT stmt FROM sys.jobs_log")
    copies = [row[0] for row in statements if f'COPY "doc"."{metrics.name}"' in row[0]]
    assert copies
    for text in copies:
        assert not secrets.leaks_in(text)
    stored = instance_text(dagster_home)
    assert "COPY" in stored  # the statement text is recorded, so the search below is meaningful
    assert not secrets.leaks_in(stored)
