"""Knowing the server: what a run learns of the CrateDB cluster once, before any COPY.

Each node's version and processor decide whether a COPY can work at all: some CrateDB releases have
defects that make COPY TO fail for certain targets, and a run refuses those combinations up front, with
the CrateDB issue to read, rather than after clearing a day. The jobs settings decide whether a COPY
whose answer was lost can be traced (copy_jobs.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from cratedb_export.core.config import ExportSpec
from cratedb_export.core.copy_jobs import JobsSettings
from cratedb_export.core.cratedb import CrateDB
from cratedb_export.core.errors import ExportError, PermanentError
from cratedb_export.core.statement import NODES_STATEMENT, STATS_STATEMENT

Version = tuple[int, int, int]


def parse_version(text: str) -> Version | None:
    match = re.match(r"^(\d+)\.(\d+)\.(\d+)", text or "")
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


@dataclass(frozen=True)
class Node:
    name: str
    version: str
    arch: str


@dataclass(frozen=True)
class ClusterFacts:
    nodes: tuple[Node, ...]
    jobs: JobsSettings

    @property
    def version(self) -> str:
        """The lowest version in the cluster (a rolling upgrade may mix them)."""
        known = [(parse_version(n.version), n.version) for n in self.nodes]
        ordered = sorted((v, text) for v, text in known if v is not None)
        return ordered[0][1] if ordered else "unknown"


@dataclass(frozen=True)
class KnownDefect:
    """A CrateDB release range that cannot run COPY TO for some targets."""

    first: Version
    last: Version
    applies: Callable[[ExportSpec, str | None, str], bool]  # (spec, S3 endpoint, node arch)
    what: str

    def hits(self, version: Version, spec: ExportSpec, endpoint: str | None, arch: str) -> bool:
        return self.first <= version <= self.last and self.applies(spec, endpoint, arch)


def _aws(spec: ExportSpec, endpoint: str | None, arch: str) -> bool:
    return endpoint is None


def _aws_bucket_label_with_digit(spec: ExportSpec, endpoint: str | None, arch: str) -> bool:
    bucket = spec.target.split("/", 1)[0]
    return endpoint is None and bucket.rsplit(".", 1)[-1][:1].isdigit()


def _arm64(spec: ExportSpec, endpoint: str | None, arch: str) -> bool:
    return arch.lower() in ("aarch64", "arm64")


KNOWN_DEFECTS = (
    KnownDefect(
        (6, 3, 0),
        (6, 3, 4),
        _aws,
        "reads an s3:// URI with credentials and no endpoint (AWS S3) with the bucket as the endpoint and "
        "fails with 'region is missing' (crate/crate#19667, fixed in 6.3.5)",
    ),
    KnownDefect(
        (0, 0, 0),
        (6, 2, 99),
        _aws_bucket_label_with_digit,
        "parses an AWS bucket whose last dot-separated label starts with a digit (like 'logs.2024') as a "
        "registry authority and fails with 'Invalid URI' (java.net.URI; fixed when 6.3.0 moved S3 to OpenDAL)",
    ),
    KnownDefect(
        (6, 3, 0),
        (6, 4, 1),
        _arm64,
        "fails every COPY TO s3:// on Linux ARM64 with a NullPointerException in its OpenDAL binding "
        "(crate/crate#19723, fixed in 6.4.2)",
    ),
)


def read_cluster(crate: CrateDB, log: Callable[[str], None] = lambda _: None) -> ClusterFacts:
    """One look at sys.nodes and sys.cluster; a cluster that hides them is taken as the client saw it."""
    try:
        rows = crate.execute(NODES_STATEMENT, what="reading CrateDB's nodes", on_retry=log).rows
        nodes = tuple(Node(str(name), str(version or "unknown"), str(arch or "")) for name, version, arch in rows)
    except ExportError as exc:
        if not exc.sent:
            raise
        log(f"could not read sys.nodes ({exc}); using the version the client was told")
        nodes = (Node("?", crate.server_version(), ""),)
    try:
        enabled, size = crate.execute(STATS_STATEMENT, what="reading CrateDB's stats settings", on_retry=log).rows[0]
        jobs = JobsSettings(enabled=bool(enabled), jobs_log_size=int(size))
    except ExportError as exc:
        if not exc.sent:
            raise
        log(f"could not read the stats settings from sys.cluster ({exc}); assuming CrateDB's defaults")
        jobs = JobsSettings()
    return ClusterFacts(nodes, jobs)


def defect_of(facts: ClusterFacts, spec: ExportSpec, endpoint: str | None) -> None:
    """Raise before any COPY if a node's release is known to fail COPY TO for this export."""
    problems = []
    for node in facts.nodes:
        version = parse_version(node.version)
        if version is None:
            continue
        problems += [
            f"CrateDB {node.version} (node {node.name}) {defect.what}"
            for defect in KNOWN_DEFECTS
            if defect.hits(version, spec, endpoint, node.arch)
        ]
    if problems:
        raise PermanentError(
            f"{spec.table}: not exported: {'; '.join(sorted(set(problems)))}. Upgrade CrateDB, or use a "
            "target it can write"
        )
