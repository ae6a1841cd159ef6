"""What the archive holds for one day, proved before a restore reads it or retention deletes the day from CrateDB.

The one proof of an archived day: `_SUCCESS`, the manifest, every file the manifest lists present at its
size, and the rows the export verified. Restore (core/restore) and retention (core/retention) both rely on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from cratedb_export.core.config import ExportSpec
from cratedb_export.core.errors import PermanentError
from cratedb_export.core.schema import WITHOUT_TIME_ZONE
from cratedb_export.core.storage import MANIFEST, SUCCESS, ObjectStore, StoredObject
from cratedb_export.core.target import DayDirectory
from cratedb_export.core.window import DayWindow


class ArchiveUnproved(PermanentError):
    """The archive does not prove it holds the day; the message says what is missing and where."""


@dataclass(frozen=True)
class ArchivedDay:
    """One verified day in S3: the files its manifest lists (as found there), its rows, its columns."""

    spec: ExportSpec
    day: date
    directory: DayDirectory
    files: tuple[StoredObject, ...]
    rows: int
    format: str
    compression: str | None
    columns: tuple[tuple[str, str], ...] | None  # (name, CrateDB type) as the export read them; None: not recorded
    manifest: Mapping[str, Any] = field(default_factory=dict, compare=False)  # as read, for retention's checks

    @property
    def what(self) -> str:
        return f"{self.spec.table} {self.day.isoformat()}"

    @property
    def window(self) -> DayWindow:
        """The day's window as the export read it (wall-clock days for TIMESTAMP WITHOUT TIME ZONE)."""
        types = dict(self.columns or ())
        wall_clock = types.get(self.spec.timestamp_column) == WITHOUT_TIME_ZONE
        return DayWindow.for_day(self.day, self.spec.timezone, wall_clock=wall_clock)


def read_archived_day(
    store: ObjectStore, spec: ExportSpec, day: date, refused: type[ArchiveUnproved] = ArchiveUnproved
) -> ArchivedDay:
    """Prove what S3 holds for the day: `_SUCCESS`, the manifest, and every file it lists with its size.

    Raises `refused` (ArchiveUnproved or a kind of it, e.g. restore's RestoreRefused) saying what is missing.
    """
    directory = spec.directory_for(day)
    what = f"{spec.table} {day.isoformat()}"
    where = directory.display_uri()
    found = {o.name: o for o in store.list_directory(directory)}
    if SUCCESS not in found:
        raise refused(
            f"{what} is not archived: {where} has no {SUCCESS} (never exported, or its export did not verify); "
            "export the day first, or choose days that are archived"
        )
    manifest = store.read_json(directory, MANIFEST)
    if manifest is None:
        raise refused(f"{what}: {where} has {SUCCESS} but no {MANIFEST}; its files cannot be proved")
    listed = manifest.get("files")
    rows = verified_rows(manifest.get("totals") or {})
    missing = [field for field, value in (("files", listed), ("totals", rows)) if value is None]
    if missing:
        raise refused(
            f"{what}: the manifest in {where} lacks {', '.join(missing)} (written by exporter "
            f"{manifest.get('exporter_version', 'unknown')}); the day cannot be proved, re-export it first"
        )
    assert listed is not None and rows is not None
    files = []
    for entry in listed:
        name, size = str(entry.get("name")), entry.get("size")
        stored = found.get(name)
        if stored is None or (size is not None and stored.size != size):
            shown = "is missing" if stored is None else f"has {stored.size} bytes, the manifest says {size}"
            raise refused(f"{what}: file {name} {shown} in {where}; the archive does not hold the day")
        files.append(stored)
    columns = manifest.get("columns")
    return ArchivedDay(
        spec=spec,
        day=day,
        directory=directory,
        files=tuple(files),
        rows=rows,
        format=str(manifest.get("format") or "json"),
        compression=manifest.get("compression"),
        columns=tuple((str(c["name"]), str(c["data_type"])) for c in columns) if columns else None,
        manifest=manifest,
    )


def verified_rows(totals: Mapping[str, Any]) -> int | None:
    """The day's rows as verified: the rows in the files, else the count the export agreed on (a manifest's
    `totals`; the one rule restore, retention and reconcile read an archived day's rows by)."""
    for name in ("exported_rows", "source_rows", "copy_rowcount"):
        if isinstance(totals.get(name), int):
            return int(totals[name])
    return None
