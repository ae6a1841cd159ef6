"""Restoring one archived day: plan (nothing written), then load, then prove by recounting.

The plan proves the archive (archive.py), reads the target table's columns and counts the day's rows
already in it. A day is refused before anything is written when: it is not archived; its manifest lacks
what a restore needs; the target does not exist and cannot be created exactly from the recorded types;
the target's columns differ from the archived ones; or the target holds rows of the day and neither
`replace` nor `append` was asked for.

The load is one `COPY <target> FROM ? ... RETURN SUMMARY` with the day's files (their URIs, with the keys,
bound as one array parameter, never in statement text), sent once: a COPY FROM is not safe to repeat. The
day is restored only when every file was read without an error, the success counts add up to the
manifest's rows, and after a refresh the target's count for the day's window is what it must be.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from pydantic import ValidationError

from cratedb_export.core.archive import ArchivedDay, ArchiveUnproved, read_archived_day
from cratedb_export.core.config import ExportSpec
from cratedb_export.core.cratedb import CrateDB
from cratedb_export.core.errors import ExportError, VerificationError
from cratedb_export.core.lease import DayLeases
from cratedb_export.core.redaction import redact
from cratedb_export.core.restore.parquet import staged_as_ndjson
from cratedb_export.core.source import count_window
from cratedb_export.core.statement import (
    columns_statement,
    copy_from_statement,
    create_table_statement,
    ddl_type,
    delete_window_statement,
    refresh_statement,
)
from cratedb_export.core.storage import ObjectStore, StoredObject
from cratedb_export.core.target import DayDirectory, S3Access, target_uri


class RestoreRefused(ArchiveUnproved):
    """A day that cannot be restored as asked; nothing was written. The message says what to do."""


Mode = Literal["refuse", "replace", "append"]
DUPLICATE_KEY = "A document with the same primary key exists already"  # COPY FROM's message, CrateDB 6.4.3
MODES: tuple[Mode, ...] = ("refuse", "replace", "append")


def default_target(spec: ExportSpec) -> str:
    """Where a day is restored unless told otherwise: a new table beside the source."""
    return f"{spec.schema_name}.{spec.table_name}_restored"


@dataclass(frozen=True)
class DayRestorePlan:
    """What restoring one day will do, learnt without writing anything."""

    archived: ArchivedDay
    target: ExportSpec  # the export spec with `table` set to the target table (for its statements)
    create: bool  # the target does not exist yet and is created from the archived columns
    rows_before: int  # the day's rows already in the target
    mode: Mode

    @property
    def what(self) -> str:
        return f"{self.archived.what} into {self.target.table}"


@dataclass
class RestoredDay:
    """The proof of one restored day: what was loaded and what the target holds afterwards."""

    table: str
    day: date
    target: str
    created: bool
    files: int
    rows_archived: int
    rows_before: int
    rows_deleted: int
    rows_loaded: int
    rows_in_target: int
    rows_skipped_as_duplicates: int = 0
    timings: dict[str, float] = field(default_factory=dict)


def plan_day(
    crate: CrateDB,
    store: ObjectStore,
    spec: ExportSpec,
    day: date,
    *,
    target_table: str | None = None,
    mode: Mode = "refuse",
    log: Callable[[str], None] = lambda _: None,
) -> DayRestorePlan:
    """Everything a day's restore depends on, checked; raises RestoreRefused naming what to change."""
    if mode not in MODES:
        raise RestoreRefused(f"mode {mode!r} is not one of {', '.join(MODES)}")
    archived = read_archived_day(store, spec, day, RestoreRefused)
    if archived.format not in ("json", "parquet"):
        raise RestoreRefused(f"{archived.what} is archived as {archived.format!r}, which this exporter cannot read")
    target = _target_spec(spec, target_table or default_target(spec))
    reply = crate.execute(columns_statement(target), what=f"reading the columns of {target.table}", on_retry=log)
    existing = {str(name): str(data_type) for name, data_type in reply.rows if "[" not in str(name)}
    if not existing:
        _check_creatable(archived, target.table)
        return DayRestorePlan(archived, target, create=True, rows_before=0, mode=mode)
    _check_columns(archived, target.table, existing)
    rows_before = _count(crate, target, archived, log)
    if rows_before and mode == "refuse":
        raise RestoreRefused(
            f"{target.table} already holds {rows_before} row(s) of {archived.day} (by {spec.timestamp_column}); "
            "nothing was written. Restore with mode 'replace' (delete the day's rows there first) or 'append', "
            "or into another table"
        )
    if mode == "replace":
        _check_replaceable(archived, target.table, rows_before)
    return DayRestorePlan(archived, target, create=False, rows_before=rows_before, mode=mode)


