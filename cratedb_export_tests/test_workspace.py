"""workspace.yaml: the code location loads as a Dagster OSS deployment loads it (`dagster-webserver -w` and
`dagster-daemon run -w` from the repository root), with the repository's exports.yaml."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from cratedb_export_tests.test_dagster_dev import WORKSPACE_QUERY

ROOT = Path(__file__).resolve().parent.parent
LOCATION = "cratedb_export"
TIMEOUT = 180.0
ASSETS_QUERY = """
query { repositoriesOrError { ... on RepositoryConnection { nodes { assetNodes { assetKey { path } } } } } }
"""


def _run(command: list[str], home: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CRATEDB_EXPORT_CONFIG"}  # the repository's exports.yaml
    env.update(DAGSTER_HOME=str(home), PYTHONUNBUFFERED="1", NO_COLOR="1")
    return subprocess.run(
        command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT
    )


def _graphql(query: str, workspace: str, home: Path, cwd: Path = ROOT) -> dict:
    """dagster-graphql loads the workspace file (a code server per location, as the webserver does)."""
    output = home / "graphql.json"  # stdout carries the code server's log lines too
    command = [str(Path(sys.executable).with_name("dagster-graphql")), "-w", workspace, "-t", query, "-o", str(output)]
    answer = _run(command, home, cwd)
    assert answer.returncode == 0, answer.stdout[-3000:] + answer.stderr[-3000:]
    payload = json.loads(output.read_text())
    assert not payload.get("errors"), payload
    return payload["data"]


def test_workspace_yaml_loads_the_code_location_as_a_deployment_does(dagster_home):
    assert (ROOT / "workspace.yaml").is_file(), "workspace.yaml is missing from the repository root"
    validated = _run([sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"], dagster_home)
    output = validated.stdout + validated.stderr
    assert validated.returncode == 0, output[-4000:]
    assert f"Validation successful for code location {LOCATION}" in output, output[-4000:]

    entries = _graphql(WORKSPACE_QUERY, "workspace.yaml", dagster_home)["workspaceOrError"]["locationEntries"]
    assert [(e["name"], e["loadStatus"]) for e in entries] == [(LOCATION, "LOADED")], entries
    assert entries[0]["locationOrLoadError"]["__typename"] == "RepositoryLocation", entries
    (repository,) = _graphql(ASSETS_QUERY, "workspace.yaml", dagster_home)["repositoriesOrError"]["nodes"]
    keys = {"/".join(node["assetKey"]["path"]) for node in repository["assetNodes"]}
    assert {"cratedb_export/doc/metrics", "cratedb/doc/metrics"} <= keys, keys


def test_the_check_fails_for_a_workspace_naming_another_module(tmp_path, dagster_home):
    """The same command, given a workspace whose module does not exist, fails: the check above can fail."""
    broken = (ROOT / "workspace.yaml").read_text().replace("cratedb_export.definitions", "cratedb_export.nowhere")
    assert "cratedb_export.nowhere" in broken
    (tmp_path / "workspace.yaml").write_text(broken)
    validated = _run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", str(tmp_path / "workspace.yaml")],
        dagster_home,
    )
    assert validated.returncode != 0, validated.stdout + validated.stderr
