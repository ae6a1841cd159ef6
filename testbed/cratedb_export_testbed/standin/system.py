"""System tables: ``sys.jobs``, ``sys.jobs_log``, ``sys.nodes``, ``sys.cluster`` and
``information_schema.columns``, with CrateDB 6.4.3's column names and types.

They are rebuilt as read-only tables for each query. ``sys.jobs`` and ``sys.jobs_log`` hold
statement text only, never parameters, which is what makes ``?`` parameters the safe place for
secrets. Columns and types follow ``SysJobsTableInfo``, ``SysJobsLogTableInfo``,
``SysNodesTableInfo``, ``SysClusterTableInfo`` and ``InformationColumnsTableInfo``; of ``sys.nodes``,
``sys.cluster`` and ``information_schema.columns`` only some columns are modelled, and the others
are refused as unsupported (never answered as unknown columns or NULLs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cratedb_export_testbed.standin.coltypes import BOOLEAN, INTEGER, OBJECT, TEXT, TIMESTAMPTZ, ColumnType
from cratedb_export_testbed.standin.errors import not_in_double
from cratedb_export_testbed.standin.sqltree import Cmp, Col, Expr, Lit, conjuncts
from cratedb_export_testbed.standin.tables import Column, StoredRow, Table

# Every table of CrateDB 6.4.3's ``sys`` schema (SysSchemaInfo) and ``information_schema``
# (InformationSchemaInfo): unknown names are RelationUnknown, known but unmodelled ones unsupported.
SYS_TABLES = (
    "allocations", "checks", "cluster", "cluster_health", "health", "jobs", "jobs_log", "jobs_metrics",
    "node_checks", "nodes", "operations", "operations_log", "privileges", "repositories", "roles",
    "segments", "sessions", "shards", "snapshot_restore", "snapshots", "summits", "users",
)  # fmt: skip
INFORMATION_SCHEMA_TABLES = (
    "administrable_role_authorizations", "applicable_roles", "character_sets", "collations", "columns",
    "enabled_roles", "foreign_server_options", "foreign_servers", "foreign_table_options", "foreign_tables",
    "key_column_usage", "referential_constraints", "role_table_grants", "routines", "schemata",
    "sql_features", "table_constraints", "table_partitions", "tables", "user_mapping_options",
    "user_mappings", "view_column_usage", "views",
)  # fmt: skip
MODELLED = {
    ("sys", "jobs"), ("sys", "jobs_log"), ("sys", "nodes"), ("sys", "cluster"), ("information_schema", "columns"),
}  # fmt: skip

TEXT_ARRAY = ColumnType("array", TEXT)
DB_NAME = "crate"  # io.crate.Constants.DB_NAME: information_schema's table_catalog


@dataclass
class Job:
    """One statement, from the moment its request is accepted; a ``sys.jobs`` row while it runs."""

    id: str
    stmt: str
    started: int
    username: str
    session_id: int
    node: dict[str, str]
    # Plan.StatementType and the plan's operator names; ("UNDEFINED", ()) when it fails before it runs.
    classification: tuple[str, tuple[str, ...]] = ("UNDEFINED", ())
    running: bool = field(default=False)  # past analysis: a failure now keeps the classification

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "node": dict(self.node),
            "session_id": self.session_id,
            "started": self.started,
            "stmt": self.stmt,
            "username": self.username,
        }

    def log_row(self, ended: int, error: str | None) -> dict[str, Any]:
        kind, labels = self.classification if (self.running or error is None) else ("UNDEFINED", ())
        return {
            "classification": {"labels": sorted(labels), "type": kind},
            "ended": ended,
            "error": error,
            **self.row(),
        }


def _table(
    schema: str,
    name: str,
    columns: dict[str, ColumnType],
    docs: list[dict[str, Any]],
    keys: dict[tuple[str, ...], ColumnType] | None = None,
    unmodelled: frozenset[str] = frozenset(),
    partial: frozenset[tuple[str, ...]] = frozenset(),
) -> Table:
    # CrateDB's SystemTable orders columns by name: that is the order of SELECT *.
    ordered = {n: Column(n, columns[n]) for n in sorted(columns)}
    table = Table(schema, name, ordered, shards=1, object_keys=dict(sorted((keys or {}).items())))
    table.unmodelled, table.partial = unmodelled, partial
    table.rows = [StoredRow(str(i), None, 0, doc) for i, doc in enumerate(docs)]
    return table


_NODE_KEYS = {("node", "id"): TEXT, ("node", "name"): TEXT}


def jobs_table(jobs: list[Job]) -> Table:
    columns = {
        "id": TEXT, "node": OBJECT, "session_id": INTEGER, "started": TIMESTAMPTZ, "stmt": TEXT, "username": TEXT,
    }  # fmt: skip
    return _table("sys", "jobs", columns, [job.row() for job in jobs], _NODE_KEYS)


def jobs_log_table(entries: list[dict[str, Any]]) -> Table:
    columns = {
        "classification": OBJECT, "ended": TIMESTAMPTZ, "error": TEXT, "id": TEXT, "node": OBJECT,
        "session_id": INTEGER, "started": TIMESTAMPTZ, "stmt": TEXT, "username": TEXT,
    }  # fmt: skip
    keys = {**_NODE_KEYS, ("classification", "labels"): TEXT_ARRAY, ("classification", "type"): TEXT}
    return _table("sys", "jobs_log", columns, entries, keys)


# sys.nodes columns of CrateDB 6.4.3 that the double does not model.
_NODES_UNMODELLED = frozenset(
    ("roles", "is_master", "rest_url", "attributes", "port", "load", "mem", "heap", "cluster_state_version",
     "thread_pools", "connections", "os", "process", "fs")
)  # fmt: skip


def nodes_table(node: dict[str, Any]) -> Table:
    columns = {"id": TEXT, "name": TEXT, "hostname": TEXT, "version": OBJECT, "os_info": OBJECT}
    keys = {
        ("version", "number"): TEXT, ("version", "build_hash"): TEXT, ("version", "build_snapshot"): BOOLEAN,
        ("os_info", "available_processors"): INTEGER, ("os_info", "name"): TEXT, ("os_info", "arch"): TEXT,
        ("os_info", "version"): TEXT,
    }  # fmt: skip
    doc = {name: node[name] for name in columns}
    # version's minimum_*_compatibility_version and os_info['jvm'] are not modelled.
    return _table("sys", "nodes", columns, [doc], keys, _NODES_UNMODELLED, frozenset({("version",), ("os_info",)}))


def cluster_table(cluster: dict[str, Any]) -> Table:
    columns = {"id": TEXT, "name": TEXT, "master_node": TEXT, "settings": OBJECT}
    keys = {
        ("settings", "stats"): OBJECT,
        ("settings", "stats", "enabled"): BOOLEAN,
        ("settings", "stats", "jobs_log_size"): INTEGER,
    }
    # Of CrateDB's many exposed settings only stats.enabled and stats.jobs_log_size are modelled.
    partial = frozenset({("settings",), ("settings", "stats")})
    return _table("sys", "cluster", columns, [cluster], keys, frozenset({"state", "license"}), partial)


_COLUMNS_MODELLED = {
    "table_catalog": TEXT, "table_schema": TEXT, "table_name": TEXT, "column_name": TEXT,
    "ordinal_position": INTEGER, "data_type": TEXT, "is_generated": TEXT, "is_nullable": TEXT,
    "column_default": TEXT, "datetime_precision": INTEGER, "udt_catalog": TEXT, "udt_name": TEXT,
    "is_identity": BOOLEAN,
}  # fmt: skip
_COLUMNS_UNMODELLED = frozenset(
    ("generation_expression", "character_maximum_length", "character_octet_length", "numeric_precision",
     "numeric_precision_radix", "numeric_scale", "interval_type", "interval_precision", "character_set_catalog",
     "character_set_schema", "character_set_name", "collation_catalog", "collation_schema", "collation_name",
     "domain_catalog", "domain_schema", "domain_name", "udt_schema", "identity_generation", "identity_start",
     "identity_increment", "identity_maximum", "identity_minimum", "identity_cycle", "check_references",
     "check_action", "column_details")
)  # fmt: skip


def information_schema_columns(tables: list[Table]) -> Table:
    """One row per column and object key of every user table; ``column_name`` is the ``sqlFqn``
    (``tags['host']``) and ``data_type`` CrateDB's type name (``text_array``, ``double precision``)."""
    docs = []
    for table in tables:
        for path, position in sorted(table.positions.items(), key=lambda item: item[1]):
            column_type = table.column_type(path)
            generated = len(path) == 1 and table.columns[path[0]].generated is not None
            docs.append(
                {
                    "table_catalog": DB_NAME,
                    "table_schema": table.schema,
                    "table_name": table.name,
                    "column_name": path[0] + "".join(f"['{key}']" for key in path[1:]),
                    "ordinal_position": position,
                    "data_type": column_type.sql_name,
                    "is_generated": "ALWAYS" if generated else "NEVER",
                    # primary key columns are NOT NULL (as CrateDB 6.4.3 lists them); no other NOT NULL in the double
                    "is_nullable": "NO" if len(path) == 1 and path[0] in table.primary_key else "YES",
                    "column_default": None,
                    "datetime_precision": 3 if column_type.is_timestamp else None,
                    "udt_catalog": DB_NAME,
                    "udt_name": column_type.sql_name,
                    "is_identity": False,
                }
            )
    return _table("information_schema", "columns", _COLUMNS_MODELLED, docs, unmodelled=_COLUMNS_UNMODELLED)


def check_columns_query(table: Table, where: Expr | None) -> None:
    """information_schema.columns lists only user tables here, while CrateDB lists its system tables too:
    a query must pick one user schema with ``table_schema = ...`` so that it cannot miss rows."""
    if table.fqn != "information_schema.columns":
        return
    for part in conjuncts(where):
        if isinstance(part, Cmp) and part.op == "=":
            sides = (part.left, part.right)
            column = next((s for s in sides if isinstance(s, Col)), None)
            value = next((s for s in sides if isinstance(s, Lit)), None)
            if column is not None and column.path == ("table_schema",) and value is not None:
                if value.value in ("sys", "information_schema", "pg_catalog"):
                    raise not_in_double(f"information_schema.columns of the {value.value} tables")
                return
    raise not_in_double("information_schema.columns without a condition table_schema = <a user schema>")
