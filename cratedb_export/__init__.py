"""cratedb-export: each day's rows of CrateDB tables, exported to S3 as daily-partitioned Dagster assets."""

__version__ = "0.1.0"

from .config import ConfigError, ExportSpec, load_export_config, parse_export_specs  # noqa: E402
from .definitions import build_definitions  # noqa: E402

defs = build_definitions()

__all__ = [
    "ConfigError",
    "ExportSpec",
    "build_definitions",
    "defs",
    "load_export_config",
    "parse_export_specs",
]
