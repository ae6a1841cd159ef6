"""Exports you can trust: re-runs, verification, markers, retries, and faults on either side.

Every fault test ends with the same three questions: is there a `_SUCCESS` marker only for complete,
verified data; did a secret appear anywhere; does the failure say what to do.
"""

from __future__ import annotations

import json
import time
from datetime import date
from urllib.parse import quote

import pytest
from cratedb_export_testbed.seaweedfs import SeaweedS3
from cratedb_export_testbed.support import (
    create_metrics_table,
    failure_message,
    instance_text,
    list_keys,
    read_rows,
    run_export,
    spec_for,
)
from dagster import AssetCheckKey, AssetKey, AssetsDefinition

from cratedb_export.orchestration.assets import POOL
from cratedb_export.orchestration.build import build_definitions, resource_from_env

DAY = date(2024, 5, 14)
PARTITION = DAY.isoformat()


@pytest.fixture
def metrics(crate):
    return create_metrics_table(crate, [date(2024, 5, 13), DAY, date(2024, 5, 15)], per_day=7)


def _prefix(metrics) -> str:
    return f"{metrics.name}-{PARTITION}/"


def _objects(s3, bucket, prefix):
    client = s3.client()
    return {k: client.get_object(Bucket=bucket, Key=k)["Body"].read() for k in list_keys(client, bucket, prefix)}


def _run_log(instance, result) -> str:
    """Every message the run logged, as the UI shows it."""
    return "\n".join(entry.user_message for entry in instance.all_logs(result.run_id))


def _assert_no_secret(secrets, *texts):
    for text in texts:
        assert not secrets.leaks_in(text), secrets.leaks_in(text)


def _check_evaluations(instance, metrics):
    records = instance.event_log_storage.get_asset_check_execution_history(check_key=_check_key(metrics), limit=100)
    return [
        r.event.dagster_event.event_specific_data
        for r in records
        if r.event and r.event.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"
    ]


def _check_key(metrics):
    return AssetCheckKey(AssetKey(["cratedb_export", "doc", metrics.name]), "matches_source")


def test_three_runs_leave_exactly_one_clean_copy(export_env, instance, s3, bucket, metrics):
    spec = spec_for(metrics, bucket)
    snapshots = []
    for _ in range(3):
        assert run_export([spec], instance, partition=PARTITION).success
        objects = _objects(s3, bucket, _prefix(metrics))
        objects.pop(f"{_prefix(metrics)}_manifest.json")  # holds timings, so it differs per run
        snapshots.append(objects)
    assert snapshots[0] == snapshots[1] == snapshots[2]
    assert len(read_rows(s3.client(), bucket, _prefix(metrics))) == len(metrics.rows_by_day[DAY])


def test_clean_up_removes_stale_objects_but_never_touches_neighbours(export_env, instance, s3, bucket, metrics):
    client = s3.client()
    stale = f"{_prefix(metrics)}{metrics.name}_9_.json"
    neighbours = [
        f"{metrics.name}-{PARTITION}0/keep.json",  # a directory whose name starts with the day's
        f"{metrics.name}-{PARTITION}.bak/keep.json",
        f"{metrics.name}-2024-05-15/keep.json",
        f"{metrics.name}/keep.json",
    ]
    client.put_object(Bucket=bucket, Key=stale, Body=b'{"hash_id": -1}\n')
    client.put_object(Bucket=bucket, Key=f"{_prefix(metrics)}_SUCCESS", Body=b"")
    for key in neighbours:
        client.put_object(Bucket=bucket, Key=key, Body=b"keep")

    assert run_export([spec_for(metrics, bucket)], instance, partition=PARTITION).success
    keys = list_keys(client, bucket)
    assert stale not in keys
    assert all(key in keys for key in neighbours)
    assert {r["hash_id"] for r in read_rows(client, bucket, _prefix(metrics))} == metrics.hash_ids(DAY)


