"""Reconciling archived days with the source: which days of the reconcile window changed since their export.

Rows keep arriving for days that are already archived (devices upload late, jobs backfill, rows are
corrected or deleted). For one export and `today` (in the export's time zone) the window is the
`reconcile_days` days before today, never before `start_date`. One S3 listing of the window's day
directories tells which days are archived; one statement reads the source digest of the window's days
(core/source.py: rows, and the sum and max of `_seq_no`, per UTC hour); the manifest of each archived day
says what was exported. A day is changed when its rows differ from the rows the manifest verified, or when
the manifest holds a source digest and the source's sum or max of `_seq_no` differs from it (an update in
place, or a delete plus an insert, keeps the count). Nothing here exports: the caller (the Dagster sensor,
orchestration/reconcile.py) asks for the changed days to be exported again, each with every guarantee of an
export.

Days that are not reconciled, each with its reason: not archived (no `_SUCCESS`: the daily export's or a
backfill's job), being exported (a lease is held), deleted from CrateDB by retention (the archive is their
only copy: never exported again), and days outside the window (never looked at). A day whose source is now
empty while its archive holds rows is reported (EMPTIED), not exported again: that would empty the archive.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from cratedb_export.core.archive import verified_rows
from cratedb_export.core.config import ExportSpec
from cratedb_export.core.cratedb import CrateDB
from cratedb_export.core.schema import read_source_table
from cratedb_export.core.source import Digest, read_digests
from cratedb_export.core.storage import DELETION_RECORD, LEASE, MANIFEST, SUCCESS, ObjectStore

CHANGED, UNCHANGED, SKIPPED = "changed", "unchanged", "skipped"
# The source holds no row of a day its archive holds rows of: far more likely old data deleted from CrateDB by
# something other than retention (another tool, by hand) than a correction. Exporting it again would empty the
# archive's copy, the only one left; it is reported instead, and re-materializing the day does it if meant.
EMPTIED = "emptied"


@dataclass(frozen=True)
class DayFinding:
    """One day of the window: whether it changed since its export, and why, with the numbers on both sides."""

    table: str
    day: date
    status: str  # CHANGED, UNCHANGED or SKIPPED
    reason: str
    archived_rows: int | None = None
    archived: Digest | None = None  # the manifest's source digest; None: the manifest has none
    now: Digest | None = None
    exported_at: str | None = None

    @property
    def changed(self) -> bool:
        return self.status == CHANGED


def reconcile_window(spec: ExportSpec, today: date) -> list[date]:
    """The days reconciled on `today`: today-1 back to today-reconcile_days, never before start_date."""
    first = max(spec.start_date, today - timedelta(days=spec.reconcile_days))
    return [first + timedelta(days=i) for i in range((today - first).days)]


def reconcile(
    spec: ExportSpec,
    today: date,
    *,
    crate: CrateDB,
    store: ObjectStore,
    log: Callable[[str], None] = lambda _: None,
) -> list[DayFinding]:
    """The findings for every day of the window, oldest first. Raises an ExportError (already redacted) when
    the table cannot be read (missing, CrateDB unreachable) or S3 cannot be listed."""
    days = reconcile_window(spec, today)
    if not days:
        return []
    directories = {day: spec.directory_for(day) for day in days}
    listed = store.list_directories(list(directories.values()))
    findings: dict[date, DayFinding] = {}
    archived: list[date] = []
    for day, directory in directories.items():
        names = {o.name for o in listed[directory] if not o.upload_id}
        skipped = _skipped(names)
        if skipped:
            findings[day] = DayFinding(spec.table, day, SKIPPED, skipped)
        else:
            archived.append(day)
    if archived:  # nothing archived in the window: CrateDB is not asked
        table = read_source_table(crate, spec, log)
        now = read_digests(table, days, crate, log)
        for day in archived:
            manifest = store.read_json(directories[day], MANIFEST)
            findings[day] = compare_day(spec, day, manifest, now[day])
    return [findings[day] for day in days]


def _skipped(names: set[str]) -> str | None:
    if DELETION_RECORD in names:
        return "deleted from CrateDB by retention: the archive is its only copy, it is never exported again"
    if LEASE in names:
        return "being exported (its lease is held): the run exporting it reads the source itself"
    if SUCCESS not in names:
        return "not archived (no _SUCCESS): exporting it is the daily export's or a backfill's job"
    return None


def compare_day(spec: ExportSpec, day: date, manifest: dict[str, Any] | None, now: Digest) -> DayFinding:
    """An archived day (its manifest) against its source digest now."""
    totals = (manifest or {}).get("totals") or {}
    rows = verified_rows(totals)
    if manifest is None or rows is None:
        return DayFinding(
            spec.table,
            day,
            CHANGED,
            f"{MANIFEST} is missing or holds no rows: exported again to prove the day (source rows {now.rows})",
            now=now,
        )
    archived = Digest.from_json(manifest.get("source_digest"))
    exported_at = _when(manifest.get("exported_at"))
    since = f" since exported {exported_at}" if exported_at else ""

    def finding(status: str, reason: str) -> DayFinding:
        return DayFinding(spec.table, day, status, reason, rows, archived, now, exported_at)

    if now.rows == 0 and rows > 0:
        return finding(
            EMPTIED,
            f"source rows {rows} → 0{since}: deleted from CrateDB, but not by retention; not exported again, so "
            "the archive keeps its rows (materialize the day to make its archive empty too)",
        )
    if now.rows != rows:
        return finding(CHANGED, f"source rows {rows} → {now.rows}{since}")
    if archived is None:
        return finding(
            UNCHANGED, f"rows unchanged ({rows}); no source digest in the manifest, the count alone compared"
        )
    if (archived.seq_no_sum, archived.seq_no_max) != (now.seq_no_sum, now.seq_no_max):
        return finding(
            CHANGED,
            f"rows unchanged ({rows}) but updated in place (seq_no sum {archived.seq_no_sum} → {now.seq_no_sum}, "
            f"max {_shown(archived.seq_no_max)} → {_shown(now.seq_no_max)}){since}",
        )
    return finding(UNCHANGED, f"unchanged ({rows} rows)")


def _shown(value: int | None) -> str:
    return "none" if value is None else str(value)


def _when(text: Any) -> str | None:
    """The manifest's exported_at to the minute, in UTC: 2026-12-04T00:01Z."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%MZ")
