"""The retention job: delete old days from CrateDB once the archive proves it holds them (docs/retention.md).

`retain_cratedb_days` runs on a daily schedule (RUNNING: configuring `retention` on an export is the opt-in;
without one the job and schedule do not exist) and from the Launchpad with `{tables: [...], dry_run: true}`.
The proof and the deletes are core/retention's; here each deleted day becomes an observation of the export's
partition (rows, how, where the archive and the record are), and the run's output lists every due day that
was not deleted and why. Days whose rows are not archived yet only warn; a day the archive cannot prove, or a
DELETE whose numbers are wrong, fails the run after everything safe was done, so that someone looks.
"""

from dagster import (
    AssetKey,
    AssetObservation,
    Config,
    DefaultScheduleStatus,
    Failure,
    JobDefinition,
    MetadataValue,
    OpExecutionContext,
    Output,
    ScheduleDefinition,
    job,
    op,
)
from pydantic import Field

from cratedb_export.core.config import ExportSpec
from cratedb_export.core.errors import ExportError
from cratedb_export.core.redaction import redact
from cratedb_export.core.retention.delete import (
    REMOVED,
    WAITING,
    WOULD_DELETE,
    DayOutcome,
    TableRetention,
    retain_table,
)
from cratedb_export.orchestration.names import ExportNames
from cratedb_export.orchestration.resource import CrateDBExportResource, run_holder

RETENTION_JOB = "retain_cratedb_days"
# After the day's export (00:00), the default freshness deadline (02:00) and the reconcile that follows it,
# in the night's quiet hours: retention's days are long past, so the hour only keeps its load off the day's work.
SCHEDULE_CRON = "30 4 * * *"
# A day held by an export (a backfill of old days) is waited for this long, then left for the next run.
LEASE_WAIT_S = 120.0


class RetentionConfig(Config):
    """Which exports' old days to delete from CrateDB, and whether only to report."""

    tables: list[str] | None = Field(
        None,
        description="Exported tables to apply retention to, e.g. [doc.metrics]; default: every export with retention",
    )
    dry_run: bool | None = Field(
        None,
        description="true: prove and report what would be deleted, delete nothing; default: each export's "
        "retention.dry_run",
    )


def build_retention(
    specs: list[ExportSpec], names: ExportNames
) -> tuple[list[JobDefinition], list[ScheduleDefinition]]:
    """The retention job and its daily schedule, when at least one export has retention; else nothing."""
    with_retention = [spec for spec in specs if spec.retention is not None]
    if not with_retention:
        return [], []
    retention_job = _build_job(specs, names)
    zones = {spec.timezone for spec in with_retention}
    zone = zones.pop() if len(zones) == 1 else "UTC"
    schedule = ScheduleDefinition(
        name=f"{retention_job.name}_schedule",
        job=retention_job,
        cron_schedule=SCHEDULE_CRON,
        execution_timezone=zone,
        default_status=DefaultScheduleStatus.RUNNING,
        description=f"Daily at 04:30 ({zone}): delete the days past keep_days that the archive proves, of "
        f"{', '.join(spec.table for spec in with_retention)}",
    )
    return [retention_job], [schedule]


def _build_job(specs: list[ExportSpec], names: ExportNames) -> JobDefinition:
    by_table = {spec.table: spec for spec in specs}

    @op(name=names.op("retain_days"), required_resource_keys={names.resource_key}, pool=names.pool)
    def retain_days_op(context: OpExecutionContext, config: RetentionConfig) -> Output[None]:
        chosen = _chosen(by_table, config.tables)
        cratedb: CrateDBExportResource = getattr(context.resources, names.resource_key)
        connected = cratedb.connected
        leases = cratedb.day_leases(run_holder(context), max_wait=LEASE_WAIT_S)
        results: list[TableRetention] = []
        for spec in chosen:
            context.log.info(
                f"{spec.table}: retention keeps {spec.retention.keep_days if spec.retention else 0} day(s)"
            )
            try:
                result = retain_table(
                    connected.crate,
                    connected.store,
                    spec,
                    leases,
                    endpoint=cratedb.s3_endpoint or None,
                    dry_run=config.dry_run,
                    log=context.log.warning,
                )
            except ExportError as error:
                raise Failure(description=f"{spec.table}: {error}", allow_retries=False) from None
            except Exception as error:  # a defect of ours, or a library's: its text redacted
                raise Failure(
                    description=f"retention of {spec.table} failed unexpectedly: {type(error).__name__}: "
                    f"{redact(error)}",
                    allow_retries=False,
                ) from None
            results.append(result)
            _report(context, spec, result)
        outcomes = [o for r in results for o in r.outcomes]
        metadata = _metadata(results)
        attention = [o for o in outcomes if o.needs_action]
        if attention:
            shown = "\n".join(o.line() for o in attention[:50])
            raise Failure(
                description=f"{len(attention)} due day(s) need attention (nothing unproved was deleted; the proved "
                f"days were):\n{shown}",
                metadata=metadata,
                allow_retries=False,
            )
        return Output(None, metadata=metadata)

    @job(
        name=names.op(RETENTION_JOB),
        description="Delete days past each export's retention.keep_days from CrateDB, only those the archive "
        "proves right then (_SUCCESS, manifest, files at their sizes, counts equal); record each beside the day",
    )
    def retention_job() -> None:
        retain_days_op()

    return retention_job


