"""System tables: ``sys.jobs``, ``sys.jobs_log``, ``sys.nodes``, ``sys.cluster``,
``information_schema.columns``, ``.tables`` and ``.table_partitions``, with CrateDB 6.4.3's column names and types.

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
from cratedb_export_testbed.standin.grammar import quote_if_needed
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
    ("information_schema", "tables"), ("information_schema", "table_partitions"),
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
        ("settings", "cluster"): OBJECT,
        ("settings", "cluster", "max_shards_per_node"): INTEGER,
    }
    # Of CrateDB's many exposed settings only stats.enabled, stats.jobs_log_size and
    # cluster.max_shards_per_node are modelled.
    partial = frozenset({("settings",), ("settings", "stats"), ("settings", "cluster")})
    return _table("sys", "cluster", columns, [cluster], keys, frozenset({"state", "license"}), partial)


_COLUMNS_MODELLED = {
    "table_catalog": TEXT, "table_schema": TEXT, "table_name": TEXT, "column_name": TEXT,
    "ordinal_position": INTEGER, "data_type": TEXT, "is_generated": TEXT, "is_nullable": TEXT,
    "column_default": TEXT, "datetime_precision": INTEGER, "udt_catalog": TEXT, "udt_name": TEXT,
    "is_identity": BOOLEAN, "generation_expression": TEXT,
}  # fmt: skip
_COLUMNS_UNMODELLED = frozenset(
    ("character_maximum_length", "character_octet_length", "numeric_precision",
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
                    # as CrateDB 6.4.3 shows it: date_trunc('month', ts)
                    "generation_expression": _generation(table.columns[path[0]].generated) if generated else None,
                }
            )
    return _table("information_schema", "columns", _COLUMNS_MODELLED, docs, unmodelled=_COLUMNS_UNMODELLED)


def _generation(generated: tuple[str, str] | None) -> str | None:
    if generated is None:
        return None
    unit, source = generated
    return f"date_trunc('{unit}', {quote_if_needed(source)})"


_TABLES_MODELLED = {
    "table_catalog": TEXT, "table_schema": TEXT, "table_name": TEXT, "table_type": TEXT,
    "partitioned_by": TEXT_ARRAY, "number_of_shards": INTEGER, "closed": BOOLEAN,
}  # fmt: skip
_TABLES_UNMODELLED = frozenset(
    ("number_of_replicas", "clustered_by", "blobs_path", "column_policy", "settings", "self_referencing_column_name",
     "reference_generation", "version")
)  # fmt: skip


def information_schema_tables(tables: list[Table]) -> Table:
    """One row per user table; ``partitioned_by`` is the list of partition columns, NULL when not partitioned
    (CrateDB 6.4.3 answered ``["month"]`` for a table PARTITIONED BY (month))."""
    docs = [
        {
            "table_catalog": DB_NAME,
            "table_schema": table.schema,
            "table_name": table.name,
            "table_type": "BASE TABLE",
            "partitioned_by": [table.partitioned_by] if table.partitioned_by else None,
            "number_of_shards": table.shards,
            "closed": False,
        }
        for table in tables
    ]
    return _table("information_schema", "tables", _TABLES_MODELLED, docs, unmodelled=_TABLES_UNMODELLED)


def information_schema_table_partitions(tables: list[Table]) -> Table:
    """One row per partition of a user table: its ident, ``values`` ({column: value}, a timestamp as epoch ms,
    as CrateDB 6.4.3 answered them) and, of its settings, ``blocks['write']``."""
    columns = {
        "table_schema": TEXT, "table_name": TEXT, "partition_ident": TEXT, "values": OBJECT, "closed": BOOLEAN,
        "number_of_shards": INTEGER, "settings": OBJECT,
    }  # fmt: skip
    keys: dict[tuple[str, ...], ColumnType] = {("settings", "blocks"): OBJECT, ("settings", "blocks", "write"): BOOLEAN}
    docs = []
    for table in tables:
        if table.partitioned_by is None:
            continue
        keys[("values", table.partitioned_by)] = table.columns[table.partitioned_by].type
        for ident, value in sorted(table.partitions.items()):
            docs.append(
                {
                    "table_schema": table.schema,
                    "table_name": table.name,
                    "partition_ident": ident,
                    "values": {table.partitioned_by: value},
                    "closed": False,
                    "number_of_shards": table.shards,
                    "settings": {"blocks": {"write": ident in table.write_blocked}},
                }
            )
    partial = frozenset({("settings",), ("settings", "blocks")})
    unmodelled = frozenset(("number_of_replicas", "routing_hash_function", "version"))
    return _table("information_schema", "table_partitions", columns, docs, keys, unmodelled, partial)


def check_columns_query(table: Table, where: Expr | None) -> None:
    """information_schema.columns and .tables list only user tables here, while CrateDB lists its system
    tables too: a query must pick one user schema with ``table_schema = ...`` so that it cannot miss rows."""
    if table.fqn not in ("information_schema.columns", "information_schema.tables"):
        return
    for part in conjuncts(where):
        if isinstance(part, Cmp) and part.op == "=":
            sides = (part.left, part.right)
            column = next((s for s in sides if isinstance(s, Col)), None)
            value = next((s for s in sides if isinstance(s, Lit)), None)
            if column is not None and column.path == ("table_schema",) and value is not None:
                if value.value in ("sys", "information_schema", "pg_catalog"):
                    raise not_in_double(f"{table.fqn} of the {value.value} tables")
                return
    raise not_in_double(f"{table.fqn} without a condition table_schema = <a user schema>")
