"""Helpers for the end-to-end tests: CrateDB under test, sample tables, running exports, reading S3 back."""

from __future__ import annotations

import contextlib
import gzip
import json
import re
import sys
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from crate import client as crate_client
from dagster import (
    AssetKey,
    DagsterInstance,
    Definitions,
    ExecuteInProcessResult,
    JobDefinition,
    RunRequest,
    build_schedule_context,
)

from cratedb_export.core.storage import MANIFEST, SUCCESS
from cratedb_export.orchestration.build import build_definitions, resource_from_env
from cratedb_export.orchestration.freshness import CHECK as LANDED
from cratedb_export.orchestration.schedules import JOB
from cratedb_export_testbed.standin.tables import DEFAULT_MAX_SHARDS_PER_NODE


@dataclass(frozen=True)
class Secrets:
    access_key: str
    secret_key: str
    password: str

    def forms(self) -> list[str]:
        """Every way a secret could show up: raw, percent-encoded (upper and lower case), form-encoded."""
        found = set()
        for secret in (self.access_key, self.secret_key, self.password):
            for form in (secret, quote(secret, safe=""), quote(secret), quote_plus(secret)):
                found |= {form, form.lower()}
        return sorted(found)

    def leaks_in(self, text: str) -> list[str]:
        lowered = text.lower()
        return [form for form in self.forms() if form.lower() in lowered]


# The keys the test S3 server accepts and the stand-in's password: distinctive, so a search finds them, and
# with '/', '+' and '=', the characters that break naive s3:// URIs.
TEST_SECRETS = Secrets(
    access_key="AKIDXPORTTEST7QZ",
    secret_key="zX9/Secr+etKey=Lm4Wq",
    password="Crate/Pw+Unique=91",
)


@dataclass
class CrateUnderTest:
    url: str
    username: str | None
    password: str | None
    double: Any  # the CrateDouble when running against the stand-in, else None

    def sql(self, stmt: str, args: Sequence | None = None, bulk_args: Sequence | None = None) -> Any:
        connection = crate_client.connect(self.url, username=self.username, password=self.password)
        try:
            cursor = connection.cursor()
            if bulk_args is not None:
                rows = list(bulk_args)
                cursor.executemany(stmt, rows)
                # CrateDB answers a bulk row that failed with rowcount -2 instead of an error; the tests' bulk
                # statements each insert one row per argument list, so a shortfall is a failed write.
                if cursor.rowcount != len(rows):
                    raise AssertionError(f"the bulk statement wrote {cursor.rowcount} of {len(rows)} rows: {stmt}")
                return None
            cursor.execute(stmt, list(args or []))
            return cursor.fetchall() if cursor.description else cursor.rowcount
        finally:
            connection.close()

    @contextlib.contextmanager
    def shard_limit(self, limit: int) -> Iterator[None]:
        """cluster.max_shards_per_node at `limit` for a while, then back to what it was (RESET when it was
        CrateDB's default, else the earlier value, transient)."""
        ((before,),) = self.sql("SELECT settings['cluster']['max_shards_per_node'] FROM sys.cluster")
        self.sql(f'SET GLOBAL TRANSIENT "cluster.max_shards_per_node" = {int(limit)}')
        try:
            yield
        finally:
            if before == DEFAULT_MAX_SHARDS_PER_NODE:
                self.sql('RESET GLOBAL "cluster.max_shards_per_node"')
            else:
                self.sql(f'SET GLOBAL TRANSIENT "cluster.max_shards_per_node" = {int(before)}')

    def tables(self, schema: str = "doc") -> set[tuple[str, str]]:
        """The tables (schema, name) of `schema` now: the tests make theirs in `doc`."""
        rows = self.sql(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema = ? AND table_type = 'BASE TABLE'",
            [schema],
        )
        return {(found, name) for found, name in rows}

    def drop_tables_since(self, before: set[tuple[str, str]]) -> list[str]:
        """Drop the tables the suite made since `before` was taken: those it names with a random token
        (SUITE_TABLE), so a table someone else creates meanwhile on a shared CrateDB is left alone. Returns
        what it could not drop, each with CrateDB's reason."""
        problems = []
        for schema, name in sorted(self.tables() - before):
            if not SUITE_TABLE.search(name):
                continue
            try:
                self.sql(f'DROP TABLE IF EXISTS "{schema}"."{name}"')
            except crate_client.exceptions.Error as exc:
                problems.append(f"{schema}.{name}: {exc}")
        return problems


