"""A run's fan-out over table-days: every (table, day) of a range exported concurrently, each outcome
reported the moment it is known.

COPYs are bounded by the run's COPY slots (the connection's max_concurrent_copies); clearing and verifying a
day run beside other days' COPYs, so the pool has twice as many threads as slots. Closing the iterator (a
stopped run, or a failure in the consumer) cancels the days not yet started instead of waiting for every
queued COPY of the range; days already running finish, since a COPY that was sent cannot be called back.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import date

from cratedb_export.core.config import ExportSpec
from cratedb_export.core.errors import ExportError
from cratedb_export.core.export import DayExport, ExportRun
from cratedb_export.core.redaction import redact

PROGRESS_EVERY_S = 5.0


@dataclass(frozen=True)
class DayOutcome:
    """One table-day of a run: its verified export, or why it is not complete (an error, already redacted)."""

    spec: ExportSpec
    day: date
    export: DayExport | None = None
    error: ExportError | None = None

    @property
    def what(self) -> str:
        return f"{self.spec.table} {self.day.isoformat()}"


def export_days(
    run: ExportRun,
    specs: Sequence[ExportSpec],
    days: Sequence[date],
    *,
    log: Callable[[str], None] = lambda _: None,
    progress: Callable[[str], None] | None = None,
    copy_slots: int = 4,
) -> Generator[DayOutcome, None, None]:
    """Export every day of every table in `run`; yield each day's outcome as it finishes, in any order.

    `copy_slots` sizes the thread pool (the run's own slots bound the COPYs); `progress` gets a line at
    most every few seconds and at the end.
    """
    total = len(specs) * len(days)
    batches = {spec.table: run.batch(spec, list(days), log) for spec in specs}
    done = failed = 0
    last_report = time.monotonic()
    pool = ThreadPoolExecutor(max_workers=max(2, copy_slots * 2), thread_name_prefix="export")
    with _cancelling(pool):
        futures = {
            pool.submit(run.export_day, spec, day, log, batches[spec.table]): (spec, day)
            for day in days
            for spec in specs
        }
        for future in as_completed(futures):
            spec, day = futures[future]
            error = _error_of(future)
            done += 1
            failed += error is not None
            yield DayOutcome(spec, day, future.result() if error is None else None, error)
            if progress is not None and (done == total or time.monotonic() - last_report > PROGRESS_EVERY_S):
                last_report = time.monotonic()
                progress(f"progress: {done}/{total} table-days done, {failed} failed")


@contextlib.contextmanager
def _cancelling(pool: ThreadPoolExecutor) -> Iterator[ThreadPoolExecutor]:
    """Like `with pool:`, but leaving early cancels the days not yet started."""
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _error_of(future: Future[DayExport]) -> ExportError | None:
    """The day's error, redacted; an unexpected exception is wrapped so its text is redacted too."""
    exc = future.exception()
    if exc is None:
        return None
    if isinstance(exc, ExportError):
        return exc
    return ExportError(f"unexpected {type(exc).__name__}: {redact(exc)}")
