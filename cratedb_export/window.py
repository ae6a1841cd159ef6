"""The day window: which instants belong to one daily partition."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
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
    def for_day(cls, day: date | str, timezone: str = "UTC") -> DayWindow:
        if isinstance(day, str):
            day = date.fromisoformat(day)
        tz = ZoneInfo(timezone)
        start = datetime.combine(day, time.min, tzinfo=tz)
        end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=tz)
        return cls(day=day, start=start, end=end)

    @property
    def start_ms(self) -> int:
        return _epoch_ms(self.start)

    @property
    def end_ms(self) -> int:
        return _epoch_ms(self.end)

    def contains_ms(self, epoch_ms: int) -> bool:
        return self.start_ms <= epoch_ms < self.end_ms


def _epoch_ms(moment: datetime) -> int:
    # Integer arithmetic on the UTC offset keeps DST days (23 h / 25 h) exact.
    return int(moment.timestamp()) * 1000