# How the tests name the tables they create (uuid4().hex[:10] in the name): what drop_tables_since drops.
SUITE_TABLE = re.compile(r"(^|_)[0-9a-f]{10}(_|$)")


# Dagster OSS writes one ASSET_MATERIALIZATION_PLANNED event per asset-partition when it creates a run,
# unless this is set in the environment of the process creating the run
# (docs/backfills-and-performance.md; dagster#32242).
SUBSET_PLANNED_EVENTS = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"

METRICS_DDL = """CREATE TABLE "doc"."{name}" (
  "hash_id" BIGINT,
  "timestamp" TIMESTAMP WITH TIME ZONE,
  "name" TEXT,
  "tags" OBJECT(DYNAMIC),
  "fields" OBJECT(DYNAMIC),
  "month" TIMESTAMP WITH TIME ZONE AS date_trunc('quarter', "timestamp")
) CLUSTERED INTO {shards} SHARDS PARTITIONED BY ("month")"""


def metrics_ddl(name: str, shards: int = 4) -> str:
    """The tutorial's metrics table as doc.<name>. Fewer shards where a benchmark makes a thousand tables: a
    CrateDB node holds 1,000 shards unless told otherwise (cluster.max_shards_per_node)."""
    return METRICS_DDL.format(name=name, shards=shards)


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@dataclass
class MetricsTable:
    """A tutorial-shaped `metrics` table with rows on known days, including rows on the day boundaries."""

    name: str
    rows_by_day: dict[date, list[dict]]

    @property
    def table(self) -> str:
        return f"doc.{self.name}"

    def hash_ids(self, day: date) -> set[int]:
        return {r["hash_id"] for r in self.rows_by_day.get(day, [])}


def create_metrics_table(crate: CrateUnderTest, days: Iterable[date], per_day: int = 5) -> MetricsTable:
    name = f"metrics_{uuid.uuid4().hex[:10]}"
    crate.sql(metrics_ddl(name))
    rows_by_day: dict[date, list[dict]] = {}
    next_id = 1
    for day in days:
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        # First and last millisecond of the day, and some in between.
        offsets = [timedelta(0), timedelta(days=1) - timedelta(milliseconds=1)]
        offsets += [timedelta(hours=1 + i * 3, minutes=i) for i in range(max(per_day - 2, 0))]
        rows = []
        for offset in offsets[:per_day]:
            rows.append(
                {
                    "hash_id": next_id,
                    "timestamp": epoch_ms(start + offset),
                    "name": "cpu",
                    "tags": {"host": f"host-{next_id % 3}"},
                    "fields": {"usage_idle": 90.5 + next_id},
                }
            )
            next_id += 1
        rows_by_day[day] = rows
    all_rows = [r for rows in rows_by_day.values() for r in rows]
    if all_rows:
        crate.sql(
            f'INSERT INTO "doc"."{name}" ("hash_id", "timestamp", "name", "tags", "fields") VALUES (?, ?, ?, ?, ?)',
            bulk_args=[[r["hash_id"], r["timestamp"], r["name"], r["tags"], r["fields"]] for r in all_rows],
        )
    crate.sql(f'REFRESH TABLE "doc"."{name}"')
    return MetricsTable(name=name, rows_by_day=rows_by_day)


def spec_for(table: MetricsTable, bucket: str, **extra: Any) -> dict:
    return {
        "table": table.table,
        "timestamp_column": "timestamp",
        "target": f"{bucket}/{table.name}",
        "start_date": "2024-01-01",
        **extra,
    }


