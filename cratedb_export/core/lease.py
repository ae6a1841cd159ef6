"""One exporter at a time per day: a lease object in the day's directory, created with a conditional write.

Two runs — the schedule and a click, a range backfill and a one-day re-run — must never clear and COPY
the same day at once. Within a run each table-day is exported once; across runs (and processes, and
machines) the day's `_EXPORTING` object is the lock: it is created only if absent (`If-None-Match: *`),
which S3 decides atomically. A lease whose run has ended is taken over (`If-Match` on its version), but
only when CrateDB shows no COPY of that day still running, since a COPY outlives the run that sent it.
A run has ended when its orchestrator says so, or when the lease's process is seen gone from this machine.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime

from cratedb_export.core.errors import PermanentError
from cratedb_export.core.process import process_gone, this_process
from cratedb_export.core.storage import LEASE, ObjectStore
from cratedb_export.core.target import DayDirectory


@dataclass(frozen=True)
class Holder:
    """Who holds leases: a run, and how to tell whether another run is still going."""

    run_id: str
    is_alive: Callable[[str], bool]


@dataclass
class Lease:
    directory: DayDirectory
    etag: str
    waited: bool  # another run held the day first: what was listed before may be stale
    keep: bool = False  # a COPY of ours may still run: leave the lease for the next run to check


class DayLeases:
    """Leases of one run; `copy_running(table, day)` asks CrateDB whether a COPY of the day still runs."""

    def __init__(
        self,
        store: ObjectStore,
        holder: Holder,
        copy_running: Callable[[str, date], bool],
        *,
        max_wait: float = 3600.0,
        poll: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._holder = holder
        self._copy_running = copy_running
        self._max_wait = max_wait
        self._poll = poll
        self._sleep = sleep
        self._clock = clock
        self._checked_buckets: set[str] = set()
        self._lock = threading.Lock()

    @contextmanager
    def hold(self, table: str, day: date, directory: DayDirectory, log: Callable[[str], None]) -> Iterator[Lease]:
        """Hold the day's lease for the block; released at the end unless `lease.keep` was set."""
        lease = self._acquire(table, day, directory, log)
        try:
            yield lease
        finally:
            if not lease.keep:
                self._store.delete_version(directory, LEASE, lease.etag)

    def _acquire(self, table: str, day: date, directory: DayDirectory, log: Callable[[str], None]) -> Lease:
        mine = {
            "run_id": self._holder.run_id,
            "table": table,
            "day": day.isoformat(),
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
            **this_process(),
        }
        started, told, waited = self._clock(), -1.0, False
        while True:
            etag = self._store.create_json(directory, LEASE, mine)
            if etag is not None:
                self._check_conditional_writes(directory, etag)
                return Lease(directory, etag, waited)
            found = self._store.read_json_version(directory, LEASE)
            if found is None:
                continue  # released meanwhile: try again at once
            theirs, their_etag = found
            other = str(theirs.get("run_id"))
            # A run killed outright may still look alive to its orchestrator: its process, seen gone from
            # this machine, ends it too (core/process.py).
            ended = other == self._holder.run_id or process_gone(theirs) or not self._holder.is_alive(other)
            if ended and not self._copy_running(table, day):
                # A COPY its holder sent right before it died may not show in sys.jobs yet: look once more.
                self._sleep(self._poll)
                if self._copy_running(table, day):
                    continue
                etag = self._store.replace_json(directory, LEASE, mine, their_etag)
                if etag is not None:
                    log(f"{table} {day.isoformat()}: took over the lease left by run {other}, which has ended")
                    return Lease(directory, etag, waited=True)
                continue
            waited = True
            elapsed = self._clock() - started
            if elapsed >= self._max_wait:
                raise PermanentError(
                    f"{table} {day.isoformat()}: {directory.display_uri()} is being exported by run {other} "
                    f"(since {theirs.get('since')}, process {theirs.get('pid')} on {theirs.get('host')}); waited "
                    f"{elapsed:.0f}s. Not exported by this run: re-run the partition when that run has finished. "
                    f"If that run is gone and this Dagster instance does not know it (another deployment's, or a "
                    f"command-line run on a throwaway instance), and sys.jobs shows no COPY of the day, delete "
                    f"{directory.display_uri()}{LEASE} to release the day."
                )
            if told < 0 or elapsed - told >= 60:
                log(
                    f"{table} {day.isoformat()}: run {other} is exporting this day (since {theirs.get('since')}); "
                    "waiting for it to finish, so that two COPYs never write the day at once"
                )
                told = elapsed
            self._sleep(self._poll)

    def _check_conditional_writes(self, directory: DayDirectory, etag: str) -> None:
        """Once per bucket: a second create of the lease we hold must be refused, or the lock means nothing."""
        with self._lock:
            if directory.bucket in self._checked_buckets:
                return
        if self._store.create_json(directory, LEASE, {"probe": True}) is not None:
            self._store.delete_version(directory, LEASE, etag)
            raise PermanentError(
                f"the S3 store of {directory.display_uri()} ignores conditional writes (If-None-Match), which "
                "cratedb-export needs to keep two runs from exporting the same day at once; use an S3 store "
                "that supports them (AWS S3, MinIO, SeaweedFS, Ceph RGW and others do)"
            )
        with self._lock:
            self._checked_buckets.add(directory.bucket)
