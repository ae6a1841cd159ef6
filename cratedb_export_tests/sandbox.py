"""`make run`: start the Dagster UI with the export pipeline, against a local sandbox when nothing is configured.

With CRATEDB_URL set, it runs `dagster dev` against that CrateDB and whatever S3 the environment names.
Without it, it starts a real SeaweedFS S3 server and the CrateDB STAND-IN from this test package (a test
double, not CrateDB), preloads the tutorial's `doc.metrics` table with the last days of sample rows, and
points the code location at both, so that pressing Materialize lands files in S3.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DAGSTER_HOME = ROOT / ".dagster_home"
SANDBOX_KEYS = ("sandbox-access-key", "sandbox/secret+key=")
SAMPLE_DAYS = 7
TUTORIAL_DDL = """CREATE TABLE IF NOT EXISTS "doc"."metrics" (
  "hash_id" BIGINT, "timestamp" TIMESTAMP WITH TIME ZONE, "name" TEXT,
  "tags" OBJECT(DYNAMIC), "fields" OBJECT(DYNAMIC),
  "month" TIMESTAMP AS date_trunc('quarter', "timestamp"))"""


def _prepare_dagster_home() -> dict[str, str]:
    DAGSTER_HOME.mkdir(exist_ok=True)
    shutil.copyfile(ROOT / "dagster.yaml", DAGSTER_HOME / "dagster.yaml")
    return {"DAGSTER_HOME": str(DAGSTER_HOME)}


def _sample_rows(today: date) -> list[list]:
    rows = []
    for back in range(SAMPLE_DAYS, 0, -1):
        day = today - timedelta(days=back)
        for hour in range(0, 24, 2):
            moment = datetime(day.year, day.month, day.day, hour, 15, tzinfo=UTC)
            ident = int(moment.timestamp())
            rows.append(
                [
                    ident,
                    int(moment.timestamp() * 1000),
                    "cpu",
                    {"host": f"host-{hour % 3}"},
                    {"usage_idle": 50 + hour},
                ]
            )
    return rows


def _dagster_dev(env: dict[str, str]) -> int:
    port = os.environ.get("DAGSTER_PORT", "3000")
    command = [
        sys.executable,
        "-m",
        "dagster",
        "dev",
        "-h",
        "127.0.0.1",
        "-p",
        port,
        "-w",
        str(ROOT / "workspace.yaml"),
    ]
    print(f"\nDagster UI: http://127.0.0.1:{port}  (Ctrl-C stops everything)\n", flush=True)
    process = subprocess.Popen(command, env={**os.environ, **env}, cwd=ROOT)
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.send_signal(signal.SIGINT)
        return process.wait()


def main() -> int:
    env = _prepare_dagster_home()
    if os.environ.get("CRATEDB_URL"):
        print(f"Using CrateDB at {os.environ['CRATEDB_URL'].split('@')[-1]} and the S3 settings in the environment.")
        return _dagster_dev(env)

    from cratedb_export_tests.crate_double import CrateDouble
    from cratedb_export_tests.s3_server import SeaweedS3

    print(
        "No CRATEDB_URL set: starting a local sandbox.\n"
        "  S3      : a real SeaweedFS server on 127.0.0.1 (data is discarded on exit)\n"
        "  CrateDB : a STAND-IN — the test double from cratedb_export_tests, which speaks CrateDB's HTTP\n"
        "            protocol and runs COPY TO for this project's statements. It is NOT CrateDB.\n"
        "  Set CRATEDB_URL, ACCESS_KEY_ID, SECRET_ACCESS_KEY (and S3_ENDPOINT for MinIO/SeaweedFS) to use\n"
        "  real services instead; see README.md.",
        flush=True,
    )
    access_key, secret_key = SANDBOX_KEYS
    with SeaweedS3(access_key, secret_key) as s3, CrateDouble() as crate:
        s3.create_bucket("crate-astro-tutorial")
        rows = _sample_rows(datetime.now(UTC).date())
        insert = 'INSERT INTO "doc"."metrics" ("hash_id", "timestamp", "name", "tags", "fields") VALUES (?, ?, ?, ?, ?)'
        for statement, bulk_args in ((TUTORIAL_DDL, None), (insert, rows), ('REFRESH TABLE "doc"."metrics"', None)):
            reply = crate.execute(statement, bulk_args=bulk_args)
            if "error" in reply:
                raise SystemExit(f"sandbox: preloading doc.metrics failed: {reply['error']['message']}")
        print(
            f"  preloaded doc.metrics with {len(rows)} rows over the last {SAMPLE_DAYS} days\n"
            f"  CrateDB stand-in: {crate.url}   S3: {s3.endpoint_url} (bucket crate-astro-tutorial, "
            f"keys {access_key} / {secret_key} — sandbox-only)",
            flush=True,
        )
        env.update(
            CRATEDB_URL=crate.url,
            ACCESS_KEY_ID=access_key,
            SECRET_ACCESS_KEY=secret_key,
            S3_ENDPOINT=s3.endpoint,
            S3_PROTOCOL="http",
        )
        return _dagster_dev(env)


if __name__ == "__main__":
    sys.exit(main())
