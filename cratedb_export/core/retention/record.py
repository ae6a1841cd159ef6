"""The record beside a deleted day in S3: what was deleted, when, how, and where its rows are now.

Written twice: as an intent ("deleting", before the DELETE is sent) and final ("deleted", after the recount
shows the day empty). A day with either is never exported again (core/export.py refuses it), and a run that
finds an intent finishes or undoes it (delete.py). No secret is in it: the archive is named by its display URI.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cratedb_export.core import __version__
from cratedb_export.core.archive import ArchivedDay
from cratedb_export.core.window import DayWindow

DELETING = "deleting"
DELETED = "deleted"
PARTITION = "partition"
WINDOW = "window"


@dataclass(frozen=True)
class PartitionRef:
    """One partition of a table partitioned by a generated date_trunc column."""

    column: str
    unit: str
    ident: str
    value: int  # epoch ms of the partition's start (UTC)
    start_ms: int
    end_ms: int
    blocked: bool  # blocks.write is set

    @property
    def shown(self) -> str:
        start = datetime.fromtimestamp(self.start_ms / 1000, UTC).isoformat(timespec="seconds")
        return f"partition {self.column} = {start} ({self.unit}, ident {self.ident})"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def deletion_record(
    archived: ArchivedDay,
    window: DayWindow,
    *,
    state: str,
    how: str,
    rows: int,
    archive_uri: str,
    partition: PartitionRef | None,
    decided_at: str,
    deleted_at: str | None = None,
    rows_deleted: int | None = None,
) -> dict[str, Any]:
    """The record's JSON; `rows` is what the proof found (source = archive), `rows_deleted` what CrateDB
    answered (None for a partition drop, which answers -1: the recount to 0 is the proof then)."""
    spec = archived.spec
    return {
        "table": spec.table,
        "day": archived.day.isoformat(),
        "timestamp_column": spec.timestamp_column,
        "window": {"start": window.start.isoformat(), "end": window.end.isoformat()},
        "state": state,
        "how": how,
        "partition": None
        if partition is None
        else {"column": partition.column, "unit": partition.unit, "ident": partition.ident, "value": partition.value},
        "rows_proved": rows,
        "rows_deleted": rows if rows_deleted is None and state == DELETED else rows_deleted,
        "archive": {
            "directory": archive_uri,
            "files": [{"name": f.name, "size": f.size} for f in archived.files],
            "bytes": sum(f.size for f in archived.files),
            "rows": archived.rows,
            "exported_at": archived.manifest.get("exported_at"),
            "exported_by": archived.manifest.get("exporter_version"),
        },
        "decided_at": decided_at,
        "deleted_at": deleted_at,
        "exporter_version": __version__,
        "restore": "restore_cratedb_days into the source table brings the rows back (docs/restore.md)",
    }
