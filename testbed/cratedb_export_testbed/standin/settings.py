"""``SET GLOBAL [TRANSIENT | PERSISTENT]`` and ``RESET GLOBAL`` of the one cluster setting the double models:
``cluster.max_shards_per_node``, which CrateDB checks whenever a table or partition opens shards."""

from __future__ import annotations

from typing import Any

from cratedb_sqlparse.generated_parser.SqlBaseParser import SqlBaseParser as P

from cratedb_export_testbed.standin.errors import not_in_double, sql_parse
from cratedb_export_testbed.standin.sqltree import text_of
from cratedb_export_testbed.standin.statement import Statement
from cratedb_export_testbed.standin.tables import Catalog

MAX_SHARDS = "cluster.max_shards_per_node"


def cluster_settings(stmt: Statement, catalog: Catalog) -> int:
    """Apply the statement; 1, as CrateDB 6.4.3 answers both."""
    node = stmt.node
    with catalog.lock:
        if isinstance(node, P.ResetGlobalContext):
            for name in node.primaryExpression():
                _modelled(_name(name))
            catalog.max_shards_settings.clear()  # RESET GLOBAL drops the transient and the persistent value
            return 1
        kind = "persistent" if node.PERSISTENT() is not None else "transient"
        for assignment in node.setGlobalAssignment():
            _modelled(_name(assignment.primaryExpression()))
            catalog.max_shards_settings[kind] = _at_least_one(stmt.constant(assignment.expr()))
    return 1


def _name(node: Any) -> str:
    return text_of(node).strip('"')


def _modelled(name: str) -> None:
    if name != MAX_SHARDS:
        raise not_in_double(f"the cluster setting {name}")


def _at_least_one(value: Any) -> int:
    number = value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        number = int(value)
    if not isinstance(number, int) or isinstance(number, bool):
        raise sql_parse(f"Failed to parse value [{value}] for setting [{MAX_SHARDS}]")
    if number < 1:
        raise sql_parse(f"Failed to parse value [{number}] for setting [{MAX_SHARDS}] must be >= 1")
    return number
