"""The daily schedule: every export asset, for the day that just ended, like the tutorial's DAG."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from dagster import (
    AssetsDefinition,
    AssetSelection,
    DailyPartitionsDefinition,
    DefaultScheduleStatus,
    MetadataValue,
    ScheduleDefinition,
    build_schedule_from_partitioned_job,
    define_asset_job,
)

from cratedb_export.orchestration.freshness import CHECK as LANDED
from cratedb_export.orchestration.names import JOB, ungrouped

if TYPE_CHECKING:
    # Private, for the annotation only: what the public build_schedule_from_partitioned_job returns for an
    # asset job has no public name.
    from dagster._core.definitions.partitions.partitioned_schedule import (
        UnresolvedPartitionedAssetScheduleDefinition,
    )

__all__ = ["JOB", "build_export_schedules"]


def build_export_schedules(
    export_assets: Sequence[AssetsDefinition], job: str = JOB
) -> list[ScheduleDefinition | UnresolvedPartitionedAssetScheduleDefinition]:
    """One job and schedule per partitions definition (one in the usual case, all tables sharing it).

    The schedule is built from the partitioned job (`build_schedule_from_partitioned_job`), which takes the
    cron and time zone from the assets' daily partitions: the tick at 00:00 of day D (in the partitions'
    time zone) requests partition D-1, the last complete day, with that day as the run key. Schedules start
    RUNNING, so a deployed code location exports without a click.

    Dagster 1.13 never fills in the schedule's partition set (ScheduleSnap.from_def stores
    partition_set_name=None for every schedule), so the UI's schedule page shows "Partition set: None" for
    any schedule; the description and metadata say which partitions it runs instead, and the job's page
    (its partition set is `<job>_partition_set`) shows them.
    """
    schedules: list[ScheduleDefinition | UnresolvedPartitionedAssetScheduleDefinition] = []
    by_partitions = sharing_partitions(export_assets)
    for members in by_partitions:
        name = job if len(by_partitions) == 1 else f"daily_{ungrouped(members[0].op.name, len(members))}"
        partitions = members[0].partitions_def
        days = _describe(partitions)
        asset_job = define_asset_job(
            name=name,
            # The export's per-day checks but the deadline check `yesterday_landed`: its own schedule judges
            # the day due at the deadline.
            selection=AssetSelection.assets(*members).without_checks()
            | AssetSelection.checks(*(k for a in members for k in a.check_keys if k.name != LANDED)),
            description="Export the previous day of every configured CrateDB table to S3",
        )
        schedules.append(
            build_schedule_from_partitioned_job(
                asset_job,
                name=f"{name}_schedule",
                default_status=DefaultScheduleStatus.RUNNING,
                description=f"Each midnight, exports the day that just ended: the latest partition of {days} "
                f"(job {name}, partition set {name}_partition_set)",
                metadata={
                    "partitions": MetadataValue.text(days),
                    "job": MetadataValue.text(name),
                    "partition_set": MetadataValue.text(f"{name}_partition_set"),
                },
            )
        )
    return schedules


def sharing_partitions(export_assets: Sequence[AssetsDefinition]) -> list[list[AssetsDefinition]]:
    """The export multi-assets (table groups) by partitions definition, in order: one job and schedule each."""
    groups: dict[object, list[AssetsDefinition]] = {}
    for assets_def in export_assets:
        groups.setdefault(assets_def.partitions_def, []).append(assets_def)
    return list(groups.values())


def _describe(partitions: object) -> str:
    if isinstance(partitions, DailyPartitionsDefinition):
        start = partitions.start.date().isoformat()
        return f"the daily partitions from {start} ({partitions.timezone})"
    return "the assets' partitions"
