"""The source's side of verification: how many rows each day has in CrateDB.

A day on its own is counted with the COPY's own predicate, after its COPY. A run over consecutive days
counts them with one statement per table, per UTC hour, and adds the hours up per day: a year's
backfill of one table sends one counting statement instead of 365. Wherever that count differs from
the rows the COPY reported (rows written to the day meanwhile, or a day whose bounds are not whole UTC
hours, as in UTC+05:30), the day is counted again on its own after its COPY, so the comparison is never
weaker than counting each day separately.
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from collections.abc import Callable, Iterable
from datetime import date, timedelta

from cratedb_export.core.cratedb import CrateDB
from cratedb_export.core.errors import ExportError
from cratedb_export.core.schema import SourceTable
from cratedb_export.core.statement import HOUR_MS, count_statement, hourly_count_statement
from cratedb_export.core.window import DayWindow


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

    def rows_in(self, window: DayWindow, exported: int | None) -> int:
        """The source's rows in the day's window, as checked against `exported` (the COPY's rowcount)."""
        counted = self._range_counts().get(window.day) if exported is not None else None
        if counted is not None and counted == exported:
            return counted
        return self.count_day(window)

    def count_day(self, window: DayWindow) -> int:
        what = f"counting {self._spec.table} {window.day.isoformat()}"
        reply = self._crate.execute(count_statement(self._spec, window), what=what, on_retry=self._log)
        return int(reply.rows[0][0])

    def _range_counts(self) -> dict[date, int]:
        """Counted once, by the first day of the run that needs it; the others wait for it."""
        with self._lock:
            if self._by_day is None:
                self._by_day = {}
                for span in self._spans:
                    self._by_day.update(self._count_span(span))
            return self._by_day

    def _count_span(self, days: list[date]) -> dict[date, int]:
        windows = [self._table.window(day) for day in days]
        # Only a day whose bounds are whole UTC hours is the sum of its hours.
        counts = {w.day: 0 for w in windows if w.start_ms % HOUR_MS == 0 and w.end_ms % HOUR_MS == 0}
        if not counts:
            return {}
        statement = hourly_count_statement(self._spec, windows[0], windows[-1])
        span = f"{days[0].isoformat()}…{days[-1].isoformat()}"
        try:
            reply = self._crate.execute(statement, what=f"counting {self._spec.table} {span}", on_retry=self._log)
        except ExportError as exc:  # already redacted
            self._log(f"{self._spec.table} {span}: counting per hour failed ({exc}); counting each day on its own")
            return {}
        starts = [w.start_ms for w in windows]
        for hour_ms, rows in reply.rows:
            index = bisect_right(starts, hour_ms) - 1
            if index >= 0 and windows[index].contains_ms(hour_ms) and windows[index].day in counts:
                counts[windows[index].day] += int(rows)
        return counts


def consecutive_spans(days: Iterable[date]) -> list[list[date]]:
    """Split days into runs of consecutive days, in order."""
    spans: list[list[date]] = []
    for day in sorted(set(days)):
        if spans and day - spans[-1][-1] == timedelta(days=1):
            spans[-1].append(day)
        else:
            spans.append([day])
    return spans
