"""One daily-partitioned asset per configured table.

Tables that share a partitions definition (start date and time zone) are defined together, as one
subsettable multi-asset: a run for several tables, or for a range of days, is one step in one process
that exports table-days concurrently (COPYs bounded by the resource), instead of one Python process per
table or one run per day. Each table-day is recorded as its own materialization, with its own numbers,
as soon as it is verified — so when some days of a range fail, the others stay materialized and the
failed ones are exactly what "failed and missing" re-runs.
"""

import os
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from datetime import date

from dagster import (
    AssetCheckEvaluation,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    AssetsDefinition,
    AssetSpec,
    BackfillPolicy,
    DailyPartitionsDefinition,
    Failure,
    MetadataValue,
    TableColumn,
    TableSchema,
    multi_asset,
)

from .config import ExportSpec
from .errors import ExportError, VerificationError
from .export import DayExport
from .lease import Holder
from .names import DEFAULT_NAMES, POOL, ExportNames
from .redaction import redact
from .resource import CrateDBExportResource

GROUP = "cratedb_exports"
__all__ = ["POOL", "build_export_assets", "partitions_for"]
CHECK = "matches_source"
DAYS_PER_RUN_ENV = "CRATEDB_EXPORT_DAYS_PER_RUN"


def partitions_for(spec: ExportSpec) -> DailyPartitionsDefinition:
    return DailyPartitionsDefinition(start_date=spec.start_date.isoformat(), timezone=spec.timezone)


def build_export_assets(specs: Sequence[ExportSpec], names: ExportNames = DEFAULT_NAMES) -> list[AssetsDefinition]:
    """One multi-asset per distinct (start date, time zone); usually exactly one. `names` gives the resource
    key, pool and op names (one set per CrateDB cluster, see names.py)."""
    groups: dict[tuple[date, str], list[ExportSpec]] = defaultdict(list)
    for spec in specs:
        groups[(spec.start_date, spec.timezone)].append(spec)
    single = len(groups) == 1
    return [
        _export_assets(members, names.op("export_tables" if single else _op_name(start, tz)), names)
        for (start, tz), members in groups.items()
    ]


def _op_name(start: date, timezone: str) -> str:
    slug = "".join(c if c.isalnum() else "_" for c in timezone.lower())
    return f"export_tables_from_{start.strftime('%Y%m%d')}_{slug}"


def _backfill_policy() -> BackfillPolicy:
    days = os.environ.get(DAYS_PER_RUN_ENV)
    if days:
        return BackfillPolicy.multi_run(max_partitions_per_run=int(days))
    return BackfillPolicy.single_run()


def _asset_spec(spec: ExportSpec) -> AssetSpec:
    layout = spec.layout()
    return AssetSpec(
        key=AssetKey(spec.asset_path),
        description=spec.description
        or f"Each day's rows of CrateDB table {spec.table} (by {spec.timestamp_column}), exported with "
        f"COPY TO into s3://{layout}",
        group_name=GROUP,
        kinds={"cratedb", "s3"},
        skippable=True,
        metadata={
            "table": spec.table,
            "timestamp_column": spec.timestamp_column,
            "directory": f"s3://{layout}",
            "compression": spec.compression or "none",
            "format": spec.format,
            "verification": spec.verify,
        },
    )


def _export_assets(specs: list[ExportSpec], name: str, names: ExportNames) -> AssetsDefinition:
    by_key = {AssetKey(s.asset_path): s for s in specs}

    @multi_asset(
        name=name,
        specs=[_asset_spec(s) for s in specs],
        check_specs=[
            AssetCheckSpec(
                CHECK,
                asset=key,
                description="The day's exported rows equal the source's rows for that day (COPY rowcount, "
                "source count and rows read back)",
            )
            for key in by_key
        ],
        partitions_def=partitions_for(specs[0]),
        backfill_policy=_backfill_policy(),
        can_subset=True,
        pool=names.pool,
        required_resource_keys={names.resource_key},
    )
    def export_tables(context: AssetExecutionContext) -> Iterator:
        cratedb: CrateDBExportResource = getattr(context.resources, names.resource_key)
        selected = [by_key[k] for k in sorted(context.selected_asset_keys, key=str) if k in by_key]
        days = [date.fromisoformat(k) for k in context.partition_keys]
        yield from _run_exports(context, cratedb, selected, days)

    return export_tables