def _check_replaceable(archived: ArchivedDay, table: str, rows_there: int) -> None:
    """`replace` deletes the day's rows in the target: only when none of them can be missing from the archive.

    The proof is the one retention uses: a count. More rows there than the archive holds cannot all be in
    it (rows that arrived after the export, say), and would be lost.
    """
    if rows_there > archived.rows:
        raise RestoreRefused(
            f"{table} holds {rows_there} row(s) of {archived.day}, the archive only {archived.rows}: replacing would "
            "delete rows the archive does not hold; nothing was written. Export the day again first, or restore "
            "into another table"
        )


def restore_day(
    crate: CrateDB,
    store: ObjectStore,
    access: S3Access,
    plan: DayRestorePlan,
    log: Callable[[str], None] = lambda _: None,
) -> RestoredDay:
    """Carry out a plan; raises an ExportError (redacted) unless the day is in the target, counted."""
    archived, target = plan.archived, plan.target
    result = RestoredDay(
        table=archived.spec.table,
        day=archived.day,
        target=target.table,
        created=plan.create,
        files=len(archived.files),
        rows_archived=archived.rows,
        rows_before=plan.rows_before,
        rows_deleted=0,
        rows_loaded=0,
        rows_in_target=0,
    )
    started = time.perf_counter()
    # Proved again right before anything is written: an export of the day (before this run held its lease)
    # may have replaced the archive since the restore was planned.
    now = read_archived_day(store, archived.spec, archived.day, RestoreRefused)
    if (now.files, now.rows) != (archived.files, archived.rows):
        raise RestoreRefused(f"{plan.what}: the archive changed since the restore was planned; nothing was written")
    if plan.create:
        assert archived.columns is not None  # plan_day checked
        crate.execute(create_table_statement(target, archived.columns), what=f"creating {target.table}", on_retry=log)
    if plan.mode == "replace" and plan.rows_before:
        # Counted again right before deleting: no more rows there than the archive holds.
        _check_replaceable(archived, target.table, _count(crate, target, archived, log))
        deleted = crate.execute_once(
            delete_window_statement(target, archived.window), what=f"deleting {archived.day} from {target.table}"
        )
        result.rows_deleted = deleted.rowcount
        crate.execute(refresh_statement(target), what=f"refreshing {target.table}", on_retry=log)
        left = _count(crate, target, archived, log)
        if left:
            raise VerificationError(f"{plan.what}: {left} row(s) of the day are still there after deleting them")
    kept = plan.rows_before if plan.mode == "append" else 0
    if archived.format == "parquet":
        with staged_as_ndjson(store, archived) as (staging, staged):
            loaded = _load(crate, access, plan, staging, staged)
    else:
        loaded = _load(crate, access, plan, archived.directory, archived.files)
    result.rows_loaded, result.rows_skipped_as_duplicates = loaded
    crate.execute(refresh_statement(target), what=f"refreshing {target.table}", on_retry=log)
    result.rows_in_target = _count(crate, target, archived, log)
    result.timings["restore"] = round(time.perf_counter() - started, 3)
    duplicates = result.rows_skipped_as_duplicates
    if result.rows_loaded + duplicates != archived.rows or result.rows_in_target != kept + result.rows_loaded:
        raise VerificationError(
            f"{plan.what}: the archive holds {archived.rows} row(s), {result.rows_loaded} were loaded"
            f"{f' and {duplicates} skipped as duplicates' if duplicates else ''}, and the target now holds "
            f"{result.rows_in_target} of the day (expected {kept + result.rows_loaded}). Re-run the restore with "
            "mode 'replace'",
            counts={"archived": archived.rows, "loaded": result.rows_loaded, "in_target": result.rows_in_target},
        )
    if duplicates:
        log(f"{plan.what}: {duplicates} row(s) skipped: the target holds rows with the same primary key")
    return result


def _load(
    crate: CrateDB, access: S3Access, plan: DayRestorePlan, directory: DayDirectory, files: Sequence[StoredObject]
) -> tuple[int, int]:
    """One COPY FROM of the day's non-empty files (COPY TO writes one per shard, empty ones too): the rows
    loaded, and those skipped because the target holds their primary key."""
    loaded = [o for o in files if o.size]
    if not loaded:
        return 0, 0
    base = target_uri(directory, access)
    statement = copy_from_statement(
        plan.target,
        [base + o.key[len(directory.prefix) :] for o in loaded],
        gzip=any(o.name.endswith(".gz") for o in loaded),
        protocol=access.protocol if access.endpoint else None,
    )
    summary = crate.execute_once(statement, what=f"COPY FROM of {plan.what}")
    return _check_summary(plan, summary.rows)


def _target_spec(spec: ExportSpec, table: str) -> ExportSpec:
    """The export spec with `table` set to the target: its statements then name the target, validated."""
    try:
        return ExportSpec.model_validate({**spec.model_dump(), "table": table})
    except ValidationError as error:
        problems = "; ".join(e["msg"] for e in error.errors())
        raise RestoreRefused(f"target table {table!r} is not usable: {problems}") from None