def test_range_clean_up_removes_each_days_leftovers_and_nothing_else(export_env, instance, s3, bucket, metrics):
    client = s3.client()
    name = metrics.name
    days = ["2024-05-13", "2024-05-14", "2024-05-15"]
    stale = [f"{name}-2024-05-13/{name}_7_.json", f"{name}-2024-05-14/{name}_9_.json", f"{name}-2024-05-15/old/x.json"]
    neighbours = [
        f"{name}-2024-05-1/keep.json",
        f"{name}-2024-05-140/keep.json",
        f"{name}-2024-05-14.bak/keep.json",
        f"{name}-2024-05-16/keep.json",
        f"{name}/keep.json",
    ]
    for key in stale:
        client.put_object(Bucket=bucket, Key=key, Body=b'{"hash_id": -1}\n')
    client.put_object(Bucket=bucket, Key=f"{name}-2024-05-13/_SUCCESS", Body=b"stale")
    for key in neighbours:
        client.put_object(Bucket=bucket, Key=key, Body=b"keep")

    assert run_export([spec_for(metrics, bucket)], instance, partition_range=(days[0], days[-1])).success
    keys = list_keys(client, bucket)
    assert not set(stale) & set(keys)
    assert client.get_object(Bucket=bucket, Key=f"{name}-2024-05-13/_SUCCESS")["Body"].read() == b""
    assert all(key in keys for key in neighbours)
    for day in days:
        rows = read_rows(client, bucket, f"{name}-{day}/")
        assert {r["hash_id"] for r in rows} == metrics.hash_ids(date.fromisoformat(day))


def test_manifest_lists_files_and_agreeing_totals(export_env, instance, s3, bucket, metrics, crate):
    assert run_export([spec_for(metrics, bucket, compression="gzip")], instance, partition=PARTITION).success
    body = s3.client().get_object(Bucket=bucket, Key=f"{_prefix(metrics)}_manifest.json")["Body"].read()
    manifest = json.loads(body)
    expected = len(metrics.rows_by_day[DAY])
    assert manifest["totals"]["copy_rowcount"] == manifest["totals"]["source_rows"] == expected
    assert manifest["totals"]["exported_rows"] == expected
    assert sum(f["rows"] for f in manifest["files"]) == expected
    assert all(f["name"].endswith(".json.gz") for f in manifest["files"])
    assert manifest["window"] == {
        "start": "2024-05-14T00:00:00+00:00",
        "end": "2024-05-15T00:00:00+00:00",
        "read_as": "timestamp is timestamp with time zone, read as instants: [D 00:00, D+1 00:00) in the "
        "export's time zone",
    }
    assert manifest["copy_answer"] == "answered"
    assert manifest["crate_version"] != "unknown"


def test_passing_check_carries_the_numbers(export_env, instance, bucket, metrics):
    assert run_export([spec_for(metrics, bucket)], instance, partition=PARTITION).success
    (evaluation,) = _check_evaluations(instance, metrics)
    assert evaluation.passed
    expected = len(metrics.rows_by_day[DAY])
    assert evaluation.metadata["source_rows"].value == expected
    assert evaluation.metadata["exported_rows"].value == expected
    assert evaluation.metadata["day"].value == PARTITION


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        (lambda double: double.faults.truncate_next_copy(drop_rows=1), "does not match the source"),
        (lambda double: double.faults.inflate_next_copy_rowcount(extra=2), "does not match the source"),
    ],
    ids=["object shorter than reported", "rowcount higher than written"],
)
def test_disagreeing_numbers_fail_without_marker_and_fail_the_check(
    export_env, instance, dagster_home, s3, bucket, metrics, double, secrets, fault, words
):
    fault(double)
    result = run_export([spec_for(metrics, bucket)], instance, partition=PARTITION)
    assert not result.success
    message = failure_message(result)
    assert words in message
    assert "copy_rowcount=" in message and "source_rows=" in message and "exported_rows=" in message
    assert f"{_prefix(metrics)}_SUCCESS" not in list_keys(s3.client(), bucket)
    (evaluation,) = _check_evaluations(instance, metrics)
    assert not evaluation.passed and evaluation.severity.value == "ERROR"
    assert {"copy_rowcount", "source_rows", "exported_rows"} <= set(evaluation.metadata)
    _assert_no_secret(secrets, message, instance_text(dagster_home))

    # The next attempt, with CrateDB behaving, leaves a complete, marked day.
    assert run_export([spec_for(metrics, bucket)], instance, partition=PARTITION).success
    assert f"{_prefix(metrics)}_SUCCESS" in list_keys(s3.client(), bucket)


