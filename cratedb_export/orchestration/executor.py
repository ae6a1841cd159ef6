"""How a run's steps meet the machine: one process for a day, the cores for a range.

Each table group (assets.py, `table_groups`) is a step. A run of one day (the schedule's, the reconcile
sensor's, a click in the UI) runs its steps in its own process, one after another: no process start-up per
group, and each step keeps every COPY slot. A run of a partition range with several groups (a UI backfill,
`dagster asset materialize --partition-range`) runs them under Dagster's multiprocess executor, each group in
a process of its own, as many at once as the machine has cores but one (see `steps_at_once`): a range of
tiny days is bound by the CPU Dagster spends storing each day's events, and that work then spreads over
the cores. The steps share the
connection's COPY slots (`copy_slots_of_step`), so CrateDB sees no more COPYs from the run than from one
step; across runs the pool (dagster.yaml) still bounds the export steps.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from dagster import (
    Executor,
    InitExecutorContext,
    executor,
    in_process_executor,
    multiprocess_executor,
)

if TYPE_CHECKING:
    # Private, for annotations only: Executor.execute's parameters have no public names.
    from dagster._core.events import DagsterEvent
    from dagster._core.execution.context.system import PlanOrchestrationContext
    from dagster._core.execution.plan.plan import ExecutionPlan
    from dagster._core.execution.retries import RetryMode

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
RANGE_PROCESSES_ENV = "CRATEDB_EXPORT_RANGE_PROCESSES"


def spans_days(tags: Mapping[str, str]) -> bool:
    """Whether a run covers a range of more than one day."""
    start, end = tags.get(RANGE_START_TAG), tags.get(RANGE_END_TAG)
    return start is not None and end is not None and start != end


def steps_at_once(tags: Mapping[str, str], steps: int) -> int:
    """How many of a run's `steps` run at the same time: one for a day; for a range, one per core but one
    (the run's own process receives and logs every event of its step processes, so it needs a core of its
    own: measured on 2 cores, two step processes beside it were 7–9% slower than one process), or
    CRATEDB_EXPORT_RANGE_PROCESSES."""
    if steps <= 1 or not spans_days(tags):
        return 1
    return max(1, min(steps, range_processes()))


def range_processes() -> int:
    """The step processes a range run may use at once: CRATEDB_EXPORT_RANGE_PROCESSES, else the cores but one."""
    value = os.environ.get(RANGE_PROCESSES_ENV, "").strip()
    if not value:
        return max(1, (os.cpu_count() or 1) - 1)
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{RANGE_PROCESSES_ENV}={value!r}: give a whole number of processes, 1 or more")
    return int(value)


def copy_slots_of_step(copy_slots: int, tags: Mapping[str, str], steps: int) -> int:
    """A step's share of the connection's COPY slots, so the run's steps together keep within them."""
    return max(1, copy_slots // steps_at_once(tags, steps))


class DaysExecutor(Executor):
    """Dagster's in-process executor for a run of one day, its multiprocess executor for a range."""

    def __init__(self, in_process: Executor, multiprocess: Executor) -> None:
        self._in_process = in_process
        self._multiprocess = multiprocess

    def execute(self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan) -> Iterator[DagsterEvent]:
        steps = len(execution_plan.step_keys_to_execute)
        chosen = self._multiprocess if steps_at_once(plan_context.dagster_run.tags, steps) > 1 else self._in_process
        yield from chosen.execute(plan_context, execution_plan)

    @property
    def retries(self) -> RetryMode:
        return self._in_process.retries


# No requirements declared: a run of one day needs none, and every run of a range is launched by Dagster's
# run launcher or CLI, with a reconstructable job and a persistent instance, as the multiprocess executor needs.
@executor(name="cratedb_export_days", config_schema={})
def days_executor(init_context: InitExecutorContext) -> Executor:
    """In one process for a day, over the cores for a range of days (see the module docstring)."""
    retries: dict[str, dict] = {"enabled": {}}

    def build(definition, config: dict) -> Executor:  # type: ignore[no-untyped-def]
        context = InitExecutorContext(
            job=init_context.job, executor_def=definition, executor_config=config, instance=init_context.instance
        )
        return definition.executor_creation_fn(context)

    return DaysExecutor(
        in_process=build(in_process_executor, {"retries": retries}),
        multiprocess=build(multiprocess_executor, {"retries": retries, "max_concurrent": None}),
    )
