"""INSERT INTO t (cols) VALUES (...), (...) with literals or parameters.

Into a table with a primary key, as CrateDB 6.4.3 answered (observed): a statement without one of
the key's columns is ``Column `id` is required but is missing from the insert statement`` for a
one-column key, ``Column "b" is required ...`` for a composite one; a NULL key value, in any row,
is ``SQLParseException[A primary key value must not be NULL]`` (after every row's casts) and inserts
nothing. A taken key is ``DuplicateKeyException[A document with the same primary key exists
already]`` (4091, HTTP 409) for a single VALUES row; with several VALUES rows the duplicates are
skipped and the rowcount counts the rows inserted (0 when none was). With ``bulk_args`` every
row is cast and checked for NULL keys first (a failure fails the whole request and inserts nothing),
then a taken key is that row's result ``{"rowcount": -2, "error": {"code": 4091, "message":
"DuplicateKeyException[...]"}}``. Refused: a duplicate in a bulk insert of several VALUES rows
(CrateDB answered -1 or -2 for them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cratedb_sqlparse.generated_parser.SqlBaseParser import SqlBaseParser as P

from cratedb_export_testbed.standin.ddl import table_name
from cratedb_export_testbed.standin.errors import CrateError, not_in_double, sql_parse
from cratedb_export_testbed.standin.sqltree import Param, ident, text_of
from cratedb_export_testbed.standin.statement import Relation, Statement
from cratedb_export_testbed.standin.tables import Catalog, Table


def insert(stmt: Statement, catalog: Catalog, resolve: Callable[[Relation, str], Table]) -> int:
    with catalog.lock:
        table, prepared = _prepare(stmt, catalog, resolve)
        for doc in prepared:  # a write-blocked partition refuses the whole statement: nothing is stored
            table.check_writable(doc)
        table.make_room(prepared)  # so do partitions beyond the shard limit
        if table.primary_key and len(prepared) == 1:
            table.store(catalog.next_row_id(), prepared[0])  # DuplicateKeyException for a taken key
            return 1
        stored = 0
        for doc in prepared:
            if table.has_key(doc):
                continue  # several VALUES rows: a taken key is skipped, not an error
            table.store(catalog.next_row_id(), doc)
            stored += 1
    return stored


def bulk_insert(
    statements: list[Statement], catalog: Catalog, resolve: Callable[[Relation, str], Table]
) -> list[dict[str, Any]] | None:
    """The per-row results of a bulk insert into a table with a primary key; None for other tables,
    whose bulk inserts the engine runs one row after another."""
    if not statements:
        return None
    with catalog.lock:
        table = resolve(table_name(statements[0], statements[0].node.table()), "INSERT")
        if not table.primary_key:
            return None
        prepared = [_prepare(stmt, catalog, resolve)[1] for stmt in statements]  # any failure fails them all
        taken: set[tuple[Any, ...]] = set(table.by_key)
        for docs in prepared:
            keys = [table.key_of(doc) for doc in docs]
            if len(docs) > 1 and (len(set(keys)) < len(keys) or taken.intersection(keys)):
                raise not_in_double("a duplicate key in a bulk insert of several VALUES rows")
            taken.update(keys)  # type: ignore[arg-type]
        results: list[dict[str, Any]] = []
        for docs in prepared:
            try:
                for doc in docs:
                    table.store(catalog.next_row_id(), doc)
            except CrateError as error:
                results.append({"rowcount": -2, "error": {"code": error.code, "message": error.message}})
                continue
            results.append({"rowcount": len(docs)})
    return results


def _prepare(
    stmt: Statement, catalog: Catalog, resolve: Callable[[Relation, str], Table]
) -> tuple[Table, list[dict[str, Any]]]:
    """The table and the rows to insert, cast, with generated columns and key values checked."""
    node: P.InsertContext = stmt.node
    if node.onConflict() is not None or node.returning() is not None:
        raise not_in_double("INSERT with ON CONFLICT or RETURNING")
    table = resolve(table_name(stmt, node.table()), "INSERT")
    columns = [ident(part) for part in node.ident()] or list(table.columns)
    for number, column in enumerate(columns):
        if column in columns[:number]:
            raise sql_parse(f'column "{column}" specified more than once')  # InsertAnalyzer
    missing = [n for n in table.primary_key if n not in columns and table.columns[n].generated is None]
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
        if missing:
            shown = f"`{missing[0]}`" if len(table.primary_key) == 1 else f'"{missing[0]}"'
            raise sql_parse(f"Column {shown} is required but is missing from the insert statement")
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
            table.key_of(doc)  # a NULL key value, after every row's casts
    return table, prepared


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
