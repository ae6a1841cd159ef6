"""Exporting one day of one table: clear, COPY, verify, then mark complete.

The order is the guarantee. The day's directory is emptied first (marker first), so a re-run never mixes
with an earlier attempt; CrateDB writes the files; three numbers are compared — COPY's rowcount, the
source's count for the same window, and the rows actually in the objects — and only when they agree are
the manifest and then `_SUCCESS` written. A day with a `_SUCCESS` marker is complete and verified.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from . import __version__
from .config import ExportSpec
from .cratedb import CrateDB
from .errors import VerificationError
from .source import SourceCounts
from .statement import copy_statement
from .storage import MANIFEST, SUCCESS, ObjectStore, RunListing, StoredObject
from .target import DayDirectory, S3Access, target_uri
from .window import DayWindow

# What COPY TO names its files: <table>_<shard>_<partition ident>.json[.gz]
_DATA_FILE = r"^{table}_\d+_[A-Za-z0-9]*\.json{ext}$"


@dataclass(frozen=True)
class ExportedFile:
    name: str
    size: int
    rows: int | None


@dataclass
class DayExport:
    """What one day's export did; becomes the manifest and the materialization's metadata."""

    spec: ExportSpec
    window: DayWindow
    directory: DayDirectory
    display_uri: str
    statement: str
    copy_rowcount: int = 0
    source_rows: int = 0
    exported_rows: int | None = None
    files: list[ExportedFile] = field(default_factory=list)
    removed_before: int = 0
    crate_version: str = "unknown"
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def verified_counts(self) -> dict[str, int | None]:
        return {
            "copy_rowcount": self.copy_rowcount,
            "source_rows": self.source_rows,
            "exported_rows": self.exported_rows,
        }

    @property
    def consistent(self) -> bool:
        counts = [self.copy_rowcount, self.source_rows]
        if self.exported_rows is not None:
            counts.append(self.exported_rows)
        return len(set(counts)) == 1

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def manifest(self) -> dict:
        return {
            "table": self.spec.table,
            "day": self.window.day.isoformat(),
            "window": {"start": self.window.start.isoformat(), "end": self.window.end.isoformat()},
            "timestamp_column": self.spec.timestamp_column,
            "directory": self.display_uri,
            "compression": self.spec.compression,
            "verification": self.spec.verify,
            "files": [f.__dict__ for f in self.files],
            "totals": {**self.verified_counts, "files": len(self.files), "bytes": self.total_bytes},
            "crate_version": self.crate_version,
            "exporter_version": __version__,
            "timings_s": self.timings,
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }


@dataclass(frozen=True)
class TableBatch:
    """What the days of one table in one run share: the source is counted, and S3 listed, once for all."""

    source: SourceCounts
    listing: RunListing

    @classmethod
    def of(
        cls, spec: ExportSpec, days: list[date], crate: CrateDB, store: ObjectStore, log: Callable[[str], None]
    ) -> TableBatch:
        by_month: dict[tuple[int, int], list[DayDirectory]] = {}
        for day in days:
            by_month.setdefault((day.year, day.month), []).append(spec.directory_for(day))
        return cls(SourceCounts(spec, days, crate, log), RunListing(store, list(by_month.values())))


def export_day(
    spec: ExportSpec,
    day: date,
    *,
    crate: CrateDB,
    store: ObjectStore,
    access: S3Access,
    log: Callable[[str], None] = lambda _: None,
    copy_slots: AbstractContextManager | None = None,
    batch: TableBatch | None = None,
) -> DayExport:
    """Export one day; raises an ExportError (already redacted) if the day is not complete and verified.

    `copy_slots` bounds the COPYs in flight across threads; clearing and verifying are not bounded by it.
    `batch` is shared by the table's days in the run, so they are counted and listed together.
    """
    window = DayWindow.for_day(day, spec.timezone)
    directory = spec.directory_for(day)
    protocol = access.protocol if access.endpoint else None
    copy = copy_statement(spec, window, target_uri(directory, access), protocol=protocol)
    result = DayExport(
        spec=spec,
        window=window,
        directory=directory,
        display_uri=directory.display_uri(access.endpoint),
        statement=copy.sql,
    )
    what = f"{spec.table} {day.isoformat()}"
    clock = _Stopwatch(result.timings)
    batch = batch or TableBatch.of(spec, [day], crate, store, log)

    with clock("clear"):
        result.removed_before = store.clear_directory(directory, batch.listing.below(directory))
    if result.removed_before:
        log(f"{what}: removed {result.removed_before} object(s) left by an earlier attempt")

    with copy_slots or nullcontext(), clock("copy"):
        reply = crate.execute(copy, what=f"COPY of {what}", resend_after_timeout=False, on_retry=log)
    result.copy_rowcount = reply.rowcount
    result.crate_version = crate.server_version()  # the COPY's connection is open: no extra request

    with clock("count_source"):
        result.source_rows = batch.source.rows_in(window, reply.rowcount)

    with clock("verify"):
        objects = store.list_directory(directory)
        _check_names(spec, directory, objects)
        read_back = spec.verify == "read_back"
        result.files = [
            ExportedFile(o.name, o.size, _rows(store, directory, o) if read_back else None) for o in objects
        ]
        if read_back:
            result.exported_rows = sum(f.rows or 0 for f in result.files)

    if not result.consistent:
        counts = ", ".join(f"{k}={v}" for k, v in result.verified_counts.items() if v is not None)
        raise VerificationError(
            f"{what}: export does not match the source ({counts}); no {SUCCESS} marker was written to "
            f"{result.display_uri}. Re-run the partition; if it persists, check for rows written to the day "
            "while it was exported, or for S3 write errors in CrateDB's log.",
            counts=result.verified_counts,
        )

    with clock("mark"):
        store.put_json(directory, MANIFEST, result.manifest())
        store.put_marker(directory)
    return result


def _rows(store: ObjectStore, directory: DayDirectory, obj: StoredObject) -> int:
    # Every shard gets a file even when no row matched; an empty one needs no read.
    return store.count_rows(directory, obj) if obj.size else 0


def _check_names(spec: ExportSpec, directory: DayDirectory, objects: list[StoredObject]) -> None:
    """Only COPY's own files may be in the directory after it ran; anything else would be read as data."""
    ext = r"\.gz" if spec.compression else ""
    pattern = re.compile(_DATA_FILE.format(table=re.escape(spec.table_name), ext=ext))
    strays = [o.name for o in objects if "/" in o.key[len(directory.prefix) :] or not pattern.match(o.name)]
    if strays:
        raise VerificationError(
            f"{spec.table} {directory.display_uri()}: unexpected object(s) {strays[:5]} appeared during the "
            f"export (another writer in this directory?); no {SUCCESS} marker was written"
        )


class _Stopwatch:
    def __init__(self, timings: dict[str, float]) -> None:
        self._timings = timings

    def __call__(self, name: str) -> _Stopwatch:
        self._name = name
        return self

    def __enter__(self) -> None:
        self._start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self._timings[self._name] = round(time.perf_counter() - self._start, 3)
