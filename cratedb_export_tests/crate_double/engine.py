"""Runs one ``/_sql`` request: grammar check, dispatch to the statement's module, ``sys.jobs_log``."""

from __future__ import annotations

import threading
import time
from typing import Any

from cratedb_sqlparse.generated_parser.SqlBaseParser import SqlBaseParser as P

from . import ddl, grammar, system
from .copy_to import copy_to
from .errors import CrateError, not_in_double, operation_not_allowed, relation_unknown, sql_parse, unsupported
from .faults import Faults
from .insert import insert
from .s3 import S3Writer
from .select import select
from .statement import Statement
from .tables import Catalog, Table

JOBS_LOG_SIZE = 10_000  # CrateDB's default stats.jobs_log_size: the oldest entries go first


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Engine:
    def __init__(self, node: dict[str, Any], faults: Faults, default_shards: int) -> None:
        self.catalog = Catalog()
        self.jobs_log: list[dict[str, Any]] = []
        self._jobs_lock = threading.Lock()
        self._node = node
        self._faults = faults
        self._default_shards = default_shards
        self._writer = S3Writer()

    def execute(
        self,
        stmt: Any,
        args: list[Any] | None = None,
        bulk_args: list[list[Any]] | None = None,
        schema: str = "doc",
        types: bool = False,
    ) -> dict[str, Any]:
        """The success reply for one request; raises :class:`CrateError`. Logs the statement text
        (never its arguments) in ``jobs_log`` either way, as CrateDB does."""
        started_ns, started = time.perf_counter_ns(), now_ms()
        error: str | None = None
        try:
            reply = self._execute(stmt, args, bulk_args, schema, types)
        except CrateError as crate_error:
            error = crate_error.text
            raise
        except Exception as bug:  # a defect of the double must not look like a CrateDB answer
            error = f"{type(bug).__name__}: {bug} (internal error of the CrateDB test double)"
            raise CrateError("CrateDoubleInternalError", error, 5000) from bug
        finally:
            with self._jobs_lock:
                self.jobs_log.append({"stmt": str(stmt), "error": error, "started": started, "ended": now_ms()})
                del self.jobs_log[:-JOBS_LOG_SIZE]
        reply["duration"] = (time.perf_counter_ns() - started_ns) / 1e6
        return reply

    def _execute(
        self, stmt: Any, args: list[Any] | None, bulk_args: list[list[Any]] | None, schema: str, types: bool
    ) -> dict[str, Any]:
        if not isinstance(stmt, str):
            raise sql_parse("Field [stmt] was not specified")
        if args and bulk_args:
            raise sql_parse("request body contains args and bulk_args. It's forbidden to provide both")
        parsed = grammar.parse(stmt)
        if args is not None or bulk_args is None:
            return self._single(Statement(parsed, list(args or []), schema), types)
        if not isinstance(parsed.statement, P.InsertContext):
            if isinstance(parsed.statement, P.DefaultContext):
                raise unsupported("Bulk operations for statements that return result sets is not supported")
            raise not_in_double("bulk_args for statements other than INSERT")
        results: list[dict[str, Any]] = []
        for row_args in bulk_args:
            try:
                results.append(
                    {"rowcount": insert(Statement(parsed, list(row_args), schema), self.catalog, self._resolve)}
                )
            except CrateError as row_error:
                if row_error.code != 4000:
                    raise
                results.append({"rowcount": -2, "error_message": row_error.text})
        return {"cols": [], "results": results}

    def _single(self, stmt: Statement, types: bool) -> dict[str, Any]:
        node = stmt.node
        if isinstance(node, P.DefaultContext):
            with self.catalog.lock:  # inserts on other threads may add dynamic columns meanwhile
                cols, col_types, rows = select(stmt, self._resolve)
            reply: dict[str, Any] = {"cols": cols, "rows": rows, "rowcount": len(rows)}
            if types:
                reply["col_types"] = col_types
            return reply
        if isinstance(node, P.CopyToContext):
            count = copy_to(stmt, self.catalog, self._resolve, self._faults, self._writer)
        elif isinstance(node, P.InsertContext):
            count = insert(stmt, self.catalog, self._resolve)
        elif isinstance(node, P.CreateContext):
            count = ddl.create_table(stmt, self.catalog, self._default_shards)
        elif isinstance(node, P.DropContext):
            count = ddl.drop_table(stmt, self.catalog)
        elif isinstance(node, P.RefreshTableContext):
            count = ddl.refresh_table(stmt, self.catalog)
        else:
            raise not_in_double(f"{node.start.text.upper()} statements")
        reply = {"cols": [], "rows": [[]], "rowcount": count}
        if types:
            reply["col_types"] = []
        return reply

    def _resolve(self, schema: str, name: str, operation: str) -> Table:
        """Find a table for an operation; system tables are read-only (4007 otherwise)."""
        if schema == "sys":
            if name not in system.SYS_TABLES:
                raise relation_unknown(f"sys.{name}")
            if operation != "READ":
                raise operation_not_allowed(f"sys.{name}", operation)
            if name == "nodes":
                return system.nodes_table(self._node)
            with self._jobs_lock:
                return system.jobs_log_table(list(self.jobs_log))
        if schema in ("information_schema", "pg_catalog"):
            raise not_in_double(f"the {schema} tables")
        return self.catalog.get(schema, name)
