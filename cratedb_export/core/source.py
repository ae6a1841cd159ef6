"""The source's side of verification: how many rows each day has in CrateDB.

A day's source digest (below) is read before its COPY with the COPY's own predicate and holds the day's
rows: where they agree with the rows the COPY reported, they are the day's count, and nothing more is sent.
Where they do not (rows written to the day meanwhile), a run over consecutive days counts them with one
statement per table, per UTC hour, and adds the hours up per day: a year's backfill of one table sends one
counting statement instead of 365. Wherever that count differs from the rows the COPY reported too (or
a day's bounds are not whole UTC hours, as in UTC+05:30), the day is counted again on its own after its
COPY, so the comparison is never weaker than counting each day separately.

A day's source digest (its rows, and the sum and max of their `_seq_no`: docs/reconcile.md) is read the same
way, per UTC hour for a span of days, per day where hours cannot tell the days apart; an export records it
in the day's manifest, and reconcile compares it with the source later.
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, ClassVar

from cratedb_export.core.config import ExportSpec
from cratedb_export.core.cratedb import CrateDB
from cratedb_export.core.errors import ExportError
from cratedb_export.core.schema import SourceTable
from cratedb_export.core.statement import (
    HOUR_MS,
    count_statement,
    digest_statement,
    hourly_count_statement,
    hourly_digest_statement,
)
from cratedb_export.core.window import DayWindow


def count_window(crate: CrateDB, spec: ExportSpec, window: DayWindow, log: Callable[[str], None]) -> int:
    """The table's rows in one day's window, with the COPY's own predicate."""
    what = f"counting {spec.table} {window.day.isoformat()}"
    return int(crate.execute(count_statement(spec, window), what=what, on_retry=log).rows[0][0])


class SourceCounts:
    """Source row counts for one table's days in a run; safe to share between the run's threads."""

    def __init__(
        self, table: SourceTable, days: Iterable[date], crate: CrateDB, log: Callable[[str], None] = lambda _: None
    ) -> None:
        self._table = table
        self._spec = table.spec
        self._crate = crate
        self._log = log
        # CrateDB cannot bucket a BIGINT column per hour: such tables are counted day by day.
        spans = consecutive_spans(days) if table.hourly_counts else []
        self._spans = [span for span in spans if len(span) > 1]
        self._lock = threading.Lock()
        self._by_day: dict[date, int] | None = None

    def rows_in(self, window: DayWindow, exported: int | None, digested: int | None = None) -> int:
        """The source's rows in the day's window, as checked against `exported` (the COPY's rowcount).

        `digested` is the rows of the day's source digest, read with the COPY's predicate before its COPY:
        where it agrees with the COPY, it is the count, and no statement is sent for it.
        """
        if exported is not None and digested == exported:
            return digested
        counted = self._range_counts().get(window.day) if exported is not None else None
        if counted is not None and counted == exported:
            return counted
        return self.count_day(window)

    def count_day(self, window: DayWindow) -> int:
        return count_window(self._crate, self._spec, window, self._log)

    def day_counts(self, days: Iterable[date]) -> dict[date, int]:
        """Each day's rows now: from the grouped count where it covers the day, else counted on its own
        (retention's candidates; each is counted again, alone, right before it is deleted)."""
        counted = self._range_counts()
        return {day: counted[day] if day in counted else self.count_day(self._table.window(day)) for day in days}

    def _range_counts(self) -> dict[date, int]:
        """Counted once, by the first day of the run that needs it; the others wait for it."""
        with self._lock:
            if self._by_day is None:
                self._by_day = {}
                for span in self._spans:
                    self._by_day.update(self._count_span(span))
            return self._by_day

    def _count_span(self, days: list[date]) -> dict[date, int]:
        hours = HourlyDays(self._table, days)
        if not hours.days:
            return {}
        statement = hourly_count_statement(self._spec, hours.first, hours.last)
        try:
            reply = self._crate.execute(statement, what=f"counting {self._spec.table} {hours}", on_retry=self._log)
        except ExportError as exc:  # already redacted
            self._log(f"{self._spec.table} {hours}: counting per hour failed ({exc}); counting each day on its own")
            return {}
        counts = dict.fromkeys(hours.days, 0)
        for hour_ms, rows in reply.rows:
            if (day := hours.day_of(hour_ms)) is not None:
                counts[day] += int(rows)
        return counts


class HourlyDays:
    """Consecutive days of a table read with one statement per UTC hour, and which day each hour adds up to.

    Only a day whose bounds are whole UTC hours is the sum of its hours (not so in UTC+05:30): `days` are
    those; the others are read on their own.
    """

    def __init__(self, table: SourceTable, days: list[date]) -> None:
        self._windows = [table.window(day) for day in days]
        self._starts = [w.start_ms for w in self._windows]
        self.days = [w.day for w in self._windows if w.start_ms % HOUR_MS == 0 and w.end_ms % HOUR_MS == 0]
        self.first, self.last = self._windows[0], self._windows[-1]

    def day_of(self, hour_ms: int) -> date | None:
        index = bisect_right(self._starts, hour_ms) - 1
        if index < 0 or not self._windows[index].contains_ms(hour_ms):
            return None
        day = self._windows[index].day
        return day if day in self.days else None

    def __str__(self) -> str:
        return f"{self.first.day.isoformat()}…{self.last.day.isoformat()}"


