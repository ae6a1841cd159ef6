"""Killing a run at a step boundary: a day's export, or a retention run, in a child process the test SIGKILLs.

The child (`python -m cratedb_export_testbed.killing export --day D [--stop-at STEP]`, or `retention --today T
--day D ...`) builds its run from the core alone, as a Dagster step would: ConnectionSettings from the same
environment variables the resource reads (secrets travel only in the environment, never on the command line),
the export spec as JSON in `CRATEDB_EXPORT_KILLING_SPEC`. Its `on_step` prints `step <name> <what>` to stdout
at each boundary (core/export.py, core/retention/delete.py) and, at the step it was told to stop at for the
day, blocks so that the parent kills it exactly there. A statement in flight is killed without blocking: the
parent waits for it to show in `sys.jobs` — for a COPY the stand-in is told to make it slow beforehand; with
`--hold-at STEP` the child waits at that step for the parent's "go" (so the parent can arm a fault for exactly
the next statement) and then carries on.

A killed run's leases are taken over only once that run is dead, so the child's run id carries its pid and
`process_alive` answers for it (the parent must reap a killed child first, or its zombie still answers).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from datetime import date
from types import TracebackType
from typing import Any

from cratedb_export.core.config import parse_export_specs
from cratedb_export.core.connection import (
    ConnectionSettings,
    environment_variables,
    read_setting,
    secret_settings,
)
from cratedb_export.core.copy_jobs import day_copy_running
from cratedb_export.core.errors import ExportError
from cratedb_export.core.export import ExportRun
from cratedb_export.core.lease import DayLeases, Holder

STEPS = ("leased", "cleared", "copy_sent", "verified", "manifest_written", "marked")
RETENTION_STEPS = ("proved", "deleting", "deleted", "recorded")
SPEC_VARIABLE = "CRATEDB_EXPORT_KILLING_SPEC"
RUN_PREFIX = "killing-"
BLOCK_SECONDS = 120.0  # a child stopped at a step waits this long for its kill, then exits on its own


def run_id_of(pid: int) -> str:
    return f"{RUN_PREFIX}{pid}"


def process_alive(run_id: str) -> bool:
    """Whether the run holding a lease still runs: for a child of this harness, whether its pid exists.

    Any other run id is taken to be alive, so its lease is never taken over on a guess."""
    if not run_id.startswith(RUN_PREFIX) or not run_id[len(RUN_PREFIX) :].isdigit():
        return True
    try:
        os.kill(int(run_id[len(RUN_PREFIX) :]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def holder(run_id: str) -> Holder:
    """A holder that takes over the leases of dead harness children (and of nobody else)."""
    return Holder(run_id, process_alive)


def child_environment(settings: ConnectionSettings, spec: Mapping[str, Any], base: Mapping[str, str]) -> dict[str, str]:
    """`base` plus the settings under their resource variables and the spec: what the child reads."""
    env = dict(base)
    for setting, variable in environment_variables().items():
        value = getattr(settings, setting)
        env.pop(variable, None)
        if value is not None and value != "":
            env[variable] = str(value).lower() if isinstance(value, bool) else str(value)
    env[SPEC_VARIABLE] = json.dumps(dict(spec))
    return env


def _settings_from(environ: Mapping[str, str]) -> ConnectionSettings:
    secrets = set(secret_settings())
    values: dict[str, Any] = {}
    for setting, variable in environment_variables().items():
        value = environ.get(variable) if setting in secrets else read_setting(setting, variable, environ)
        if value is not None and value != "":
            values[setting] = value
    return ConnectionSettings(**values)


class ChildRun:
    """One child run — a day's export, or a retention run — as a context manager that never leaves it running."""

    def __init__(
        self,
        env: Mapping[str, str],
        day: date,
        stop_at: str | None = None,
        *,
        job: str = "export",
        today: date | None = None,
        hold_at: str | None = None,
    ) -> None:
        steps = STEPS if job == "export" else RETENTION_STEPS
        for step in (stop_at, hold_at):
            if step is not None and step not in steps:
                raise ValueError(f"a {job} stops at one of {steps}, not {step!r}")
        command = [sys.executable, "-m", "cratedb_export_testbed.killing", job, "--day", day.isoformat()]
        command += ["--stop-at", stop_at] if stop_at else []
        command += ["--hold-at", hold_at] if hold_at else []
        command += ["--today", today.isoformat()] if today else []
        self.process = subprocess.Popen(
            command,
            env=dict(env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group: the kill reaches nothing else
        )
        self.lines: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, name="killing-reader", daemon=True)
        self._reader.start()

    @property
    def run_id(self) -> str:
        return run_id_of(self.process.pid)

    @property
    def steps(self) -> list[str]:
        """The steps reached, in order (of every day the run reached them for)."""
        return [line.split(" ")[1] for line in self.lines if line.startswith("step ")]

    def reached(self, step: str, day: date | None = None) -> bool:
        return any(
            line.startswith(f"step {step} ") and (day is None or line.endswith(f" {day.isoformat()}"))
            for line in self.lines
        )

    def release(self) -> None:
        """Let a child held at a step carry on."""
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def wait_for_step(self, step: str, timeout: float = 60.0, day: date | None = None) -> None:
        """Until the child has reached `step` (for `day`); fails if it ends or `timeout` passes first."""
        deadline = time.monotonic() + timeout
        while not self.reached(step, day):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no step {step!r} within {timeout:.0f}s; the child said:\n{self.output}")
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"the child ended before step {step!r}:\n{self.output}")
            self.lines.append(line)

    def kill(self, timeout: float = 10.0) -> None:
        """SIGKILL the child's process group and reap it, so that its pid reads as dead."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=timeout)
        self._drain(timeout)

    def finish(self, timeout: float = 60.0) -> int:
        """Wait for a child that was not killed to end on its own; its exit status."""
        code = self.process.wait(timeout=timeout)
        self._drain(timeout)
        return code

    def _drain(self, timeout: float) -> None:
        self._reader.join(timeout=timeout)
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                return
            if line is not None:
                self.lines.append(line)

    def __enter__(self) -> ChildRun:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.process.poll() is None:
            self.kill()


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60.0, poll: float = 0.05) -> None:
    """Poll `condition` until it holds; fails naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f}s")
        time.sleep(poll)


