"""Exporting one day of one table: hold the day, clear, COPY, verify, then mark complete.

The order is the guarantee. The run takes the day's lease, so no other run works on it; the day's
directory is emptied (marker first), so a re-run never mixes with an earlier attempt; CrateDB writes the
files, with exactly one COPY in flight (copy_jobs.py); three numbers are compared — COPY's rowcount, the
source's count for the same window, and the rows actually in the objects — and only when they agree are
the manifest and then `_SUCCESS` written. A day with a `_SUCCESS` marker is complete and verified.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from cratedb_export.core import __version__
from cratedb_export.core.cluster import ClusterFacts, defect_of, read_cluster
from cratedb_export.core.config import ExportSpec
from cratedb_export.core.connection import Connected
from cratedb_export.core.copy_jobs import CopyOutcome, CopyRunner, CopyTag, day_copy_running
from cratedb_export.core.cratedb import CrateDB, RetryPolicy
from cratedb_export.core.errors import (
    CopyOutcomeUnknown,
    ExportError,
    PermanentError,
    TransientError,
)
from cratedb_export.core.formats import column_schema, staging_directory
from cratedb_export.core.lease import DayLeases, Holder
from cratedb_export.core.schema import SourceTable, read_source_table
from cratedb_export.core.source import Digest, SourceCounts, SourceDigests
from cratedb_export.core.statement import copy_statement
from cratedb_export.core.storage import DELETION_RECORD, LEASE, MANIFEST, ObjectStore, RunUploads, StoredObject
from cratedb_export.core.target import DayDirectory, S3Access, target_uri
from cratedb_export.core.verification import check_counts, check_only_own_files
from cratedb_export.core.window import DayWindow

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
    window_reading: str = ""
    copy_rowcount: int | None = 0
    copy_recovered: str | None = None  # how the COPY's outcome was learnt when its answer was lost
    source_rows: int = 0
    exported_rows: int | None = None
    files: list[ExportedFile] = field(default_factory=list)
    removed_before: int = 0
    crate_version: str = "unknown"
    columns: tuple = ()  # (name, CrateDB type) of the exported columns, as read when the run started
    # Read before the COPY (a write in between only makes reconcile export the day again); None: not read.
    source_digest: Digest | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def verified_counts(self) -> dict[str, int | None]:
        return {
            "copy_rowcount": self.copy_rowcount,
            "source_rows": self.source_rows,
            "exported_rows": self.exported_rows,
        }

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def manifest(self) -> dict:
        return {
            "table": self.spec.table,
            "day": self.window.day.isoformat(),
            "window": {
                "start": self.window.start.isoformat(),
                "end": self.window.end.isoformat(),
                "read_as": self.window_reading,
            },
            "timestamp_column": self.spec.timestamp_column,
            "directory": self.display_uri,
            "compression": self.spec.compression,
            "format": self.spec.format,
            "columns": column_schema(self.columns, self.spec.format),
            "verification": self.spec.verify,
            "files": [f.__dict__ for f in self.files],
            "totals": {**self.verified_counts, "files": len(self.files), "bytes": self.total_bytes},
            "source_digest": self.source_digest.as_json() if self.source_digest else None,
            "crate_version": self.crate_version,
            "copy_answer": self.copy_recovered or "answered",
            "exporter_version": __version__,
            "timings_s": self.timings,
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }


@dataclass(frozen=True)
class TableBatch:
    """What the days of one table in one run share: the source is counted (and its digests read), and the
    unfinished uploads below their directories listed, once for all (each day's objects are listed under
    its lease)."""

    source: SourceCounts
    uploads: RunUploads
    digests: SourceDigests | None = None


@dataclass
class ExportRun:
    """What the table-days of one run share, learnt once when the run starts, before any COPY: the
    cluster's version and jobs settings, each table's columns (or why it cannot be exported), the leases.

    `copy_slots` bounds the COPYs in flight across threads; clearing and verifying are not bounded by it.

    `on_step(what, step)` is a progress seam, called with "<table> <day>" at each step boundary of a day:
    "leased", "cleared", "copy_sent" (the COPY is sent right after it returns), "verified", "manifest_written",
    "marked". It only observes; the kill tests (cratedb_export_tests/test_killed.py) stop a run there.
    """

    crate: CrateDB
    store: ObjectStore
    access: S3Access
    cluster: ClusterFacts
    tables: dict[str, SourceTable | ExportError]
    copies: CopyRunner
    leases: DayLeases
    retry: RetryPolicy = RetryPolicy()
    copy_slots: AbstractContextManager | None = None
    sleep: Callable[[float], None] = time.sleep
    on_step: Callable[[str, str], None] = lambda what, step: None

    @classmethod
    def start(
        cls,
        specs: Sequence[ExportSpec],
        *,
        connected: Connected,
        holder: Holder,
        log: Callable[[str], None] = lambda _: None,
        retry: RetryPolicy | None = None,
        max_wait: float = 3600.0,
        on_step: Callable[[str, str], None] = lambda what, step: None,
        copy_slots: AbstractContextManager | None = None,
    ) -> ExportRun:
        """`copy_slots`: this run's bound on COPYs in flight, if not the connection's own (a run's step that
        shares the connection's slots with the run's other steps)."""
        crate, access = connected.crate, connected.access
        cluster = read_cluster(crate, log)
        if not cluster.jobs.usable:
            log(
                "CrateDB keeps no jobs tables (stats.enabled = false or stats.jobs_log_size = 0): a COPY whose "
                "answer is lost cannot be traced and fails its day instead of being waited for"
            )
        tables: dict[str, SourceTable | ExportError] = {}
        for spec in specs:
            try:
                defect_of(cluster, spec, access.endpoint)
                tables[spec.table] = read_source_table(crate, spec, log)
            except ExportError as error:
                tables[spec.table] = error
        return cls(
            crate=crate,
            store=connected.store,
            access=access,
            cluster=cluster,
            tables=tables,
            copies=CopyRunner(crate, jobs=cluster.jobs, max_wait=max_wait),
            leases=DayLeases(
                connected.store, holder, lambda table, day: day_copy_running(crate, table, day), max_wait=max_wait
            ),
            retry=retry or RetryPolicy(),
            copy_slots=copy_slots or connected.copy_slots,
            on_step=on_step,
        )

    def table(self, spec: ExportSpec) -> SourceTable:
        """The table as read at the start of the run; raises why it cannot be exported."""
        found = self.tables[spec.table]
        if isinstance(found, ExportError):
            raise found
        return found

    def batch(self, spec: ExportSpec, days: list[date], log: Callable[[str], None]) -> TableBatch:
        """Share one source count and one S3 listing per month among the run's days of a table."""
        by_month: dict[tuple[int, int], list[DayDirectory]] = {}
        for day in days:
            by_month.setdefault((day.year, day.month), []).append(spec.directory_for(day))
        found = self.tables[spec.table]
        table = found if isinstance(found, SourceTable) else SourceTable.assumed(spec)
        return TableBatch(
            SourceCounts(table, days, self.crate, log),
            RunUploads(self.store, list(by_month.values())),
            SourceDigests(table, days, self.crate, log),
        )

    def export_day(
        self, spec: ExportSpec, day: date, log: Callable[[str], None] = lambda _: None, batch: TableBatch | None = None
    ) -> DayExport:
        """Export one day; raises an ExportError (already redacted) if the day is not complete and verified."""
        return export_day(self, spec, day, log=log, batch=batch)


