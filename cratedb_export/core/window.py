"""The day window: which instants belong to one daily partition."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class DayWindow:
    """The half-open interval [start, end) of one calendar day in a time zone.

    A half-open range on the raw timestamp column (rather than `date_trunc('day', ts) = day`) is what lets
    CrateDB prune partitions of a table partitioned by a generated `date_trunc` column.
    """

    day: date
    start: datetime
    end: datetime

    @classmethod
    def for_day(cls, day: date | str, timezone: str = "UTC", *, wall_clock: bool = False) -> DayWindow:
        """The day in `timezone`; with `wall_clock`, the day of wall-clock time (naive bounds, compared by
        CrateDB as if UTC — how it treats TIMESTAMP WITHOUT TIME ZONE), whatever the time zone."""
        if isinstance(day, str):
            day = date.fromisoformat(day)
        tz = None if wall_clock else ZoneInfo(timezone)
        start = datetime.combine(day, time.min, tzinfo=tz)
        end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=tz)
        return cls(day=day, start=start, end=end)

    @property
    def wall_clock(self) -> bool:
        return self.start.tzinfo is None

    @property
    def start_ms(self) -> int:
        return _epoch_ms(self.start)

    @property
    def end_ms(self) -> int:
        return _epoch_ms(self.end)

    def contains_ms(self, epoch_ms: int) -> bool:
        return self.start_ms <= epoch_ms < self.end_ms


def _epoch_ms(moment: datetime) -> int:
    # Integer arithmetic on the UTC offset keeps DST days (23 h / 25 h) exact; wall-clock bounds count as UTC.
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1000
