"""The two system tables the exporter and its tests read: ``sys.jobs_log`` and ``sys.nodes``.

They are rebuilt as read-only tables for each query. ``sys.jobs_log`` holds statement text only,
never parameters, which is what makes ``?`` parameters the safe place for secrets.
"""

from __future__ import annotations

from typing import Any

from .coltypes import OBJECT, TEXT, TIMESTAMPTZ, ColumnType
from .tables import Column, StoredRow, Table

SYS_TABLES = ("jobs_log", "nodes")


def _table(name: str, columns: dict[str, ColumnType], docs: list[dict[str, Any]]) -> Table:
    table = Table("sys", name, {n: Column(n, t) for n, t in columns.items()}, shards=1)
    table.rows = [StoredRow(str(i), None, 0, doc) for i, doc in enumerate(docs)]
    return table


def jobs_log_table(entries: list[dict[str, Any]]) -> Table:
    columns = {"id": TEXT, "stmt": TEXT, "error": TEXT, "started": TIMESTAMPTZ, "ended": TIMESTAMPTZ}
    docs = [{"id": str(i), **entry} for i, entry in enumerate(entries)]
    return _table("jobs_log", columns, docs)


def nodes_table(node: dict[str, Any]) -> Table:
    table = _table("nodes", {"id": TEXT, "name": TEXT, "hostname": TEXT, "version": OBJECT}, [node])
    for key, value in node["version"].items():
        table.object_keys[("version", key)] = TEXT if isinstance(value, str) else ColumnType("boolean")
    return table
