"""The schedules as Dagster's scheduler daemon runs them: ticks evaluated in a code server, runs created from
their requests and launched in processes of their own, against the stand-in (or a real CrateDB) and S3.

The daily schedule and the deadline schedule both request runs of the one daily job (schedules.py): the day's
export with its checks but `yesterday_landed`, then at the deadline `yesterday_landed` alone. This holds that
Dagster accepts both requests as the daemon makes them, and that neither run leaves a check "Skipped".
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import yaml
from cratedb_export_testbed.support import create_metrics_table, spec_for
from dagster import AssetCheckKey, AssetKey, DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluation
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.test_utils import create_test_daemon_workspace_context, freeze_time
from dagster._core.workspace.load_target import ModuleTarget
from dagster._scheduler.scheduler import launch_scheduled_runs

from cratedb_export.core.config import CONFIG_ENV_VAR
from cratedb_export.orchestration.checks import CHECK, EMPTY_DAY_CHECK
from cratedb_export.orchestration.freshness import CHECK as LANDED

DAY = date(2024, 8, 3)
RUN_TIMEOUT = 60


def _tick(context, at: datetime) -> None:
    """One iteration of the scheduler daemon at `at`."""
    with freeze_time(at):
        list(launch_scheduled_runs(context, logging.getLogger("scheduler"), at, iteration_times={}))


def _finished(instance: DagsterInstance, count: int) -> list:
    """The instance's runs once `count` of them have ended, oldest first."""
    deadline = time.monotonic() + RUN_TIMEOUT
    while True:
        runs = instance.get_runs()
        if len(runs) >= count and all(r.is_finished for r in runs):
            return list(reversed(runs))
        assert time.monotonic() < deadline, [(r.run_id, r.status) for r in runs]
        time.sleep(0.5)


def _evaluations(instance: DagsterInstance, run_id: str) -> list[AssetCheckEvaluation]:
    return [
        e.dagster_event.event_specific_data
        for e in instance.all_logs(run_id)
        if e.dagster_event and e.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"
    ]


def test_the_daemon_exports_yesterday_at_midnight_and_judges_it_at_the_deadline(
    export_env, monkeypatch, tmp_path: Path, dagster_home, crate, bucket
):
    table = create_metrics_table(crate, [DAY - timedelta(days=1), DAY], per_day=3)
    config = tmp_path / "exports.yaml"
    spec = spec_for(table, bucket, start_date=(DAY - timedelta(days=2)).isoformat(), freshness_deadline="02:00")
    config.write_text(yaml.safe_dump({"exports": [spec]}))
    monkeypatch.setenv(CONFIG_ENV_VAR, str(config))  # read by the code server and the runs it launches
    key = AssetKey(["cratedb_export", "doc", table.name])
    target = ModuleTarget(
        module_name="cratedb_export.definitions", attribute=None, working_directory=None, location_name="exports"
    )
    # Runs launched as the daemon submits them (no queue: the run queue's daemon is not what is tested here).
    launch_at_once = {"run_coordinator": {"module": "dagster._core.run_coordinator", "class": "DefaultRunCoordinator"}}
    with (
        DagsterInstance.local_temp(str(dagster_home), overrides=launch_at_once) as instance,
        create_test_daemon_workspace_context(target, instance) as context,
    ):
        # The schedules start RUNNING: the first iteration takes them up, the next ones tick.
        _tick(context, datetime(2024, 8, 3, 23, 30, tzinfo=UTC))
        assert not instance.get_runs()
        _tick(context, datetime(2024, 8, 4, 0, 1, tzinfo=UTC))  # the daily schedule: 00:00
        (daily,) = _finished(instance, 1)
        _tick(context, datetime(2024, 8, 4, 2, 1, tzinfo=UTC))  # the deadline schedule: 02:00
        daily, deadline = _finished(instance, 2)

        assert daily.status == DagsterRunStatus.SUCCESS, daily.status
        assert daily.job_name == deadline.job_name == "daily_cratedb_export"
        assert daily.tags["dagster/partition"] == deadline.tags["dagster/partition"] == DAY.isoformat()
        assert daily.asset_selection == {key}
        assert daily.asset_check_selection == {AssetCheckKey(key, CHECK), AssetCheckKey(key, EMPTY_DAY_CHECK)}
        assert {e.check_name for e in _evaluations(instance, daily.run_id)} == {CHECK, EMPTY_DAY_CHECK}
        (exported,) = instance.fetch_materializations(key, limit=5).records
        assert exported.partition_key == DAY.isoformat()

        # The deadline's run judges the day alone, exporting nothing.
        assert deadline.status == DagsterRunStatus.SUCCESS, deadline.status
        assert deadline.asset_selection == frozenset()
        assert deadline.asset_check_selection == {AssetCheckKey(key, LANDED)}
        (landed,) = _evaluations(instance, deadline.run_id)
        assert landed.check_name == LANDED and landed.partition == DAY.isoformat() and landed.passed
        assert len(instance.fetch_materializations(key, limit=5).records) == 1

        # Neither run leaves a step or a check "Skipped".
        for run in (daily, deadline):
            assert not [e for e in instance.all_logs(run.run_id) if e.dagster_event_type == "STEP_SKIPPED"]
        for name in (CHECK, EMPTY_DAY_CHECK, LANDED):
            history = instance.event_log_storage.get_asset_check_execution_history(AssetCheckKey(key, name), limit=10)
            assert history and all(r.status != AssetCheckExecutionRecordStatus.PLANNED for r in history), name
        assert len(instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.FAILURE]))) == 0