class _Steps:
    """The child's on_step: say each step; stop (block until killed) or hold (until "go") where told."""

    def __init__(self, day: date, stop_at: str | None, hold_at: str | None) -> None:
        self._day, self._stop_at, self._hold_at = day.isoformat(), stop_at, hold_at

    def __call__(self, what: str, step: str) -> None:
        _say(f"step {step} {what}")
        if not what.endswith(f" {self._day}"):
            return
        if step == self._stop_at:
            time.sleep(BLOCK_SECONDS)
            _say("not killed")
            os._exit(3)
        if step == self._hold_at:
            waited = threading.Thread(target=sys.stdin.readline, daemon=True)
            waited.start()
            waited.join(BLOCK_SECONDS)


def _say(line: str) -> None:
    print(line, flush=True)


def _export(day: date, on_step: _Steps) -> int:
    (spec,) = parse_export_specs([json.loads(os.environ[SPEC_VARIABLE])])
    connected = _settings_from(os.environ).open()
    try:
        run = ExportRun.start(
            [spec], connected=connected, holder=holder(run_id_of(os.getpid())), log=_say, on_step=on_step
        )
        export = run.export_day(spec, day, log=lambda line: _say(f"log {line}"))
    except ExportError as error:
        _say(f"failed {error}")
        return 1
    _say(f"done {json.dumps(export.verified_counts)}")
    return 0


def _retention(today: date, on_step: _Steps) -> int:
    from cratedb_export.core.retention.delete import retain_table  # only this job needs it

    (spec,) = parse_export_specs([json.loads(os.environ[SPEC_VARIABLE])])
    connected = _settings_from(os.environ).open()
    crate = connected.crate
    leases = DayLeases(connected.store, holder(run_id_of(os.getpid())), lambda t, d: day_copy_running(crate, t, d))
    try:
        result = retain_table(
            crate,
            connected.store,
            spec,
            leases,
            endpoint=connected.access.endpoint,
            today=today,
            log=lambda line: _say(f"log {line}"),
            on_step=on_step,
        )
    except ExportError as error:
        _say(f"failed {error}")
        return 1
    for outcome in result.outcomes:
        _say(f"outcome {outcome.line()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run one job of the core, stopping at a step to be killed there.")
    parser.add_argument("job", choices=("export", "retention"))
    parser.add_argument("--day", required=True, type=date.fromisoformat, help="the day whose step stops the run")
    parser.add_argument("--stop-at", choices=STEPS + RETENTION_STEPS)
    parser.add_argument("--hold-at", choices=STEPS + RETENTION_STEPS)
    parser.add_argument("--today", type=date.fromisoformat, help="retention: the day the keep period ends at")
    arguments = parser.parse_args(argv)
    on_step = _Steps(arguments.day, arguments.stop_at, arguments.hold_at)
    if arguments.job == "export":
        return _export(arguments.day, on_step)
    return _retention(arguments.today or date.today(), on_step)


if __name__ == "__main__":
    sys.exit(main())