def _run_exports(
    context: AssetExecutionContext,
    cratedb: CrateDBExportResource,
    specs: list[ExportSpec],
    days: list[date],
) -> Iterator[AssetMaterialization | AssetCheckResult]:
    total = len(specs) * len(days)
    context.log.info(
        f"exporting {len(days)} day(s) of {len(specs)} table(s): {total} COPY statement(s), at most "
        f"{cratedb.copy_slots} in flight"
    )
    failures: list[str] = []
    done, last_report = 0, time.monotonic()
    tallies = {AssetKey(spec.asset_path): _CheckTally(len(days)) for spec in specs}
    # Clearing and verifying run beside other days' COPYs; the resource bounds the COPYs themselves.
    workers = max(2, cratedb.copy_slots * 2)
    run = cratedb.start_run(specs, _holder(context), context.log.warning)
    batches = {spec.table: run.batch(spec, days, context.log.warning) for spec in specs}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="export") as pool:
        futures = {
            pool.submit(run.export_day, spec, day, context.log.warning, batches[spec.table]): (spec, day)
            for day in days
            for spec in specs
        }
        for future in as_completed(futures):
            spec, day = futures[future]
            key = AssetKey(spec.asset_path)
            tally = tallies[key]
            error = _error_of(future)
            done += 1
            if error is None:
                result: DayExport = future.result()
                yield AssetMaterialization(asset_key=key, partition=day.isoformat(), metadata=_metadata(result))
                tally.add(day, result.verified_counts)
            else:
                failures.append(f"{spec.table} {day.isoformat()}: {error}")
                context.log.error(f"{spec.table} {day.isoformat()} failed: {error}")
                if isinstance(error, VerificationError):
                    mismatch = _check_result(key, day, error.counts, passed=False)
                    if tally.expected > 1:
                        context.log_event(AssetCheckEvaluation(**mismatch))
                    tally.add(day, error.counts, mismatch=True)
                else:
                    tally.add(day, None)
            if tally.complete and (summary := tally.result(key)):
                yield AssetCheckResult(**summary)
            if done == total or time.monotonic() - last_report > 5:
                last_report = time.monotonic()
                context.log.info(f"progress: {done}/{total} table-days done, {len(failures)} failed")
    if failures:
        shown = "\n".join(sorted(failures)[:50])
        more = f"\n… and {len(failures) - 50} more" if len(failures) > 50 else ""
        raise Failure(
            description=f"{len(failures)} of {total} table-day export(s) failed; the others are materialized "
            f"and complete. Re-run the failed partitions (backfill 'failed and missing'):\n{shown}{more}",
            metadata={"failed": MetadataValue.json(sorted(failures)[:200])},
            allow_retries=False,
        )


def _holder(context: AssetExecutionContext) -> Holder:
    """This run, and how to tell whether the run holding a day's lease is still going."""
    instance = context.instance

    def is_alive(run_id: str) -> bool:
        other = instance.get_run_by_id(run_id)
        return other is not None and not other.is_finished

    return Holder(context.run.run_id, is_alive)


def _error_of(future: Future[DayExport]) -> ExportError | None:
    """The day's error, redacted; an unexpected exception is wrapped so its text is redacted too."""
    exc = future.exception()
    if exc is None:
        return None
    if isinstance(exc, ExportError):
        return exc
    return ExportError(f"unexpected {type(exc).__name__}: {redact(exc)}")


