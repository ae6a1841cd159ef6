"""Runs one ``/_sql`` request: grammar check, dispatch to the statement's module, ``sys.jobs`` and
``sys.jobs_log``.

A statement is in ``sys.jobs`` from the moment its request is accepted (before any injected delay)
until it ends, then in ``sys.jobs_log`` with ``ended`` and ``error``, as CrateDB's ``JobsLogs``
keeps them: the statement text exactly as sent (comments included: ``Session`` logs the raw query
string), never its arguments; a fresh UUID per statement; the classification CrateDB's
``StatementClassifier`` gives it, or ``UNDEFINED`` when it fails before it runs (parse, analysis).
With ``stats.enabled = false`` neither table keeps anything. Two differences to CrateDB: a job
enters ``sys.jobs`` before parsing rather than after planning, and it reaches ``sys.jobs_log``
before its answer is sent (CrateDB records it just after, so a real client may briefly miss it).
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from typing import Any

from cratedb_sqlparse.generated_parser.SqlBaseParser import SqlBaseParser as P

from cratedb_export_testbed.standin import ddl, grammar, system
from cratedb_export_testbed.standin.copy_from import copy_from
from cratedb_export_testbed.standin.copy_to import copy_to
from cratedb_export_testbed.standin.delete import delete
from cratedb_export_testbed.standin.errors import (
    CrateError,
    not_in_double,
    operation_not_allowed,
    relation_unknown,
    similar,
    sql_parse,
    unsupported,
)
from cratedb_export_testbed.standin.faults import Faults
from cratedb_export_testbed.standin.insert import bulk_insert, insert
from cratedb_export_testbed.standin.s3 import S3Writer
from cratedb_export_testbed.standin.select import select
from cratedb_export_testbed.standin.settings import cluster_settings
from cratedb_export_testbed.standin.sqltree import text_of
from cratedb_export_testbed.standin.statement import Relation, Statement
from cratedb_export_testbed.standin.tables import Catalog, Table
from cratedb_export_testbed.standin.update import update


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Engine:
    def __init__(
        self,
        node: dict[str, Any],
        faults: Faults,
        default_shards: int,
        *,
        stats_enabled: bool = True,
        jobs_log_size: int = 10_000,
        cluster_name: str = "crate-double",
        version: str = "5.10.4",
    ) -> None:
        self.catalog = Catalog()
        self.jobs_log: list[dict[str, Any]] = []  # sys.jobs_log rows, oldest first
        self.active_jobs: dict[str, system.Job] = {}  # sys.jobs
        self.stats_enabled = stats_enabled
        self.jobs_log_size = jobs_log_size  # stats.jobs_log_size: the oldest entries go first
        self._jobs_lock = threading.Lock()
        self._sessions = itertools.count(1)
        self._node = node
        self._cluster = {
            "id": str(uuid.uuid4()),
            "name": cluster_name,
            "master_node": node["id"],
            "settings": {"stats": {"enabled": stats_enabled, "jobs_log_size": jobs_log_size}},
        }
        self._faults = faults
        self._default_shards = default_shards
        self._writer = S3Writer(version)

    def next_session_id(self) -> int:
        """CrateDB's ``Sessions``: one session per HTTP connection, numbered from 1."""
        return next(self._sessions)

    def execute(
        self,
        stmt: Any,
        args: list[Any] | None = None,
        bulk_args: list[list[Any]] | None = None,
        schema: str = "doc",
        types: bool = False,
        *,
        username: str = "crate",
        session_id: int = 0,
    ) -> dict[str, Any]:
        """The success reply for one request; raises :class:`CrateError`."""
        if not isinstance(stmt, str):
            raise sql_parse("Field [stmt] was not specified")
        started_ns = time.perf_counter_ns()
        job = self._begin(stmt, username, session_id)
        error: str | None = None
        try:
            time.sleep(self._faults.take_delay())
            reply = self._execute(job, stmt, args, bulk_args, schema, types)
        except CrateError as crate_error:
            error = crate_error.text
            raise
        except Exception as bug:  # a defect of the double must not look like a CrateDB answer
            error = f"{type(bug).__name__}: {bug} (internal error of the CrateDB test double)"
            raise CrateError("CrateDoubleInternalError", error, 5000) from bug
        finally:
            self._end(job, error)
        reply["duration"] = (time.perf_counter_ns() - started_ns) / 1e6
        return reply

    def _begin(self, stmt: str, username: str, session_id: int) -> system.Job:
        job = system.Job(
            id=str(uuid.uuid4()),
            stmt=stmt,
            started=now_ms(),
            username=username,
            session_id=session_id,
            node={"id": self._node["id"], "name": self._node["name"]},
        )
        if self.stats_enabled:
            with self._jobs_lock:
                self.active_jobs[job.id] = job
        return job

    def _end(self, job: system.Job, error: str | None) -> None:
        with self._jobs_lock:
            if self.active_jobs.pop(job.id, None) is None or self.jobs_log_size == 0:
                return
            self.jobs_log.append(job.log_row(now_ms(), error))
            del self.jobs_log[: -self.jobs_log_size]

    def _execute(
        self,
        job: system.Job,
        stmt: str,
        args: list[Any] | None,
        bulk_args: list[list[Any]] | None,
        schema: str,
        types: bool,
    ) -> dict[str, Any]:
        if args and bulk_args:
            raise sql_parse("request body contains args and bulk_args. It's forbidden to provide both")
        parsed = grammar.parse(stmt)
        job.classification = _classify(parsed.statement)
        if args is not None or bulk_args is None:
            return self._single(job, Statement(parsed, list(args or []), schema), types)
        if not isinstance(parsed.statement, P.InsertContext):
            if isinstance(parsed.statement, P.DefaultContext):
                raise unsupported("Bulk operations for statements that return result sets is not supported")
            raise not_in_double("bulk_args for statements other than INSERT")
        statements = [Statement(parsed, list(row_args), schema) for row_args in bulk_args]
        keyed = bulk_insert(statements, self.catalog, self._resolve)  # None: a table without a primary key
        if keyed is not None:
            return {"cols": [], "results": keyed}
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

    def _single(self, job: system.Job, stmt: Statement, types: bool) -> dict[str, Any]:
        node = stmt.node
        if isinstance(node, P.DefaultContext):
            with self.catalog.lock:  # inserts on other threads may add dynamic columns meanwhile
                cols, col_types, rows = select(stmt, self._resolve)
            reply: dict[str, Any] = {"cols": cols, "rows": rows, "rowcount": len(rows)}
            if types:
                reply["col_types"] = col_types
            return reply
        if isinstance(node, P.CopyToContext):

            def running() -> None:  # analysis is done: a failure from now on is an execution failure
                job.running = True

            count = copy_to(stmt, self.catalog, self._resolve, self._faults, self._writer, running)
        elif isinstance(node, P.CopyFromContext):
            answer = copy_from(stmt, self.catalog, self._resolve, self._writer, self._node)
            if not isinstance(answer, int):
                cols, col_types, rows, rowcount = answer
                summary: dict[str, Any] = {"cols": cols, "rows": rows, "rowcount": rowcount}
                if types:
                    summary["col_types"] = col_types
                return summary
            count = answer
        elif isinstance(node, P.InsertContext):
            count = insert(stmt, self.catalog, self._resolve)
        elif isinstance(node, P.DeleteContext):
            count = delete(stmt, self.catalog, self._resolve)
        elif isinstance(node, P.UpdateContext):
            count = update(stmt, self.catalog, self._resolve)
        elif isinstance(node, P.CreateContext):
            count = ddl.create_table(stmt, self.catalog, self._default_shards)
        elif isinstance(node, P.DropContext):
            count = ddl.drop_table(stmt, self.catalog)
        elif isinstance(node, P.RefreshTableContext):
            count = ddl.refresh_table(stmt, self.catalog)
        elif isinstance(node, P.AlterContext):
            count = ddl.alter_table(stmt, self.catalog)
        elif isinstance(node, (P.SetGlobalContext, P.ResetGlobalContext)):
            count = cluster_settings(stmt, self.catalog)
        else:
            raise not_in_double(f"{node.start.text.upper()} statements")
        reply = {"cols": [], "rows": [[]], "rowcount": count}
        if types:
            reply["col_types"] = []
        return reply

    def _resolve(self, relation: Relation, operation: str) -> Table:
        """Find a table for an operation; system tables are read-only (4007 otherwise)."""
        schema, name, qualified = relation
        if schema in ("sys", "information_schema"):
            names = system.SYS_TABLES if schema == "sys" else system.INFORMATION_SCHEMA_TABLES
            if name not in names:
                shown = f"{schema}.{name}" if qualified else name
                raise relation_unknown(shown, similar(name, names))
            if operation != "READ":
                raise operation_not_allowed(f"{schema}.{name}", operation)
            if (schema, name) not in system.MODELLED:
                raise not_in_double(f"the table {schema}.{name}")
            return self._system_table(schema, name)
        if schema == "pg_catalog":
            raise not_in_double(f"the {schema} tables")
        return self.catalog.get(schema, name, qualified)

    def _system_table(self, schema: str, name: str) -> Table:
        if schema == "information_schema":
            if name == "tables":
                return system.information_schema_tables(self.catalog.tables())
            if name == "table_partitions":
                return system.information_schema_table_partitions(self.catalog.tables())
            return system.information_schema_columns(self.catalog.tables())
        if name == "nodes":
            return system.nodes_table(self._node)
        if name == "cluster":
            settings = {**self._cluster["settings"], "cluster": {"max_shards_per_node": self.catalog.max_shards}}
            return system.cluster_table({**self._cluster, "settings": settings})
        with self._jobs_lock:
            if name == "jobs":
                return system.jobs_table(list(self.active_jobs.values()))
            return system.jobs_log_table([dict(entry) for entry in self.jobs_log])


