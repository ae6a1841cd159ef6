"""The core works where Dagster is not installed: every core module imports, and a day window and a COPY
statement can be built, in a Python whose import of Dagster fails. (`lint-imports` checks the same from the
source; this checks what really happens at import, lazy imports included.)"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import textwrap

import cratedb_export.core

CORE_MODULES = sorted(
    m.name for m in pkgutil.walk_packages(cratedb_export.core.__path__, prefix="cratedb_export.core.")
)

BLOCK_DAGSTER = textwrap.dedent(
    """
    import importlib.abc, sys

    class NoDagster(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0].startswith("dagster"):
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
            return None

    sys.meta_path.insert(0, NoDagster())
    """
)


def _run_without_dagster(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK_DAGSTER + textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )


def test_the_block_works():
    """Without this, the tests below would prove nothing."""
    found = _run_without_dagster("import cratedb_export.definitions")
    assert found.returncode != 0 and "blocked by the test" in found.stderr


def test_every_core_module_imports_without_dagster():
    assert "cratedb_export.core.export" in CORE_MODULES and "cratedb_export.core.fanout" in CORE_MODULES
    found = _run_without_dagster(
        f"""
        import importlib, sys
        for name in {CORE_MODULES!r}:
            importlib.import_module(name)
        assert not [m for m in sys.modules if m.startswith("dagster")]
        print("imported", len({CORE_MODULES!r}))
        """
    )
    assert found.returncode == 0, found.stderr
    assert f"imported {len(CORE_MODULES)}" in found.stdout


def test_a_statement_is_built_without_dagster():
    found = _run_without_dagster(
        """
        from datetime import date
        import cratedb_export
        from cratedb_export.core.config import parse_export_specs
        from cratedb_export.core.statement import copy_statement
        from cratedb_export.core.window import DayWindow

        (spec,) = parse_export_specs([{"table": "doc.metrics", "timestamp_column": "timestamp", "target": "bucket/m"}])
        window = DayWindow.for_day(date(2024, 1, 2), spec.timezone)
        print(copy_statement(spec, window, "s3://bucket/m-2024-01-02/").sql)
        print(cratedb_export.__version__)
        """
    )
    assert found.returncode == 0, found.stderr
    assert 'COPY "doc"."metrics" WHERE' in found.stdout
