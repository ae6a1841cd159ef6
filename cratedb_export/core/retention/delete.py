"""Proving and deleting due days, one unit at a time: a whole partition, or one day's window.

Every unit is proved right before its DELETE, while this run holds the leases of its days (so no export or
re-export of them runs meanwhile): the archive (`_SUCCESS`, manifest, every file at its size), the manifest's
timestamp column and window equal to the DELETE's, and the source's count of the window equal to the
manifest's rows — and its digest (sum and max of `_seq_no`) equal to the manifest's where that has one, so
rows updated in place since the export are never taken for archived ones. Then an intent record
("deleting") is written, the DELETE sent once, the day recounted to 0 and the final record ("deleted")
written. A run killed at any step leaves a state the next run
recognises and finishes (see `_window_day` and `_partition`); nothing is deleted on a guess.

A whole partition is dropped under a write block: `blocks.write` makes CrateDB refuse inserts into it, so the
recount under the block is still true when the DELETE drops it (which answers -1). A window DELETE has no
such block: rows written between the recount and the DELETE would be deleted unarchived; its rowcount shows
it, and the run fails with the numbers (docs/retention.md, "The residual window").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from cratedb_export.core.archive import ArchivedDay, ArchiveUnproved, read_archived_day
from cratedb_export.core.config import ExportSpec
from cratedb_export.core.cratedb import CrateDB
from cratedb_export.core.errors import ExportError, PermanentError
from cratedb_export.core.lease import DayLeases
from cratedb_export.core.retention.plan import (
    DayState,
    cutoff_day,
    due_days,
    read_day_states,
    read_partitioning,
    whole_days,
)
from cratedb_export.core.retention.record import (
    DELETED,
    DELETING,
    PARTITION,
    WINDOW,
    PartitionRef,
    deletion_record,
    now,
)
from cratedb_export.core.schema import SourceTable, read_source_table
from cratedb_export.core.source import Digest, SourceCounts, digest_day, read_digests
from cratedb_export.core.statement import (
    delete_partition_statement,
    delete_window_statement,
    jobs_lookup_statement,
    partition_write_block_statement,
    refresh_statement,
)
from cratedb_export.core.storage import DELETION_RECORD, ObjectStore, StoredObject
from cratedb_export.core.window import DayWindow

# Ends the text of retention's DELETEs: `/* cratedb-export retention <table> <day> [<day> ...] */`, so that a
# run taking over a dead run's lease can see in sys.jobs whether that run's DELETE of the day still runs.
DELETE_COMMENT = "cratedb-export retention"
DELETE_WAIT_S, DELETE_POLL_S = 120.0, 1.0

# What became of a due day in a run.
REMOVED = "deleted"
WOULD_DELETE = "would delete"  # dry run: proved, nothing deleted
WAITING = "waiting"  # rows not archived (yet): normal, a warning
UNPROVED = "unproved"  # archived, but the archive does not prove the day: the user must act
FAILED = "failed"  # a statement or request failed, or the numbers after a DELETE are not what they must be
NEEDS_ACTION = (UNPROVED, FAILED)


@dataclass
class DayOutcome:
    """One due day of a run; the days with nothing to do (no rows, already deleted) are not listed."""

    table: str
    day: date
    kind: str
    reason: str = ""
    rows: int = 0
    how: str | None = None
    partition: str | None = None
    archive: str = ""
    record_uri: str | None = None
    deleted_at: str | None = None

    @property
    def needs_action(self) -> bool:
        return self.kind in NEEDS_ACTION

    def line(self) -> str:
        how = f" by {self.how}" + (f" ({self.partition})" if self.partition else "") if self.how else ""
        rows = f" {self.rows} row(s)" if self.rows else ""
        reason = f": {self.reason}" if self.reason else ""
        return f"{self.table} {self.day.isoformat()} {self.kind}{rows}{how}{reason}"


@dataclass
class TableRetention:
    """What one run did to one table."""

    table: str
    dry_run: bool
    first_kept: date | None
    outcomes: list[DayOutcome] = field(default_factory=list)
    left_for_later: int = 0  # proved candidates beyond max_days_per_run
    partitioning: str = ""

    def of(self, kind: str) -> list[DayOutcome]:
        return [o for o in self.outcomes if o.kind == kind]


class RetentionRefused(PermanentError):
    """Retention cannot run for this table as configured; nothing was deleted. The message says what to change."""


def retain_table(
    crate: CrateDB,
    store: ObjectStore,
    spec: ExportSpec,
    leases: DayLeases,
    *,
    endpoint: str | None = None,
    dry_run: bool | None = None,
    today: date | None = None,
    log: Callable[[str], None] = lambda _: None,
    on_step: Callable[[str, str], None] = lambda what, step: None,
) -> TableRetention:
    """Delete the table's due days that the archive proves, oldest first, at most max_days_per_run of them."""
    policy = spec.retention
    if policy is None:
        raise RetentionRefused(f"{spec.table} has no retention policy; add 'retention: {{keep_days: N}}' to its export")
    dry = policy.dry_run if dry_run is None else dry_run
    table = read_source_table(crate, spec, log)  # refuses a timestamp column whose days cannot be read
    days = due_days(spec, policy.keep_days, today)
    result = TableRetention(spec.table, dry, cutoff_day(spec, policy.keep_days, today))
    if not days:
        return result
    counts = SourceCounts(table, days, crate, log).day_counts(days)
    states = read_day_states(store, table, days, counts)
    partitioning = read_partitioning(crate, table, log)
    by_start = {s.window.start_ms: s for s in states}
    for partition in partitioning.partitions:
        for window in whole_days(partition, [s.window for s in states]) or ():
            by_start[window.start_ms].partition = partition
    result.partitioning = partitioning.why_not or f"partitioned by {partitioning.column} ({partitioning.unit})"
    work = _Work(crate, store, table, leases, endpoint, dry, log, on_step)
    candidates = []
    for state in states:
        if state.state == DELETED and not state.rows and state.leased:
            work.release(state)  # left by a run that died after the final record
        outcome = work.triage(state)
        if outcome is not None:
            result.outcomes.append(outcome)
        elif state.rows or state.state == DELETING:
            candidates.append(state)
    taken = 0
    for unit, whole in _units(states, candidates):
        if taken and taken + len(unit) > policy.max_days_per_run:
            result.left_for_later = sum(1 for s in candidates if s.day >= unit[0].day)
            log(
                f"{spec.table}: {taken} day(s) done, max_days_per_run {policy.max_days_per_run} reached; "
                f"{result.left_for_later} due day(s) are left for the next run"
            )
            break
        try:
            outcomes = work.partition(unit, whole) if whole else [work.window_day(unit[0])]
        except ExportError as error:  # a lease not to be had, S3 or CrateDB unavailable: these days wait
            outcomes = [work.outcome(s, FAILED, str(error)) for s in unit]
        result.outcomes.extend(o for o in outcomes if o is not None)
        # Only days deleted (or that a dry run would delete) count: unproved ones never hold up later days.
        taken += sum(1 for o in outcomes if o is not None and o.kind in (REMOVED, WOULD_DELETE))
    result.outcomes.sort(key=lambda o: o.day)
    return result


