"""The checks the export run evaluates itself: `matches_source` per day, and the empty-day warning.

`matches_source` is partitioned like its asset, so Dagster plans it for each day of a run, and every day
that was verified (its three numbers compared) gets its own evaluation on its own partition, in one-day
and range runs alike: a passing day is green on its partition, a mismatching day red on its own. A day
that failed before its numbers could be compared (a COPY error, say) gets none, and Dagster shows its
planned check as not executed. Each evaluation points at the day's latest materialization, as Dagster's
own check results do, so the partition's check status stays current in the UI.

The evaluations of a range run are written in batches: the materializations of a batch are looked up
with one query per asset, not one per day.

`no_unexpected_empty_day` warns (severity WARN) when a day exported 0 rows while the days before it had
rows: one evaluation per asset and run, logged by the export step, naming each such day with its numbers.
The preceding days' counts come from this run, or from the instance (their latest materialization's
`dagster/row_count`).
"""

import time
import warnings
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from dagster import (
    AssetCheckEvaluation,
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    AssetRecordsFilter,
    DagsterEventType,
    DagsterInstance,
    EventLogRecord,
    MetadataValue,
    PartitionsDefinition,
    PreviewWarning,
    ScheduleDefinition,
    multi_asset_check,
)

# Private: AssetCheckEvaluation's public `target_materialization_data` (which ties a day's evaluation to that
# day's materialization) takes this type, but Dagster exports no public name for it.
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

from cratedb_export.core.config import ExportSpec
from cratedb_export.orchestration.freshness import build_freshness_checks
from cratedb_export.orchestration.names import DEFAULT_NAMES, ExportNames

CHECK = "matches_source"
EMPTY_DAY_CHECK = "no_unexpected_empty_day"
LOOKBACK_DAYS = 7  # how many days before an empty day are looked at
FLUSH_EVERY = 200  # evaluations waiting for their materialization's storage id
FLUSH_SECONDS = 5.0


def check_specs(key: AssetKey, partitions_def: PartitionsDefinition) -> list[AssetCheckSpec]:
    """The checks evaluated inside the export step: `matches_source`, one evaluation per verified day."""
    with warnings.catch_warnings():
        # Partitioned check specs are a preview feature of Dagster 1.12.14+; the warning says so at every
        # load of the code location, which would teach users to ignore warnings. This is the one we accept.
        warnings.simplefilter("ignore", PreviewWarning)
        return [
            AssetCheckSpec(
                CHECK,
                asset=key,
                partitions_def=partitions_def,
                description="The day's exported rows equal the source's rows for that day (COPY rowcount, "
                "source count and rows read back); evaluated for each day on its own partition",
            )
        ]


def empty_day_check_spec(key: AssetKey) -> AssetCheckSpec:
    return AssetCheckSpec(
        EMPTY_DAY_CHECK,
        asset=key,
        description=f"WARN when a day exported 0 rows while the {LOOKBACK_DAYS} days before it had rows "
        "(an upstream outage, or a timestamp column that stopped being filled); evaluated by every export run",
    )


def build_export_checks(
    specs: Sequence[ExportSpec], names: ExportNames = DEFAULT_NAMES
) -> tuple[list[AssetChecksDefinition], list[ScheduleDefinition]]:
    """The checks beside the export step's own: the empty-day warning, and `yesterday_landed` with the
    schedules that evaluate it at each export's deadline (freshness.py)."""
    landed, schedules = build_freshness_checks(specs, names)
    return [*build_empty_day_checks([AssetKey(spec.asset_path) for spec in specs], names), *landed], schedules