def _classify(statement: Any) -> tuple[str, tuple[str, ...]]:
    """``StatementClassifier``: the plan's StatementType and, for SELECT and INSERT, the names of its
    logical operators. The labels of SELECTs are an approximation of CrateDB's plans for the few
    shapes the double runs: do not assert on them."""
    if isinstance(statement, P.DefaultContext):
        text = text_of(statement).lower()
        if " from " not in f" {text} ":
            return "SELECT", ("TableFunction",)
        if "count(" in text and "group by" not in text:
            return "SELECT", ("Count",)
        labels = ["Collect"]
        if "group by" in text:
            labels += ["Eval", "GroupHashAggregate"]
        if "order by" in text:
            labels.append("Order")
        if " limit " in f" {text} ":
            labels.append("Limit")
        return "SELECT", tuple(labels)
    if isinstance(statement, P.InsertContext):
        return "INSERT", ("InsertFromValues",)
    if isinstance(statement, P.DeleteContext):
        return "DELETE", ()
    if isinstance(statement, P.UpdateContext):
        return "UPDATE", ()
    if isinstance(statement, (P.CopyToContext, P.CopyFromContext)):
        return "COPY", ()
    if isinstance(statement, (P.CreateContext, P.DropContext, P.RefreshTableContext, P.AlterContext)):
        return "DDL", ()
    return "UNDEFINED", ()