def _chosen(by_table: dict[str, ExportSpec], tables: list[str] | None) -> list[ExportSpec]:
    """The exports asked for; refused before anything is deleted when one is not an export or has no retention."""
    if tables is None:
        return [spec for spec in by_table.values() if spec.retention is not None]
    unknown = [table for table in tables if table not in by_table]
    if unknown:
        raise Failure(
            f"{', '.join(unknown)}: not an export of this code location ({', '.join(by_table)}); retention only "
            "deletes days of exported tables. Add the table to the export configuration first, or fix the name",
            allow_retries=False,
        )
    without = [by_table[table] for table in tables if by_table[table].retention is None]
    if without:
        raise Failure(
            "no retention configured for "
            + ", ".join(f"{s.table} (keep_days at least {s.minimum_keep_days})" for s in without)
            + "; add 'retention: {keep_days: N}' to the export in the configuration; nothing was deleted",
            allow_retries=False,
        )
    return [by_table[table] for table in dict.fromkeys(tables)]


def _report(context: OpExecutionContext, spec: ExportSpec, result: TableRetention) -> None:
    for outcome in result.outcomes:
        if outcome.kind == REMOVED:
            context.log_event(
                AssetObservation(
                    asset_key=AssetKey(spec.asset_path),
                    partition=outcome.day.isoformat(),
                    description=f"deleted from CrateDB by retention; the archive is the only copy ({outcome.archive})",
                    metadata=_day_metadata(outcome),
                )
            )
            context.log.info(outcome.line())
        elif outcome.kind in (WOULD_DELETE, WAITING):
            (context.log.info if outcome.kind == WOULD_DELETE else context.log.warning)(outcome.line())
        else:
            context.log.error(outcome.line())
    deleted = result.of(REMOVED)
    verb = "would delete" if result.dry_run else "deleted"
    kept = result.first_kept.isoformat() if result.first_kept else "-"
    context.log.info(
        f"{spec.table}: {verb} {len(result.of(WOULD_DELETE) if result.dry_run else deleted)} day(s), "
        f"{sum(o.rows for o in deleted)} row(s); days from {kept} are kept ({result.partitioning})"
    )


def _day_metadata(outcome: DayOutcome) -> dict[str, MetadataValue]:
    return {
        "rows_deleted": MetadataValue.int(outcome.rows),
        "how": MetadataValue.text((outcome.how or "") + (f": {outcome.partition}" if outcome.partition else "")),
        "archive": MetadataValue.text(outcome.archive),
        "record": MetadataValue.text(outcome.record_uri or ""),
        "deleted_at": MetadataValue.text(outcome.deleted_at or ""),
    }


def _metadata(results: list[TableRetention]) -> dict[str, MetadataValue]:
    def rows(kind: str) -> list[dict]:
        return [
            {"table": o.table, "day": o.day.isoformat(), "rows": o.rows, "how": o.how, "reason": o.reason}
            | ({"record": o.record_uri} if o.record_uri else {})
            for r in results
            for o in r.outcomes
            if o.kind == kind
        ][:500]

    outcomes = [o for r in results for o in r.outcomes]
    return {
        "days_deleted": MetadataValue.int(sum(1 for o in outcomes if o.kind == REMOVED)),
        "rows_deleted": MetadataValue.int(sum(o.rows for o in outcomes if o.kind == REMOVED)),
        "deleted": MetadataValue.json(rows(REMOVED)),
        "would_delete": MetadataValue.json(rows(WOULD_DELETE)),
        "waiting": MetadataValue.json(rows(WAITING)),
        "needs_attention": MetadataValue.json([o.line() for o in outcomes if o.needs_action][:500]),
        "left_for_next_run": MetadataValue.int(sum(r.left_for_later for r in results)),
        "dry_run": MetadataValue.bool(any(r.dry_run for r in results)),
    }