def _check_result(key: AssetKey, day: date, counts: dict, *, passed: bool) -> dict:
    """The fields of one day's `matches_source` evaluation, with the three numbers as metadata."""
    return {
        "asset_key": key,
        "check_name": CHECK,
        "passed": passed,
        "severity": AssetCheckSeverity.ERROR,
        "metadata": {"day": day.isoformat(), **{k: v for k, v in counts.items() if v is not None}},
        "description": None if passed else f"export of {day.isoformat()} does not match the source",
    }


class _CheckTally:
    """Collects one asset's verified days into the check's result for the run.

    A one-day run (the schedule, a click in the UI) reports that day's three numbers. A range run reports
    one summary, so that a year's backfill does not store a passing evaluation per day; each day's numbers
    are in its materialization's metadata, and each mismatching day is also logged as its own evaluation.
    """

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.seen = 0
        self.verified: list[date] = []
        self.mismatched: list[date] = []
        self.rows = 0
        self._single: tuple[date, dict, bool] | None = None

    def add(self, day: date, counts: dict | None, *, mismatch: bool = False) -> None:
        self.seen += 1
        if counts is None:
            return
        (self.mismatched if mismatch else self.verified).append(day)
        if not mismatch:
            self.rows += counts.get("source_rows") or 0
        self._single = (day, counts, not mismatch)

    @property
    def complete(self) -> bool:
        return self.seen == self.expected

    def result(self, key: AssetKey) -> dict | None:
        if self.expected == 1:
            return _check_result(key, *self._single[:2], passed=self._single[2]) if self._single else None
        if not (self.verified or self.mismatched):
            return None
        checked = sorted(self.verified + self.mismatched)
        return {
            "asset_key": key,
            "check_name": CHECK,
            "passed": not self.mismatched,
            "severity": AssetCheckSeverity.ERROR,
            "metadata": {
                "days_verified": len(self.verified),
                "days_mismatched": MetadataValue.json([d.isoformat() for d in sorted(self.mismatched)]),
                "rows_verified": self.rows,
                "first_day": checked[0].isoformat(),
                "last_day": checked[-1].isoformat(),
            },
            "description": f"{len(self.verified)} day(s) match the source"
            + (f", {len(self.mismatched)} do not" if self.mismatched else ""),
        }


def _metadata(result: DayExport) -> dict:
    rows = result.source_rows
    return {
        "dagster/row_count": MetadataValue.int(rows),
        "rows_exported": MetadataValue.int(rows),
        "copy_rowcount": MetadataValue.int(result.copy_rowcount)
        if result.copy_rowcount is not None
        else MetadataValue.text(f"unknown: {result.copy_recovered}"),
        "window_read_as": MetadataValue.text(result.window_reading),
        "source_rows": MetadataValue.int(result.source_rows),
        "rows_read_back": MetadataValue.int(result.exported_rows)
        if result.exported_rows is not None
        else MetadataValue.text("not read back (verify: count)"),
        "day": MetadataValue.text(result.window.day.isoformat()),
        "window": MetadataValue.text(f"[{result.window.start.isoformat()}, {result.window.end.isoformat()})"),
        "target": MetadataValue.text(result.display_uri),
        "statement": MetadataValue.md(f"```sql\n{result.statement}\n```"),
        "files": MetadataValue.int(len(result.files)),
        "bytes": MetadataValue.int(result.total_bytes),
        "duration_s": MetadataValue.float(round(sum(result.timings.values()), 3)),
        "copy_duration_s": MetadataValue.float(result.timings.get("copy", 0.0)),
        "removed_before": MetadataValue.int(result.removed_before),
        "format": MetadataValue.text(result.spec.format),
        # The exported columns as read from information_schema when the run started (the manifest has them too).
        "dagster/column_schema": MetadataValue.table_schema(
            TableSchema(columns=[TableColumn(name, data_type) for name, data_type in result.columns])
        ),
    }