@dataclass(frozen=True)
class Digest:
    """A day's source digest: its rows, and the sum and max of their `_seq_no` (None: no row).

    Every write of a row gives it a higher `_seq_no` in its shard, so an update in place, or a delete plus
    an insert, changes the sum and the max even where the count stays (docs/reconcile.md).
    """

    rows: int
    seq_no_sum: int
    seq_no_max: int | None

    EMPTY: ClassVar[Digest]  # no row: set below

    def plus(self, rows: Any, seq_no_sum: Any, seq_no_max: Any) -> Digest:
        highest = [int(v) for v in (self.seq_no_max, seq_no_max) if v is not None]
        return Digest(self.rows + int(rows or 0), self.seq_no_sum + int(seq_no_sum or 0), max(highest, default=None))

    def as_json(self) -> dict[str, int | None]:
        return {"rows": self.rows, "seq_no_sum": self.seq_no_sum, "seq_no_max": self.seq_no_max}

    @classmethod
    def from_json(cls, data: Any) -> Digest | None:
        """A manifest's `source_digest`, or None where it has none (older exporters; the digest failed)."""
        if not isinstance(data, Mapping) or not isinstance(data.get("rows"), int):
            return None
        total, highest = data.get("seq_no_sum"), data.get("seq_no_max")
        if not isinstance(total, int) or not (highest is None or isinstance(highest, int)):
            return None
        return cls(data["rows"], total, highest)

    def __str__(self) -> str:
        return f"{self.rows}/{self.seq_no_sum}/{'-' if self.seq_no_max is None else self.seq_no_max}"


Digest.EMPTY = Digest(0, 0, None)


def read_digests(
    table: SourceTable, days: Iterable[date], crate: CrateDB, log: Callable[[str], None] = lambda _: None
) -> dict[date, Digest]:
    """The source digests of the days: one statement per span of consecutive days (per UTC hour), one per day
    where hours cannot tell the days apart (BIGINT columns, days not made of whole UTC hours). Raises an
    ExportError (already redacted) when CrateDB does not answer."""
    found: dict[date, Digest] = {}
    for span in consecutive_spans(days):
        if table.hourly_counts and len(span) > 1:
            found.update(_digest_span(table, span, crate, log))
        for day in span:
            if day not in found:
                found[day] = digest_day(table, day, crate, log)
    return found


def digest_day(table: SourceTable, day: date, crate: CrateDB, log: Callable[[str], None]) -> Digest:
    what = f"reading the source digest of {table.spec.table} {day.isoformat()}"
    reply = crate.execute(digest_statement(table.spec, table.window(day)), what=what, on_retry=log)
    return Digest.EMPTY.plus(*reply.rows[0])


def _digest_span(
    table: SourceTable, days: list[date], crate: CrateDB, log: Callable[[str], None]
) -> dict[date, Digest]:
    hours = HourlyDays(table, days)
    if not hours.days:
        return {}
    statement = hourly_digest_statement(table.spec, hours.first, hours.last)
    reply = crate.execute(statement, what=f"reading the source digests of {table.spec.table} {hours}", on_retry=log)
    found = dict.fromkeys(hours.days, Digest.EMPTY)
    for hour_ms, rows, seq_no_sum, seq_no_max in reply.rows:
        if (day := hours.day_of(int(hour_ms))) is not None:
            found[day] = found[day].plus(rows, seq_no_sum, seq_no_max)
    return found


class SourceDigests:
    """The source digests of one table's days in a run, read once, before the table's first COPY (all of the
    run's days with one statement per span of days); safe to share between the run's threads.

    A digest that cannot be read is None: the day is exported all the same, and its manifest says the digest
    is missing (reconcile then compares that day's count only).
    """

    def __init__(
        self, table: SourceTable, days: Iterable[date], crate: CrateDB, log: Callable[[str], None] = lambda _: None
    ) -> None:
        self._table = table
        self._days = sorted(set(days))
        self._crate = crate
        self._log = log
        self._lock = threading.Lock()
        self._by_day: dict[date, Digest] | None = None

    def of(self, day: date) -> Digest | None:
        with self._lock:
            if self._by_day is None:
                self._by_day = {}
                spans = consecutive_spans(self._days) if self._table.hourly_counts else []
                for span in (s for s in spans if len(s) > 1):
                    try:
                        self._by_day.update(_digest_span(self._table, span, self._crate, self._log))
                    except ExportError as exc:  # already redacted
                        self._log(f"{self._table.spec.table}: reading source digests per hour failed ({exc})")
        found = self._by_day.get(day)
        if found is not None:
            return found
        try:
            return digest_day(self._table, day, self._crate, self._log)
        except ExportError as exc:
            self._log(
                f"{self._table.spec.table} {day.isoformat()}: the source digest could not be read ({exc}); the day "
                "is exported without it, and reconcile compares its count only"
            )
            return None


def consecutive_spans(days: Iterable[date]) -> list[list[date]]:
    """Split days into runs of consecutive days, in order."""
    spans: list[list[date]] = []
    for day in sorted(set(days)):
        if spans and day - spans[-1][-1] == timedelta(days=1):
            spans[-1].append(day)
        else:
            spans.append([day])
    return spans