def _check_summary(plan: DayRestorePlan, rows: Sequence[Sequence[Any]]) -> tuple[int, int]:
    """The rows loaded and the rows skipped as duplicates, from COPY FROM's summary (node, uri, success_count,
    error_count, errors); raise on any file not read or any row refused for another reason — or, unless the
    mode is append, for a primary key the target already holds — with CrateDB's first errors."""
    loaded, duplicates, failed, errors = 0, 0, 0, []
    for _node, uri, success, error_count, messages in rows:
        if success is None or error_count is None:
            failed += 1
            errors += [f"{uri}: {message}" for message in (messages or {"not read": None})]
            continue
        loaded += int(success)
        skipped = sum(
            int(detail.get("count", 0))
            for message, detail in (messages or {}).items()
            if DUPLICATE_KEY in message and isinstance(detail, Mapping)
        )
        duplicates += skipped
        failed += int(error_count) - skipped
        errors += [f"{uri}: {message} ({_lines(detail)})" for message, detail in (messages or {}).items()]
    if duplicates and plan.mode != "append":
        failed += duplicates
    if failed:
        shown = "; ".join(str(redact(e)) for e in errors[:5])
        hint = " (or restore with mode 'append' to skip rows whose primary key it holds)" if duplicates else ""
        raise VerificationError(
            f"{plan.what}: CrateDB refused {failed} row(s) or file(s) while {loaded} row(s) were loaded: {shown}. "
            f"Fix the target table{hint}, then re-run the restore with mode 'replace'",
            counts={"archived": plan.archived.rows, "loaded": loaded, "refused": failed},
        )
    return loaded, duplicates


def _lines(detail: Any) -> str:
    if isinstance(detail, Mapping):
        numbers = detail.get("line_numbers") or []
        return f"{detail.get('count')} row(s), lines {numbers[:5]}"
    return str(detail)


def _count(crate: CrateDB, target: ExportSpec, archived: ArchivedDay, log: Callable[[str], None]) -> int:
    return count_window(crate, target, archived.window, log)


def _check_creatable(archived: ArchivedDay, table: str) -> None:
    if archived.columns is None:
        raise RestoreRefused(
            f"{archived.what}: {table} does not exist, and the manifest (an earlier exporter's) records no "
            f"columns to create it from; create {table} with the source's columns, then restore into it"
        )
    inexact = [f"{name} ({data_type})" for name, data_type in archived.columns if ddl_type(data_type) is None]
    if inexact:
        raise RestoreRefused(
            f"{archived.what}: {table} does not exist, and it cannot be created exactly: the recorded types of "
            f"{', '.join(inexact)} lack their parameters (precision, length, dimensions). Create {table} with "
            "the source's definition (SHOW CREATE TABLE), then restore into it"
        )


def _check_columns(archived: ArchivedDay, table: str, existing: Mapping[str, str]) -> None:
    if archived.columns is None:
        return  # an earlier exporter's manifest: the load's summary and the recount still prove the rows
    problems = []
    for name, data_type in archived.columns:
        found = existing.get(name)
        if found is None:
            problems.append(f"{name} is missing")
        elif found != data_type:
            problems.append(f"{name} is {found}, archived as {data_type}")
    if problems:
        raise RestoreRefused(
            f"{archived.what}: the columns of {table} do not match the archived day's: {'; '.join(problems)}; "
            "nothing was written. Restore into a new table, or align the table's columns"
        )


def restore_days(
    crate: CrateDB,
    store: ObjectStore,
    access: S3Access,
    spec: ExportSpec,
    days: Sequence[date],
    *,
    target_table: str | None = None,
    mode: Mode = "refuse",
    log: Callable[[str], None] = lambda _: None,
    leases: DayLeases | None = None,
) -> list[RestoredDay]:
    """Plan every day first (so a refusal writes nothing), then restore them in order, each while holding
    its lease (`leases`): no export or retention run clears the archive or deletes the day meanwhile."""
    plans, refusals = [], []
    for day in days:
        try:
            plans.append(plan_day(crate, store, spec, day, target_table=target_table, mode=mode, log=log))
        except ExportError as error:
            refusals.append(str(error))
    if refusals:
        raise RestoreRefused(
            f"{len(refusals)} of {len(days)} day(s) cannot be restored; nothing was written:\n" + "\n".join(refusals)
        )
    created: set[str] = set()
    restored = []
    for plan in plans:
        if plan.create and plan.target.table in created:  # an earlier day of this run created it
            plan = DayRestorePlan(plan.archived, plan.target, create=False, rows_before=0, mode=plan.mode)
        held = leases.hold(spec.table, plan.archived.day, plan.archived.directory, log) if leases else nullcontext()
        with held:
            restored.append(restore_day(crate, store, access, plan, log))
        created.add(plan.target.table)
    return restored