def export_day(
    run: ExportRun,
    spec: ExportSpec,
    day: date,
    *,
    log: Callable[[str], None] = lambda _: None,
    batch: TableBatch | None = None,
) -> DayExport:
    """Export one day of one table within a run; see the module docstring for the order of the steps."""
    table = run.table(spec)
    window = table.window(day)
    directory = spec.directory_for(day)
    # A Parquet day's NDJSON goes to a staging directory below the day's (formats/__init__.py says why).
    copy_to = staging_directory(directory) if spec.format == "parquet" else directory
    uri = target_uri(copy_to, run.access)
    protocol = run.access.protocol if run.access.endpoint else None
    result = DayExport(
        spec=spec,
        window=window,
        directory=directory,
        display_uri=directory.display_uri(run.access.endpoint),
        statement="",
        window_reading=table.window_reading,
        crate_version=run.cluster.version,
        columns=tuple((c.name, c.data_type) for c in table.exported_columns),
    )
    what = f"{spec.table} {day.isoformat()}"
    clock = _Stopwatch(result.timings)
    batch = batch or run.batch(spec, [day], log)

    with run.leases.hold(spec.table, day, directory, log) as lease:
        run.on_step(what, "leased")
        now = _listed_under_lease(run.store, directory, batch.uploads.below(directory))
        _refuse_deleted_day(run.store, what, directory, now, result.display_uri)
        listed: list[StoredObject] | None = now
        if batch.digests is not None:
            with clock("digest"):
                result.source_digest = batch.digests.of(day)
        attempt = 0
        while True:
            attempt += 1
            with clock("clear"):
                result.removed_before += run.store.clear_directory(directory, listed)
            run.on_step(what, "cleared")
            listed = None  # a later attempt lists what the failed one left
            tag = CopyTag.new(spec.table, day)
            copy = copy_statement(spec, window, uri, protocol=protocol, comment=tag.comment)
            result.statement = copy.sql
            try:
                with run.copy_slots or nullcontext(), clock("copy"):
                    run.on_step(what, "copy_sent")
                    outcome = run.copies.run(copy, tag, what=f"COPY of {what}", rotate=attempt > 1, log=log)
                break
            except CopyOutcomeUnknown:
                lease.keep = True  # the COPY may still write: the next run must find the day held
                raise
            except PermanentError as error:
                raise _with_known_cause(spec, error) from None
            except TransientError as error:
                # CrateDB shows this COPY is not running (never started, or ended): it may be sent again.
                if attempt >= run.retry.attempts:
                    raise TransientError(f"{error} (gave up after {attempt} attempts)") from None
                pause = run.retry.delay(attempt)
                log(f"{error} — attempt {attempt}/{run.retry.attempts}, clearing and sending again in {pause:.1f}s")
                run.sleep(pause)
        if result.removed_before:
            log(f"{what}: removed {result.removed_before} object(s) left by an earlier attempt")
        _verify(run, spec, window, copy_to, batch, outcome, result, clock)
        if spec.format == "parquet":
            with clock("parquet"):
                _to_parquet(run, spec, directory, result)
        run.on_step(what, "verified")
        with clock("mark"):
            run.store.put_json(directory, MANIFEST, result.manifest())
            run.on_step(what, "manifest_written")
            run.store.put_marker(directory)
        run.on_step(what, "marked")
    return result