def run_export(
    specs: Sequence[Mapping[str, Any]],
    instance: DagsterInstance,
    *,
    partition: str | None = None,
    partition_range: tuple[str, str] | None = None,
    select: Sequence[Sequence[str]] | None = None,
) -> ExecuteInProcessResult:
    """Run the code location's daily export job as its schedule requests it, for one day or a range."""
    defs = build_definitions(specs, resource=resource_from_env())
    tags = {}
    if partition_range:
        tags = {
            "dagster/asset_partition_range_start": partition_range[0],
            "dagster/asset_partition_range_end": partition_range[1],
        }
    job = scheduled_daily_job(defs, [AssetKey(list(k)) for k in select] if select else None)
    return job.execute_in_process(instance=instance, partition_key=partition, tags=tags, raise_on_error=False)


def scheduled_daily_job(defs: Definitions, exports: Sequence[AssetKey] | None = None) -> JobDefinition:
    """The daily job as the daily schedule runs it: the exports (all, or `exports`) with every check but the
    deadline check `yesterday_landed`, which the deadline schedule judges (schedules.py)."""
    job = defs.resolve_job_def(JOB)
    keys = set(exports) if exports is not None else set(job.asset_layer.executable_asset_keys)
    checks = {k for k in job.asset_layer.asset_graph.asset_check_keys if k.asset_key in keys and k.name != LANDED}
    return job.get_subset(asset_selection=keys, asset_check_selection=checks)


def tick(defs: Definitions, schedule: str, instance: DagsterInstance, at: datetime) -> list[RunRequest]:
    """What the schedule requests at `at`, evaluated as the daemon does: with the code location's repository."""
    context = build_schedule_context(
        instance=instance, scheduled_execution_time=at, repository_def=defs.get_repository_def()
    )
    return list(defs.resolve_schedule_def(schedule).evaluate_tick(context).run_requests or ())


def run_requested(
    defs: Definitions, job_name: str, request: RunRequest, instance: DagsterInstance
) -> ExecuteInProcessResult:
    """Run what a schedule's or sensor's request asks of `job_name`, as the daemon would: the job subset to
    the request's assets and checks, on its partition, with its tags."""
    job = defs.resolve_job_def(job_name)
    if request.asset_selection is not None or request.asset_check_keys is not None:
        job = job.get_subset(
            asset_selection=set(request.asset_selection or ()),
            asset_check_selection=None if request.asset_check_keys is None else set(request.asset_check_keys),
        )
    return job.execute_in_process(
        instance=instance, partition_key=request.partition_key, tags=request.tags, raise_on_error=False
    )


def materialize_command(asset: Sequence[str], partition: str) -> list[str]:
    """The CLI a user runs to materialize one partition, or a range written as 'A...B'."""
    flag = "--partition-range" if "..." in partition else "--partition"
    return [
        sys.executable, "-m", "dagster", "asset", "materialize", "-m", "cratedb_export.definitions",
        "--select", "/".join(asset), flag, partition,
    ]  # fmt: skip


def list_keys(s3_client: Any, bucket: str, prefix: str = "") -> list[str]:
    keys = []
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", ())]
    return sorted(keys)


def read_rows(s3_client: Any, bucket: str, prefix: str) -> list[dict]:
    """Every NDJSON row in the data objects of a day's directory."""
    rows = []
    for key in list_keys(s3_client, bucket, prefix):
        if key.endswith((MANIFEST, SUCCESS)):
            continue
        body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
        if key.endswith(".gz"):
            body = gzip.decompress(body) if body else b""
        rows += [json.loads(line) for line in body.decode().splitlines() if line]
    return rows


def instance_text(instance_dir: Path) -> str:
    """Everything a Dagster instance stored (event log and run databases, compute logs), as text."""
    chunks = []
    for path in sorted(instance_dir.rglob("*")):
        if path.is_file():
            chunks.append(path.read_bytes().decode("utf-8", errors="replace"))
    return "\n".join(chunks)


def failure_message(result) -> str:
    """The error text of every failure event (step, run, resource initialisation), causes included."""
    texts = []
    for event in result.all_events:
        error = getattr(event.event_specific_data, "error", None)
        while error is not None:
            texts.append(error.message)
            error = error.cause
    return "\n".join(texts)