def day_delete_running(crate: CrateDB, table: str, day: date) -> bool:
    """Whether a DELETE of this table-day sent by retention (any run) shows in sys.jobs right now."""
    pattern = f"%/* {DELETE_COMMENT} {table} %{day.isoformat()}% */%"
    reply = crate.execute(jobs_lookup_statement("jobs", pattern), what=f"looking up DELETEs of {table} {day}")
    return bool(reply.rows)


def _comment(table: str, days: list[date]) -> str:
    return f"/* {DELETE_COMMENT} {table} {' '.join(day.isoformat() for day in days)} */"


def _units(states: list[DayState], candidates: list[DayState]) -> Iterator[tuple[list[DayState], PartitionRef | None]]:
    """Candidates in order, as whole partitions where every day of the partition that holds rows is one,
    else one day each."""
    chosen = {id(s) for s in candidates}
    members: dict[str, list[DayState]] = {}
    for state in states:
        if state.partition is not None:
            members.setdefault(state.partition.ident, []).append(state)
    done: set[str] = set()
    for state in candidates:
        partition = state.partition
        if partition is not None and partition.ident in done:
            continue
        if partition is not None:
            days = members[partition.ident]
            holding = [s for s in days if s.rows or s.state == DELETING]
            if all(id(s) in chosen for s in holding):
                done.add(partition.ident)
                yield holding, partition
                continue
        yield [state], None


