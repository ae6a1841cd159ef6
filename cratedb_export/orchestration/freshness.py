"""Is yesterday there? The check `yesterday_landed`, evaluated by a schedule at each export's deadline.

Dagster's FreshnessPolicy judges an asset's latest materialization, whichever partition it is of: a
backfill of a day in 2022 would make the export look fresh while yesterday is missing. (Dagster's
`build_time_partition_freshness_checks` does judge the partition, but is superseded in 1.13 and warns at
every load.) So this check looks up one partition, the day that is due: with `freshness_deadline:
"02:00"`, day D is due at 02:00 of D+1 in the export's time zone, two hours after the day ends and the
daily schedule (00:00) started exporting it. At time T the due day is the latest day whose deadline is
not after T. The check passes when that day's partition is materialized — which for this project means
exported, verified and marked — and fails with severity ERROR otherwise, so the asset turns red.

One schedule per distinct (time zone, deadline) runs the checks of its exports at the deadline; it
starts RUNNING like the export schedule. The time it was due for is passed to the run as a tag, so a
late or re-executed tick judges the same day; run by hand ("Execute" in the UI) the check judges the day
due at that moment. The check needs no resource and reads only the Dagster instance.
"""

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    AssetPartitionStatus,
    AssetRecordsFilter,
    AssetSelection,
    DagsterInstance,
    DefaultScheduleStatus,
    MetadataValue,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    define_asset_job,
    multi_asset_check,
    schedule,
)

from cratedb_export.core.config import ExportSpec
from cratedb_export.orchestration.names import DEFAULT_NAMES, ExportNames
from cratedb_export.orchestration.partitions import partitions_for

# No `from __future__ import annotations` here: Dagster reads the check functions' context annotations.
if TYPE_CHECKING:
    # Private, for the annotation only: what the public define_asset_job returns has no public name.
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

CHECK = "yesterday_landed"
DUE_AT_TAG = "cratedb_export/due_at"  # ISO instant the check judges (set by the deadline schedule)


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


def build_freshness_checks(
    specs: Sequence[ExportSpec], names: ExportNames = DEFAULT_NAMES
) -> tuple[list[AssetChecksDefinition], list[ScheduleDefinition]]:
    """`yesterday_landed` for every export with a deadline, and the schedules that evaluate them."""
    groups: dict[Deadline, list[ExportSpec]] = defaultdict(list)
    for spec in specs:
        deadline = Deadline.of(spec)
        if deadline is not None:
            groups[deadline].append(spec)
    checks, schedules = [], []
    for deadline, members in groups.items():
        name = names.op(CHECK if len(groups) == 1 else f"{CHECK}_{_slug(deadline)}")
        check_def = _check_definition(name, deadline, members)
        job = define_asset_job(
            name=f"{name}_job",
            selection=AssetSelection.checks(check_def),
            description=f"Check at {deadline.text} ({deadline.timezone}) that each export's previous day landed",
        )
        checks.append(check_def)
        schedules.append(_deadline_schedule(f"{name}_schedule", deadline, job))
    return checks, schedules


def _slug(deadline: Deadline) -> str:
    zone = "".join(c if c.isalnum() else "_" for c in deadline.timezone.lower())
    return f"{zone}_{deadline.hours:02d}{deadline.minutes:02d}"


def _check_definition(name: str, deadline: Deadline, specs: list[ExportSpec]) -> AssetChecksDefinition:
    by_key = {AssetKey(spec.asset_path): spec for spec in specs}

    @multi_asset_check(
        name=name,
        specs=[
            AssetCheckSpec(
                CHECK,
                asset=key,
                description=f"The previous day's partition is exported and verified by {deadline.text} after "
                f"the day's end ({deadline.timezone}); a backfill of an older day does not count",
                metadata={"freshness_deadline": deadline.text, "timezone": deadline.timezone},
            )
            for key in by_key
        ],
        can_subset=True,
    )
    def yesterday_landed(context: AssetCheckExecutionContext) -> Iterator[AssetCheckResult]:  # Dagster reads the hint
        at = _judged_at(context.run.tags.get(DUE_AT_TAG))
        for check_key in sorted(context.selected_asset_check_keys, key=str):
            spec = by_key.get(check_key.asset_key)
            if spec is not None:
                yield evaluate(context.instance, spec, deadline, at)

    return yesterday_landed


def _judged_at(tag: str | None) -> datetime:
    return datetime.fromisoformat(tag) if tag else datetime.now(UTC)


def evaluate(instance: DagsterInstance, spec: ExportSpec, deadline: Deadline, at: datetime) -> AssetCheckResult:
    """Whether the day due at `at` is materialized, with when it landed and what it holds."""

    key = AssetKey(spec.asset_path)
    day = deadline.due_day(at)
    due = deadline.for_day(day)
    metadata: dict = {
        "day": MetadataValue.text(day.isoformat()),
        "deadline": MetadataValue.timestamp(due),
        "judged_at": MetadataValue.timestamp(at),
    }
    if day < spec.start_date:
        return AssetCheckResult(
            asset_key=key,
            check_name=CHECK,
            passed=True,
            metadata=metadata,
            description=f"no day is due yet (the first partition, {spec.start_date}, is due {due:%Y-%m-%d %H:%M})",
        )
    statuses = instance.get_status_by_partition(key, [day.isoformat()], partitions_for(spec)) or {}
    status = statuses.get(day.isoformat())
    metadata["partition_status"] = MetadataValue.text(status.value if status else "MISSING")
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=key, asset_partitions=[day.isoformat()]), limit=1
    ).records
    if records:
        landed = datetime.fromtimestamp(records[0].timestamp, UTC)
        metadata["landed_at"] = MetadataValue.timestamp(landed)
        materialization = records[0].asset_materialization
        rows = materialization.metadata.get("dagster/row_count") if materialization else None
        if rows is not None:
            metadata["dagster/row_count"] = rows
        if landed > due:
            metadata["late_by_minutes"] = MetadataValue.float(round((landed - due).total_seconds() / 60, 1))
    passed = status == AssetPartitionStatus.MATERIALIZED
    if passed:
        description = f"{day} landed"
    elif status == AssetPartitionStatus.FAILED:
        description = f"{day} is not there: its latest export failed (deadline {due:%Y-%m-%d %H:%M %Z})"
    elif status == AssetPartitionStatus.IN_PROGRESS:
        description = f"{day} is not there yet: its export is still running (deadline {due:%Y-%m-%d %H:%M %Z})"
    else:
        description = f"{day} is not there: never exported (deadline {due:%Y-%m-%d %H:%M %Z})"
    return AssetCheckResult(
        asset_key=key,
        check_name=CHECK,
        passed=passed,
        severity=AssetCheckSeverity.ERROR,
        metadata=metadata,
        description=description,
    )


def _deadline_schedule(name: str, deadline: Deadline, job: "UnresolvedAssetJobDefinition") -> ScheduleDefinition:
    @schedule(
        name=name,
        cron_schedule=deadline.cron,
        execution_timezone=deadline.timezone,
        job=job,
        default_status=DefaultScheduleStatus.RUNNING,
        description=f"At {deadline.text} ({deadline.timezone}): did the previous day of each export land?",
    )
    def _at_deadline(context: ScheduleEvaluationContext) -> RunRequest:
        at = context.scheduled_execution_time or datetime.now(UTC)
        return RunRequest(run_key=at.isoformat(), tags={DUE_AT_TAG: at.astimezone(UTC).isoformat()})

    return _at_deadline