def test_count_only_verification_skips_the_read_back(export_env, instance, s3, bucket, metrics, double):
    double.faults.truncate_next_copy(drop_rows=1)
    assert run_export([spec_for(metrics, bucket, verify="count")], instance, partition=PARTITION).success
    meta = instance.fetch_materializations(AssetKey(["cratedb_export", "doc", metrics.name]), limit=1)
    assert meta.records[0].asset_materialization.metadata["rows_read_back"].value.startswith("not read back")


def test_transient_503s_are_retried(export_env, instance, s3, bucket, metrics, double):
    double.faults.fail_next(count=2, status=503, code=5030, message="UnavailableException[node is starting]")
    result = run_export([spec_for(metrics, bucket)], instance, partition=PARTITION)
    assert result.success
    assert "retrying" in _run_log(instance, result)
    assert f"{_prefix(metrics)}_SUCCESS" in list_keys(s3.client(), bucket)


def test_unknown_table_fails_at_once_saying_what_to_fix(export_env, instance, bucket, crate, secrets, dagster_home):
    spec = {"table": "doc.no_such_table", "timestamp_column": "timestamp", "target": f"{bucket}/none"}
    started = time.monotonic()
    result = run_export([spec], instance, partition=PARTITION)
    assert not result.success
    assert time.monotonic() - started < 30
    message = failure_message(result)
    assert "doc.no_such_table: CrateDB has no such table" in message and "check 'table'" in message
    assert "retrying" not in _run_log(instance, result)
    _assert_no_secret(secrets, message, instance_text(dagster_home))


def test_unknown_column_fails_at_once(export_env, instance, bucket, metrics, crate):
    started = time.monotonic()
    result = run_export([spec_for(metrics, bucket, timestamp_column="ts")], instance, partition=PARTITION)
    assert not result.success
    assert time.monotonic() - started < 30
    message = failure_message(result)
    assert "timestamp_column 'ts' is not a column of the table (it has: hash_id, timestamp," in message
    assert "retrying" not in _run_log(instance, result)
    assert "COPY" not in _statements_of(crate, metrics)  # refused before any COPY


def test_wrong_s3_keys_fail_fast_without_leaking(
    export_env, monkeypatch, instance, dagster_home, s3, bucket, metrics, secrets
):
    monkeypatch.setenv("SECRET_ACCESS_KEY", secrets.secret_key[::-1])
    result = run_export([spec_for(metrics, bucket)], instance, partition=PARTITION)
    assert not result.success
    message = failure_message(result)
    assert "S3 refused" in message and "SECRET_ACCESS_KEY" in message
    _assert_no_secret(secrets, message, instance_text(dagster_home))
    assert secrets.secret_key[::-1] not in instance_text(dagster_home)


def test_unreachable_cratedb_fails_with_a_clear_message(
    export_env, monkeypatch, instance, dagster_home, bucket, secrets
):
    monkeypatch.setenv("CRATEDB_URL", "http://127.0.0.1:9")  # discard port: nothing listens
    spec = {"table": "doc.metrics", "timestamp_column": "timestamp", "target": f"{bucket}/m"}
    result = run_export([spec], instance, partition=PARTITION)
    assert not result.success
    message = failure_message(result)
    assert "unreachable" in message and "127.0.0.1:9" in message
    assert "gave up after 4 attempts" in message
    _assert_no_secret(secrets, message, instance_text(dagster_home))


