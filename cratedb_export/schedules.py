"""The daily schedule: every export asset, for the day that just ended, like the tutorial's DAG."""

from __future__ import annotations

from collections.abc import Sequence

from dagster import (
    AssetsDefinition,
    AssetSelection,
    DefaultScheduleStatus,
    ScheduleDefinition,
    build_schedule_from_partitioned_job,
    define_asset_job,
)

JOB = "daily_cratedb_export"


def build_export_schedules(export_assets: Sequence[AssetsDefinition]) -> list[ScheduleDefinition]:
    """One job and schedule per partitions definition (one in the usual case, all tables sharing it).

    The tick at 00:00 of day D (in the partitions' time zone) requests partition D-1, the last complete
    day. Schedules start RUNNING, so a deployed code location exports without a click.
    """
    schedules = []
    for assets_def in export_assets:
        name = JOB if len(export_assets) == 1 else f"daily_{assets_def.op.name}"
        job = define_asset_job(
            name=name,
            # The export's own checks, not the deadline check `yesterday_landed` (its own schedule runs it).
            selection=AssetSelection.assets(assets_def).without_checks()
            | AssetSelection.checks(*assets_def.check_keys),
            description="Export the previous day of every configured CrateDB table to S3",
        )
        schedules.append(
            build_schedule_from_partitioned_job(
                job, name=f"{name}_schedule", default_status=DefaultScheduleStatus.RUNNING
            )
        )
    return schedules
