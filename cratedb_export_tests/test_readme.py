"""README.md's tour: the ```bash block after its `<!-- tour: ... -->` marker, run from the repository root as
in a second terminal while `make run` runs: the sandbox (SeaweedFS, the CrateDB stand-in with the sample
days, `dg dev`) is started as `make run` starts it, and the block gets this process's environment without
any of the sandbox's settings; it reads them from .sandbox/env, as the README says."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from cratedb_export_testbed import sandbox
from cratedb_export_testbed.dg_project import dg_env
from cratedb_export_testbed.support import list_keys

from cratedb_export.core.storage import SUCCESS
from cratedb_export_tests.test_dagster_dev import _alive, _free_port
from cratedb_export_tests.test_dg_project import FALSE_WARNINGS, PARTITIONS_QUERY, SANDBOX_STARTUP, SANDBOX_STOP, _get

ROOT = Path(__file__).resolve().parent.parent
MARKER = "<!-- tour: run by cratedb_export_tests/test_readme.py against the sandbox -->"
TOUR_TIMEOUT = 600.0
SANDBOX_SETTINGS = ("CRATEDB_", "DAGSTER_HOME", "S3_", "ACCESS_KEY_ID", "SECRET_ACCESS_KEY")
MATERIALIZED_QUERY = """
query Materialized($partitions: [String!]) {
  assetOrError(assetKey: {path: ["cratedb_export", "doc", "metrics"]}) {
    ... on Asset { assetMaterializations(partitions: $partitions) { partition runId } }
  }
}
"""

pytestmark = pytest.mark.slow


def tour_block(readme: str) -> str:
    """The commands of the ```bash block right after the marker line."""
    _, marker, after = readme.partition(MARKER)
    if not marker:
        pytest.fail(f"README.md has no line {MARKER!r}")
    found = re.match(r"\s*\n```bash\n(.*?)\n```", after, re.DOTALL)
    if not found:
        pytest.fail(f"README.md: no ```bash block right after {MARKER!r}; it is followed by {after[:200]!r}")
    return found.group(1)


def _settings(path: Path) -> dict[str, str]:
    """.sandbox/env's NAME=value lines (values shell-quoted)."""
    return {n: shlex.split(v)[0] for n, _, v in (line.partition("=") for line in path.read_text().splitlines()) if v}


def test_the_readme_tour_runs_against_the_sandbox(tmp_path):
    commands = tour_block((ROOT / "README.md").read_text(encoding="utf-8"))
    assert commands.splitlines()[0] == "source .venv/bin/activate", commands
    launched = re.search(r"^dg launch .*--partition (.+)$", commands, re.MULTILINE)
    assert launched, f"the tour launches no single partition:\n{commands}"
    # A second terminal: the user's environment, nothing of the sandbox's, the venv's bin on PATH.
    env = {k: v for k, v in dg_env().items() if not k.startswith(SANDBOX_SETTINGS)}
    day = subprocess.run(["bash", "-c", f"printf %s {launched.group(1)}"], env=env, capture_output=True, text=True)
    sample_days = sandbox.sample_days(datetime.now(UTC).date())
    days = [d.isoformat() for d in sample_days]
    assert day.stdout in days, f"the tour launches {day.stdout!r}, not a sample day {days}"

    port = _free_port()
    log_path = tmp_path / "make_run.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "cratedb_export_testbed.sandbox"],
            cwd=ROOT, env={**env, "DAGSTER_PORT": str(port)}, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}/graphql"
    try:
        # Up: the UI serves the code location, and .sandbox/env is this sandbox's, with dg dev's instance.
        deadline = time.monotonic() + SANDBOX_STARTUP
        settings: dict[str, str] = {}
        while time.monotonic() < deadline and process.poll() is None:
            output = log_path.read_text(errors="replace")
            standin = re.search(r"CrateDB stand-in: (\S+)", output)
            if sandbox.SANDBOX_ENV.exists() and standin:
                settings = _settings(sandbox.SANDBOX_ENV)
                ready = settings.get("CRATEDB_URL") == standin.group(1) and "DAGSTER_HOME" in settings
                if ready and ((_get(url, {"query": PARTITIONS_QUERY}) or {}).get("data") or {}).get("assetNodes"):
                    break
            time.sleep(1)
        else:
            pytest.fail(f"the sandbox did not come up with its .sandbox/env\n{log_path.read_text()[-4000:]}")

        tour = subprocess.run(
            ["bash", "-c", f"set -euo pipefail -x\n{commands}\n"],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TOUR_TIMEOUT,
        )  # fmt: skip
        output = tour.stdout + tour.stderr  # -x: each command is echoed before it runs
        print(output[-6000:])  # shown with -rP
        assert tour.returncode == 0, f"the tour stopped with status {tour.returncode}:\n{output[-6000:]}"
        assert not [w for w in FALSE_WARNINGS if w in output.lower()], output[-6000:]

        # The day landed in the sandbox's S3, and the run shows in the UI.
        bucket, prefix = str(sandbox.sandbox_config(sample_days[0])["exports"][0]["target"]).split("/", 1)
        client = boto3.client(
            "s3",
            endpoint_url=f"{settings.get('S3_PROTOCOL', 'https')}://{settings['S3_ENDPOINT']}",
            aws_access_key_id=settings["ACCESS_KEY_ID"],
            aws_secret_access_key=settings["SECRET_ACCESS_KEY"],
            region_name="us-east-1",
        )
        landed = list_keys(client, bucket, f"{prefix}-{day.stdout}/")
        assert f"{prefix}-{day.stdout}/{SUCCESS}" in landed, (landed, output[-4000:])
        shown = _get(url, {"query": MATERIALIZED_QUERY, "variables": {"partitions": [day.stdout]}})
        events = (shown or {}).get("data", {}).get("assetOrError", {}).get("assetMaterializations")
        assert [e["partition"] for e in events or []] == [day.stdout], shown
    finally:
        session = process.pid
        if process.poll() is None:
            os.killpg(session, signal.SIGINT)  # Ctrl-C, as a user stops make run
            try:
                process.wait(timeout=SANDBOX_STOP)
            except subprocess.TimeoutExpired:
                os.killpg(session, signal.SIGKILL)
                process.wait()
        for pid in _alive(session):
            os.kill(pid, signal.SIGKILL)
    assert process.returncode == 0, log_path.read_text(errors="replace")[-4000:]
