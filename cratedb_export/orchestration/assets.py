"""One daily-partitioned asset per configured table.

Each export depends on its CrateDB table, an external asset (lineage.py), whose columns are observed
when the run starts. Tables that share a partitions definition (start date and time zone) are defined
together, as one subsettable multi-asset: a run for several tables, or for a range of days, is one step in one process
that exports table-days concurrently (COPYs bounded by the resource), instead of one Python process per
table or one run per day. Each table-day is recorded as its own materialization, with its own numbers,
as soon as it is verified — so when some days of a range fail, the others stay materialized and the
failed ones are exactly what "failed and missing" re-runs. Each verified day also gets its own
`matches_source` evaluation on its partition (checks.py), and its metadata is built in metadata.py.
"""

import contextlib
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime

from dagster import (
    AssetCheckEvaluation,
    AssetCheckKey,
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    AssetObservation,
    AssetsDefinition,
    AssetSpec,
    Failure,
    MetadataValue,
    PartitionsDefinition,
    TableSchema,
    multi_asset,
)

from cratedb_export.core.config import ExportSpec
from cratedb_export.core.errors import VerificationError
from cratedb_export.core.fanout import export_days
from cratedb_export.core.schema import SourceTable
from cratedb_export.orchestration.checks import (
    CHECK,
    EMPTY_DAY_CHECK,
    DayChecks,
    check_specs,
    empty_day_evaluation,
    latest_exported_day,
    recorded_day_evaluation,
)
from cratedb_export.orchestration.executor import copy_slots_of_step, steps_at_once
from cratedb_export.orchestration.freshness import CHECK as LANDED
from cratedb_export.orchestration.freshness import (
    DUE_AT_TAG,
    PARTITION_TAG,
    Deadline,
    judged_at,
    landed_as_exported,
    landed_at_deadline,
)
from cratedb_export.orchestration.lineage import exported_schema, source_key, source_observation, source_prefix
from cratedb_export.orchestration.metadata import day_metadata
from cratedb_export.orchestration.names import DEFAULT_NAMES, POOL, ExportNames, group_op_name
from cratedb_export.orchestration.partitions import backfill_policy, partitions_for
from cratedb_export.orchestration.reconcile import REASON_TAG
from cratedb_export.orchestration.resource import CrateDBExportResource, run_holder

GROUP = "cratedb_exports"
# Tables per multi-asset: see table_groups.
GROUP_TABLES = 50
__all__ = ["POOL", "build_export_assets"]


def build_export_assets(specs: Sequence[ExportSpec], names: ExportNames = DEFAULT_NAMES) -> list[AssetsDefinition]:
    """One multi-asset per table group: the tables sharing a partitions definition (start date and time zone;
    usually all of them), in groups of at most GROUP_TABLES. `names` gives the resource key, pool and op
    names (one set per CrateDB cluster, see names.py)."""
    by_partitions: dict[tuple[date, str], list[ExportSpec]] = defaultdict(list)
    for spec in specs:
        by_partitions[(spec.start_date, spec.timezone)].append(spec)
    single = len(by_partitions) == 1
    assets = []
    for (start, tz), members in by_partitions.items():
        base = "export_tables" if single else _op_name(start, tz)
        groups = table_groups(members)
        for number, group in enumerate(groups, start=1):
            assets.append(_export_assets(group, group_op_name(names.op(base), number, len(groups)), names))
    return assets


