"""Range backfills: one run for many days, per-day results, failed days re-runnable on their own."""

from __future__ import annotations

import os
import subprocess
from datetime import date, timedelta

import pytest
import yaml
from cratedb_export_testbed.postgres import database_text
from cratedb_export_testbed.support import (
    SUBSET_PLANNED_EVENTS,
    create_metrics_table,
    list_keys,
    materialize_command,
    read_rows,
    run_export,
    spec_for,
)
from dagster import AssetKey, AssetPartitionStatus, DagsterEventType, DagsterInstance

from cratedb_export.core.config import parse_export_specs
from cratedb_export.orchestration.partitions import partitions_for

ASSET_MATERIALIZATION_PLANNED = DagsterEventType.ASSET_MATERIALIZATION_PLANNED
DAYS = [date(2024, 7, 1) + timedelta(days=i) for i in range(5)]
FIRST, LAST = DAYS[0].isoformat(), DAYS[-1].isoformat()


def _status(instance, spec: dict) -> tuple[set[str], set[str]]:
    """The days the UI shows as materialized and as failed (what "failed and missing" re-runs)."""
    (export_spec,) = parse_export_specs([spec])
    days = [d.isoformat() for d in DAYS]
    statuses = instance.get_status_by_partition(AssetKey(export_spec.asset_path), days, partitions_for(export_spec))
    return (
        {d for d, s in statuses.items() if s == AssetPartitionStatus.MATERIALIZED},
        {d for d, s in statuses.items() if s == AssetPartitionStatus.FAILED},
    )


def _marked_days(s3, bucket, table) -> set[str]:
    return {
        day.isoformat()
        for day in DAYS
        if f"{table.name}-{day.isoformat()}/_SUCCESS" in list_keys(s3.client(), bucket, f"{table.name}-{day}/")
    }


@pytest.mark.parametrize(
    ("storage", "subset_planned_events"),
    [("sqlite", False), ("sqlite", True), ("postgres", False)],
    ids=["dagster default", "subset planned events", "postgres instance"],
)
def test_failed_day_in_a_range_leaves_the_others_materialized_and_is_rerun_alone(
    export_env, monkeypatch, request, s3, bucket, crate, double, secrets, storage, subset_planned_events
):
    # The same range backfill on the CLI's default SQLite instance and on PostgreSQL, as deployed (docs/deploying.md).
    instance = request.getfixturevalue("pg_instance" if storage == "postgres" else "instance")
    # docs/backfills-and-performance.md: the opt-in for very large backfills, and what it costs
    if subset_planned_events:
        monkeypatch.setenv(SUBSET_PLANNED_EVENTS, "1")
    first = create_metrics_table(crate, DAYS, per_day=3)
    second = create_metrics_table(crate, DAYS, per_day=2)
    specs = [spec_for(first, bucket), spec_for(second, bucket)]
    double.faults.truncate_next_copy(drop_rows=1)  # whichever table-day's COPY comes first is short

    result = run_export(specs, instance, partition_range=(FIRST, LAST))
    assert not result.success
    statuses = [_status(instance, spec) for spec in specs]
    everything = {d.isoformat() for d in DAYS}
    missing = [
        (table, day) for table, (done, _) in zip((first, second), statuses, strict=True) for day in everything - done
    ]
    assert len(missing) == 1
    bad_table, bad_day = missing[0]
    failed = [(table, day) for table, (_, bad) in zip((first, second), statuses, strict=True) for day in bad]
    # Dagster marks the day failed only from per-day planned events; with the opt-in it shows as missing.
    # Either way it is not materialized, so "failed and missing" selects it.
    assert failed == ([] if subset_planned_events else missing)
    for table, (materialized, _) in zip((first, second), statuses, strict=True):
        expected = {d.isoformat() for d in DAYS} - ({bad_day} if table is bad_table else set())
        assert materialized == expected
        assert _marked_days(s3, bucket, table) == expected
    errors = [e.event_specific_data.error for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert f"{bad_table.table} {bad_day}" in errors[0].message
    assert "1 of 10 table-day export(s) failed" in errors[0].message

    # Every verified day has its own evaluation on its partition; the mismatching day fails on its own.
    evaluations = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    for table in (first, second):
        own = [
            e
            for e in evaluations
            if e.asset_key == AssetKey(["cratedb_export", "doc", table.name]) and e.check_name == "matches_source"
        ]
        assert sorted(e.partition for e in own) == sorted(d.isoformat() for d in DAYS)
        assert {e.partition for e in own if not e.passed} == ({bad_day} if table is bad_table else set())

    # "Failed and missing": re-run just the failed partition of the failed asset.
    rerun = run_export(specs, instance, partition=bad_day, select=[["cratedb_export", "doc", bad_table.name]])
    assert rerun.success
    assert _status(instance, spec_for(bad_table, bucket)) == ({d.isoformat() for d in DAYS}, set())
    rows = read_rows(s3.client(), bucket, f"{bad_table.name}-{bad_day}/")
    assert {r["hash_id"] for r in rows} == bad_table.hash_ids(date.fromisoformat(bad_day))
    if storage == "postgres":  # everything the instance stored, searched for the keys and passwords
        stored = database_text(request.getfixturevalue("pg_database"))
        assert "matches_source" in stored and bad_day in stored
        assert not secrets.leaks_in(stored), secrets.leaks_in(stored)
        assert request.getfixturevalue("postgres").password not in stored


@pytest.mark.parametrize("subset_planned_events", [False, True], ids=["dagster default", "subset planned events"])
def test_cli_partition_range_materializes_every_day_in_one_run(
    export_env, tmp_path, s3, bucket, crate, subset_planned_events
):
    table = create_metrics_table(crate, DAYS, per_day=2)
    config = tmp_path / "exports.yaml"
    config.write_text(yaml.safe_dump({"exports": [spec_for(table, bucket)]}))
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(home), "CRATEDB_EXPORT_CONFIG": str(config)}
    env.pop(SUBSET_PLANNED_EVENTS, None)
    if subset_planned_events:  # the docs' command for very large backfills
        env[SUBSET_PLANNED_EVENTS] = "1"
    completed = subprocess.run(
        materialize_command(["cratedb_export", "doc", table.name], f"{FIRST}...{LAST}"),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert _marked_days(s3, bucket, table) == {d.isoformat() for d in DAYS}
    with DagsterInstance.local_temp(str(home)) as stored:
        (record,) = stored.get_run_records()
        assert _status(stored, spec_for(table, bucket))[0] == {d.isoformat() for d in DAYS}
        planned = [
            e
            for e in stored.all_logs(record.dagster_run.run_id)
            if e.dagster_event_type == ASSET_MATERIALIZATION_PLANNED
        ]
        assert len(planned) == (1 if subset_planned_events else len(DAYS))
    assert f"progress: {len(DAYS)}/{len(DAYS)} table-days done" in completed.stderr
