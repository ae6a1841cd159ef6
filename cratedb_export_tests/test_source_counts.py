"""Counting consecutive days together must give exactly what counting each day alone gives.

Runs against the CrateDB under test (the stand-in, or a real CrateDB with CRATEDB_TEST_URL): a table with
a row every 30 minutes, so rows sit exactly on every time zone's midnight, including UTC+05:30's.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from cratedb_export_testbed.support import epoch_ms, metrics_ddl

from cratedb_export.core.config import parse_export_specs
from cratedb_export.core.cratedb import CrateDB
from cratedb_export.core.schema import SourceTable
from cratedb_export.core.source import SourceCounts
from cratedb_export.core.window import DayWindow

DAYS = [date(2024, 3, 29) + timedelta(days=n) for n in range(5)]  # over Europe's switch to summer time
FIRST_ROW, LAST_ROW = datetime(2024, 3, 28, 12, tzinfo=UTC), datetime(2024, 4, 3, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def half_hourly(crate) -> tuple[str, list[int]]:
    name = f"counts_{uuid.uuid4().hex[:10]}"
    crate.sql(metrics_ddl(name))
    stamps = []
    moment = FIRST_ROW
    while moment <= LAST_ROW:
        stamps.append(epoch_ms(moment))
        moment += timedelta(minutes=30)
    crate.sql(
        f'INSERT INTO "doc"."{name}" ("hash_id", "timestamp", "name") VALUES (?, ?, ?)',
        bulk_args=[[n, stamp, "cpu"] for n, stamp in enumerate(stamps)],
    )
    crate.sql(f'REFRESH TABLE "doc"."{name}"')
    return name, stamps


def _spec(name: str, timezone: str):
    (spec,) = parse_export_specs(
        [{"table": f"doc.{name}", "timestamp_column": "timestamp", "target": f"bucket-x/{name}", "timezone": timezone}]
    )
    return spec


def _client(crate) -> CrateDB:
    return CrateDB([crate.url], username=crate.username, password=crate.password)


def _statements(crate, name: str, expected: tuple[int, int] | None = None) -> tuple[int, int]:
    """(counts per hour, counts of one day) sent for the table so far, from sys.jobs_log. A real CrateDB may
    answer a statement a moment before its jobs log shows it (seen once in a busy suite), so with `expected`
    the log is read again for up to 5 s until it shows that many; the caller still compares exactly."""
    deadline = time.monotonic() + 5.0
    while True:
        texts = [row[0] for row in crate.sql("SELECT stmt FROM sys.jobs_log") if f'"{name}"' in row[0]]
        hourly = sum(1 for t in texts if t.startswith("SELECT date_trunc('hour'"))
        daily = sum(1 for t in texts if t.startswith("SELECT count(*)"))
        if expected is None or (hourly, daily) == expected or time.monotonic() > deadline:
            return hourly, daily
        time.sleep(0.1)


@pytest.mark.parametrize(
    ("timezone", "whole_hours"),
    [("UTC", True), ("Europe/Vienna", True), ("America/St_Johns", False), ("Asia/Kolkata", False)],
)
def test_consecutive_days_counted_together_match_each_day(crate, half_hourly, timezone, whole_hours):
    name, stamps = half_hourly
    spec = _spec(name, timezone)
    hourly_before, daily_before = _statements(crate, name)
    counts = SourceCounts(SourceTable.assumed(spec), DAYS, _client(crate))
    for day in DAYS:
        window = DayWindow.for_day(day, timezone)
        expected = sum(1 for stamp in stamps if window.contains_ms(stamp))
        assert counts.rows_in(window, exported=expected) == expected
    # One statement for all five days, none per day; UTC-03:30 / UTC+05:30 days are not sums of UTC hours:
    # each day is counted alone.
    sent = (1, 0) if whole_hours else (0, len(DAYS))
    hourly, daily = _statements(crate, name, expected=(hourly_before + sent[0], daily_before + sent[1]))
    assert (hourly - hourly_before, daily - daily_before) == sent


def test_a_day_that_changed_after_the_range_count_is_counted_again(crate):
    name = f"counts_{uuid.uuid4().hex[:10]}"
    crate.sql(metrics_ddl(name))
    day_rows = {day: [epoch_ms(datetime(day.year, day.month, day.day, 6, tzinfo=UTC))] for day in DAYS}
    crate.sql(
        f'INSERT INTO "doc"."{name}" ("hash_id", "timestamp") VALUES (?, ?)',
        bulk_args=[[n, stamps[0]] for n, stamps in enumerate(day_rows.values())],
    )
    crate.sql(f'REFRESH TABLE "doc"."{name}"')
    counts = SourceCounts(SourceTable.assumed(_spec(name, "UTC")), DAYS, _client(crate))
    assert counts.rows_in(DayWindow.for_day(DAYS[0]), exported=1) == 1  # counts the whole range

    late = DAYS[3]  # a row arrives for a later day before its COPY runs, which then exports 2 rows
    crate.sql(f'INSERT INTO "doc"."{name}" ("hash_id", "timestamp") VALUES (?, ?)', [99, day_rows[late][0] + 1])
    crate.sql(f'REFRESH TABLE "doc"."{name}"')
    assert counts.rows_in(DayWindow.for_day(late), exported=2) == 2
    assert _statements(crate, name, expected=(1, 1)) == (1, 1)  # the range count, then that day alone

    # A COPY that reports more than the source has is not hidden: the fresh count disagrees with it.
    assert counts.rows_in(DayWindow.for_day(DAYS[4]), exported=5) == 1


def test_a_failing_range_count_falls_back_to_counting_each_day(crate, double, half_hourly):
    name, stamps = half_hourly
    warnings: list[str] = []
    counts = SourceCounts(SourceTable.assumed(_spec(name, "UTC")), DAYS[:2], _client(crate), log=warnings.append)
    double.faults.fail_next(count=1, status=400, code=4000, message="SQLParseException[injected]")
    window = DayWindow.for_day(DAYS[1])
    expected = sum(1 for stamp in stamps if window.contains_ms(stamp))
    assert counts.rows_in(window, exported=expected) == expected
    assert any("counting per hour failed" in w and "counting each day on its own" in w for w in warnings)


def test_the_days_digest_is_its_count_where_it_agrees_with_the_copy(crate, half_hourly):
    """A digest read before the COPY that agrees with its rowcount is the count: no statement is sent. One
    that disagrees (rows written to the day between the two) never stands in: the source is counted."""
    name, stamps = half_hourly
    window = DayWindow.for_day(DAYS[2])
    expected = sum(1 for stamp in stamps if window.contains_ms(stamp))
    counts = SourceCounts(SourceTable.assumed(_spec(name, "UTC")), DAYS, _client(crate))
    before = _statements(crate, name)
    assert counts.rows_in(window, exported=expected, digested=expected) == expected
    assert _statements(crate, name) == before
    # The digest saw one row fewer than the COPY exported: the range count decides, and it agrees with the COPY.
    assert counts.rows_in(window, exported=expected, digested=expected - 1) == expected
    assert _statements(crate, name, expected=(before[0] + 1, before[1])) == (before[0] + 1, before[1])
    # A COPY that reports more than the source has is not hidden by a digest that says the same.
    assert counts.rows_in(window, exported=expected + 1, digested=expected) == expected
