"""What a per-day `matches_source` evaluation costs Dagster, apart from any export: CPU per asset-day.

A range run over TABLES x DAYS asset-days of a multi-asset that does no export at all, only what our export
step makes Dagster store per verified day: one materialization with our metadata, with and without the
day's check evaluation on its partition (through checks.DayChecks, as assets.py does). Run on a SQLite
instance (the CLI's default) and, with --postgres, on the test suite's PostgreSQL server too.

    .venv/bin/python benchmarks/check_events.py [--tables 2] [--days 365] [--postgres]

Prints CPU and wall seconds of each run and the difference per asset-day. CPU is the figure to read on a
busy machine; the run was created with DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=1, so the planned
events are not part of it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import yaml

warnings.simplefilter("ignore")

from dagster import (  # noqa: E402
    AssetKey,
    AssetMaterialization,
    AssetSpec,
    BackfillPolicy,
    DagsterInstance,
    Definitions,
    define_asset_job,
    in_process_executor,
    multi_asset,
)

from cratedb_export.core.config import parse_export_specs  # noqa: E402
from cratedb_export.core.export import DayExport, ExportedFile  # noqa: E402
from cratedb_export.core.window import DayWindow  # noqa: E402
from cratedb_export.orchestration.checks import CHECK, DayChecks, check_specs  # noqa: E402
from cratedb_export.orchestration.metadata import day_metadata  # noqa: E402
from cratedb_export.orchestration.partitions import partitions_for  # noqa: E402

FIRST = date(2024, 1, 1)


def _job(tables: int, with_checks: bool):
    specs = parse_export_specs(
        [
            {"table": f"doc.t{n}", "timestamp_column": "ts", "target": f"bench-events/t{n}", "start_date": "2024-01-01"}
            for n in range(tables)
        ]
    )
    partitions = partitions_for(specs[0])
    keys = [AssetKey(spec.asset_path) for spec in specs]

    @multi_asset(
        specs=[AssetSpec(key, skippable=True) for key in keys],
        check_specs=[
            c for s, key in zip(specs, keys, strict=True) for c in check_specs(s, key, partitions) if c.name == CHECK
        ]
        if with_checks
        else [],
        partitions_def=partitions,
        backfill_policy=BackfillPolicy.single_run(),
        can_subset=True,
    )
    def days(context):
        checks = DayChecks(context.instance, context.run.run_id)
        for key_text in context.partition_keys:
            day = date.fromisoformat(key_text)
            for spec, key in zip(specs, keys, strict=True):
                result = DayExport(
                    spec=spec,
                    window=DayWindow.for_day(day),
                    directory=spec.directory_for(day),
                    display_uri="",
                    statement='COPY "doc"."t" WHERE "ts" >= ? AND "ts" < ? TO DIRECTORY ?',
                    copy_rowcount=3,
                    source_rows=3,
                    exported_rows=3,
                    files=[ExportedFile(f"t_{n}_.json", 300, 1) for n in range(4)],
                    timings={"copy": 0.1},
                )
                metadata = day_metadata(result, endpoint="127.0.0.1:9000", protocol="http")
                yield AssetMaterialization(asset_key=key, partition=key_text, metadata=metadata)
                if with_checks:
                    checks.add(key, day, result.verified_counts, passed=True)
                    if checks.due():
                        yield from checks.flush()
        yield from checks.flush()

    defs = Definitions(assets=[days], jobs=[define_asset_job("days")], executor=in_process_executor)
    return defs.resolve_job_def("days")


@contextlib.contextmanager
def _instance(home: str, postgres: bool) -> Iterator[DagsterInstance]:
    if not postgres:
        with DagsterInstance.local_temp(home) as instance:
            yield instance
        return
    from cratedb_export_testbed.postgres import EmbeddedPostgres

    with EmbeddedPostgres() as server:
        os.environ["BENCH_PG_PASSWORD"] = server.password
        storage = server.create_database().instance_storage("BENCH_PG_PASSWORD")
        Path(home, "dagster.yaml").write_text(yaml.safe_dump({"storage": storage, "telemetry": {"enabled": False}}))
        with DagsterInstance.from_config(home) as instance:
            yield instance


def measure(tables: int, days: int, with_checks: bool, postgres: bool) -> tuple[float, float]:
    job = _job(tables, with_checks)
    last = FIRST + timedelta(days=days - 1)
    tags = {
        "dagster/asset_partition_range_start": FIRST.isoformat(),
        "dagster/asset_partition_range_end": last.isoformat(),
    }
    os.environ["DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"] = "1"
    with tempfile.TemporaryDirectory() as home, _instance(home, postgres) as instance:
        saved = os.dup(2)
        with open(os.devnull, "wb") as sink:  # the console log of every event, formatted but not shown
            os.dup2(sink.fileno(), 2)
            try:
                cpu, wall = time.process_time(), time.perf_counter()
                result = job.execute_in_process(instance=instance, tags=tags, raise_on_error=False)
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            finally:
                os.dup2(saved, 2)
                os.close(saved)
        assert result.success
    return cpu, wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", type=int, default=2)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--postgres", action="store_true", help="also on a PostgreSQL instance")
    args = parser.parse_args()
    asset_days = args.tables * args.days
    for postgres in (False, True) if args.postgres else (False,):
        storage = "PostgreSQL" if postgres else "SQLite"
        plain = measure(args.tables, args.days, False, postgres)
        checked = measure(args.tables, args.days, True, postgres)
        per_day = [(checked[i] - plain[i]) / asset_days * 1000 for i in (0, 1)]
        print(
            f"{storage}, {asset_days:,} asset-days: materializations only {plain[0]:.1f} s CPU / "
            f"{plain[1]:.1f} s wall; with a check evaluation per day {checked[0]:.1f} s CPU / {checked[1]:.1f} s "
            f"wall; the evaluation costs {per_day[0]:.1f} ms CPU / {per_day[1]:.1f} ms wall per day "
            f"(a materialization: {plain[0] / asset_days * 1000:.1f} ms CPU)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