def build_empty_day_checks(keys: Sequence[AssetKey], names: ExportNames = DEFAULT_NAMES) -> list[AssetChecksDefinition]:
    """`no_unexpected_empty_day` as a check of its own: the export run logs its evaluations (one per asset
    and run); run on its own ("Execute" in the UI) it judges each asset's latest exported day.

    It is not one of the export step's check specs: Dagster plans a partitioned asset's in-step checks
    once per partition of the run, and a year's backfill would then need 3,650 evaluations of it.
    """
    if not keys:
        return []

    @multi_asset_check(
        name=names.op(EMPTY_DAY_CHECK),
        specs=[empty_day_check_spec(key) for key in keys],
        can_subset=True,
    )
    def no_unexpected_empty_day(context: AssetCheckExecutionContext) -> Iterator[AssetCheckResult]:
        for check_key in sorted(context.selected_asset_check_keys, key=str):
            evaluation = empty_day_evaluation(context.instance, check_key.asset_key, None)
            yield AssetCheckResult(
                asset_key=check_key.asset_key,
                check_name=EMPTY_DAY_CHECK,
                passed=evaluation.passed if evaluation else True,
                severity=AssetCheckSeverity.WARN,
                metadata=evaluation.metadata if evaluation else {},
                description=evaluation.description if evaluation else "no day exported yet",
            )

    return [no_unexpected_empty_day]


def day_evaluation(
    key: AssetKey,
    day: date,
    counts: Mapping[str, int | None],
    *,
    passed: bool,
    target: AssetCheckEvaluationTargetMaterializationData | None = None,
) -> AssetCheckEvaluation:
    """One day's `matches_source` evaluation on the day's partition, with the three numbers."""
    return AssetCheckEvaluation(
        asset_key=key,
        check_name=CHECK,
        passed=passed,
        partition=day.isoformat(),
        severity=AssetCheckSeverity.ERROR,
        metadata={"day": day.isoformat(), **{k: v for k, v in counts.items() if v is not None}},
        description=None if passed else f"export of {day.isoformat()} does not match the source",
        target_materialization_data=target,
    )


@dataclass(frozen=True)
class _Pending:
    key: AssetKey
    day: date
    counts: Mapping[str, int | None]
    passed: bool


class DayChecks:
    """Collects the run's verified days and turns them into per-partition evaluations, in batches."""

    def __init__(self, instance: DagsterInstance, run_id: str) -> None:
        self._instance = instance
        self._run_id = run_id
        self._pending: list[_Pending] = []
        self._last_flush = time.monotonic()

    def add(self, key: AssetKey, day: date, counts: Mapping[str, int | None], *, passed: bool) -> None:
        """Call after the day's materialization (if it passed) has been yielded."""
        self._pending.append(_Pending(key, day, counts, passed))

    def due(self) -> bool:
        return len(self._pending) >= FLUSH_EVERY or (
            bool(self._pending) and time.monotonic() - self._last_flush > FLUSH_SECONDS
        )

    def flush(self, keys: Iterable[AssetKey] | None = None) -> Iterator[AssetCheckEvaluation]:
        """The pending evaluations (of `keys` only, if given), each pointing at its day's materialization."""
        wanted = set(keys) if keys is not None else None
        taken = [p for p in self._pending if wanted is None or p.key in wanted]
        if not taken:
            return
        self._pending = [p for p in self._pending if wanted is not None and p.key not in wanted]
        self._last_flush = time.monotonic()
        by_key: dict[AssetKey, list[_Pending]] = defaultdict(list)
        for pending in taken:
            by_key[pending.key].append(pending)
        for key, items in by_key.items():
            targets = self._targets(key, [p.day for p in items if p.passed])
            for p in items:
                target = targets.get(p.day) if p.passed else self._latest(key, p.day)
                yield day_evaluation(key, p.day, p.counts, passed=p.passed, target=target)

    def _targets(
        self, key: AssetKey, days: Sequence[date]
    ) -> dict[date, AssetCheckEvaluationTargetMaterializationData]:
        """This run's materializations of `days`: each is its day's newest, so the newest len(days) are it."""
        if not days:
            return {}
        records = self._instance.fetch_materializations(
            AssetRecordsFilter(asset_key=key, asset_partitions=[d.isoformat() for d in days]), limit=len(days)
        ).records
        found: dict[date, AssetCheckEvaluationTargetMaterializationData] = {}
        for record in records:
            if record.run_id != self._run_id or not record.partition_key:
                continue
            day = date.fromisoformat(record.partition_key)
            if day not in found or found[day].storage_id < record.storage_id:
                found[day] = _target(record)
        return found

    def _latest(self, key: AssetKey, day: date) -> AssetCheckEvaluationTargetMaterializationData | None:
        """A mismatching day's latest materialization, from an earlier run (its files are gone now: the
        failed check on it is what makes that partition red)."""
        records = self._instance.fetch_materializations(
            AssetRecordsFilter(asset_key=key, asset_partitions=[day.isoformat()]), limit=1
        ).records
        return _target(records[0]) if records else None


