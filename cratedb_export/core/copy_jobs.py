"""One COPY per day: running a COPY, and finding out from CrateDB what became of one whose answer was lost.

CrateDB does not stop a statement when its HTTP connection goes away, so after a reset connection, a read
timeout or a proxy's 504 the COPY may still be writing the day's files. Every COPY therefore carries a
tag of its own in a comment of its statement text (CrateDB keeps the text as sent in `sys.jobs` while it
runs and in `sys.jobs_log` when it has ended; parameters, and so credentials, are kept in neither). When an
answer is lost, the tag is looked up: while the COPY runs we wait for it; when it has ended we take its
outcome from the jobs log; only when CrateDB shows it never started may the day's COPY be sent again.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from cratedb_export.core.cratedb import CrateDB, Reply
from cratedb_export.core.errors import AnswerLost, CopyOutcomeUnknown, ExportError, TransientError, classify_crate_error
from cratedb_export.core.statement import Statement, jobs_lookup_statement

COMMENT_PREFIX = "cratedb-export copy="


@dataclass(frozen=True)
class CopyTag:
    """What identifies one COPY attempt in CrateDB's jobs tables; says nothing secret."""

    token: str
    table: str
    day: date

    @classmethod
    def new(cls, table: str, day: date) -> CopyTag:
        return cls(uuid.uuid4().hex, table, day)

    @property
    def comment(self) -> str:
        # Table names are plain identifiers and the token is hex: nothing here can end the comment.
        return f"/* {COMMENT_PREFIX}{self.token} {self.table} {self.day.isoformat()} */"

    @property
    def pattern(self) -> str:
        """A LIKE pattern matching this attempt's statement text only (hex has no LIKE wildcards)."""
        return f"%{COMMENT_PREFIX}{self.token}%"


@dataclass(frozen=True)
class CopyOutcome:
    """A COPY that ended without error. `rowcount` is None when its answer was lost and the jobs log
    (which keeps no row counts) told us it finished; the rows are then verified from the files alone."""

    rowcount: int | None
    recovered: str | None = None


@dataclass(frozen=True)
class JobsSettings:
    """Whether CrateDB keeps the jobs tables that recovery reads (`stats.enabled`, `stats.jobs_log_size`)."""

    enabled: bool = True
    jobs_log_size: int = 10_000

    @property
    def usable(self) -> bool:
        return self.enabled and self.jobs_log_size > 0


class CopyRunner:
    """Sends a day's COPY once and, if its answer is lost, waits for CrateDB to show how it ended.

    `max_wait` bounds how long a COPY still running is waited for; past it the day fails without being
    marked, as CopyOutcomeUnknown, and nothing is sent again.
    """

    def __init__(
        self,
        crate: CrateDB,
        *,
        jobs: JobsSettings = JobsSettings(),
        max_wait: float = 3600.0,
        not_seen_checks: int = 3,
        poll: float = 1.0,
        max_poll: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._crate = crate
        self._jobs = jobs
        self._max_wait = max_wait
        self._not_seen_checks = not_seen_checks
        self._poll = poll
        self._max_poll = max_poll
        self._sleep = sleep
        self._clock = clock

    def run(
        self, statement: Statement, tag: CopyTag, *, what: str, rotate: bool, log: Callable[[str], None]
    ) -> CopyOutcome:
        """Run the COPY; raises TransientError only when CrateDB shows this COPY is not running any more
        (it never started, or ended with a transient error), so the caller may clear and send it again."""
        try:
            reply: Reply = self._crate.execute_once(statement, what=what, rotate=rotate)
            return CopyOutcome(reply.rowcount)
        except AnswerLost as lost:
            log(f"{lost}; asking CrateDB what became of it ({tag.comment})")
            return self._recover(tag, what, lost, log)
        except ExportError as error:
            # CrateDB answered with an error (JobKilledException when a node left, an S3 failure on one node):
            # its job may still be winding down on other nodes, so make sure nothing of it still runs.
            if error.sent:
                self._wait_until_not_running(tag, what, error, log)
            raise

    def _recover(self, tag: CopyTag, what: str, lost: ExportError, log: Callable[[str], None]) -> CopyOutcome:
        if not self._jobs.usable:
            raise CopyOutcomeUnknown(
                f"{lost}. CrateDB keeps no jobs tables here (stats.enabled = false or stats.jobs_log_size = 0), "
                "so it cannot be told whether the COPY still runs; it was not sent again. Check sys.jobs, "
                "then re-run the partition."
            )
        not_seen = 0
        while True:
            self._wait_until_not_running(tag, what, lost, log)
            ended = self._lookup(tag, "jobs_log", what, lost)
            if ended:
                error = ended[0][3]
                if error is None:
                    return CopyOutcome(None, recovered=f"answer lost; sys.jobs_log shows job {ended[0][0]} ended")
                failure = classify_crate_error(str(error), what=what)
                failure.sent = True
                raise failure
            not_seen += 1
            if not_seen >= self._not_seen_checks:
                # Neither running nor ended, checked a few times: the request never reached CrateDB.
                raise TransientError(f"{lost}; CrateDB shows no such COPY in sys.jobs or sys.jobs_log")
            self._sleep(self._poll)

    def _wait_until_not_running(self, tag: CopyTag, what: str, cause: ExportError, log: Callable[[str], None]) -> None:
        started = self._clock()
        pause, told = self._poll, 0.0
        while running := self._lookup(tag, "jobs", what, cause):
            waited = self._clock() - started
            if waited >= self._max_wait:
                raise CopyOutcomeUnknown(
                    f"{cause}. The COPY is still running in CrateDB (job {running[0][0]}) after {waited:.0f}s "
                    "of waiting; it was not sent again and the day is not marked complete. Re-run the "
                    "partition when sys.jobs no longer shows it."
                )
            if waited - told >= 30 or told == 0.0:
                log(f"{what}: the COPY still runs in CrateDB (job {running[0][0]}); waiting for it to end")
                told = waited or 1e-9
            self._sleep(pause)
            pause = min(pause * 2, self._max_poll)

    def _lookup(self, tag: CopyTag, table: str, what: str, cause: ExportError) -> list[list]:
        """Rows of sys.<table> for this COPY; the lookups only read, so they are retried like any read.

        If CrateDB cannot be asked, nobody can tell whether the COPY runs: the day fails and nothing is re-sent.
        """
        try:
            lookup = jobs_lookup_statement(table, tag.pattern)
            return self._crate.execute(lookup, what=f"looking up the COPY of {what}").rows
        except ExportError as exc:
            raise CopyOutcomeUnknown(
                f"{cause}. CrateDB could not be asked what became of the COPY ({exc}); it was not sent again "
                "and the day is not marked complete. Check sys.jobs, then re-run the partition."
            ) from None


def day_copy_running(crate: CrateDB, table: str, day: date) -> bool:
    """Whether a COPY of this table-day, sent by any run of the exporter, shows in sys.jobs right now."""
    pattern = f"%{COMMENT_PREFIX}% {table} {day.isoformat()} */%"
    reply = crate.execute(jobs_lookup_statement("jobs", pattern), what=f"looking up COPYs of {table} {day}")
    return bool(reply.rows)
