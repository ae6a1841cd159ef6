"""The restore job: archived days of an export back into CrateDB, launched from the UI's Launchpad or
with `dg launch --job restore_cratedb_days --config-json ...` (docs/restore.md).

Every day of the request is planned first (archive proved, target columns compared, rows already there
counted), so a refusal writes nothing; then each day is loaded and recounted (core/restore). Each restored
day is recorded as an observation of the export's partition with its numbers, so the asset's events show
what was restored, when and where to.
"""

from datetime import date, timedelta

from dagster import (
    AssetKey,
    AssetObservation,
    Config,
    Failure,
    JobDefinition,
    MetadataValue,
    OpExecutionContext,
    job,
    op,
)
from pydantic import Field

from cratedb_export.core.config import ExportSpec
from cratedb_export.core.errors import ExportError
from cratedb_export.core.redaction import redact
from cratedb_export.core.restore.day import MODES, Mode, default_target, restore_days
from cratedb_export.orchestration.names import ExportNames
from cratedb_export.orchestration.resource import CrateDBExportResource, run_holder

RESTORE_JOB = "restore_cratedb_days"
MAX_DAYS = 3660


class RestoreConfig(Config):
    """Which archived days to restore, and where to."""

    table: str = Field(description="The exported table whose archived days to restore, e.g. doc.metrics")
    first_day: str = Field(description="The first day to restore, YYYY-MM-DD")
    last_day: str | None = Field(None, description="The last day to restore (inclusive); default: first_day")
    target_table: str | None = Field(
        None,
        description="The table to restore into; default <table>_restored, created from the archived columns. "
        "Naming an existing table (the source itself included) restores into it",
    )
    mode: str = Field(
        "refuse",
        description="When the target already holds rows of a day: refuse (default; nothing is written), "
        "replace (delete the day's rows there first) or append",
    )


def build_restore_job(specs: list[ExportSpec], names: ExportNames) -> JobDefinition:
    by_table = {spec.table: spec for spec in specs}

    @op(name=names.op("restore_days"), required_resource_keys={names.resource_key}, pool=names.pool)
    def restore_days_op(context: OpExecutionContext, config: RestoreConfig) -> None:
        spec = by_table.get(config.table)
        if spec is None:
            raise Failure(f"table {config.table!r} is not an export of this code location ({', '.join(by_table)})")
        days = _days(config)
        if config.mode not in MODES:
            raise Failure(f"mode {config.mode!r} is not one of {', '.join(MODES)}")
        mode: Mode = config.mode  # narrowed by the check above
        cratedb: CrateDBExportResource = getattr(context.resources, names.resource_key)
        connected = cratedb.connected
        target = config.target_table or default_target(spec)
        context.log.info(f"restoring {len(days)} day(s) of {spec.table} into {target} (mode {mode})")
        try:
            restored = restore_days(
                connected.crate,
                connected.store,
                connected.access,
                spec,
                days,
                target_table=target,
                mode=mode,
                log=context.log.warning,
                # Each day is restored holding its lease: no export clears its archive, no retention deletes it.
                leases=cratedb.day_leases(run_holder(context)),
            )
        except ExportError as error:
            raise Failure(description=str(error), allow_retries=False) from None
        except Exception as error:  # a defect of ours, or a library's: its text redacted, never a bare traceback
            raise Failure(
                description=f"restoring {spec.table} failed unexpectedly: {type(error).__name__}: {redact(error)}",
                allow_retries=False,
            ) from None
        for day in restored:
            context.log_event(
                AssetObservation(
                    asset_key=AssetKey(spec.asset_path),
                    partition=day.day.isoformat(),
                    description=f"restored into {day.target}",
                    metadata={
                        "restored_into": MetadataValue.text(day.target),
                        "table_created": MetadataValue.bool(day.created),
                        "rows_archived": MetadataValue.int(day.rows_archived),
                        "rows_loaded": MetadataValue.int(day.rows_loaded),
                        "rows_in_target": MetadataValue.int(day.rows_in_target),
                        "rows_skipped_as_duplicates": MetadataValue.int(day.rows_skipped_as_duplicates),
                        "rows_there_before": MetadataValue.int(day.rows_before),
                        "rows_deleted_first": MetadataValue.int(day.rows_deleted),
                        "files": MetadataValue.int(day.files),
                        "mode": MetadataValue.text(mode),
                        "duration_s": MetadataValue.float(day.timings.get("restore", 0.0)),
                    },
                )
            )
        context.log.info(f"restored {len(restored)} day(s), {sum(d.rows_loaded for d in restored)} row(s)")

    @job(
        name=names.op(RESTORE_JOB),
        description="Restore archived days of an export into CrateDB, verified: plan every day (refusing before "
        "anything is written), COPY FROM ... RETURN SUMMARY, recount",
    )
    def restore_job() -> None:
        restore_days_op()

    return restore_job


def _days(config: RestoreConfig) -> list[date]:
    try:
        first = date.fromisoformat(config.first_day)
        last = date.fromisoformat(config.last_day) if config.last_day else first
    except ValueError as error:
        raise Failure(f"first_day/last_day must be YYYY-MM-DD: {error}") from None
    if last < first:
        raise Failure(f"last_day {last} is before first_day {first}")
    count = (last - first).days + 1
    if count > MAX_DAYS:
        raise Failure(f"{count} days asked for; restore at most {MAX_DAYS} days per run")
    return [first + timedelta(days=n) for n in range(count)]
