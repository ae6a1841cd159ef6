"""Temporary `dg` projects for the tests: a pyproject with [tool.dg], a package, and a defs folder.

Laid out as `create-dagster` lays out a project (flat, without src/): `<root>/<module>/definitions.py` loads
`<root>/<module>/defs/`, where each component is a folder with a defs.yaml. The project is not installed:
`dg` runs its code with this interpreter (the repository's .venv, where cratedb-export is installed) and
the project root as working directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]  # the repository: the test bed is installed editable from it
DG = str(Path(sys.executable).with_name("dg"))
COMPONENT_TYPE = "cratedb_export.CrateDBExportComponent"
DG_TIMEOUT = 240.0

DEFINITIONS_PY = """from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
"""


@dataclass
class DgProject:
    root: Path
    module: str

    @property
    def defs_dir(self) -> Path:
        return self.root / self.module / "defs"

    def add_component(self, folder: str, attributes: dict[str, Any]) -> Path:
        path = self.defs_dir / folder / "defs.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump({"type": COMPONENT_TYPE, "attributes": attributes}, sort_keys=False))
        return path

    def dg(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return run_dg(*args, cwd=self.root, env=env)

    def list_defs(self, env: dict[str, str] | None = None) -> dict[str, Any]:
        listed = self.dg("list", "defs", "--json", env=env)
        assert listed.returncode == 0, listed.stdout + listed.stderr
        return json.loads(listed.stdout)


def make_project(parent: Path) -> DgProject:
    module = f"dgproj_{uuid.uuid4().hex[:8]}"  # unique: in-process loads must not reuse another's module
    root = parent / module
    (root / module / "defs").mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        f"""[project]
name = "{module}"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = ["cratedb-export"]

[tool.dg]
directory_type = "project"

[tool.dg.project]
root_module = "{module}"
"""
    )
    (root / module / "__init__.py").write_text("")
    (root / module / "defs" / "__init__.py").write_text("")
    (root / module / "definitions.py").write_text(DEFINITIONS_PY)
    return DgProject(root=root, module=module)


def dg_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment for `dg`: the repository's venv active, a quiet, unbuffered Python."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1", **(extra or {})}
    env["VIRTUAL_ENV"] = sys.prefix
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def run_dg(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DG, *args],
        cwd=cwd,
        env=env or dg_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=DG_TIMEOUT,
    )


def entry(table: str, target: str, **extra: Any) -> dict[str, Any]:
    return {"table": table, "timestamp_column": "timestamp", "target": target, "start_date": "2024-01-01", **extra}
