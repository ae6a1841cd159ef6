"""The README's pictures of the Dagster UI, taken from the sandbox that `make run` starts.

Refresh them with (headless Chromium needed: `apt-get install -y chromium`):

    .venv/bin/python scripts/ui_pictures.py

It runs the sandbox (`python -m cratedb_export_testbed.sandbox`: SeaweedFS, the CrateDB stand-in, `dg dev`
with temporary storage) on a free loopback port, materializes the last three sample days of
cratedb_export/doc/metrics as one backfill, and saves docs/images/lineage.png (the export asset's lineage,
its CrateDB table upstream) and docs/images/partitions.png (its partition bar), then stops the sandbox.
Dismissing the UI's "Join the Dagster community" dialog leaves ~/.dagster/.nux/nux.yaml, as its Skip does.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the test helpers, reused

from cratedb_export_testbed.dg_project import dg_env  # noqa: E402
from cratedb_export_testbed.sandbox import sample_days  # noqa: E402
from dagster_graphql.client.query import LAUNCH_PARTITION_BACKFILL_MUTATION  # noqa: E402

from cratedb_export_tests.test_dagster_dev import (  # noqa: E402
    BACKFILL_QUERY,
    FINAL_BACKFILL_STATES,
    SUCCESSFUL_BACKFILL_STATES,
    _free_port,
)
from cratedb_export_tests.test_dg_project import PARTITIONS_QUERY, _get  # noqa: E402

ASSET = ["cratedb_export", "doc", "metrics"]
PAGE = "/assets/" + "/".join(ASSET)


def _graphql(url: str, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(f"{url}/graphql", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            payload = json.loads(answer.read())
    except urllib.error.HTTPError as error:
        raise SystemExit(f"GraphQL {query.split()[:2]}: HTTP {error.code} {error.read()[:2000]!r}") from error
    if payload.get("errors"):
        raise SystemExit(f"GraphQL {query.split()[:2]}: {payload['errors']}")
    return payload["data"]


def _wait(what: str, probe, timeout: float = 240.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with suppress(urllib.error.URLError, OSError):  # a busy or still starting webserver: ask again
            if result := probe():
                return result
        time.sleep(1)
    raise SystemExit(f"timed out waiting for {what}")


def main() -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    # As `make run` without CRATEDB_URL: the sandbox, with a Dagster instance of its own.
    env = {k: v for k, v in dg_env({"DAGSTER_PORT": str(port)}).items() if not k.startswith(("CRATEDB_", "DAGSTER_H"))}
    log = Path(tempfile.mkdtemp(prefix="ui-pictures-")) / "sandbox.log"
    with log.open("wb") as output:
        sandbox = subprocess.Popen(
            [sys.executable, "-m", "cratedb_export_testbed.sandbox"],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        _wait("the sandbox's UI", lambda: (_get(f"{url}/graphql", {"query": PARTITIONS_QUERY}) or {}).get("data"))
        days = [d.isoformat() for d in sample_days(datetime.now(UTC).date())[-3:]]
        params = {"assetSelection": [{"path": ASSET}], "partitionNames": days, "fromFailure": False}
        launched = _graphql(url, LAUNCH_PARTITION_BACKFILL_MUTATION, {"backfillParams": params})
        launched = launched["launchPartitionBackfill"]
        backfill_id = launched.get("backfillId") or sys.exit(f"launch failed: {launched}")

        def finished() -> str | None:
            status = _graphql(url, BACKFILL_QUERY, {"backfillId": backfill_id})["partitionBackfillOrError"]["status"]
            return status if status in FINAL_BACKFILL_STATES else None

        status = _wait("the backfill", finished)
        if status not in SUCCESSFUL_BACKFILL_STATES:
            raise SystemExit(f"backfill {backfill_id} ended {status}; see {log}")
        # The "Join the Dagster community" dialog would cover both pictures: dismissed as its Skip button does.
        _graphql(url, "mutation { setNuxSeen }")
        pictures = {
            "lineage.png": f"{PAGE}?view=lineage&lineageDepth=1",
            "partitions.png": f"{PAGE}?view=partitions&partition={days[-1]}",
        }
        chromium = shutil.which("chromium") or shutil.which("chromium-browser") or sys.exit("chromium not found")
        images = ROOT / "docs" / "images"
        images.mkdir(parents=True, exist_ok=True)
        for name, path in pictures.items():
            subprocess.run(
                [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                 "--window-size=1400,900", "--virtual-time-budget=30000", f"--screenshot={images / name}", url + path],
                check=True, capture_output=True, timeout=180,
            )  # fmt: skip
            print(f"{images / name}: {(images / name).stat().st_size // 1024} KB  ({url}{path})")
    finally:
        with suppress(ProcessLookupError):
            os.killpg(sandbox.pid, signal.SIGINT)  # the sandbox's own clean stop (Ctrl-C)
        try:
            sandbox.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(sandbox.pid, signal.SIGKILL)
        print(f"sandbox stopped; its output: {log}")


if __name__ == "__main__":
    main()
