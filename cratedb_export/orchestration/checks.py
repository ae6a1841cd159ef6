"""The export's checks, all per day and all evaluated by the export step itself.

- `matches_source` (ERROR): the day's three numbers agree — COPY's rowcount, the source's count and the rows
  read back — compared when the day was verified;
- `no_unexpected_empty_day` (WARN): the day exported 0 rows while the days before it had rows (an upstream
  outage, or a timestamp column that stopped being filled);
- `yesterday_landed` (freshness.py): the day landed by its deadline.

Each is partitioned like its asset, so Dagster plans it for each day of a run that includes it, and the
export step evaluates it on that day's own partition as the day finishes: nothing is left planned (the UI's
"Skipped"), and no check runs as a step of its own that would be skipped beside the export. A day that
failed before its numbers could be compared (a COPY error, say) gets no `matches_source` evaluation, and
Dagster shows that planned check as not executed. A run that selects only checks (the deadline schedule, or
"Execute" in the UI) judges its day from the instance without exporting anything.

The `matches_source` evaluations of a range run are written in batches, each pointing at its day's
materialization (one query per asset per batch), so the partition's check status stays current in the UI.
The daily job selects `matches_source` and the empty-day warning; `yesterday_landed` has its own schedule
at the deadline.
"""

import time
import warnings
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from dagster import (
    AssetCheckEvaluation,
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
)

# Private: AssetCheckEvaluation's public `target_materialization_data` (which ties a day's evaluation to that
# day's materialization) takes this type, but Dagster exports no public name for it.
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

from cratedb_export.core.config import ExportSpec
from cratedb_export.core.verification import counts_agree
from cratedb_export.orchestration.freshness import landed_check_spec

CHECK = "matches_source"
EMPTY_DAY_CHECK = "no_unexpected_empty_day"
LOOKBACK_DAYS = 7  # how many days before an empty day are looked at
FLUSH_EVERY = 200  # evaluations waiting for their materialization's storage id
FLUSH_SECONDS = 5.0


def check_specs(spec: ExportSpec, key: AssetKey, partitions_def: PartitionsDefinition) -> list[AssetCheckSpec]:
    """The export's per-day checks, evaluated inside the export step (see the module docstring)."""
    with warnings.catch_warnings():
        # Partitioned check specs are a preview feature of Dagster 1.12.14+; the warning says so at every
        # load of the code location, which would teach users to ignore warnings. This is the one we accept.
        warnings.simplefilter("ignore", PreviewWarning)
        specs = [
            AssetCheckSpec(
                CHECK,
                asset=key,
                partitions_def=partitions_def,
                description="The day's exported rows equal the source's rows for that day (COPY rowcount, "
                "source count and rows read back); evaluated for each day on its own partition",
            ),
            AssetCheckSpec(
                EMPTY_DAY_CHECK,
                asset=key,
                partitions_def=partitions_def,
                description=f"WARN when the day exported 0 rows while the {LOOKBACK_DAYS} days before it had "
                "rows (an upstream outage, or a timestamp column that stopped being filled)",
            ),
        ]
        landed = landed_check_spec(spec, key, partitions_def)
    return [*specs, landed] if landed is not None else specs


def day_evaluation(
    key: AssetKey,
    day: date,
    counts: Mapping[str, int | None],
    *,
    passed: bool,
    target: AssetCheckEvaluationTargetMaterializationData | None = None,
    partition: str | None = "",
    description: str | None = None,
) -> AssetCheckEvaluation:
    """One day's `matches_source` evaluation on the day's partition (or `partition`), with the three numbers."""
    return AssetCheckEvaluation(
        asset_key=key,
        check_name=CHECK,
        passed=passed,
        partition=day.isoformat() if partition == "" else partition,
        severity=AssetCheckSeverity.ERROR,
        metadata={"day": day.isoformat(), **{k: v for k, v in counts.items() if v is not None}},
        description=description or (None if passed else f"export of {day.isoformat()} does not match the source"),
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
    instance: DagsterInstance, key: AssetKey, day: date, rows_by_day: Mapping[date, int], partition: str | None
) -> AssetCheckEvaluation:
    """`no_unexpected_empty_day` for one day, from its rows (this run's verified days, else the instance).

    The day is flagged when it exported 0 rows and the LOOKBACK_DAYS days before it, as far as they are
    known (this run's verified days first, then each day's latest materialization in the instance), had rows.
    """
    wanted = {day - timedelta(days=n) for n in range(0, LOOKBACK_DAYS + 1)}
    known: dict[date, int] = {d: rows for d, rows in rows_by_day.items() if d in wanted}
    rows = known.get(day)
    if rows is None:
        known.update(_recorded_row_counts(instance, key, {day}))
        rows = known.get(day)
    metadata: dict[str, MetadataValue] = {"day": MetadataValue.text(day.isoformat())}
    if rows is None:
        return AssetCheckEvaluation(
            asset_key=key,
            check_name=EMPTY_DAY_CHECK,
            passed=True,
            partition=partition,
            severity=AssetCheckSeverity.WARN,
            metadata=metadata,
            description=f"{day} has not been exported",
        )
    metadata["rows"] = MetadataValue.int(rows)
    if rows == 0:
        known.update(_recorded_row_counts(instance, key, wanted - set(known)))
    before = {
        (day - timedelta(days=n)).isoformat(): known[day - timedelta(days=n)]
        for n in range(LOOKBACK_DAYS, 0, -1)
        if day - timedelta(days=n) in known
    }
    flagged = rows == 0 and sum(before.values()) > 0
    description = None
    if flagged:
        mean = round(sum(before.values()) / len(before), 1)
        metadata["preceding_days"] = MetadataValue.json(before)
        metadata["preceding_mean"] = MetadataValue.float(mean)
        description = (
            f"{day} exported 0 rows after {mean} a day on average in the days before "
            f"({', '.join(map(str, before.values()))}): an upstream outage, or a timestamp column no longer filled?"
        )
    return AssetCheckEvaluation(
        asset_key=key,
        check_name=EMPTY_DAY_CHECK,
        passed=not flagged,
        partition=partition,
        severity=AssetCheckSeverity.WARN,
        metadata=metadata,
        description=description,
    )


def latest_exported_day(instance: DagsterInstance, key: AssetKey) -> date | None:
    """The day of the asset's latest materialization (what a check run on its own judges)."""
    records = instance.fetch_materializations(key, limit=1).records
    return date.fromisoformat(records[0].partition_key) if records and records[0].partition_key else None


def recorded_day_evaluation(
    instance: DagsterInstance, key: AssetKey, day: date, partition: str | None
) -> AssetCheckEvaluation:
    """`matches_source` for a day from the numbers its latest materialization recorded (a check run on its
    own re-reads nothing: the export compared them when it verified the day)."""
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=key, asset_partitions=[day.isoformat()]), limit=1
    ).records
    metadata = records[0].asset_materialization.metadata if records and records[0].asset_materialization else {}
    counts = {
        name: int(value.value)
        for name, value in metadata.items()
        if name in ("copy_rowcount", "source_rows", "rows_read_back") and isinstance(value.value, int | float)
    }
    return day_evaluation(
        key,
        day,
        counts,
        passed=bool(records) and counts_agree(counts),
        target=_target(records[0]) if records else None,
        partition=partition,
        description=None if records else f"{day} has not been exported",
    )


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