@dataclass
class _Work:
    crate: CrateDB
    store: ObjectStore
    table: SourceTable
    leases: DayLeases
    endpoint: str | None
    dry: bool
    log: Callable[[str], None]
    on_step: Callable[[str, str], None]

    @property
    def spec(self) -> ExportSpec:
        return self.table.spec

    def outcome(self, state: DayState, kind: str, reason: str = "", **fields: Any) -> DayOutcome:
        archive = self.spec.directory_for(state.day).display_uri(self.endpoint)
        return DayOutcome(self.spec.table, state.day, kind, reason, archive=archive, **fields)

    def triage(self, state: DayState) -> DayOutcome | None:
        """What the listing and the count already tell (None: a candidate, or nothing to do)."""
        if state.state == DELETED:
            if not state.rows:
                return None
            return self.outcome(state, UNPROVED, _late_rows(state.rows, state.record or {}), rows=state.rows)
        if state.record is not None and state.state != DELETING:
            return self.outcome(state, UNPROVED, f"its {DELETION_RECORD} has an unknown state {state.state!r}")
        if state.state is None and state.rows and not state.archived:
            return self.outcome(
                state,
                WAITING,
                "not archived (never exported, or its export did not verify): export the day first",
                rows=state.rows,
            )
        return None

    def release(self, state: DayState) -> None:
        """Take over and release a dead run's lease beside a deleted day; a live holder is left alone."""
        try:
            with self._held([state]):
                pass
        except ExportError as error:
            self.log(f"{self.spec.table} {state.day}: its lease was left as it is ({error})")

    # -- one day by its window ------------------------------------------------------------------------

    def window_day(self, state: DayState) -> DayOutcome | None:
        with self._held([state]):
            partition, record = state.partition, state.record or {}
            if partition is not None and partition.blocked and record.get("how") == PARTITION and not self.dry:
                # A run that died had blocked the partition to drop it; it is not dropped whole now.
                self._block(partition, blocked=False)
            return self._window_day(state)

    def _window_day(self, state: DayState) -> DayOutcome | None:
        """Prove and delete one day by its window; its lease is held."""
        spec, day = self.spec, state.day
        what = f"{spec.table} {day.isoformat()}"
        directory = spec.directory_for(day)
        try:
            record = self.store.read_json(directory, DELETION_RECORD)  # again, under the lease
            self._refresh()
            digest = digest_day(self.table, day, self.crate, self.log)
            rows = digest.rows
            state_now = None if record is None else record.get("state")
            if state_now == DELETED:
                return self.outcome(state, UNPROVED, _late_rows(rows, record or {}), rows=rows) if rows else None
            if rows == 0 and record is None:
                return None
            try:
                archived = read_archived_day(self.store, spec, day)
                _check_window(archived, state.window)
            except ArchiveUnproved as error:
                return self._unproved(state, record, rows, str(error))
            if rows == 0:  # a DELETE answered (or its answer was lost): the intent is finished
                assert record is not None
                return self._finish(state, archived, record, rows_deleted=None)
            if rows != archived.rows:
                return self._not_matching(state, record, rows, archived)
            if changed := _changed(archived, digest):
                return self._not_matching(state, record, rows, archived, changed)
            self.on_step(what, "proved")
            if self.dry:
                return self.outcome(state, WOULD_DELETE, rows=rows, how=WINDOW)
            decided = now()
            intent = self._record(archived, state, DELETING, WINDOW, rows, None, decided)
            self.on_step(what, "deleting")
            statement = delete_window_statement(spec, state.window, comment=_comment(spec.table, [day]))
            reply = self.crate.execute_once(statement, what=f"deleting {what}")
            self.on_step(what, "deleted")
            self._refresh()
            after = digest_day(self.table, day, self.crate, self.log).rows
            final = {**intent, "state": DELETED, "deleted_at": now(), "rows_deleted": reply.rowcount}
            if reply.rowcount > rows or after:
                final["unarchived_rows"] = {"deleted": max(0, reply.rowcount - rows), "remaining": after}
            self.store.put_json(directory, DELETION_RECORD, final)
            self.on_step(what, "recorded")
        except ExportError as error:
            return self.outcome(state, FAILED, str(error))
        if reply.rowcount > rows:
            return self.outcome(
                state,
                FAILED,
                f"the DELETE removed {reply.rowcount} row(s), {rows} were proved archived: {reply.rowcount - rows} "
                "row(s) written to the day between the recount and the DELETE were deleted and are NOT in the "
                "archive (the residual window of a window delete, docs/retention.md)",
                rows=reply.rowcount,
                how=WINDOW,
                record_uri=self._record_uri(day),
            )
        if after:
            return self.outcome(
                state,
                FAILED,
                f"after the DELETE of {reply.rowcount} row(s) the day holds {after} row(s) again, written meanwhile; "
                "they are not in the archive and the day is not exported again (docs/retention.md)",
                rows=reply.rowcount,
                how=WINDOW,
                record_uri=self._record_uri(day),
            )
        return self._deleted(state, rows, WINDOW, None, final["deleted_at"])

    def _unproved(self, state: DayState, record: dict | None, rows: int, why: str) -> DayOutcome:
        if record is not None and rows == 0:
            why = f"the day is already deleted from CrateDB, and now its archive does not prove it: {why}"
        elif record is not None and rows == record.get("rows_proved"):
            self._drop_intent(state.day)  # nothing was deleted: the day is an ordinary one again
            why += "; nothing was deleted (the unfinished deletion was called off)"
        return self.outcome(state, UNPROVED, why, rows=rows)

    def _not_matching(
        self, state: DayState, record: dict | None, rows: int, archived: ArchivedDay, changed: str | None = None
    ) -> DayOutcome:
        where = self.spec.directory_for(state.day).display_uri(self.endpoint)
        if record is not None:
            if rows == record.get("rows_proved"):
                self._drop_intent(state.day)
            found = changed or f"found {rows} row(s), the archive holds {archived.rows}"
            return self.outcome(
                state,
                UNPROVED,
                f"an unfinished deletion (since {record.get('decided_at')}) {found}: rows were deleted only in "
                "part, or written meanwhile; check the day by hand",
                rows=rows,
            )
        if changed:
            return self.outcome(
                state,
                WAITING,
                f"{changed} ({where}); re-export the day (reconcile does so within its window) before it is deleted",
                rows=rows,
            )
        if rows > archived.rows:
            return self.outcome(
                state,
                WAITING,
                f"CrateDB holds {rows} row(s), the archive {archived.rows} ({where}): {rows - archived.rows} row(s) "
                "arrived after the export; re-export the day (reconcile does so within its window) before it is "
                "deleted",
                rows=rows,
            )
        return self.outcome(
            state,
            WAITING,
            f"CrateDB holds {rows} row(s), fewer than the {archived.rows} archived ({where}): rows were deleted or "
            "changed after the export; re-export the day so that the archive is what CrateDB holds",
            rows=rows,
        )

    # -- a whole partition ----------------------------------------------------------------------------

    def partition(self, states: list[DayState], partition: PartitionRef) -> list[DayOutcome | None]:
        with self._held(states):
            return self._partition(states, partition)

    def _partition(self, states: list[DayState], partition: PartitionRef) -> list[DayOutcome | None]:
        """Drop a partition whose every day with rows is proved; otherwise delete its days one by one.

        Intents are written before the write block is set, so a partition is never left blocked by a run
        that died without a record saying so (the next run resets or uses the block it finds with them).
        """
        spec = self.spec
        archives: dict[date, ArchivedDay] = {}
        ours = False  # a run that died had decided to drop this partition (its intents say so)
        for state in states:
            record = self.store.read_json(spec.directory_for(state.day), DELETION_RECORD)
            ours = ours or (record or {}).get("how") == PARTITION
            if record is not None and record.get("state") != DELETING:
                return self._by_window(states, partition, f"{state.day} has a {DELETION_RECORD}", ours)
            try:
                archives[state.day] = read_archived_day(self.store, spec, state.day)
                _check_window(archives[state.day], state.window)
            except ArchiveUnproved:
                return self._by_window(states, partition, f"{state.day} is not proved", ours)
        try:
            self._refresh()  # a partition drop takes rows not yet refreshed too: count them
            digests = self._digests(partition)
            if wrong := _mismatches(digests, archives):
                return self._by_window(states, partition, wrong, ours)
            for state in states:
                self.on_step(f"{spec.table} {state.day.isoformat()}", "proved")
            if self.dry:
                return [
                    self.outcome(s, WOULD_DELETE, rows=_rows(digests, s.day), how=PARTITION, partition=partition.shown)
                    for s in states
                ]
            decided = now()
            intents = {
                s.day: self._record(archives[s.day], s, DELETING, PARTITION, _rows(digests, s.day), partition, decided)
                for s in states
            }
            if not partition.blocked:
                self._block(partition, blocked=True)
            self._refresh()
            digests = self._digests(partition)  # the proof: under the block, writes to the partition fail
            if wrong := _mismatches(digests, archives):
                self._block(partition, blocked=False)
                for state in states:  # nothing was deleted: the days are ordinary ones again
                    self._drop_intent(state.day)
                self.log(f"{spec.table} {partition.shown}: not dropped whole ({wrong}); deleting its days by window")
                return [self._window_day(s) for s in states]
            for state in states:
                self.on_step(f"{spec.table} {state.day.isoformat()}", "deleting")
            self.crate.execute_once(
                delete_partition_statement(
                    spec, partition.column, partition.value, comment=_comment(spec.table, [s.day for s in states])
                ),
                what=f"dropping {spec.table} {partition.shown}",
            )
            for state in states:
                self.on_step(f"{spec.table} {state.day.isoformat()}", "deleted")
            self._refresh()
            after = {day: digest.rows for day, digest in self._digests(partition).items()}
        except ExportError as error:
            return [self.outcome(s, FAILED, str(error), how=PARTITION, partition=partition.shown) for s in states]
        left = {day.isoformat(): rows for day, rows in after.items() if rows}
        if left:
            return [
                self.outcome(
                    s,
                    FAILED,
                    f"after dropping {partition.shown} CrateDB still counts {left}; the intent records stay, the "
                    "next run checks again",
                    how=PARTITION,
                    partition=partition.shown,
                )
                for s in states
            ]
        return [self._finish(s, archives[s.day], intents[s.day], rows_deleted=None) for s in states]

    def _by_window(
        self, states: list[DayState], partition: PartitionRef, why: str, ours: bool
    ) -> list[DayOutcome | None]:
        """The partition cannot be dropped whole: its days one by one (their leases are held)."""
        self.log(f"{self.spec.table} {partition.shown}: not dropped whole ({why}); deleting its proved days by window")
        if partition.blocked and ours and not self.dry:
            try:
                self._block(partition, blocked=False)  # set by a run that died: inserts must work again
            except ExportError as error:
                return [self.outcome(s, FAILED, str(error)) for s in states]
        return [self._window_day(s) for s in states]

    # -- helpers ------------------------------------------------------------------------------------

    @contextmanager
    def _held(self, states: list[DayState]) -> Iterator[None]:
        with ExitStack() as stack:
            for state in states:
                directory = self.spec.directory_for(state.day)
                stack.enter_context(self.leases.hold(self.spec.table, state.day, directory, self.log))
            for state in states:
                if state.state == DELETING:  # an earlier run's intent: its DELETE may still run in CrateDB
                    self._await_delete(state.day)
            yield

    def _await_delete(self, day: date) -> None:
        """A DELETE outlives the run that sent it: the day is proved again only once it has ended."""
        waited = 0.0
        while day_delete_running(self.crate, self.spec.table, day):
            if waited >= DELETE_WAIT_S:
                raise PermanentError(
                    f"{self.spec.table} {day}: a DELETE of the day sent by an earlier run still runs in CrateDB "
                    f"after {waited:.0f}s; the next run finishes the day"
                )
            time.sleep(DELETE_POLL_S)
            waited += DELETE_POLL_S

    def _refresh(self) -> None:
        """Counts see only refreshed rows (CrateDB refreshes every second by default); a proof must see all."""
        self.crate.execute(refresh_statement(self.spec), what=f"refreshing {self.spec.table}", on_retry=self.log)

    def _digests(self, partition: PartitionRef) -> dict[date, Digest]:
        """The source digests of the days whose windows lie in the partition."""
        days = [
            w.day
            for w in whole_days(partition, [self.table.window(d) for d in _days_between(self.table, partition)]) or ()
        ]
        return read_digests(self.table, days, self.crate, self.log)

    def _block(self, partition: PartitionRef, *, blocked: bool) -> None:
        statement = partition_write_block_statement(self.spec, partition.column, partition.value, blocked=blocked)
        doing = "blocking writes to" if blocked else "allowing writes to"
        try:
            self.crate.execute(statement, what=f"{doing} {self.spec.table} {partition.shown}", on_retry=self.log)
        except ExportError as error:
            if blocked or "PartitionUnknownException" not in str(error):
                raise
            # Dropped meanwhile (a DELETE of an earlier run that was still running): nothing left to allow.

    def _record(
        self,
        archived: ArchivedDay,
        state: DayState,
        status: str,
        how: str,
        rows: int,
        partition: PartitionRef | None,
        decided: str,
    ) -> dict[str, Any]:
        directory = self.spec.directory_for(state.day)
        record = deletion_record(
            archived,
            state.window,
            state=status,
            how=how,
            rows=rows,
            archive_uri=directory.display_uri(self.endpoint),
            partition=partition,
            decided_at=decided,
        )
        self.store.put_json(directory, DELETION_RECORD, record)
        return record

    def _finish(
        self, state: DayState, archived: ArchivedDay, record: dict[str, Any], rows_deleted: int | None
    ) -> DayOutcome:
        """The day counts 0 and its archive is proved: the final record."""
        what = f"{self.spec.table} {state.day.isoformat()}"
        final = {**record, "state": DELETED, "deleted_at": now()}
        final["rows_deleted"] = record.get("rows_proved") if rows_deleted is None else rows_deleted
        self.store.put_json(self.spec.directory_for(state.day), DELETION_RECORD, final)
        self.on_step(what, "recorded")
        partition = record.get("partition") or None
        shown = None
        if partition:
            shown = f"partition {partition.get('column')} ident {partition.get('ident')}"
        return self._deleted(
            state, int(final.get("rows_proved") or 0), str(record.get("how")), shown, final["deleted_at"]
        )

    def _deleted(self, state: DayState, rows: int, how: str, partition: str | None, at: str) -> DayOutcome:
        return self.outcome(
            state,
            REMOVED,
            rows=rows,
            how=how,
            partition=partition,
            record_uri=self._record_uri(state.day),
            deleted_at=at,
        )

    def _record_uri(self, day: date) -> str:
        return self.spec.directory_for(day).display_uri(self.endpoint) + DELETION_RECORD

    def _drop_intent(self, day: date) -> None:
        directory = self.spec.directory_for(day)
        self.store.delete(directory, [StoredObject(directory.key(DELETION_RECORD), 0)])