def _target(record: EventLogRecord) -> AssetCheckEvaluationTargetMaterializationData:
    return AssetCheckEvaluationTargetMaterializationData(
        storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp
    )


def empty_day_evaluation(
    instance: DagsterInstance, key: AssetKey, rows_by_day: Mapping[date, int] | None
) -> AssetCheckEvaluation | None:
    """The `no_unexpected_empty_day` evaluation for one asset, from the rows of a run's verified days
    (None: the asset's latest materialized day, from the instance).

    A day is flagged when it exported 0 rows and the LOOKBACK_DAYS days before it, as far as they are
    known (this run's verified days first, then the instance's latest materialization of each), had rows.
    """
    if rows_by_day is None:
        rows_by_day = _latest_day_rows(instance, key)
    if not rows_by_day:
        return None
    empty = sorted(day for day, rows in rows_by_day.items() if rows == 0)
    known: dict[date, int] = dict(rows_by_day)
    if empty:
        wanted = {e - timedelta(days=n) for e in empty for n in range(1, LOOKBACK_DAYS + 1)} - set(known)
        known.update(_recorded_row_counts(instance, key, wanted))
    flagged: dict[str, dict] = {}
    for day in empty:
        before = {
            (day - timedelta(days=n)).isoformat(): known[day - timedelta(days=n)]
            for n in range(LOOKBACK_DAYS, 0, -1)
            if day - timedelta(days=n) in known
        }
        if sum(before.values()) > 0:
            flagged[day.isoformat()] = {
                "rows": 0,
                "preceding_days": before,
                "preceding_mean": round(sum(before.values()) / len(before), 1),
            }
    days = sorted(rows_by_day)
    metadata: dict[str, MetadataValue] = {
        "days_checked": MetadataValue.int(len(days)),
        "first_day": MetadataValue.text(days[0].isoformat()),
        "last_day": MetadataValue.text(days[-1].isoformat()),
        "empty_days": MetadataValue.int(len(empty)),
    }
    if flagged:
        metadata["unexpected_empty_days"] = MetadataValue.json(flagged)
        first, numbers = next(iter(flagged.items()))
        description = (
            f"{len(flagged)} day(s) exported 0 rows while the days before had rows, e.g. {first}: 0 rows after "
            f"{numbers['preceding_mean']} a day on average ({', '.join(map(str, numbers['preceding_days'].values()))})"
        )
    else:
        description = None
    return AssetCheckEvaluation(
        asset_key=key,
        check_name=EMPTY_DAY_CHECK,
        passed=not flagged,
        severity=AssetCheckSeverity.WARN,
        metadata=metadata,
        description=description,
    )


def _latest_day_rows(instance: DagsterInstance, key: AssetKey) -> dict[date, int]:
    records = instance.fetch_materializations(key, limit=1).records
    if not records or not records[0].partition_key or not records[0].asset_materialization:
        return {}
    rows = _row_count(records[0].asset_materialization.metadata)
    return {date.fromisoformat(records[0].partition_key): rows} if rows is not None else {}


def _recorded_row_counts(instance: DagsterInstance, key: AssetKey, days: set[date]) -> dict[date, int]:
    """`dagster/row_count` of each day's latest materialization in the instance (two queries in all)."""
    if not days:
        return {}
    latest = instance.get_latest_storage_id_by_partition(
        key, DagsterEventType.ASSET_MATERIALIZATION, partitions={d.isoformat() for d in days}
    )
    if not latest:
        return {}
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=key, storage_ids=list(latest.values())), limit=len(latest)
    ).records
    counts = {}
    for record in records:
        materialization = record.asset_materialization
        rows = _row_count(materialization.metadata) if materialization else None
        if rows is not None and record.partition_key:
            counts[date.fromisoformat(record.partition_key)] = rows
    return counts


def _row_count(metadata: Mapping[str, MetadataValue]) -> int | None:
    value = metadata.get("dagster/row_count")
    return int(value.value) if value is not None and isinstance(value.value, int | float) else None