def _listed_under_lease(
    store: ObjectStore, directory: DayDirectory, run_uploads: list[StoredObject] | None
) -> list[StoredObject]:
    """What the day's directory holds now that its lease is ours. Its objects are listed now, never taken from
    before the lease: another run may have exported the day since, or retention deleted it and wrote its
    record. Unfinished uploads (invisible to readers) may come from the run's listing of a month's uploads."""
    if run_uploads is None:
        return store.list_with_uploads(directory)
    return [*store.list_directory(directory), *run_uploads]


def _refuse_deleted_day(
    store: ObjectStore, what: str, directory: DayDirectory, listed: list[StoredObject], where: str
) -> None:
    """A day retention deleted from CrateDB (or is deleting) is never exported again: clearing its directory
    would destroy the only copy of its rows (docs/retention.md). Read only when the listing shows it."""
    if directory.key(DELETION_RECORD) not in {o.key for o in listed}:
        return
    record = store.read_json(directory, DELETION_RECORD) or {}
    state, at = record.get("state", "deleted"), record.get("deleted_at") or record.get("decided_at") or "unknown"
    how = "was deleted from CrateDB by retention at" if state == "deleted" else "is being deleted by retention since"
    raise PermanentError(
        f"{what} {how} {at} ({where}{DELETION_RECORD}); its archive in {where} is the only copy of its rows, so it "
        "is not exported again (nothing was changed). To get the rows back into CrateDB, restore the day with "
        "the job restore_cratedb_days into the source table (docs/restore.md)"
        + ("" if state == "deleted" else "; run retain_cratedb_days to finish the deletion")
    )


