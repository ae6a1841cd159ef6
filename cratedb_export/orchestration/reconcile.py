"""Late rows reconciled: a sensor that re-exports the days of the reconcile window whose source changed.

Every tick, for each export with `reconcile_days` > 0, core/reconcile.py compares the window's days in
CrateDB (one digest statement per table: rows, sum and max of `_seq_no`) with their manifests in S3 (one
listing per table, one manifest read per archived day). Each changed day becomes a run request for that
day's partition of the export asset, with its per-day checks (not `yesterday_landed`, which its own
schedule judges at the deadline), tagged with the reason; and an observation on the partition carries the
archived and current numbers, so the UI shows why the day is exported again. Days that are fine produce
nothing: a quiet tick. The run key holds the current digest, so one change is requested once; a day that
changes again is requested again.

Why a sensor and not Dagster's observable source asset with per-partition data versions and an automation
condition: the baseline that matters is the manifest, what the archive holds, not the previous
observation. A day's first observation would look like a change (no earlier version to compare with) and
re-export every day once, and a change observed while the day's export was running would be lost. The
sensor compares with the manifest each time, so it converges: after the re-export the manifest holds the
new numbers and the day is quiet again.
"""

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from zoneinfo import ZoneInfo

from dagster import (
    AssetCheckKey,
    AssetKey,
    AssetObservation,
    AssetsDefinition,
    AssetSelection,
    DefaultSensorStatus,
    MetadataValue,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from cratedb_export.core.config import ExportSpec
from cratedb_export.core.connection import Connected
from cratedb_export.core.errors import ExportError
from cratedb_export.core.reconcile import EMPTIED, DayFinding, reconcile
from cratedb_export.core.redaction import redact
from cratedb_export.orchestration.freshness import CHECK as LANDED
from cratedb_export.orchestration.names import DEFAULT_NAMES, ExportNames
from cratedb_export.orchestration.resource import CrateDBExportResource

SENSOR = "reconcile_cratedb_exports"
REASON_TAG = "cratedb_export/reconcile_reason"
# Tables reconciled at once: each waits mostly on CrateDB and S3, so a few threads let a thousand tables
# fit in a tick (about 2 statements, 1 listing and reconcile_days small reads per table).
WORKERS = 8
# Once an hour: late rows are rarely urgent to the minute, and each tick costs CrateDB one grouped,
# partition-pruned statement per table; an hour also lets a burst of late rows settle before a day is
# exported again.
INTERVAL_SECONDS = 3600


def build_reconcile_sensor(
    export_assets: Sequence[AssetsDefinition], specs: Sequence[ExportSpec], names: ExportNames = DEFAULT_NAMES
) -> SensorDefinition | None:
    """The reconcile sensor of one cluster's exports; None when every export has reconcile_days 0.

    It starts RUNNING (reconcile is on by default) and ticks at most hourly: late rows are rarely urgent to
    the minute, a burst of them settles before the day is exported again, and CrateDB pays one grouped,
    partition-pruned statement per table per tick. The resource key differs per cluster (names.py), so the
    resource is required by key and read from the context rather than injected by parameter name.
    """
    reconciled = [s for s in specs if s.reconcile_days > 0]
    if not reconciled:
        return None
    checks: dict[AssetKey, list[AssetCheckKey]] = {}
    for assets_def in export_assets:  # one pass over the check keys: a thousand tables stay linear
        for check_key in sorted(assets_def.check_keys, key=str):
            if check_key.name != LANDED:
                checks.setdefault(check_key.asset_key, []).append(check_key)

    @sensor(
        name=names.op(SENSOR),
        minimum_interval_seconds=INTERVAL_SECONDS,
        default_status=DefaultSensorStatus.RUNNING,
        asset_selection=AssetSelection.assets(*export_assets),
        required_resource_keys={names.resource_key},
        description=f"Hourly: re-exports the days of the last reconcile_days (default 7) whose rows in CrateDB "
        f"changed since they were archived (count, or sum and max of _seq_no); docs/reconcile.md. "
        f"{len(reconciled)} export(s).",
    )
    def reconcile_sensor(context: SensorEvaluationContext) -> SensorResult:
        cratedb: CrateDBExportResource = getattr(context.resources, names.resource_key)
        connected = cratedb.open()
        with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="reconcile") as pool:
            results = list(pool.map(lambda spec: _findings(spec, connected, context.log), reconciled))
        requests: list[RunRequest] = []
        observations: list[AssetObservation] = []
        for spec, findings in zip(reconciled, results, strict=True):
            key = AssetKey(spec.asset_path)
            for finding in findings:
                if finding.status == EMPTIED:
                    context.log.warning(f"reconcile: {finding.table} {finding.day.isoformat()}: {finding.reason}")
                if finding.changed:
                    requests.append(_request(key, checks.get(key, []), finding))
                    observations.append(_observation(key, finding))
        if requests:
            context.log.info(
                f"{len(requests)} day(s) changed since exported: "
                + "; ".join(f"{r.tags['cratedb_export/table']} {r.partition_key}" for r in requests)
            )
        return SensorResult(run_requests=requests, asset_events=observations)

    return reconcile_sensor


def today_of(spec: ExportSpec, now: datetime | None = None) -> date:
    """Today in the export's time zone."""
    zone = ZoneInfo(spec.timezone)
    return (now.astimezone(zone) if now else datetime.now(zone)).date()


def _findings(spec: ExportSpec, connected: Connected, log: logging.Logger) -> list[DayFinding]:
    """A table's findings; a table that cannot be reconciled is logged (redacted) and skipped."""
    try:
        return reconcile(spec, today_of(spec), crate=connected.crate, store=connected.store, log=log.warning)
    except ExportError as error:  # already redacted
        log.warning(f"reconcile: {spec.table} skipped this tick: {error}")
    except Exception as error:  # a defect, or a library's: never stops the other tables
        log.warning(f"reconcile: {spec.table} skipped this tick: {type(error).__name__}: {redact(error)}")
    return []


def _request(key: AssetKey, checks: list[AssetCheckKey], finding: DayFinding) -> RunRequest:
    day = finding.day.isoformat()
    return RunRequest(
        run_key=f"reconcile:{finding.table}:{day}:{finding.now}",
        asset_selection=[key],
        asset_check_keys=checks,
        partition_key=day,
        tags={REASON_TAG: finding.reason, "cratedb_export/table": finding.table},
    )


def _observation(key: AssetKey, finding: DayFinding) -> AssetObservation:
    archived, now = finding.archived, finding.now
    metadata = {
        "reason": MetadataValue.text(finding.reason),
        "day": MetadataValue.text(finding.day.isoformat()),
        "rows_archived": _number(finding.archived_rows),
        "rows_now": _number(now.rows if now else None),
        "seq_no_sum_archived": _number(archived.seq_no_sum if archived else None),
        "seq_no_sum_now": _number(now.seq_no_sum if now else None),
        "seq_no_max_archived": _number(archived.seq_no_max if archived else None),
        "seq_no_max_now": _number(now.seq_no_max if now else None),
        "exported_at": MetadataValue.text(finding.exported_at or "unknown"),
    }
    return AssetObservation(asset_key=key, partition=finding.day.isoformat(), metadata=metadata)


def _number(value: int | None) -> MetadataValue:
    return MetadataValue.int(value) if value is not None else MetadataValue.text("none")
