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

from .names import JOB

__all__ = ["JOB", "build_export_schedules"]


def build_export_schedules(export_assets: Sequence[AssetsDefinition], job: str = JOB) -> list[ScheduleDefinition]:
    """One job and schedule per partitions definition (one in the usual case, all tables sharing it).

    The tick at 00:00 of day D (in the partitions' time zone) requests partition D-1, the last complete
    day. Schedules start RUNNING, so a deployed code location exports without a click.
    """
    schedules = []
    for assets_def in export_assets:
        name = job if len(export_assets) == 1 else f"daily_{assets_def.op.name}"
        asset_job = define_asset_job(
            name=name,
            selection=AssetSelection.assets(assets_def),
            description="Export the previous day of every configured CrateDB table to S3",
        )
        schedules.append(
            build_schedule_from_partitioned_job(
                asset_job, name=f"{name}_schedule", default_status=DefaultScheduleStatus.RUNNING
            )
        )
    return schedules
