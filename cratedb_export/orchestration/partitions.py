"""Days as Dagster partitions: an export's daily partitions and how a backfill of them is split into runs."""

from __future__ import annotations

import os

from dagster import BackfillPolicy, DailyPartitionsDefinition

from cratedb_export.core.config import ExportSpec

DAYS_PER_RUN_ENV = "CRATEDB_EXPORT_DAYS_PER_RUN"


def partitions_for(spec: ExportSpec) -> DailyPartitionsDefinition:
    """Day D of the export is partition D, from its start date, in its time zone."""
    return DailyPartitionsDefinition(start_date=spec.start_date.isoformat(), timezone=spec.timezone)


def backfill_policy() -> BackfillPolicy:
    """A backfill is one run for the whole range, or runs of CRATEDB_EXPORT_DAYS_PER_RUN days."""
    days = os.environ.get(DAYS_PER_RUN_ENV)
    if days:
        return BackfillPolicy.multi_run(max_partitions_per_run=int(days))
    return BackfillPolicy.single_run()
