"""The Dagster resource: one cluster's connection settings (core/connection.py) as Dagster config.

Bind credentials with `EnvVar` (build.resource_from_env does): Dagster then stores and shows only the
variable's name. Credentials are checked and registered for redaction when a run starts, before any
statement.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from dagster import AssetExecutionContext, ConfigurableResource, InitResourceContext, OpExecutionContext
from pydantic import PrivateAttr

from cratedb_export.core.config import ExportSpec
from cratedb_export.core.connection import Connected, ConnectionSettings
from cratedb_export.core.copy_jobs import day_copy_running
from cratedb_export.core.export import ExportRun
from cratedb_export.core.lease import DayLeases, Holder
from cratedb_export.core.retention.delete import day_delete_running


class CrateDBExportResource(ConfigurableResource, ConnectionSettings):
    """CrateDB and S3 as the export needs them; one instance serves all exports of a run.

    Its fields are exactly ConnectionSettings' (one definition of each setting, with its variable).
    """

    _connected: Connected = PrivateAttr()

    def setup_for_execution(self, context: InitResourceContext) -> None:
        self._connected = self.open()

    @property
    def connected(self) -> Connected:
        """The clients of this run (after setup_for_execution), for work beside exports (restores)."""
        return self._connected

    @property
    def copy_slots(self) -> int:
        return self.max_concurrent_copies

    def start_run(
        self, specs: Sequence[ExportSpec], holder: Holder, log: Callable[[str], None], copy_slots: int | None = None
    ) -> ExportRun:
        """Learn what the run's days share (cluster, tables) before any COPY; export days through the result.

        Safe to use from several threads. `copy_slots` gives this step fewer COPY slots than the connection
        has, when steps of one run export at once (executor.py).
        """
        shared = copy_slots is not None and copy_slots < self.copy_slots
        return ExportRun.start(
            specs,
            connected=self._connected,
            holder=holder,
            log=log,
            retry=self.retry,
            max_wait=self.copy_wait,
            copy_slots=threading.BoundedSemaphore(copy_slots) if shared and copy_slots else None,
        )

    def day_leases(self, holder: Holder, max_wait: float | None = None) -> DayLeases:
        """Days' leases for work beside exports (retention, restore). A dead run's lease is taken over only
        when neither a COPY nor a retention DELETE of the day runs; a live one is waited for (`max_wait`,
        by default `copy_wait`)."""
        crate = self._connected.crate
        return DayLeases(
            self._connected.store,
            holder,
            lambda table, day: day_copy_running(crate, table, day) or day_delete_running(crate, table, day),
            max_wait=self.copy_wait if max_wait is None else max_wait,
        )


def run_holder(context: AssetExecutionContext | OpExecutionContext) -> Holder:
    """This run as a lease holder, and how to tell whether the run holding a day's lease is still going."""
    instance = context.instance

    def is_alive(run_id: str) -> bool:
        # A run this instance does not know (another deployment's, a CLI run on a throwaway instance) cannot
        # be judged from here: it counts as running, unless its process is seen gone (core/process.py).
        other = instance.get_run_by_id(run_id)
        return other is None or not other.is_finished

    return Holder(context.run.run_id, is_alive)