def table_groups(specs: Sequence[ExportSpec]) -> list[list[ExportSpec]]:
    """The tables of one partitions definition in groups of at most GROUP_TABLES, as even as they can be.

    Why groups: Dagster resolves a multi-asset's jobs in time quadratic in its outputs (a set per input over
    all of them), so a thousand tables in one multi-asset load three times slower than in ten; and each group
    is a step, so a range run under the multiprocess executor exports groups in processes of their own. Tables
    are grouped in key order, so a group keeps its tables while the configuration stays the same.
    """
    ordered = sorted(specs, key=lambda s: s.asset_path)
    count = -(-len(ordered) // GROUP_TABLES)
    size, extra = divmod(len(ordered), count)
    groups, at = [], 0
    for number in range(count):
        end = at + size + (number < extra)
        groups.append(ordered[at:end])
        at = end
    return groups


def _op_name(start: date, timezone: str) -> str:
    slug = "".join(c if c.isalnum() else "_" for c in timezone.lower())
    return f"export_tables_from_{start.strftime('%Y%m%d')}_{slug}"


def _asset_spec(spec: ExportSpec, sources: tuple[str, ...], partitions_def: PartitionsDefinition) -> AssetSpec:
    layout = spec.layout()
    return AssetSpec(
        key=AssetKey(spec.asset_path),
        description=spec.description
        or f"Each day's rows of CrateDB table {spec.table} (by {spec.timestamp_column}), exported with "
        f"COPY TO into s3://{layout}",
        deps=[source_key(spec, sources)],
        group_name=GROUP,
        # On the spec rather than the multi-asset, which would otherwise copy every spec to add it.
        partitions_def=partitions_def,
        kinds={"cratedb", "s3"},
        skippable=True,
        metadata={
            "table": spec.table,
            "timestamp_column": spec.timestamp_column,
            "directory": f"s3://{layout}",
            "compression": spec.compression or "none",
            "format": spec.format,
            "verification": spec.verify,
            "freshness_deadline": spec.freshness_deadline or "none",
        },
    )


def _export_assets(specs: list[ExportSpec], name: str, names: ExportNames) -> AssetsDefinition:
    by_key = {AssetKey(s.asset_path): s for s in specs}
    partitions_def = partitions_for(specs[0])
    sources = source_prefix(names)

    @multi_asset(
        name=name,
        specs=[_asset_spec(s, sources, partitions_def) for s in specs],
        check_specs=[check for key, spec in by_key.items() for check in check_specs(spec, key, partitions_def)],
        backfill_policy=backfill_policy(),
        can_subset=True,
        pool=names.pool,
        required_resource_keys={names.resource_key},
    )
    def export_tables(context: AssetExecutionContext) -> Iterator:
        selected = [by_key[k] for k in sorted(context.selected_asset_keys, key=str) if k in by_key]
        if not selected:  # only checks: the deadline schedule, or "Execute" in the UI; nothing is exported
            yield from _judge_from_instance(context, by_key)
            return
        cratedb: CrateDBExportResource = getattr(context.resources, names.resource_key)
        days = [date.fromisoformat(k) for k in context.partition_keys]
        yield from _run_exports(context, cratedb, selected, days, sources)

    return export_tables


def _run_exports(
    context: AssetExecutionContext,
    cratedb: CrateDBExportResource,
    specs: list[ExportSpec],
    days: list[date],
    sources: tuple[str, ...],
) -> Iterator[AssetMaterialization | AssetObservation | AssetCheckEvaluation]:
    """Turn the core's day outcomes (core/fanout.py) into Dagster events as each day finishes."""
    total = len(specs) * len(days)
    # The run's table groups (steps) beside this one: a range's run them at once and share the COPY slots.
    steps = len(context.job_def.nodes)
    slots = copy_slots_of_step(cratedb.copy_slots, context.run.tags, steps)
    shared = (
        f" (this step's share: {steps_at_once(context.run.tags, steps)} steps export at once)"
        if slots < cratedb.copy_slots
        else ""
    )
    context.log.info(
        f"exporting {len(days)} day(s) of {len(specs)} table(s): {total} COPY statement(s), at most "
        f"{slots} in flight{shared}"
    )
    failures: list[str] = []
    remaining = {AssetKey(spec.asset_path): len(days) for spec in specs}
    rows_by_day: dict[AssetKey, dict[date, int]] = defaultdict(dict)
    landed_at: dict[AssetKey, dict[date, datetime | None]] = defaultdict(dict)
    checks = DayChecks(context.instance, context.run.run_id)
    selected_checks = context.selected_asset_check_keys
    run = cratedb.start_run(specs, run_holder(context), context.log.warning, copy_slots=slots)
    # The tables' columns, read by start_run from information_schema: an observation of each CrateDB table
    # (lineage.py), and the exported columns on every day's materialization.
    exported: dict[str, TableSchema] = {}
    for spec in specs:
        table = run.tables.get(spec.table)
        if isinstance(table, SourceTable):
            yield source_observation(spec, table, sources)
            exported[spec.table] = exported_schema(table)
    outcomes = export_days(run, specs, days, log=context.log.warning, progress=context.log.info, copy_slots=slots)
    with contextlib.closing(outcomes):  # a stopped run cancels the days not yet started
        for outcome in outcomes:
            spec, day = outcome.spec, outcome.day
            key = AssetKey(spec.asset_path)
            remaining[key] -= 1
            if outcome.export is not None:
                metadata = day_metadata(
                    outcome.export,
                    endpoint=cratedb.s3_endpoint or None,
                    protocol=cratedb.s3_protocol,
                    columns=exported.get(spec.table),
                )
                if reason := context.run.tags.get(REASON_TAG):  # requested by the reconcile sensor
                    metadata["reconciled_because"] = MetadataValue.text(reason)
                yield AssetMaterialization(asset_key=key, partition=day.isoformat(), metadata=metadata)
                if AssetCheckKey(key, CHECK) in selected_checks:
                    checks.add(key, day, outcome.export.verified_counts, passed=True)
                rows_by_day[key][day] = outcome.export.source_rows
                landed_at[key][day] = datetime.now(UTC)
            else:
                landed_at[key][day] = None
                failures.append(f"{outcome.what}: {outcome.error}")
                context.log.error(f"{outcome.what} failed: {outcome.error}")
                if isinstance(outcome.error, VerificationError) and AssetCheckKey(key, CHECK) in selected_checks:
                    checks.add(key, day, outcome.error.counts, passed=False)
            if remaining[key] == 0:
                yield from checks.flush([key])
                yield from _day_checks_of(context, spec, rows_by_day[key], landed_at[key])
            elif checks.due():
                yield from checks.flush()
    yield from checks.flush()
    # No step output per check: a check's status comes from its evaluations alone, and the checks' outputs are
    # optional (the multi-asset is subsettable), so an output event per check would only cost a stored event
    # each (a tenth of the daily run's events).
    if failures:
        shown = "\n".join(sorted(failures)[:50])
        more = f"\n… and {len(failures) - 50} more" if len(failures) > 50 else ""
        raise Failure(
            description=f"{len(failures)} of {total} table-day export(s) failed; the others are materialized "
            f"and complete. Re-run the failed partitions (backfill 'failed and missing'):\n{shown}{more}",
            metadata={"failed": MetadataValue.json(sorted(failures)[:200])},
            allow_retries=False,
        )


def _day_checks_of(
    context: AssetExecutionContext,
    spec: ExportSpec,
    rows_by_day: dict[date, int],
    landed_at: dict[date, datetime | None],
) -> Iterator[AssetCheckEvaluation]:
    """Once all of an asset's days in the run are done: its per-day empty-day and landed evaluations, for the
    checks the run includes (so each day's planned evaluation is made)."""
    key = AssetKey(spec.asset_path)
    selected = context.selected_asset_check_keys
    if AssetCheckKey(key, EMPTY_DAY_CHECK) in selected:
        for day in sorted(rows_by_day):
            yield empty_day_evaluation(context.instance, key, day, rows_by_day, day.isoformat())
    deadline = Deadline.of(spec)
    if deadline is not None and AssetCheckKey(key, LANDED) in selected:
        for day, landed in sorted(landed_at.items()):
            yield landed_as_exported(key, day, deadline, landed, day.isoformat())


def _judge_from_instance(context: AssetExecutionContext, by_key: dict[AssetKey, ExportSpec]) -> Iterator:
    """A run of checks only: judge the run's day (its partition tag, else the day due or last exported) from
    what the instance holds, and export nothing."""
    instance, tags = context.instance, context.run.tags
    partition = tags.get(PARTITION_TAG)
    at = judged_at(tags.get(DUE_AT_TAG))
    for check_key in sorted(context.selected_asset_check_keys, key=str):
        spec = by_key[check_key.asset_key]
        deadline = Deadline.of(spec)
        if check_key.name == LANDED and deadline is not None:
            due = date.fromisoformat(partition) if partition else deadline.due_day(at)
            yield landed_at_deadline(instance, spec, deadline, due, at, partition)
            continue
        day = date.fromisoformat(partition) if partition else latest_exported_day(instance, check_key.asset_key)
        if day is not None and check_key.name == EMPTY_DAY_CHECK:
            yield empty_day_evaluation(instance, check_key.asset_key, day, {}, partition)
        elif day is not None and check_key.name == CHECK:
            yield recorded_day_evaluation(instance, check_key.asset_key, day, partition)
