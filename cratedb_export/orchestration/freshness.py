"""Did each day land by its deadline? The per-day check `yesterday_landed`.

With `freshness_deadline: "02:00"`, day D is due at 02:00 of D+1 in the export's time zone, two hours after
the day ends and the daily schedule (00:00) started exporting it. The check is partitioned like its asset
and judges one day on that day's partition:

- at the deadline, a schedule judges the day that is due (the latest day whose deadline has passed): it
  passes when that day is exported, verified and marked, and fails with severity ERROR otherwise (the
  partition and the asset turn red), naming why (never exported, its latest export failed, still running);
- when a run that includes the check exports a day, the day is judged as it lands: before its deadline it
  passes; after it, it fails with severity WARN and says by how much (a backfill of old days lands late by
  definition, and says so).

Dagster's FreshnessPolicy judges an asset's latest materialization, whichever partition it is of: a
backfill of a day in 2022 would make the export look fresh while yesterday is missing. Hence this check.
The deadline schedule's runs are the daily job's checks alone on the due day's partition, so the evaluation
is the one Dagster planned for that partition (nothing is left "Skipped"), and carry the judged moment as a
tag, so a late or re-executed tick judges the same day. The check needs no resource and reads only the Dagster instance.
"""

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from dagster import (
    AssetCheckEvaluation,
    AssetCheckKey,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    AssetPartitionStatus,
    AssetRecordsFilter,
    AssetsDefinition,
    DagsterInstance,
    DefaultScheduleStatus,
    MetadataValue,
    PartitionsDefinition,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from cratedb_export.core.config import ExportSpec
from cratedb_export.orchestration.names import DEFAULT_NAMES, ExportNames, ungrouped
from cratedb_export.orchestration.partitions import partitions_for

# No `from __future__ import annotations` here: Dagster reads the check functions' context annotations.
if TYPE_CHECKING:
    # Private, for the annotation only: what the public define_asset_job returns has no public name.
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

CHECK = "yesterday_landed"
DUE_AT_TAG = "cratedb_export/due_at"  # ISO instant the check judges (set by the deadline schedule)
PARTITION_TAG = "dagster/partition"


@dataclass(frozen=True)
class Deadline:
    """HH:MM after the end of the day, in the export's time zone (HH may exceed 23: days later)."""

    timezone: str
    hours: int
    minutes: int

    @classmethod
    def of(cls, spec: ExportSpec) -> "Deadline | None":
        if spec.freshness_deadline is None:
            return None
        hours, minutes = (int(part) for part in spec.freshness_deadline.split(":"))
        return cls(spec.timezone, hours, minutes)

    @property
    def text(self) -> str:
        return f"{self.hours:02d}:{self.minutes:02d}"

    @property
    def cron(self) -> str:
        return f"{self.minutes} {self.hours % 24} * * *"

    def for_day(self, day: date) -> datetime:
        """When `day` is due: wall-clock time in the export's zone, like the schedule's cron."""
        wall = datetime.combine(day + timedelta(days=1 + self.hours // 24), time(self.hours % 24, self.minutes))
        return wall.replace(tzinfo=ZoneInfo(self.timezone))

    def due_day(self, at: datetime) -> date:
        """The latest day whose deadline is not after `at`."""
        day = at.astimezone(ZoneInfo(self.timezone)).date() - timedelta(days=1)
        while self.for_day(day) > at:
            day -= timedelta(days=1)
        return day


def landed_check_spec(spec: ExportSpec, key: AssetKey, partitions_def: PartitionsDefinition) -> AssetCheckSpec | None:
    deadline = Deadline.of(spec)
    if deadline is None:
        return None
    return AssetCheckSpec(
        CHECK,
        asset=key,
        partitions_def=partitions_def,
        description=f"The day landed (exported, verified, marked) by {deadline.text} after its end "
        f"({deadline.timezone}); judged at that deadline for the day due, and as each day lands",
        metadata={"freshness_deadline": deadline.text, "timezone": deadline.timezone},
    )


def landed_as_exported(
    key: AssetKey, day: date, deadline: Deadline, landed: datetime | None, partition: str | None
) -> AssetCheckEvaluation:
    """The day's evaluation as the run that exported it (or failed to) judges it: on time, late, or missing."""
    due = deadline.for_day(day)
    metadata: dict = {"day": MetadataValue.text(day.isoformat()), "deadline": MetadataValue.timestamp(due)}
    if landed is None:
        late = datetime.now(UTC) > due
        return _evaluation(
            key,
            partition,
            metadata,
            f"{day} did not land: its export in this run failed (deadline {_at(due)})",
            passed=False,
            severity=AssetCheckSeverity.ERROR if late else AssetCheckSeverity.WARN,
        )
    metadata["landed_at"] = MetadataValue.timestamp(landed)
    if landed <= due:
        return _evaluation(
            key, partition, metadata, f"{day} landed at {_at(landed)}, before its deadline {_at(due)}", passed=True
        )
    metadata["late_by_minutes"] = MetadataValue.float(round((landed - due).total_seconds() / 60, 1))
    return _evaluation(
        key,
        partition,
        metadata,
        f"{day} landed late: at {_at(landed)}, {_duration(landed - due)} after its deadline {_at(due)}",
        passed=False,
        severity=AssetCheckSeverity.WARN,
    )


def landed_at_deadline(
    instance: DagsterInstance, spec: ExportSpec, deadline: Deadline, day: date, at: datetime, partition: str | None
) -> AssetCheckEvaluation:
    """Whether `day` (the day due at `at`) is materialized, with when it landed and what it holds."""
    key = AssetKey(spec.asset_path)
    due = deadline.for_day(day)
    metadata: dict = {
        "day": MetadataValue.text(day.isoformat()),
        "deadline": MetadataValue.timestamp(due),
        "judged_at": MetadataValue.timestamp(at),
    }
    if day < spec.start_date:
        return _evaluation(
            key,
            partition,
            metadata,
            f"no day is due yet (the first partition, {spec.start_date}, is due {_at(due)})",
            passed=True,
        )
    statuses = instance.get_status_by_partition(key, [day.isoformat()], partitions_for(spec)) or {}
    status = statuses.get(day.isoformat())
    metadata["partition_status"] = MetadataValue.text(status.value if status else "MISSING")
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=key, asset_partitions=[day.isoformat()]), limit=1
    ).records
    passed = status == AssetPartitionStatus.MATERIALIZED
    description = f"{day} is not there: never exported (deadline {_at(due)}, judged {_at(at)})"
    if records:
        landed = datetime.fromtimestamp(records[0].timestamp, UTC)
        metadata["landed_at"] = MetadataValue.timestamp(landed)
        materialization = records[0].asset_materialization
        rows = materialization.metadata.get("dagster/row_count") if materialization else None
        if rows is not None:
            metadata["dagster/row_count"] = rows
        if passed:
            description = f"{day} landed at {_at(landed)}, before its deadline {_at(due)}"
            if landed > due:  # its latest export is after the deadline: say when, without calling it on time
                description = f"{day} is there (last exported {_at(landed)}; deadline {_at(due)})"
    if status == AssetPartitionStatus.FAILED:
        description = f"{day} is not there: its latest export failed (deadline {_at(due)}, judged {_at(at)})"
    elif status == AssetPartitionStatus.IN_PROGRESS:
        description = f"{day} is not there yet: its export is still running (deadline {_at(due)}, judged {_at(at)})"
    return _evaluation(key, partition, metadata, description, passed=passed, severity=AssetCheckSeverity.ERROR)


def _evaluation(
    key: AssetKey,
    partition: str | None,
    metadata: dict,
    description: str,
    *,
    passed: bool,
    severity: AssetCheckSeverity = AssetCheckSeverity.ERROR,
) -> AssetCheckEvaluation:
    return AssetCheckEvaluation(
        asset_key=key,
        check_name=CHECK,
        passed=passed,
        partition=partition,
        severity=severity,
        metadata=metadata,
        description=description,
    )


def build_deadline_schedules(
    export_assets: Sequence[AssetsDefinition],
    specs: Sequence[ExportSpec],
    jobs: Mapping[object, "UnresolvedAssetJobDefinition"],
    names: ExportNames = DEFAULT_NAMES,
) -> list[ScheduleDefinition]:
    """One schedule per partitions definition and deadline: at the deadline, judge the day due.

    Each runs the `yesterday_landed` checks alone, on the daily job of their partitions definition (`jobs`,
    schedules.py): a job of its own would cost the code location another resolution over the asset graph.
    """
    by_key = {AssetKey(spec.asset_path): spec for spec in specs}
    # By partitions definition (all table groups sharing it, named after their ops less the group) and deadline.
    groups: dict[tuple[object, Deadline], list[AssetCheckKey]] = defaultdict(list)
    op_names: dict[object, str] = {}
    sharing = Counter(assets_def.partitions_def for assets_def in export_assets)
    for assets_def in export_assets:
        shared = sharing[assets_def.partitions_def]
        op_names.setdefault(assets_def.partitions_def, ungrouped(assets_def.op.name, shared))
        for check_key in assets_def.check_keys:
            spec = by_key.get(check_key.asset_key)
            deadline = Deadline.of(spec) if spec is not None else None
            if check_key.name == CHECK and deadline is not None:
                groups[(assets_def.partitions_def, deadline)].append(check_key)
    schedules = []
    for (partitions, deadline), keys in groups.items():
        op_name = op_names[partitions]
        name = names.op(CHECK) if len(groups) == 1 else f"{CHECK}_{op_name}_{_slug(deadline)}"
        first_day = min(by_key[k.asset_key].start_date for k in keys)
        schedules.append(
            _deadline_schedule(f"{name}_schedule", deadline, jobs[partitions], sorted(keys, key=str), first_day)
        )
    return schedules


def _slug(deadline: Deadline) -> str:
    zone = "".join(c if c.isalnum() else "_" for c in deadline.timezone.lower())
    return f"{zone}_{deadline.hours:02d}{deadline.minutes:02d}"


def judged_at(tag: str | None) -> datetime:
    return datetime.fromisoformat(tag) if tag else datetime.now(UTC)


def _at(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M %Z}"


def _duration(delta: timedelta) -> str:
    minutes = delta.total_seconds() / 60
    if minutes < 120:
        return f"{minutes:.0f} min"
    if minutes < 48 * 60:
        return f"{minutes / 60:.1f} h"
    return f"{minutes / 1440:.0f} days"


def _deadline_schedule(
    name: str,
    deadline: Deadline,
    job: "UnresolvedAssetJobDefinition",
    checks: Sequence[AssetCheckKey],
    first_day: date,
) -> ScheduleDefinition:
    @schedule(
        name=name,
        cron_schedule=deadline.cron,
        execution_timezone=deadline.timezone,
        job=job,
        default_status=DefaultScheduleStatus.RUNNING,
        description=f"At {deadline.text} ({deadline.timezone}): did the day that is now due land?",
    )
    def _at_deadline(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
        at = context.scheduled_execution_time or datetime.now(UTC)
        day = deadline.due_day(at)
        if day < first_day:
            return SkipReason(
                f"no day is due yet: the first partition, {first_day}, is due {_at(deadline.for_day(first_day))}"
            )
        # The checks alone, on the due day's partition: the planned evaluation is then that day's.
        return RunRequest(
            run_key=at.isoformat(),
            partition_key=day.isoformat(),
            asset_selection=[],
            asset_check_keys=checks,
            tags={DUE_AT_TAG: at.astimezone(UTC).isoformat()},
        )

    return _at_deadline
