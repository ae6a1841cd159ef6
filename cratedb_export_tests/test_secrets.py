"""No access key, secret key or CrateDB password anywhere: statement text, event log, compute logs, stdout.

Runs the real CLI (`dagster asset materialize`) against a Dagster instance whose python_logs setting
routes the crate client's and botocore's DEBUG loggers into the event log — the loggers that print
request payloads and signing material — through successes and failures, then searches every byte the
instance stored and every byte the processes printed.
"""

from __future__ import annotations

import os
import subprocess
import textwrap
from datetime import date
from pathlib import Path
from urllib.parse import quote

import yaml
from cratedb_export_testbed.support import create_metrics_table, instance_text, materialize_command, spec_for

DAY = "2024-06-02"


def _materialize(home: Path, config: Path, env: dict, table: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        materialize_command(["cratedb_export", "doc", table], DAY),
        env={**env, "DAGSTER_HOME": str(home), "CRATEDB_EXPORT_CONFIG": str(config)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_no_secret_anywhere_through_successes_and_failures(export_env, tmp_path, crate, s3, bucket, secrets):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        textwrap.dedent(
            """
            python_logs:
              python_log_level: DEBUG
              managed_python_loggers: [crate.client.http, crate.client, botocore, urllib3]
            telemetry: {enabled: false}
            """
        )
    )
    table = create_metrics_table(crate, [date(2024, 6, 1), date(2024, 6, 2)], per_day=3)
    config = tmp_path / "exports.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "exports": [
                    spec_for(table, bucket),
                    {
                        "table": "doc.missing_table",
                        "timestamp_column": "timestamp",
                        "target": f"{bucket}/missing",
                    },
                ]
            }
        )
    )
    env = dict(os.environ)
    runs = {
        "success": _materialize(home, config, env, table.name),
        "unknown table": _materialize(home, config, env, "missing_table"),
        "bad s3 keys": _materialize(
            home, config, {**env, "SECRET_ACCESS_KEY": "Wrong/Key+" + secrets.secret_key}, table.name
        ),
        "unreachable cratedb": _materialize(home, config, {**env, "CRATEDB_URL": "http://127.0.0.1:9"}, table.name),
    }
    if crate.double is not None:
        uri = f"s3://{quote(secrets.access_key, safe='')}:{quote(secrets.secret_key, safe='')}@{s3.endpoint}/b/p/"
        crate.double.faults.fail_next_copy(message=f"SQLParseException[Invalid uri '{uri}']", code=4000)
        runs["invalid uri echo"] = _materialize(home, config, env, table.name)
        crate.double.faults.reset()

    assert runs["success"].returncode == 0, runs["success"].stderr[-3000:]
    for name, run in runs.items():
        if name != "success":
            assert run.returncode != 0, name
    printed = "\n".join(run.stdout + run.stderr for run in runs.values())
    stored = instance_text(home)
    # The searches below are only meaningful if the logs and statements really are there.
    assert "Sending request to /_sql" in stored, "crate.client DEBUG log did not reach the event log"
    assert "COPY" in stored and "CrateDB has no such table" in stored and "S3 refused" in stored
    assert not secrets.leaks_in(printed), secrets.leaks_in(printed)
    assert not secrets.leaks_in(stored), secrets.leaks_in(stored)
    for text in (printed, stored):
        assert "Wrong/Key+" not in text and quote("Wrong/Key+", safe="") not in text

    statements = "\n".join(row[0] for row in crate.sql("SELECT stmt FROM sys.jobs_log"))
    assert "COPY" in statements and not secrets.leaks_in(statements)
