"""A day of >= 1 million rows on a real CrateDB, exported as JSON (gzip) and as Parquet, and by a peer.

    python benchmarks/real_day.py --crate-url http://127.0.0.1:4200 [--rows 1000000] [--peer-python PY]

Loads a tutorial-shaped `metrics` table server-side (INSERT ... SELECT FROM generate_series), then exports
the same day twice through `ExportRun.export_day` — the whole day flow (lease, clean-up, COPY, source count,
verification, manifest, marker) — once with `format: json`, once with `format: parquet`, against a SeaweedFS
started here. With `--peer-python` (the interpreter of a virtualenv with dlt and sqlalchemy-cratedb, which
`make bench-real` creates) the same day is also exported by dlt, a peer that pulls the rows through its own
process (child_dlt_day.py), into the same SeaweedFS as Parquet. Both days are then restored into new tables
through the restore (core/restore), against their exports. CrateDB must reach 127.0.0.1 (host
networking). Prints the figures, those with a target beside it; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import date
from pathlib import Path

from cratedb_export_testbed.seaweedfs import SeaweedS3
from cratedb_export_testbed.support import CrateUnderTest, metrics_ddl
from report import check, machine, say, summary
from services import ACCESS_KEY, SECRET_KEY, redacted

from cratedb_export.core.config import parse_export_specs
from cratedb_export.core.connection import ConnectionSettings
from cratedb_export.core.export import ExportRun
from cratedb_export.core.lease import Holder
from cratedb_export.core.restore.day import restore_days

DAY = date(2024, 6, 15)
DAY_START_MS = 1718409600000
DAY_MS = 86_400_000


def load(crate: CrateUnderTest, name: str, rows: int) -> None:
    crate.sql(metrics_ddl(name))
    started = time.perf_counter()
    # One row every 86.4 s / rows ms apart, all within the day; tags and fields vary like telemetry.
    crate.sql(
        f'INSERT INTO "doc"."{name}" ("hash_id", "timestamp", "name", "tags", "fields") '
        f"SELECT n, {DAY_START_MS} + (n::BIGINT * 86399999 / {rows}), 'cpu', "
        "{host = 'host-' || (n % 500)::TEXT, region = 'eu-west-1'}, "
        "{usage_idle = (n % 10000) / 100.0, usage_user = (n % 3000) / 100.0} "
        f"FROM generate_series(1, {rows}) AS g(n)"
    )
    crate.sql(f'REFRESH TABLE "doc"."{name}"')
    say(f"loaded {rows:,} rows into doc.{name} in {time.perf_counter() - started:.1f} s")


def peer_day(python: str, crate_url: str, table: str, s3: SeaweedS3) -> dict:
    """The same day through dlt, in a fresh process of the peer's virtualenv; the keys in its environment."""
    child = Path(__file__).with_name("child_dlt_day.py")
    arguments = [crate_url, "doc", table, "timestamp", str(DAY_START_MS), str(DAY_START_MS + DAY_MS)]
    environment = {**os.environ, "PEER_AWS_ACCESS_KEY_ID": ACCESS_KEY, "PEER_AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    done = subprocess.run(
        [python, str(child), *arguments, s3.endpoint_url, "bench-real"],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"the dlt run failed (exit {done.returncode}):\n{redacted(done.stderr[-3000:])}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crate-url", required=True)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--peer-python", help="a Python with dlt and sqlalchemy-cratedb installed")
    options = parser.parse_args()
    machine()
    crate = CrateUnderTest(url=options.crate_url, username=None, password=None, double=None)
    name = f"metrics_bench_{uuid.uuid4().hex[:8]}"
    load(crate, name, options.rows)
    try:
        with SeaweedS3(ACCESS_KEY, SECRET_KEY) as s3:
            s3.create_bucket("bench-real")
            connected = ConnectionSettings(
                url=options.crate_url,
                access_key_id=ACCESS_KEY,
                secret_access_key=SECRET_KEY,
                s3_endpoint=s3.endpoint,
                s3_protocol="http",
            ).open()
            figures = {}
            specs = []
            for fmt in ("json", "parquet"):
                (spec,) = parse_export_specs(
                    [
                        {
                            "table": f"doc.{name}",
                            "timestamp_column": "timestamp",
                            "target": f"bench-real/{fmt}",
                            "start_date": "2024-01-01",
                            "compression": "gzip",
                            "format": fmt,
                            "directory": "{target}/dt={date}/",
                        }
                    ]
                )
                specs.append(spec)
                run = ExportRun.start([spec], connected=connected, holder=Holder(f"bench-{fmt}", lambda _: False))
                started = time.perf_counter()
                result = run.export_day(spec, DAY)
                wall = time.perf_counter() - started
                figures[fmt] = (wall, result)
                steps = ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items())
                say(
                    f"format: {fmt}: {result.exported_rows:,} rows verified in {wall:.1f} s ({steps}); "
                    f"{len(result.files)} file(s), {result.total_bytes / (1 << 20):.1f} MiB"
                )
            (json_s, json_day), (parquet_s, parquet_day) = figures["json"], figures["parquet"]
            for spec in specs:
                started = time.perf_counter()
                (restored,) = restore_days(
                    connected.crate,
                    connected.store,
                    connected.access,
                    spec,
                    [DAY],
                    target_table=f"doc.{name}_restored_{spec.format}",
                )
                restore_s = time.perf_counter() - started
                export_s = figures[spec.format][0]
                say(
                    f"restore of the {spec.format} day into a new table (planned, COPY FROM ... RETURN SUMMARY, "
                    f"recounted): {restored.rows_loaded:,} rows in {restore_s:.1f} s, {restore_s / export_s:.2f}x "
                    "the day's export"
                )
            say(
                f"a Parquet day against a JSON day: {parquet_s / json_s:.2f}x the time "
                f"({parquet_s - json_s:+.1f} s), {parquet_day.total_bytes / json_day.total_bytes:.2f}x the bytes"
            )
            check("1. a Parquet day / the JSON day", parquet_s / json_s, at_most=1.25)
            if options.peer_python:
                peer = peer_day(options.peer_python, options.crate_url, name, s3)
                pages = s3.client().get_paginator("list_objects_v2").paginate(Bucket="bench-real", Prefix="dlt/")
                stored = sum(
                    o["Size"] for page in pages for o in page.get("Contents", ()) if o["Key"].endswith(".parquet")
                )
                say(
                    f"dlt (sql_database, backend pyarrow -> filesystem, Parquet): {peer['rows']:,} rows in "
                    f"{peer['seconds']:.1f} s (+{peer['import_seconds']:.1f} s importing dlt), peak RSS "
                    f"{peer['peak_rss_mib']:.0f} MiB, {stored / (1 << 20):.1f} MiB stored"
                )
                say(
                    f"dlt against cratedb-export, a Parquet day: {peer['seconds'] / parquet_s:.2f}x the time "
                    f"({parquet_s:.1f} s ours, verified and marked); {stored / parquet_day.total_bytes:.2f}x the bytes"
                )
                check("1. dlt's Parquet day / ours", peer["seconds"] / parquet_s, at_least=3)
    finally:
        crate.sql(f'DROP TABLE IF EXISTS "doc"."{name}"')
        for fmt in ("json", "parquet"):
            crate.sql(f'DROP TABLE IF EXISTS "doc"."{name}_restored_{fmt}"')
    summary()
    return 0


if __name__ == "__main__":
    sys.exit(main())
