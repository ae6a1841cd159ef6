"""Which days of a table are due for deletion, what state each is in, and how each can go.

Due: days D in [start_date, today - keep_days) in the export's time zone. What each day holds is learnt
at once: its rows from one grouped count over the whole span (core/source.py), its archive and any deletion
record from one S3 listing of the span's day directories. Whether a day can go as part of a whole
partition depends on the table: partitioned by one generated `date_trunc('<unit>', <timestamp column>)`
column (no time zone argument: UTC bounds), a partition whose bounds are exactly whole days of the export
can be dropped; otherwise days are deleted by their window.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from cratedb_export.core.config import ExportSpec
from cratedb_export.core.cratedb import CrateDB
from cratedb_export.core.retention.record import PartitionRef
from cratedb_export.core.schema import SourceTable
from cratedb_export.core.statement import generated_columns_statement, partitioned_by_statement, partitions_statement
from cratedb_export.core.storage import DELETION_RECORD, LEASE, SUCCESS, ObjectStore
from cratedb_export.core.window import DayWindow

_DATE_TRUNC = re.compile(r"""^date_trunc\(\s*'(?P<unit>[a-z]+)'\s*,\s*"?(?P<column>[A-Za-z_][A-Za-z0-9_]*)"?\s*\)$""")
_UNITS = ("second", "minute", "hour", "day", "week", "month", "quarter", "year")


@dataclass
class DayState:
    """One due day as found: its window for the DELETE, its rows now, its archive marker and record."""

    day: date
    window: DayWindow
    rows: int
    archived: bool  # `_SUCCESS` was listed
    leased: bool = False  # an `_EXPORTING` lease was listed
    record: dict[str, Any] | None = None  # the deletion record, when the day has one
    partition: PartitionRef | None = None  # the partition holding exactly whole days, this among them

    @property
    def state(self) -> str | None:
        return None if self.record is None else str(self.record.get("state"))


@dataclass
class Partitioning:
    """How the table is partitioned, as far as retention can use it; `why_not` when it cannot."""

    column: str | None = None
    unit: str | None = None
    partitions: list[PartitionRef] = field(default_factory=list)
    why_not: str | None = None


def cutoff_day(spec: ExportSpec, keep_days: int, today: date | None = None) -> date:
    """The first day kept: days before it are due."""
    today = today or datetime.now(ZoneInfo(spec.timezone)).date()
    return today - timedelta(days=keep_days)


def due_days(spec: ExportSpec, keep_days: int, today: date | None = None) -> list[date]:
    last = cutoff_day(spec, keep_days, today)
    return [spec.start_date + timedelta(days=n) for n in range((last - spec.start_date).days)]


def read_partitioning(crate: CrateDB, table: SourceTable, log: Callable[[str], None]) -> Partitioning:
    """The table's partitions usable for whole drops: PARTITIONED BY one generated date_trunc column of the
    timestamp column, without a time zone argument (its values are UTC bounds)."""
    spec = table.spec
    reply = crate.execute(partitioned_by_statement(spec), what=f"reading how {spec.table} is partitioned", on_retry=log)
    columns = reply.rows[0][0] if reply.rows else None
    if not columns:
        return Partitioning(why_not="not partitioned")
    if len(columns) != 1:
        return Partitioning(why_not=f"partitioned by {len(columns)} columns ({', '.join(map(str, columns))})")
    column = str(columns[0])
    reply = crate.execute(
        generated_columns_statement(spec), what=f"reading the generated columns of {spec.table}", on_retry=log
    )
    expression = {str(name): str(expr) for name, expr in reply.rows}.get(column)
    match = _DATE_TRUNC.match(expression or "")
    if not match or match["column"] != spec.timestamp_column or match["unit"] not in _UNITS:
        shown = f"generated as {expression}" if expression else "not a generated column"
        return Partitioning(
            column=column,
            why_not=f"partition column {column} is {shown}, not date_trunc('<unit>', {spec.timestamp_column})",
        )
    unit = match["unit"]
    reply = crate.execute(partitions_statement(spec), what=f"reading the partitions of {spec.table}", on_retry=log)
    partitions = []
    for ident, values, blocked in reply.rows:
        value = (values or {}).get(column)
        if isinstance(value, int) and not isinstance(value, bool):
            start = datetime.fromtimestamp(value / 1000, UTC)
            end_ms = int(_unit_end(start, unit).timestamp()) * 1000
            partitions.append(PartitionRef(column, unit, str(ident), value, value, end_ms, bool(blocked)))
    return Partitioning(column=column, unit=unit, partitions=sorted(partitions, key=lambda p: p.start_ms))


def _unit_end(start: datetime, unit: str) -> datetime:
    if unit in ("second", "minute", "hour", "day", "week"):
        return start + timedelta(**{f"{unit}s": 1})
    months = {"month": 1, "quarter": 3, "year": 12}[unit]
    index = start.year * 12 + start.month - 1 + months
    return start.replace(year=index // 12, month=index % 12 + 1)


def whole_days(partition: PartitionRef, windows: Sequence[DayWindow]) -> list[DayWindow] | None:
    """The due days that make up the partition exactly, or None when its bounds are not whole due days
    (a time zone other than UTC, a unit shorter than a day, days before start_date or after the cutoff)."""
    inside = [w for w in windows if partition.start_ms <= w.start_ms and w.end_ms <= partition.end_ms]
    if not inside or inside[0].start_ms != partition.start_ms or inside[-1].end_ms != partition.end_ms:
        return None
    if any(a.end_ms != b.start_ms for a, b in zip(inside, inside[1:], strict=False)):
        return None
    return inside


def read_day_states(
    store: ObjectStore, table: SourceTable, days: Sequence[date], counts: dict[date, int]
) -> list[DayState]:
    """Each due day's state from one listing of the span's directories; records are read where listed."""
    spec = table.spec
    directories = {day: spec.directory_for(day) for day in days}
    listed = store.list_directories(list(directories.values())) if days else {}
    states = []
    for day in days:
        names = {o.name for o in listed.get(directories[day], [])}
        record = store.read_json(directories[day], DELETION_RECORD) if DELETION_RECORD in names else None
        states.append(DayState(day, table.window(day), counts.get(day, 0), SUCCESS in names, LEASE in names, record))
    return states
