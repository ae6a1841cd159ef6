"""cratedb-export: each day's rows of CrateDB tables, exported to S3 as daily-partitioned Dagster assets.

The package has three layers (docs/architecture.md):

- `cratedb_export.core`: configuration, export specs, statements, CrateDB and S3, a day's export and its
  verification, formats, and a run's fan-out over days. It imports no Dagster.
- `cratedb_export.orchestration`: the Dagster layer (resource, assets, checks, schedules, definitions).
- `cratedb_export.component` and `cratedb_export.definitions`: the `dg` component and this repository's
  code location, on top.

The names below are imported on first use, so `import cratedb_export.core...` works without Dagster.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from cratedb_export.core import __version__

if TYPE_CHECKING:
    from cratedb_export.component import CrateDBExportComponent
    from cratedb_export.core.config import ConfigError, ExportSpec, load_export_config, parse_export_specs
    from cratedb_export.orchestration.build import build_definitions

# Public name -> the module that defines it.
_PUBLIC = {
    "CrateDBExportComponent": "cratedb_export.component",
    "ConfigError": "cratedb_export.core.config",
    "ExportSpec": "cratedb_export.core.config",
    "load_export_config": "cratedb_export.core.config",
    "parse_export_specs": "cratedb_export.core.config",
    "build_definitions": "cratedb_export.orchestration.build",
}

__all__ = [
    "ConfigError",
    "CrateDBExportComponent",
    "ExportSpec",
    "__version__",
    "build_definitions",
    "load_export_config",
    "parse_export_specs",
]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'cratedb_export' has no attribute {name!r}")


def __dir__() -> list[str]:
    # `dg list components` finds CrateDBExportComponent by listing this module (the registry entry point).
    return sorted({*globals(), *_PUBLIC})
