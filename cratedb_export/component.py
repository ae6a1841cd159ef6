"""CrateDBExportComponent: the exports of one CrateDB cluster, configured in a `defs.yaml` of a `dg` project.

```yaml
type: cratedb_export.CrateDBExportComponent
attributes:
  name: analytics                 # optional; see names.py — needed when a project has several clusters
  connection:                     # optional; the NAMES of the environment variables of this cluster
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
from pydantic import Field, field_validator

from cratedb_export.core.config import ExportSpec, parse_export_document
from cratedb_export.orchestration.build import DEFAULT_ENV, export_definitions, resource_from_env
from cratedb_export.orchestration.names import ExportNames, check_name

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class CrateDBConnection(Resolvable, Model):
    """The names of the environment variables that hold one cluster's settings (README: Environment).

    Read when the code location loads (optional settings) and when a run starts (EnvVar); the UI and the
    run storage show only the names.
    """

    url: str = Field(DEFAULT_ENV["url"], description="CrateDB HTTP URL(s), space-separated")
    username: str = Field(DEFAULT_ENV["username"], description="CrateDB user (unset: trust auth)")
    password: str = Field(DEFAULT_ENV["password"], description="CrateDB password")
    verify_ssl_cert: str = Field(DEFAULT_ENV["verify_ssl_cert"], description="'false' skips TLS verification")
    timeout: str = Field(DEFAULT_ENV["timeout"], description="Seconds to wait for one statement")
    copy_wait: str = Field(
        DEFAULT_ENV["copy_wait"], description="Seconds to wait for a COPY still running after its answer was lost"
    )
    access_key_id: str = Field(DEFAULT_ENV["access_key_id"], description="S3 access key (required at run time)")
    secret_access_key: str = Field(DEFAULT_ENV["secret_access_key"], description="S3 secret key (required at run time)")
    s3_endpoint: str = Field(DEFAULT_ENV["s3_endpoint"], description="host:port of an S3-compatible store")
    s3_protocol: str = Field(DEFAULT_ENV["s3_protocol"], description="http or https")
    s3_region: str = Field(DEFAULT_ENV["s3_region"], description="Region of this process's S3 client")
    max_concurrent_copies: str = Field(
        DEFAULT_ENV["max_concurrent_copies"], description="COPYs in flight at once in one run"
    )
    retry_attempts: str = Field(DEFAULT_ENV["retry_attempts"], description="Transient-failure retries")
    retry_base_delay: str = Field(DEFAULT_ENV["retry_base_delay"], description="First retry delay in seconds")

    @field_validator("*")
    @classmethod
    def _variable_name(cls, value: str) -> str:
        if not _ENV_NAME.match(value):
            raise ValueError(
                f"{value!r} is not an environment variable name; give the variable's NAME (e.g. "
                "ANALYTICS_CRATEDB_PASSWORD), never its value"
            )
        return value

    def variables(self) -> dict[str, str]:
        return {setting: getattr(self, setting) for setting in DEFAULT_ENV}


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
                  # The tables to export, with exactly the fields of an exports.yaml entry (README: Configuration).
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
    connection: CrateDBConnection = Field(
        default_factory=CrateDBConnection,
        description="Names of the environment variables of this cluster's connection and S3 keys",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value)

    def export_specs(self, source: str) -> list[ExportSpec]:
        """The validated exports; `source` names the file in error messages."""
        return parse_export_document({"exports": self.exports, "defaults": self.defaults}, source=source)

    def build_defs(self, context: ComponentLoadContext) -> Definitions:
        specs = self.export_specs(_defs_file(context))
        resource = resource_from_env(self.connection.variables())
        return export_definitions(specs, resource, ExportNames(self.name))


__all__ = ["CrateDBConnection", "CrateDBExportComponent", "CrateDBExportScaffolder"]
