"""The checks as the UI shows them, read back from a real (SQLite) Dagster instance.

Every check is evaluated per day on the day's partition, in one-day and range runs: `matches_source` with
the three numbers, the empty-day warning with the days before it, `yesterday_landed` as each day lands and,
at the deadline, for the day due, so backfilling an old day does not make the asset look fresh. Nothing a
run plans is left "Skipped".
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest
from cratedb_export_testbed.support import (
    create_metrics_table,
    run_export,
    run_requested,
    scheduled_daily_job,
    spec_for,
    tick,
)
from dagster import (
    AssetCheckKey,
    AssetKey,
    AssetSelection,
    Definitions,
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
    result = run_export([spec], instance, partition=D1.isoformat())
    assert result.success
    # What the day costs Dagster's storage: its materialization and one evaluation per check the run
    # includes; no step output per check beside them (a check's status comes from its evaluations).
    stored = Counter(e.event_type_value for e in result.all_events)
    assert (stored["ASSET_MATERIALIZATION"], stored["ASSET_CHECK_EVALUATION"], stored["STEP_OUTPUT"]) == (1, 2, 0)

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


def _empty_day_evaluations(instance, table) -> dict[str | None, object]:
    """The latest `no_unexpected_empty_day` evaluation of each partition."""
    found: dict[str | None, object] = {}
    for record in _history(instance, table, EMPTY_DAY_CHECK):  # newest first
        found.setdefault(record.partition, record.event.dagster_event.event_specific_data)
    return found


def _checks_only_job(defs, name: str, *check_names: str):
    keys = [k for k in defs.resolve_asset_graph().asset_check_keys if k.name in check_names]
    merged = Definitions.merge(defs, Definitions(jobs=[define_asset_job(name, selection=AssetSelection.checks(*keys))]))
    return merged.resolve_job_def(name)


def test_a_day_with_0_rows_after_days_with_rows_is_a_warning_with_the_numbers(export_env, instance, bucket, crate):
    table = create_metrics_table(crate, [D0, D1, D2], per_day=5)  # nothing on D3
    spec = spec_for(table, bucket)
    assert run_export([spec], instance, partition_range=(D0.isoformat(), D2.isoformat())).success
    evaluations = _empty_day_evaluations(instance, table)
    assert set(evaluations) == {D0.isoformat(), D1.isoformat(), D2.isoformat()}  # one per day, on its partition
    assert all(e.passed for e in evaluations.values())

    # The daily run of D3: the preceding days' rows come from the instance.
    assert run_export([spec], instance, partition=D3.isoformat()).success
    latest = _empty_day_evaluations(instance, table)[D3.isoformat()]
    assert not latest.passed and latest.severity.value == "WARN"
    assert latest.metadata["rows"].value == 0
    assert latest.metadata["preceding_days"].value == {D0.isoformat(): 5, D1.isoformat(): 5, D2.isoformat(): 5}
    assert "0 rows" in latest.description and "5.0 a day" in latest.description
    # Only a warning: the day is still exported, verified and materialized.
    assert instance.fetch_materializations(_key(table), limit=10).records[0].partition_key == D3.isoformat()

    # Run on its own (Execute in the UI), the check judges its partition's day from the instance, exporting
    # nothing; without a partition, the latest exported day.
    job = _checks_only_job(build_definitions([spec], resource=resource_from_env()), "empty_day_only", EMPTY_DAY_CHECK)
    for tags in ({"dagster/partition": D3.isoformat()}, {}):
        result = job.execute_in_process(instance=instance, tags=tags)
        assert result.success and not result.get_asset_materialization_events()
        (alone,) = result.get_asset_check_evaluations()
        assert not alone.passed and alone.metadata["day"].value == D3.isoformat()
    assert not [r for r in _history(instance, table, EMPTY_DAY_CHECK) if r.status.value == "PLANNED"]


def test_empty_days_without_rows_before_them_are_not_flagged(export_env, instance, bucket, crate):
    table = create_metrics_table(crate, [D2], per_day=2)
    spec = spec_for(table, bucket)
    assert run_export([spec], instance, partition_range=(D0.isoformat(), D2.isoformat())).success
    evaluations = _empty_day_evaluations(instance, table)
    assert len(evaluations) == 3 and all(e.passed for e in evaluations.values())
    assert [evaluations[d.isoformat()].metadata["rows"].value for d in (D0, D1, D2)] == [0, 0, 2]


def test_a_ui_run_leaves_no_check_skipped_and_says_when_a_day_landed_late(export_env, instance, bucket, crate):
    """What the UI's Materialize and a UI backfill launch: the asset with every check of it. Each check gets
    its evaluation on each day's partition, and no step is skipped beside the export."""
    table = create_metrics_table(crate, [D0, D1, D2], per_day=2)
    spec = spec_for(table, bucket, freshness_deadline="02:00")
    defs = build_definitions([spec], resource=resource_from_env())
    job = defs.resolve_implicit_global_asset_job_def()
    for tags in (
        {"dagster/partition": D0.isoformat()},
        {"dagster/asset_partition_range_start": D1.isoformat(), "dagster/asset_partition_range_end": D2.isoformat()},
    ):
        result = job.execute_in_process(instance=instance, tags=tags, asset_selection=[_key(table)])
        assert result.success
        assert not [e for e in result.all_events if e.event_type_value == "STEP_SKIPPED"]
    for check in (CHECK, EMPTY_DAY_CHECK, LANDED):
        records = _history(instance, table, check)
        assert {r.partition for r in records} == {D0.isoformat(), D1.isoformat(), D2.isoformat()}, check
        assert not [r for r in records if r.status == AssetCheckExecutionRecordStatus.PLANNED], check
    # Days of 2024 landing today landed late, and the check says so plainly: a warning, not "passed".
    (late, *_) = _history(instance, table, LANDED, partition=D2.isoformat())
    evaluation = late.event.dagster_event.event_specific_data
    assert not evaluation.passed and evaluation.severity.value == "WARN"
    assert evaluation.description.startswith(f"{D2} landed late") and "after its deadline" in evaluation.description
    assert evaluation.metadata["late_by_minutes"].value > 0


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
    (request,) = tick(defs, schedule.name, instance, at)
    # The daily job's deadline checks alone: no job of its own for the code location to resolve.
    assert schedule.job_name == "daily_cratedb_export"
    assert request.asset_selection == [] and {k.name for k in request.asset_check_keys} == {LANDED}
    result = run_requested(defs, schedule.job_name, request, instance)
    assert result.success and not result.get_asset_materialization_events()  # it judges, it exports nothing
    (evaluation,) = result.get_asset_check_evaluations()
    # On the due day's own partition, as Dagster planned it: nothing is left "Skipped".
    assert evaluation.partition == request.partition_key == evaluation.metadata["day"].value
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
    # The daily schedule's run never judges the deadline check (its own schedule does, at the deadline);
    # the job has it, so a run of the whole job (the launchpad) judges every check.
    daily = defs.resolve_schedule_def("daily_cratedb_export_schedule")
    (export,) = tick(defs, daily.name, instance, deadline)
    assert export.partition_key == D2.isoformat() and export.asset_selection == [_key(table)]
    assert set(export.asset_check_keys) == {
        AssetCheckKey(_key(table), CHECK),
        AssetCheckKey(_key(table), EMPTY_DAY_CHECK),
    }
    # What the tests and benchmarks run as "the daily run" is what the schedule requests.
    assert set(scheduled_daily_job(defs).asset_layer.asset_graph.asset_check_keys) == set(export.asset_check_keys)
    export_job = defs.resolve_job_def(daily.job_name)
    assert AssetCheckKey(_key(table), LANDED) in export_job.asset_layer.asset_graph.asset_check_keys


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
    assert {key.name for key in defs.resolve_asset_graph().asset_check_keys} == {CHECK, EMPTY_DAY_CHECK}