def _verify(
    run: ExportRun,
    spec: ExportSpec,
    window: DayWindow,
    directory: DayDirectory,
    batch: TableBatch,
    outcome: CopyOutcome,
    result: DayExport,
    clock: _Stopwatch,
) -> None:
    """Compare COPY's rowcount, the source's count and the rows in the objects; raise unless they agree."""
    what = f"{spec.table} {window.day.isoformat()}"
    result.copy_rowcount = outcome.rowcount
    result.copy_recovered = outcome.recovered
    with clock("count_source"):
        digested = result.source_digest.rows if result.source_digest is not None else None
        result.source_rows = batch.source.rows_in(window, outcome.rowcount, digested)
    with clock("verify"):
        objects = [o for o in run.store.list_directory(directory) if o.key != directory.key(LEASE)]
        _check_names(spec, directory, objects)
        # Without COPY's own rowcount, only the files themselves can show the day is complete.
        # (A Parquet day's rows are counted when it is converted.)
        read_back = (spec.verify == "read_back" and spec.format == "json") or outcome.rowcount is None
        result.files = [
            ExportedFile(o.name, o.size, _rows(run.store, directory, o) if read_back else None) for o in objects
        ]
        if read_back:
            result.exported_rows = sum(f.rows or 0 for f in result.files)
    check_counts(
        what,
        result.verified_counts,
        "export does not match the source",
        f"Nothing was marked in {result.display_uri}. Re-run the partition; if it persists, check for rows written "
        "to the day while it was exported, or for S3 write errors in CrateDB's log.",
    )


def _to_parquet(run: ExportRun, spec: ExportSpec, directory: DayDirectory, result: DayExport) -> None:
    """Turn the verified, staged NDJSON into the day's Parquet file; its rows must match the other counts."""
    from cratedb_export.core.formats.publish import publish_parquet  # pyarrow only where a day is Parquet

    day = result.window.day.isoformat()
    published = publish_parquet(
        run.store,
        result.columns,
        directory,
        file_name=f"{spec.table_name}_{day}.parquet",
        what=f"{spec.table} {day}",
        counts=result.verified_counts,
        metadata={"table": spec.table, "day": day, "columns": [list(c) for c in result.columns]},
    )
    result.files = [ExportedFile(published.name, published.size, published.rows)]
    result.exported_rows = published.rows


# CrateDB (5.10 and 6.4 alike) closes each file of a COPY with a column list twice; uncompressed, the second
# close completes the S3 upload again (AWS SDK: "multipart upload does not exist") or writes to a closed
# OpenDAL writer ("writer has been dropped"). Through gzip the second close is harmless.
_DOUBLE_CLOSE = ("The specified multipart upload does not exist", "writer has been dropped")


def _with_known_cause(spec: ExportSpec, error: PermanentError) -> PermanentError:
    if spec.columns and not spec.compression and any(marker in str(error) for marker in _DOUBLE_CLOSE):
        return PermanentError(
            f"{error} — CrateDB cannot finish uncompressed files of a COPY with a column list on this S3 store "
            f"(it closes each file twice); set 'compression: gzip' for {spec.table}, or export all columns"
        )
    return error


def _rows(store: ObjectStore, directory: DayDirectory, obj: StoredObject) -> int:
    # Every shard gets a file even when no row matched; an empty one needs no read.
    return store.count_rows(directory, obj) if obj.size else 0


def _check_names(spec: ExportSpec, directory: DayDirectory, objects: list[StoredObject]) -> None:
    """Only COPY's own files may be in the directory after it ran; anything else would be read as data."""
    ext = r"\.gz" if spec.copy_compression else ""
    pattern = re.compile(_DATA_FILE.format(table=re.escape(spec.table_name), ext=ext))
    check_only_own_files(
        f"{spec.table} {directory.display_uri()}",
        directory,
        objects,
        lambda o: "/" not in o.key[len(directory.prefix) :] and bool(pattern.match(o.name)),
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
