"""cratedb-export: each day's rows of CrateDB tables, exported to S3 as daily-partitioned Dagster assets."""

__version__ = "0.1.0"

import dagster as dg  # noqa: E402

from .component import CrateDBExportComponent  # noqa: E402
from .config import ConfigError, ExportSpec, load_export_config, parse_export_specs  # noqa: E402
from .definitions import build_definitions  # noqa: E402


# `dg.definitions`: the name `definitions` in this namespace is the submodule cratedb_export.definitions.
@dg.definitions
def defs() -> dg.Definitions:
    """This repository's code location: the exports of exports.yaml (or CRATEDB_EXPORT_CONFIG).

    Built when Dagster loads the code location (`dg dev`, `dg check defs`, `dagster dev -m cratedb_export`),
    not on import: a project that only uses CrateDBExportComponent imports this package without an
    exports.yaml.
    """
    return build_definitions()


__all__ = [
    "ConfigError",
    "CrateDBExportComponent",
    "ExportSpec",
    "build_definitions",
    "defs",
    "load_export_config",
    "parse_export_specs",
]