def _rows(digests: dict[date, Digest], day: date) -> int:
    return digests.get(day, Digest.EMPTY).rows


def _mismatches(digests: dict[date, Digest], archives: dict[date, ArchivedDay]) -> str:
    """Days whose rows are not what their archive holds (days without an archive must have no rows)."""
    wrong = []
    for day in sorted(set(digests) | set(archives)):
        rows, archived = _rows(digests, day), archives.get(day)
        if rows != (archived.rows if archived else 0):
            wrong.append(f"{day}: {rows} in CrateDB, {archived.rows if archived else 0} archived")
        elif archived is not None and (changed := _changed(archived, digests.get(day, Digest.EMPTY))):
            wrong.append(f"{day}: {changed}")
    return "; ".join(wrong)


def _changed(archived: ArchivedDay, now: Digest) -> str | None:
    """Why the day's rows are not the archived ones though their count is: its source digest now differs from
    the one its manifest recorded. A manifest without a digest, or with one of other rows than it verified
    (rows written between the digest and the COPY), proves by count alone, as before digests."""
    then = Digest.from_json(archived.manifest.get("source_digest"))
    if then is None or then.rows != archived.rows or then == now:
        return None
    return (
        f"its rows changed since the export (source digest {now}, archived {then}: an update in place, or a "
        "delete and an insert)"
    )


