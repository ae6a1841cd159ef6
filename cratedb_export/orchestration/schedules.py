"""The daily schedule: every export asset, for the day that just ended, like the tutorial's DAG.

One asset job per partitions definition (one in the usual case, all tables sharing it) serves every run
of those exports: the daily schedule's, the deadline schedule's (freshness.py), a click on the job's page.
Each schedule's run requests the assets and checks it needs from that job, so Dagster resolves one job
over the asset graph, not one per schedule: loading the code location stays about linear in the tables.
"""

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from dagster import (
    AssetsDefinition,
    AssetSelection,
    DailyPartitionsDefinition,
    DefaultScheduleStatus,
    MetadataValue,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    define_asset_job,
    schedule,
)

from cratedb_export.core.config import ExportSpec
from cratedb_export.orchestration.freshness import CHECK as LANDED
from cratedb_export.orchestration.freshness import Deadline, build_deadline_schedules
from cratedb_export.orchestration.names import DEFAULT_NAMES, JOB, ExportNames, ungrouped

# No `from __future__ import annotations` here: Dagster reads the schedule function's context annotation.
if TYPE_CHECKING:
    # Private, for the annotation only: what the public define_asset_job returns has no public name.
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

__all__ = ["JOB", "build_export_schedules"]

# The day that just ended is due at 00:00 of the next: the daily schedule's tick.
_MIDNIGHT = (0, 0)


def build_export_schedules(
    export_assets: Sequence[AssetsDefinition], specs: Sequence[ExportSpec], names: ExportNames = DEFAULT_NAMES
) -> tuple[list["UnresolvedAssetJobDefinition"], list[ScheduleDefinition]]:
    """Per partitions definition: its job, the daily schedule and the deadline schedules over that job.

    The jobs are returned to be listed in the Definitions too: a component's definitions are copied with
    their metadata updated, and a job only its schedules name would be copied once per schedule.

    The job selects the exports with all their checks, so the UI's launchpad and a run of the whole job
    judge every check. The daily schedule's tick at 00:00 of day D (in the partitions' time zone) requests
    partition D-1, the last complete day, with that day as the run key, and every check but the deadline
    check `yesterday_landed`, which its own schedule judges when the day is due. Schedules start RUNNING, so
    a deployed code location exports without a click.

    Dagster 1.13 never fills in a schedule's partition set (ScheduleSnap.from_def stores
    partition_set_name=None for every schedule), so the UI's schedule page shows "Partition set: None" for
    any schedule; the description and metadata say which partitions it runs instead, and the job's page
    (its partition set is `<job>_partition_set`) shows them.
    """
    schedules: list[ScheduleDefinition] = []
    jobs: dict[object, UnresolvedAssetJobDefinition] = {}
    by_partitions = sharing_partitions(export_assets)
    for members in by_partitions:
        name = names.job if len(by_partitions) == 1 else f"daily_{ungrouped(members[0].op.name, len(members))}"
        partitions = members[0].partitions_def
        job = define_asset_job(
            name=name,
            selection=AssetSelection.assets(*members),
            description="Export days of every configured CrateDB table to S3, with the day's checks",
        )
        jobs[partitions] = job
        schedules.append(_daily_schedule(name, job, members))
    return list(jobs.values()), [*schedules, *build_deadline_schedules(export_assets, specs, jobs, names)]


def sharing_partitions(export_assets: Sequence[AssetsDefinition]) -> list[list[AssetsDefinition]]:
    """The export multi-assets (table groups) by partitions definition, in order: one job and schedule each."""
    groups: dict[object, list[AssetsDefinition]] = {}
    for assets_def in export_assets:
        groups.setdefault(assets_def.partitions_def, []).append(assets_def)
    return list(groups.values())


def _daily_schedule(
    name: str, job: "UnresolvedAssetJobDefinition", members: Sequence[AssetsDefinition]
) -> ScheduleDefinition:
    partitions = members[0].partitions_def
    if not isinstance(partitions, DailyPartitionsDefinition):  # partitions.py makes every export's daily
        raise TypeError(f"{name}: the exports' partitions are not daily: {partitions!r}")
    first = partitions.start.date()
    ended = Deadline(partitions.timezone, *_MIDNIGHT)
    exports = sorted((key for assets_def in members for key in assets_def.keys), key=str)
    checks = sorted((k for a in members for k in a.check_keys if k.name != LANDED), key=str)
    days = f"the daily partitions from {first.isoformat()} ({partitions.timezone})"

    @schedule(
        name=f"{name}_schedule",
        cron_schedule=partitions.get_cron_schedule(),
        execution_timezone=partitions.timezone,
        job=job,
        default_status=DefaultScheduleStatus.RUNNING,
        description=f"Each midnight, exports the day that just ended: the latest partition of {days} "
        f"(job {name}, partition set {name}_partition_set)",
        metadata={
            "partitions": MetadataValue.text(days),
            "job": MetadataValue.text(name),
            "partition_set": MetadataValue.text(f"{name}_partition_set"),
        },
    )
    def _each_midnight(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
        day: date = ended.due_day(context.scheduled_execution_time or datetime.now(UTC))
        if day < first:
            return SkipReason(f"no day has ended yet: the first partition is {first.isoformat()}")
        return RunRequest(
            run_key=day.isoformat(), partition_key=day.isoformat(), asset_selection=exports, asset_check_keys=checks
        )

    return _each_midnight
