"""The repository as a `dg` project: `dg list defs` and `dg launch` from its root, the schedule as the UI
sees it, and `make run`'s sandbox (`dg dev`) started, inspected over GraphQL and stopped with Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from cratedb_export_testbed.dg_project import dg_env, run_dg
from cratedb_export_testbed.sandbox import sample_days, sandbox_config
from cratedb_export_testbed.support import create_metrics_table, list_keys, spec_for, tick
from dagster import AssetKey, DagsterInstance
from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql

from cratedb_export.core.storage import SUCCESS
from cratedb_export_tests.test_dagster_dev import _alive, _free_port

ROOT = Path(__file__).resolve().parent.parent
DAYS = [date(2024, 7, 1) + timedelta(days=i) for i in range(3)]
SANDBOX_STARTUP = 180.0
SANDBOX_STOP = 90.0
FALSE_WARNINGS = ("supersed", "will not be used")


def test_dg_list_defs_and_dg_launch_a_partition_range_from_the_root(tmp_path, export_env, crate, s3, bucket, secrets):
    table = create_metrics_table(crate, DAYS, per_day=3)
    config = tmp_path / "exports.yaml"
    config.write_text(yaml.safe_dump({"exports": [spec_for(table, bucket)]}))
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    env = dg_env({"CRATEDB_EXPORT_CONFIG": str(config), "DAGSTER_HOME": str(home)})
    asset = f"cratedb_export/doc/{table.name}"

    listed = run_dg("list", "defs", "--json", cwd=ROOT, env=env)
    assert listed.returncode == 0, listed.stderr
    listed_assets = sorted(a["asset_key"] for a in json.loads(listed.stdout)["assets"])
    assert listed_assets == sorted([asset, f"cratedb/doc/{table.name}"])  # the export and its CrateDB table

    launched = run_dg("launch", "--assets", asset, "--partition-range", f"{DAYS[0]}...{DAYS[-1]}", cwd=ROOT, env=env)
    output = launched.stdout + launched.stderr
    assert launched.returncode == 0, output[-4000:]
    assert not [w for w in FALSE_WARNINGS if w in output.lower()], output[-4000:]
    assert not secrets.leaks_in(output)

    with DagsterInstance.from_config(str(home)) as instance:
        records = instance.fetch_materializations(AssetKey(asset.split("/")), limit=100).records
        runs = instance.get_runs()
    assert sorted(r.partition_key or "" for r in records) == [d.isoformat() for d in DAYS]
    assert len(runs) == 1, "one run for the range (BackfillPolicy.single_run)"
    client = s3.client()
    for day in DAYS:
        assert f"{table.name}-{day}/{SUCCESS}" in list_keys(client, bucket, f"{table.name}-{day}/")


SCHEDULE_QUERY = """
query {
  repositoriesOrError {
    ... on RepositoryConnection {
      nodes {
        schedules { name pipelineName cronSchedule executionTimezone description partitionSet { name } }
        partitionSets {
          name
          pipelineName
          partitionsOrError { ... on Partitions { results { name } } }
        }
      }
    }
  }
}
"""


def test_schedule_runs_the_partitioned_job_as_the_ui_shows_it(tmp_path, monkeypatch, instance):
    """Through the GraphQL API the UI uses: the schedule targets the daily job, whose partition set holds
    the configured days; a tick at 00:00 of day D requests partition D-1."""
    config = tmp_path / "exports.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "exports": [
                    {
                        "table": "doc.metrics",
                        "timestamp_column": "timestamp",
                        "target": "exports-bucket/metrics",
                        "start_date": "2024-02-01",
                    }
                ]
            }
        )
    )
    monkeypatch.setenv("CRATEDB_EXPORT_CONFIG", str(config))
    definitions_file = tmp_path / "location.py"
    definitions_file.write_text("from cratedb_export.definitions import defs\n")

    with define_out_of_process_context(str(definitions_file), "defs", instance) as context:
        data = execute_dagster_graphql(context, SCHEDULE_QUERY).data
    (repository,) = data["repositoriesOrError"]["nodes"]
    schedules = {s["name"]: s for s in repository["schedules"]}
    assert set(schedules) == {"daily_cratedb_export_schedule", "yesterday_landed_schedule"}
    schedule = schedules["daily_cratedb_export_schedule"]
    assert schedule["pipelineName"] == "daily_cratedb_export"
    assert (schedule["cronSchedule"], schedule["executionTimezone"]) == ("0 0 * * *", "UTC")
    assert (
        "from 2024-02-01" in schedule["description"] and "daily_cratedb_export_partition_set" in schedule["description"]
    )
    sets = {s["name"]: s for s in repository["partitionSets"]}
    job_set = sets["daily_cratedb_export_partition_set"]
    assert job_set["pipelineName"] == schedule["pipelineName"]
    names = [p["name"] for p in job_set["partitionsOrError"]["results"]]
    assert names[0] == "2024-02-01" and names[-1] == (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    # Dagster 1.13 stores no partition set for any schedule (ScheduleSnap.from_def: partition_set_name=None),
    # so the UI's schedule page says "Partition set: None" whatever the schedule; should Dagster start to fill
    # it in, it must be the job's.
    assert schedule["partitionSet"] is None or schedule["partitionSet"]["name"] == job_set["name"]

    from cratedb_export.definitions import defs

    (request,) = tick(defs(), "daily_cratedb_export_schedule", instance, datetime(2024, 3, 5, tzinfo=UTC))
    assert (request.partition_key, request.run_key) == ("2024-03-04", "2024-03-04")


def test_sandbox_partitions_start_at_the_first_sample_day():
    days = sample_days(date(2026, 3, 10))
    assert days[0] == date(2026, 3, 3) and days[-1] == date(2026, 3, 9) and len(days) == 7
    (entry,) = sandbox_config(days[0])["exports"]
    assert entry["table"] == "doc.metrics" and entry["start_date"] == "2026-03-03"


# --- make run: the sandbox with dg dev, stopped as Ctrl-C stops it ----------------------------------------


def _get(url: str, body: dict | None = None) -> dict | None:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode() if body else None,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


PARTITIONS_QUERY = """
query {
  assetNodes { assetKey { path } description partitionKeysByDimension { partitionKeys } }
}
"""


@pytest.mark.slow
def test_make_run_sandbox_serves_the_ui_and_stops_cleanly_on_ctrl_c(tmp_path):
    """`python -m cratedb_export_testbed.sandbox` (what `make run` runs): SeaweedFS, the stand-in and `dg dev`
    come up without false warnings; the asset's partitions are the sample days; SIGINT to its process
    group (a terminal's Ctrl-C, once the sandbox holds the foreground) stops everything, exit status 0."""
    port = _free_port()
    log_path = tmp_path / "make_run.log"
    env = {
        k: v for k, v in dg_env({"DAGSTER_PORT": str(port)}).items() if not k.startswith(("CRATEDB_", "DAGSTER_HOME"))
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "cratedb_export_testbed.sandbox"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    session = process.pid
    try:
        deadline = time.monotonic() + SANDBOX_STARTUP
        nodes = None
        while time.monotonic() < deadline and process.poll() is None:
            answer = _get(f"http://127.0.0.1:{port}/graphql", {"query": PARTITIONS_QUERY})
            nodes = (answer or {}).get("data", {}).get("assetNodes") if answer else None
            if nodes:
                break
            time.sleep(1)
        output = log_path.read_text(errors="replace")
        assert nodes, f"the sandbox's UI did not serve the code location\n{output[-4000:]}"
        today = datetime.now(UTC).date()
        days = [d.isoformat() for d in sample_days(today)]
        (metrics,) = [n for n in nodes if n["assetKey"]["path"] == ["cratedb_export", "doc", "metrics"]]
        keys = metrics["partitionKeysByDimension"][0]["partitionKeys"]
        # After midnight UTC during the test a day more may have ended; the first is the first sample day.
        assert keys[0] == days[0] and keys[: len(days)] == days, keys
        # The UI says it is a sandbox, and that the CrateDB in it is a stand-in.
        assert metrics["description"].startswith("SANDBOX") and "not CrateDB" in metrics["description"]
        assert f"{days[0]} … {days[-1]}" in output, output[-4000:]
        assert not [w for w in FALSE_WARNINGS if w in output.lower()], output[-4000:]

        os.killpg(session, signal.SIGINT)
        try:
            code = process.wait(timeout=SANDBOX_STOP)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the sandbox did not stop within {SANDBOX_STOP:.0f} s\n{log_path.read_text()[-4000:]}")
        output = log_path.read_text(errors="replace")
        assert code == 0, output[-4000:]
        assert "Traceback" not in output, output[-4000:]
        assert not (ROOT / ".sandbox" / "env").exists(), "the sandbox left its settings file behind"
        left = _alive(session)
        assert not left, f"still running after the sandbox exited: {left}"
    finally:
        if process.poll() is None:
            os.killpg(session, signal.SIGKILL)
            process.wait()
        for pid in _alive(session):
            os.kill(pid, signal.SIGKILL)
