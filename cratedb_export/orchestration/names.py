"""The names one set of exports gives its Dagster objects, so that several CrateDB clusters can share a project.

A code location built from exports.yaml (or `build_definitions`) uses the plain names: assets
`cratedb_export/<schema>/<table>`, resource `cratedb`, pool `cratedb`, job `daily_cratedb_export`. A
`CrateDBExportComponent` with `name: analytics` puts everything it defines under that name instead —
`cratedb_export/analytics/<schema>/<table>`, resource and pool `cratedb_analytics`, job
`daily_cratedb_export_analytics` — so two components (two clusters) never define the same key twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cratedb_export.core.config import KEY_ROOT

RESOURCE_KEY = "cratedb"
POOL = "cratedb"
JOB = "daily_cratedb_export"

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(
            f"{name!r} must be a lower-case name of letters, digits and '_' starting with a letter, e.g. analytics "
            "(it becomes part of asset keys, the resource key, the pool and the job name)"
        )
    return name


@dataclass(frozen=True)
class ExportNames:
    """Asset key prefix, resource key, pool, op and job names of one set of exports (one CrateDB cluster)."""

    name: str | None = None

    def __post_init__(self) -> None:
        if self.name is not None:
            check_name(self.name)

    def _suffixed(self, base: str) -> str:
        return base if self.name is None else f"{base}_{self.name}"

    @property
    def key_prefix(self) -> tuple[str, ...]:
        return (KEY_ROOT,) if self.name is None else (KEY_ROOT, self.name)

    @property
    def resource_key(self) -> str:
        return self._suffixed(RESOURCE_KEY)

    @property
    def pool(self) -> str:
        """The concurrency pool of the export steps: one per cluster, each limited by dagster.yaml."""
        return self._suffixed(POOL)

    @property
    def job(self) -> str:
        return self._suffixed(JOB)

    def op(self, base: str) -> str:
        return self._suffixed(base)


DEFAULT_NAMES = ExportNames()

_GROUP = "_group_"


def group_op_name(op: str, number: int, groups: int) -> str:
    """A table group's op: `op` alone for the only group, else numbered at the end (`_group_01` of 12)."""
    return op if groups == 1 else f"{op}{_GROUP}{number:0{len(str(groups))}d}"


def ungrouped(op_name: str, groups: int) -> str:
    """What the `groups` table groups of one partitions definition share, named after: their op's name less
    the number group_op_name put at its end (a set of exports may itself be named `..._group_2`)."""
    return op_name if groups == 1 else op_name.rsplit(_GROUP, 1)[0]
