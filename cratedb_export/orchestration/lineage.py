"""The CrateDB tables in the lineage: each is an external asset upstream of its export.

Key `cratedb/<schema>/<table>`: the system first, then the table as CrateDB names it, the convention of
Dagster's integrations for source tables (dbt sources, Sling, dlt). Another code location that reads the
same CrateDB table (a dbt project, a second exporter) can name the same key, and the graph then shows
one node. A named set of exports (a `CrateDBExportComponent` with `name: analytics`, one per cluster) puts
its tables under `cratedb/analytics/<schema>/<table>`, since the same table name can exist in each cluster.

The source assets are declared without any I/O, so loading stays fast and offline. Their columns are
read when a run starts, from CrateDB's information_schema (`schema.read_source_table`, which the export
needs anyway to read a day), and recorded as an observation of the source asset carrying
`dagster/column_schema`: the table's page shows the columns as they were when it was last exported.
"""

from __future__ import annotations

from collections.abc import Sequence

from dagster import AssetKey, AssetObservation, AssetSpec, MetadataValue, TableSchema

from cratedb_export.core.config import ExportSpec
from cratedb_export.core.schema import SourceTable
from cratedb_export.orchestration.metadata import column_schema
from cratedb_export.orchestration.names import ExportNames

SOURCE_PREFIX = ("cratedb",)
SOURCE_GROUP = "cratedb_tables"


def source_prefix(names: ExportNames) -> tuple[str, ...]:
    """`cratedb`, or `cratedb/<name>` for a named set of exports (a CrateDBExportComponent's cluster)."""
    return SOURCE_PREFIX if names.name is None else (*SOURCE_PREFIX, names.name)


def source_key(spec: ExportSpec, prefix: Sequence[str] = SOURCE_PREFIX) -> AssetKey:
    return AssetKey([*prefix, spec.schema_name, spec.table_name])


def source_spec(spec: ExportSpec, prefix: Sequence[str] = SOURCE_PREFIX) -> AssetSpec:
    """The CrateDB table as an external asset: shown in the lineage, never materialized by Dagster."""
    return AssetSpec(
        key=source_key(spec, prefix),
        description=f"CrateDB table {spec.table}. Not materialized by Dagster: its columns are observed "
        "when an export of it runs.",
        group_name=SOURCE_GROUP,
        kinds={"cratedb"},
        metadata={"dagster/table_name": spec.table, "timestamp_column": spec.timestamp_column},
    )


def source_specs(specs: Sequence[ExportSpec], prefix: Sequence[str] = SOURCE_PREFIX) -> list[AssetSpec]:
    return [source_spec(spec, prefix) for spec in specs]


def source_observation(spec: ExportSpec, table: SourceTable, prefix: Sequence[str] = SOURCE_PREFIX) -> AssetObservation:
    """The table's columns and CrateDB types as read when the run started (schema.read_source_table)."""
    columns = [(c.name, c.data_type) for c in table.columns]
    return AssetObservation(
        asset_key=source_key(spec, prefix),
        description=f"columns of {spec.table} when the export run started",
        metadata={
            "dagster/column_schema": MetadataValue.table_schema(column_schema(columns)),
            "dagster/table_name": MetadataValue.text(spec.table),
            "column_count": MetadataValue.int(len(columns)),
            "timestamp_column": MetadataValue.text(table.window_reading),
        },
    )


def exported_schema(table: SourceTable) -> TableSchema:
    """The columns a day's files hold (all top-level ones, or the configured list), with their types."""
    return column_schema([(c.name, c.data_type) for c in table.exported_columns])
