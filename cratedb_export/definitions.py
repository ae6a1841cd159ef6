"""This repository's code location: the exports of exports.yaml (or CRATEDB_EXPORT_CONFIG).

What `dg dev`, `dg check defs`, `dagster dev -m cratedb_export.definitions` and workspace.yaml load.
"""

import dagster as dg

from cratedb_export.orchestration.build import build_definitions


@dg.definitions
def defs() -> dg.Definitions:
    """Built when Dagster loads the code location, not on import: a project that only uses
    CrateDBExportComponent imports this package without an exports.yaml."""
    return build_definitions()
