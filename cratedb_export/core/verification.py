"""The two rules that decide whether a day may be marked complete, for every format.

A day is complete only when its numbers agree — COPY's rowcount, the source's count for the window, the
rows actually in the files (and, for Parquet, the rows in the file read back) — and when its directory
holds nothing but the day's own files. Both raise a VerificationError that says what was found; the
caller writes no `_SUCCESS`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from cratedb_export.core.errors import VerificationError
from cratedb_export.core.storage import LEASE, SUCCESS, StoredObject
from cratedb_export.core.target import DayDirectory


def counts_agree(counts: Mapping[str, int | None]) -> bool:
    """At least two numbers are known, and all known numbers are equal."""
    known = [v for v in counts.values() if v is not None]
    return len(known) >= 2 and len(set(known)) == 1


def check_counts(what: str, counts: Mapping[str, int | None], mismatch: str, advice: str = "") -> None:
    """Raise unless `counts` agree; `mismatch` says what does not match what (e.g. "export does not match
    the source"), `advice` what to do about it."""
    if counts_agree(counts):
        return
    shown = ", ".join(f"{k}={v}" for k, v in counts.items() if v is not None)
    raise VerificationError(
        f"{what}: {mismatch} ({shown}); no {SUCCESS} marker was written{'. ' + advice if advice else ''}",
        counts=dict(counts),
    )


def check_only_own_files(
    what: str, directory: DayDirectory, objects: Iterable[StoredObject], own: Callable[[StoredObject], bool]
) -> None:
    """Raise if the directory holds anything but the day's own files (and its lease): it would be read as
    data, or shows another writer in the directory."""
    lease = directory.key(LEASE)
    strays = [o.name for o in objects if o.key != lease and not own(o)]
    if strays:
        raise VerificationError(
            f"{what}: unexpected object(s) {strays[:5]} appeared in {directory.display_uri()} during the export "
            f"(another writer in this directory?); no {SUCCESS} marker was written"
        )