def test_s3_server_stopped_before_the_copy(export_env, monkeypatch, instance, dagster_home, crate, secrets):
    table = create_metrics_table(crate, [DAY], per_day=2)
    with SeaweedS3(secrets.access_key, secrets.secret_key) as doomed:
        doomed.create_bucket("doomed-bucket")
        monkeypatch.setenv("S3_ENDPOINT", doomed.endpoint)
        endpoint = doomed.endpoint
    result = run_export([spec_for(table, "doomed-bucket")], instance, partition=PARTITION)
    assert not result.success
    message = failure_message(result)
    assert "S3 failed" in message and "(check the S3 endpoint)" in message and endpoint in message
    _assert_no_secret(secrets, message, instance_text(dagster_home))


def test_invalid_uri_echoing_credentials_is_redacted(
    export_env, instance, dagster_home, s3, bucket, metrics, double, secrets
):
    uri = f"s3://{quote(secrets.access_key, safe='')}:{quote(secrets.secret_key, safe='')}@{s3.endpoint}/{bucket}/x/"
    double.faults.fail_next_copy(message=f"SQLParseException[Invalid uri '{uri}m_0_.json']", code=4000)
    result = run_export([spec_for(metrics, bucket)], instance, partition=PARTITION)
    assert not result.success
    message = failure_message(result)
    assert "Invalid uri" in message
    _assert_no_secret(secrets, message, instance_text(dagster_home))


def test_copy_whose_answer_times_out_is_waited_for_not_sent_again(
    export_env, monkeypatch, instance, s3, crate, bucket, metrics, double
):
    # Two server URLs for the same node: the crate client alone would re-send the COPY to the second one.
    monkeypatch.setenv("CRATEDB_URL", f"{crate.url} {crate.url.replace('127.0.0.1', 'localhost')}")
    monkeypatch.setenv("CRATEDB_TIMEOUT", "1")
    double.faults.slow_next_copy(seconds=3)
    result = run_export([spec_for(metrics, bucket)], instance, partition=PARTITION)
    assert result.success, failure_message(result)
    copies = [j for j in double.jobs_log if f'COPY "doc"."{metrics.name}"' in j["stmt"]]
    assert len(copies) == 1 and copies[0]["error"] is None
    log = _run_log(instance, result)
    assert "still runs in CrateDB" in log and "asking CrateDB what became of it" in log
    manifest = json.loads(s3.client().get_object(Bucket=bucket, Key=f"{_prefix(metrics)}_manifest.json")["Body"].read())
    assert manifest["copy_answer"].startswith("answer lost; sys.jobs_log shows job")
    assert manifest["totals"]["copy_rowcount"] is None
    assert manifest["totals"]["source_rows"] == manifest["totals"]["exported_rows"] == len(metrics.rows_by_day[DAY])


def test_secret_with_colon_is_refused_before_anything_runs(
    export_env, monkeypatch, instance, dagster_home, bucket, metrics
):
    monkeypatch.setenv("SECRET_ACCESS_KEY", "has:colon-secret")
    result = run_export([spec_for(metrics, bucket)], instance, partition=PARTITION)
    assert not result.success
    text = _run_log(instance, result) + failure_message(result)
    assert "contains ':'" in text
    assert "has:colon-secret" not in text and "has:colon-secret" not in instance_text(dagster_home)


def test_export_steps_share_the_cratedb_pool(export_env, bucket, metrics):
    defs = build_definitions([spec_for(metrics, bucket)], resource=resource_from_env())
    (assets_def,) = [a for a in defs.assets if isinstance(a, AssetsDefinition)]  # the rest: CrateDB tables
    assert assets_def.op.pool == POOL == "cratedb"


def _statements_of(crate, metrics) -> str:
    return "\n".join(s for (s,) in crate.sql("SELECT stmt FROM sys.jobs_log") if f'"{metrics.name}"' in s)
