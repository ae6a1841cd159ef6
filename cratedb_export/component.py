"""CrateDBExportComponent: the exports of one CrateDB cluster, configured in a `defs.yaml` of a `dg` project.

```yaml
type: cratedb_export.CrateDBExportComponent
attributes:
  name: analytics                 # optional; see names.py — needed when a project has several clusters
  connection:                     # optional; setting -> the NAME of the environment variable holding it
    url: ANALYTICS_CRATEDB_URL
    password: ANALYTICS_CRATEDB_PASSWORD
  defaults:                       # optional, as in exports.yaml
    compression: gzip
  exports:                        # required, exactly the entries of exports.yaml
    - table: doc.metrics
      timestamp_column: timestamp
      target: my-bucket/metrics
```

`exports` and `defaults` are validated by the same code as exports.yaml (config.parse_export_document), so
a bad entry stops the load with the same message, naming the defs.yaml, the entry and the field. The
definitions are built by the same function as exports.yaml's (definitions.export_definitions): one
multi-asset per partitions definition, its check, the daily job and schedule, and one resource.

Like dagster-sling's SlingReplicationCollectionComponent, the component owns one focused resource; here it
is bound under a key of its own (`cratedb`, or `cratedb_<name>`), so components of several clusters merge
into one code location. Connection settings are environment variable names, never values: the resource
binds them with EnvVar, so the UI shows only the names, and a secret never enters defs.yaml.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

from dagster import Component, ComponentLoadContext, Definitions, Model, Resolvable, Scaffolder, ScaffoldRequest
from dagster.components import scaffold_with
from pydantic import ConfigDict, Field, field_validator

from cratedb_export.core.config import ExportSpec, parse_export_document
from cratedb_export.core.connection import check_variables
from cratedb_export.orchestration.build import export_definitions, resource_from_env
from cratedb_export.orchestration.names import ExportNames, check_name


def _defs_file(context: ComponentLoadContext) -> str:
    """The component's defs.yaml as the user sees it: relative to the project root when below it."""
    path = context.path / "defs.yaml" if (context.path / "defs.yaml").exists() else context.path
    try:
        return str(path.resolve().relative_to(Path(context.project_root).resolve()))
    except ValueError:
        return str(path)


class CrateDBExportScaffolder(Scaffolder):
    """`dg scaffold defs cratedb_export.CrateDBExportComponent <path>`: a defs.yaml for one more cluster.

    The component is named after its folder, and its variables are prefixed with that name, so a second
    scaffolded cluster never clashes with the first; edit both to taste.
    """

    def scaffold(self, request: ScaffoldRequest) -> None:
        name = re.sub(r"[^a-z0-9_]", "_", request.target_path.name.lower()).strip("_") or "cluster"
        if not name[0].isalpha():
            name = f"cluster_{name}"
        prefix = name.upper()
        request.target_path.mkdir(parents=True, exist_ok=True)
        (request.target_path / "defs.yaml").write_text(
            textwrap.dedent(
                f"""\
                type: {request.type_name}

                attributes:
                  # Names this cluster's assets (cratedb_export/{name}/<schema>/<table>), resource and pool
                  # (cratedb_{name}), job and schedule (daily_cratedb_export_{name}). Remove it for the plain names
                  # of exports.yaml when the project exports from a single cluster.
                  name: {name}
                  # The NAMES of the environment variables holding this cluster's settings (never the values).
                  connection:
                    url: {prefix}_CRATEDB_URL
                    username: {prefix}_CRATEDB_USERNAME
                    password: {prefix}_CRATEDB_PASSWORD
                    access_key_id: {prefix}_ACCESS_KEY_ID
                    secret_access_key: {prefix}_SECRET_ACCESS_KEY
                    s3_endpoint: {prefix}_S3_ENDPOINT
                    s3_protocol: {prefix}_S3_PROTOCOL
                  # Fields applied to every entry below (optional).
                  defaults:
                    compression: gzip
                  # The tables to export, with exactly the fields of an exports.yaml entry (docs/configuration.md).
                  exports:
                    - table: doc.metrics
                      timestamp_column: timestamp
                      target: my-bucket/metrics
                      start_date: "2024-01-01"
                """
            )
        )


@scaffold_with(CrateDBExportScaffolder)
class CrateDBExportComponent(Component, Resolvable, Model):
    """Daily exports of one CrateDB cluster's tables to S3 with COPY TO, verified against the source.

    One daily-partitioned asset per table with its check `matches_source`, a daily job and schedule.
    `exports` and `defaults` take exactly the fields of exports.yaml; `connection` names the environment
    variables of this cluster; `name` keeps the definitions of several clusters apart.
    """

    exports: list[Any] = Field(
        description="Tables to export: entries with the fields of an exports.yaml entry — table, "
        "timestamp_column, target (required); start_date, columns, compression, format, directory, timezone, verify, "
        "description (optional). Validated when the code location loads."
    )
    defaults: dict[str, Any] | None = Field(None, description="Fields applied to every entry of exports")
    name: str | None = Field(
        None,
        description="Name of this cluster's exports: asset keys cratedb_export/<name>/<schema>/<table>, "
        "resource and pool cratedb_<name>, job daily_cratedb_export_<name>. Required to be distinct when a "
        "project has several CrateDBExportComponents; omitted, the names of exports.yaml are used.",
    )
    # A refused attribute is named, never echoed: `connection` may hold a secret pasted where a name belongs.
    model_config = ConfigDict(hide_input_in_errors=True)

    connection: dict[str, str] = Field(
        default_factory=dict,
        description="Names of the environment variables of this cluster's settings, by setting: url, username, "
        "password, verify_ssl_cert, timeout, copy_wait, access_key_id, secret_access_key, s3_endpoint, "
        "s3_protocol, s3_region, max_concurrent_copies, retry_attempts, retry_base_delay. A setting not named "
        "here is read from its default variable (CRATEDB_URL, ACCESS_KEY_ID, ...).",
    )

    @field_validator("connection")
    @classmethod
    def _connection(cls, value: dict[str, str]) -> dict[str, str]:
        check_variables(value, "connection")
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value)

    def export_specs(self, source: str) -> list[ExportSpec]:
        """The validated exports; `source` names the file in error messages."""
        return parse_export_document({"exports": self.exports, "defaults": self.defaults}, source=source)

    def build_defs(self, context: ComponentLoadContext) -> Definitions:
        specs = self.export_specs(_defs_file(context))
        resource = resource_from_env(self.connection)
        return export_definitions(specs, resource, ExportNames(self.name))


__all__ = ["CrateDBExportComponent", "CrateDBExportScaffolder"]
