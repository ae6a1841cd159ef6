"""The checks as the UI shows them, read back from a real (SQLite) Dagster instance.

`matches_source` is evaluated per day on the day's partition (one-day and range runs); the empty-day
warning carries the numbers; `yesterday_landed` judges the due day's partition at the deadline, so
backfilling an old day does not make the asset look fresh.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from cratedb_export_testbed.support import create_metrics_table, run_export, spec_for
from dagster import (
    AssetCheckKey,
    AssetKey,
    AssetSelection,
    Definitions,
    build_schedule_context,
    define_asset_job,
)
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecordStatus,
)
from dagster._core.storage.asset_check_state import AssetCheckState, bulk_update_asset_check_state

from cratedb_export.core.config import parse_export_specs
from cratedb_export.orchestration.build import build_definitions, resource_from_env
from cratedb_export.orchestration.checks import CHECK, EMPTY_DAY_CHECK
from cratedb_export.orchestration.freshness import CHECK as LANDED
from cratedb_export.orchestration.freshness import Deadline
from cratedb_export.orchestration.partitions import partitions_for

D0, D1, D2, D3 = (date(2024, 8, 1) + timedelta(days=i) for i in range(4))
PASSED, FAILED = AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED


def _key(table) -> AssetKey:
    return AssetKey(["cratedb_export", "doc", table.name])


def _history(instance, table, check=CHECK, partition: str | None = None):
    return instance.event_log_storage.get_asset_check_execution_history(
        AssetCheckKey(_key(table), check),
        limit=1000,
        partition_filter=PartitionKeyFilter(key=partition) if partition else None,
    )


def _resolved(instance, table, spec) -> dict[str, set[str]]:
    """The per-partition check status the UI's partition view shows (Dagster's AssetCheckState)."""
    (export_spec,) = parse_export_specs([spec])
    check_key = AssetCheckKey(_key(table), CHECK)
    states = bulk_update_asset_check_state(
        instance, [(check_key, partitions_for(export_spec))], {check_key: AssetCheckState.empty()}
    )
    return {
        status.value: set(subset.subset_value.get_partition_keys())
        for status, subset in states[check_key].subsets.items()
        if not subset.is_empty
    }


def test_one_day_run_evaluates_the_check_on_that_days_partition(export_env, instance, bucket, crate):
    table = create_metrics_table(crate, [D1], per_day=4)
    spec = spec_for(table, bucket)
    assert run_export([spec], instance, partition=D1.isoformat()).success

    (record,) = _history(instance, table)
    assert (record.partition, record.status) == (D1.isoformat(), PASSED)
    evaluation = record.event.dagster_event.event_specific_data
    assert evaluation.metadata["source_rows"].value == evaluation.metadata["exported_rows"].value == 4
    # It points at the day's materialization, so the partition's check status is current in the UI.
    (materialization,) = instance.fetch_materializations(_key(table), limit=10).records
    assert evaluation.target_materialization_data.storage_id == materialization.storage_id
    assert _resolved(instance, table, spec) == {"SUCCEEDED": {D1.isoformat()}}


@pytest.mark.parametrize("storage", ["sqlite", "postgres"])
def test_range_run_evaluates_every_day_and_a_mismatch_is_red_on_its_own_partition(
    export_env, request, bucket, crate, double, storage
):
    instance = request.getfixturevalue("pg_instance" if storage == "postgres" else "instance")
    table = create_metrics_table(crate, [D0, D1, D2], per_day=3)
    spec = spec_for(table, bucket)
    double.faults.inflate_next_copy_rowcount(extra=2)  # whichever day's COPY runs first reports 2 rows too many

    result = run_export([spec], instance, partition_range=(D0.isoformat(), D2.isoformat()))
    assert not result.success
    records = _history(instance, table)
    by_day = {r.partition: r for r in records}
    assert len(records) == len(by_day) == 3  # one evaluation per day, nothing without a partition
    (bad,) = [day for day, r in by_day.items() if r.status == FAILED]
    good = {D0.isoformat(), D1.isoformat(), D2.isoformat()} - {bad}
    assert {day for day, r in by_day.items() if r.status == PASSED} == good
    # No day is left "planned" (the UI's "Skipped"): each was evaluated.
    assert not [r for r in records if r.status == AssetCheckExecutionRecordStatus.PLANNED]
    failed = by_day[bad].event.dagster_event.event_specific_data
    assert failed.severity.value == "ERROR" and failed.metadata["day"].value == bad
    assert failed.metadata["copy_rowcount"].value == failed.metadata["source_rows"].value + 2
    assert _resolved(instance, table, spec) == {"SUCCEEDED": good, "FAILED": {bad}}

    # Re-running the failed day turns its partition green; the others keep their results.
    assert run_export([spec], instance, partition=bad).success
    (latest, *_) = _history(instance, table, partition=bad)
    assert latest.status == PASSED
    assert _resolved(instance, table, spec) == {"SUCCEEDED": good | {bad}}


def _empty_day_evaluations(instance, table):
    return [r.event.dagster_event.event_specific_data for r in _history(instance, table, EMPTY_DAY_CHECK)]


def test_a_day_with_0_rows_after_days_with_rows_is_a_warning_with_the_numbers(export_env, instance, bucket, crate):
    table = create_metrics_table(crate, [D0, D1, D2], per_day=5)  # nothing on D3
    spec = spec_for(table, bucket)
    assert run_export([spec], instance, partition_range=(D0.isoformat(), D2.isoformat())).success
    (first,) = _empty_day_evaluations(instance, table)
    assert first.passed and first.metadata["days_checked"].value == 3

    # The daily run of D3: the preceding days' rows come from the instance.
    assert run_export([spec], instance, partition=D3.isoformat()).success
    latest = _empty_day_evaluations(instance, table)[0]
    assert not latest.passed and latest.severity.value == "WARN"
    flagged = latest.metadata["unexpected_empty_days"].value
    assert flagged == {
        D3.isoformat(): {
            "rows": 0,
            "preceding_days": {D0.isoformat(): 5, D1.isoformat(): 5, D2.isoformat(): 5},
            "preceding_mean": 5.0,
        }
    }
    assert "0 rows" in latest.description and "5.0 a day" in latest.description
    # Only a warning: the day is still exported, verified and materialized.
    assert instance.fetch_materializations(_key(table), limit=10).records[0].partition_key == D3.isoformat()

    # Run on its own (Execute in the UI), the check judges the latest exported day from the instance.
    defs = build_definitions([spec], resource=resource_from_env())
    job = Definitions.merge(
        defs,
        Definitions(jobs=[define_asset_job("empty_day_only", selection=AssetSelection.checks(*defs.asset_checks))]),
    ).resolve_job_def("empty_day_only")
    result = job.execute_in_process(instance=instance)
    (alone,) = [e for e in result.get_asset_check_evaluations() if e.check_name == EMPTY_DAY_CHECK]
    assert not alone.passed and D3.isoformat() in alone.metadata["unexpected_empty_days"].value


def test_empty_days_without_rows_before_them_are_not_flagged(export_env, instance, bucket, crate):
    table = create_metrics_table(crate, [D2], per_day=2)
    spec = spec_for(table, bucket)
    assert run_export([spec], instance, partition_range=(D0.isoformat(), D2.isoformat())).success
    (evaluation,) = _empty_day_evaluations(instance, table)
    assert evaluation.passed and evaluation.metadata["empty_days"].value == 2


# -- yesterday_landed ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("deadline", "timezone", "at", "due"),
    [
        ("02:00", "UTC", datetime(2024, 8, 4, 2, 0, tzinfo=UTC), D2),  # at the deadline: yesterday
        ("02:00", "UTC", datetime(2024, 8, 4, 1, 59, tzinfo=UTC), D1),  # before it: the day before
        ("02:00", "Europe/Vienna", datetime(2024, 8, 4, 0, 0, tzinfo=UTC), D2),  # 02:00 CEST
        ("26:30", "UTC", datetime(2024, 8, 5, 2, 30, tzinfo=UTC), D2),  # a day and 2.5 h after the day
        ("02:00", "Europe/Vienna", datetime(2024, 10, 27, 1, 0, tzinfo=UTC), date(2024, 10, 26)),  # DST ends
    ],
)
def test_the_due_day_follows_the_deadline(deadline, timezone, at, due):
    (spec,) = parse_export_specs(
        [
            {
                "table": "doc.m",
                "timestamp_column": "ts",
                "target": "b-1/m",
                "timezone": timezone,
                "freshness_deadline": deadline,
            }
        ]
    )
    assert Deadline.of(spec).due_day(at) == due


def _landed(defs, instance, at: datetime):
    """Tick the deadline schedule at `at` and run what it requests; the check's evaluation for the table."""
    schedule = defs.resolve_schedule_def(f"{LANDED}_schedule")
    assert schedule.default_status.value == "RUNNING"
    assert schedule.cron_schedule == "0 2 * * *"
    (request,) = schedule.evaluate_tick(
        build_schedule_context(instance=instance, scheduled_execution_time=at)
    ).run_requests
    result = defs.resolve_job_def(schedule.job_name).execute_in_process(instance=instance, tags=request.tags)
    assert result.success
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation


def test_yesterday_landed_judges_yesterdays_partition_not_the_latest_materialization(
    export_env, instance, bucket, crate
):
    table = create_metrics_table(crate, [D0, D1, D2], per_day=2)
    spec = spec_for(table, bucket, freshness_deadline="02:00")
    defs = build_definitions([spec], resource=resource_from_env())
    deadline = datetime(2024, 8, 4, 2, 0, tzinfo=UTC)  # D2 (2024-08-03) is due now

    missing = _landed(defs, instance, deadline)
    assert not missing.passed and missing.severity.value == "ERROR"
    assert missing.metadata["day"].value == D2.isoformat() and "never exported" in missing.description

    # A backfill of older days is the latest materialization, and still not yesterday.
    assert run_export([spec], instance, partition_range=(D0.isoformat(), D1.isoformat())).success
    still_missing = _landed(defs, instance, deadline)
    assert not still_missing.passed and still_missing.metadata["day"].value == D2.isoformat()

    assert run_export([spec], instance, partition=D2.isoformat()).success
    landed = _landed(defs, instance, deadline)
    assert landed.passed and landed.metadata["dagster/row_count"].value == 2
    assert landed.metadata["partition_status"].value == "MATERIALIZED"
    # The export job never runs the deadline check: it has its own schedule.
    export_job = defs.resolve_job_def("daily_cratedb_export")
    assert AssetCheckKey(_key(table), LANDED) not in export_job.asset_layer.asset_graph.asset_check_keys
    assert AssetCheckKey(_key(table), CHECK) in export_job.asset_layer.asset_graph.asset_check_keys


def test_a_failed_re_export_of_yesterday_is_red(export_env, instance, bucket, crate, double):
    table = create_metrics_table(crate, [D2], per_day=2)
    spec = spec_for(table, bucket)
    defs = build_definitions([spec], resource=resource_from_env())
    assert run_export([spec], instance, partition=D2.isoformat()).success
    double.faults.truncate_next_copy(drop_rows=1)  # the re-run clears the day first, then fails
    assert not run_export([spec], instance, partition=D2.isoformat()).success
    evaluation = _landed(defs, instance, datetime(2024, 8, 4, 3, 0, tzinfo=UTC))
    assert not evaluation.passed and "latest export failed" in evaluation.description


def test_no_deadline_means_no_check(export_env, bucket, crate):
    table = create_metrics_table(crate, [D2], per_day=1)
    defs = build_definitions([spec_for(table, bucket, freshness_deadline=None)], resource=resource_from_env())
    assert not [s for s in defs.schedules if s.name.startswith(LANDED)]
    assert {check.name for checks_def in defs.asset_checks for check in checks_def.check_specs} == {EMPTY_DAY_CHECK}