def _days_between(table: SourceTable, partition: PartitionRef) -> list[date]:
    """The calendar days whose windows may lie in the partition (a day either side, for time zones)."""
    first = datetime.fromtimestamp(partition.start_ms / 1000, UTC).date()
    last = datetime.fromtimestamp(partition.end_ms / 1000, UTC).date()
    return [date.fromordinal(n) for n in range(first.toordinal() - 1, last.toordinal() + 1)]


def _check_window(archived: ArchivedDay, window: DayWindow) -> None:
    """The manifest's column and window are the DELETE's, or the day cannot be proved by it."""
    manifest, spec = archived.manifest, archived.spec
    found = manifest.get("window")
    recorded: dict[str, Any] = found if isinstance(found, dict) else {}
    missing = [
        name
        for name, value in (
            ("timestamp_column", manifest.get("timestamp_column")),
            ("window.start", recorded.get("start")),
            ("window.end", recorded.get("end")),
        )
        if not value
    ]
    where = archived.directory.display_uri()
    if missing:
        raise ArchiveUnproved(
            f"{archived.what}: the manifest in {where} lacks {', '.join(missing)} (written by exporter "
            f"{manifest.get('exporter_version', 'unknown')}), so the rows it holds cannot be tied to the window "
            "a DELETE would remove; skipped. Re-export the day to write a complete manifest"
        )
    if manifest["timestamp_column"] != spec.timestamp_column:
        raise ArchiveUnproved(
            f"{archived.what} was exported by {manifest['timestamp_column']}, the export now reads days by "
            f"{spec.timestamp_column}; skipped. Re-export the day, or set timestamp_column back"
        )
    try:
        start, end = (datetime.fromisoformat(str(recorded[k])) for k in ("start", "end"))
    except ValueError:
        raise ArchiveUnproved(f"{archived.what}: the manifest's window in {where} is not readable") from None
    exported = DayWindow(archived.day, start, end)
    if (exported.start_ms, exported.end_ms, exported.wall_clock) != (window.start_ms, window.end_ms, window.wall_clock):
        raise ArchiveUnproved(
            f"{archived.what} was exported as [{recorded['start']}, {recorded['end']}), a DELETE now would remove "
            f"[{window.start.isoformat()}, {window.end.isoformat()}) (timezone {spec.timezone!r}); skipped. "
            "Re-export the day, or set timezone back"
        )


def _late_rows(rows: int, record: dict[str, Any]) -> str:
    return (
        f"{rows} row(s) were written to the day after retention deleted it at {record.get('deleted_at')}; they "
        "are not in the archive, and the day is not exported again. Restore the archived day into the table "
        "(restore_cratedb_days, mode append), then remove its deletion record and re-export it; or delete "
        "those rows"
    )
