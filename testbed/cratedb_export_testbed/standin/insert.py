"""INSERT INTO t (cols) VALUES (...), (...) with literals or parameters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cratedb_sqlparse.generated_parser.SqlBaseParser import SqlBaseParser as P

from cratedb_export_testbed.standin.ddl import table_name
from cratedb_export_testbed.standin.errors import not_in_double, sql_parse
from cratedb_export_testbed.standin.sqltree import Param, ident, text_of
from cratedb_export_testbed.standin.statement import Relation, Statement
from cratedb_export_testbed.standin.tables import Catalog, Table


def insert(stmt: Statement, catalog: Catalog, resolve: Callable[[Relation, str], Table]) -> int:
    node: P.InsertContext = stmt.node
    if node.onConflict() is not None or node.returning() is not None:
        raise not_in_double("INSERT with ON CONFLICT or RETURNING")
    table = resolve(table_name(stmt, node.table()), "INSERT")
    columns = [ident(part) for part in node.ident()] or list(table.columns)
    for number, column in enumerate(columns):
        if column in columns[:number]:
            raise sql_parse(f'column "{column}" specified more than once')  # InsertAnalyzer
    value_lists = [values.expr() for values in _values(node.insertSource())]
    rows = [[stmt.constant(expr) for expr in exprs] for exprs in value_lists]
    params = {
        column
        for exprs in value_lists
        for column, expr in zip(columns, exprs, strict=False)
        if isinstance(stmt.expr(expr), Param)
    }
    with catalog.lock:
        if not table.dynamic:
            for column in columns:
                table.column_type((column,))  # unknown columns fail first, as in InsertAnalyzer
        if len({len(row) for row in rows}) > 1:
            raise not_in_double("VALUES lists of different lengths")
        if rows and len(rows[0]) != len(columns):
            sources = ", ".join(f"col{number}" for number in range(1, len(rows[0]) + 1))
            raise sql_parse(
                f"Number of target columns ({', '.join(columns)}) of insert statement doesn't match number of "
                f"source columns ({sources})"
            )
        prepared = []
        for number, row in enumerate(rows, 1):
            values = dict(zip(columns, row, strict=True))
            _check_values_types(table, values, number)
            prepared.append(table.prepare(values, params))
        for doc in prepared:
            table.store(catalog.next_row_id(), doc)
    return len(prepared)


def _check_values_types(table: Table, values: dict[str, Any], row: int) -> None:
    """The VALUES list's own types must convert to the columns' (a boolean never becomes a number)."""
    for name, value in values.items():
        column = table.columns.get(name)
        if column is None or not isinstance(value, bool):
            continue
        if column.type.kind in ("bigint", "integer", "double", "real"):
            raise sql_parse(
                f"Cannot convert VALUES element in row {row} of type `boolean` to `{column.type.sql_name}` for `{name}`"
            )


def _values(source: P.InsertSourceContext) -> list[P.ValuesContext]:
    query = source.query()
    body = query.queryNoWith() if query is not None and query.with_() is None else None
    term = body.queryTerm() if body is not None else None
    spec = term.querySpec() if isinstance(term, P.QueryTermDefaultContext) else None
    if not isinstance(spec, P.ValuesRelationContext) or body.sortItem() or body.limitClause() or body.offsetClause():
        raise not_in_double(f"INSERT from `{text_of(source)}`; only VALUES lists")
    return spec.values()
