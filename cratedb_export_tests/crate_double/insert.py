"""INSERT INTO t (cols) VALUES (...), (...) with literals or parameters."""

from __future__ import annotations

from collections.abc import Callable

from cratedb_sqlparse.generated_parser.SqlBaseParser import SqlBaseParser as P

from .ddl import table_name
from .errors import not_in_double, sql_parse
from .sqltree import ident, text_of
from .statement import Relation, Statement
from .tables import Catalog, Table


def insert(stmt: Statement, catalog: Catalog, resolve: Callable[[Relation, str], Table]) -> int:
    node: P.InsertContext = stmt.node
    if node.onConflict() is not None or node.returning() is not None:
        raise not_in_double("INSERT with ON CONFLICT or RETURNING")
    table = resolve(table_name(stmt, node.table()), "INSERT")
    columns = [ident(part) for part in node.ident()] or list(table.columns)
    for number, column in enumerate(columns):
        if column in columns[:number]:
            raise sql_parse(f'column "{column}" specified more than once')  # InsertAnalyzer
    rows = [[stmt.constant(expr) for expr in values.expr()] for values in _values(node.insertSource())]
    with catalog.lock:
        prepared = []
        for row in rows:
            if len(row) != len(columns):
                raise not_in_double("INSERT with a different number of columns and values")
            prepared.append(table.prepare(dict(zip(columns, row, strict=True))))
        for doc in prepared:
            table.store(catalog.next_row_id(), doc)
    return len(prepared)


def _values(source: P.InsertSourceContext) -> list[P.ValuesContext]:
    query = source.query()
    body = query.queryNoWith() if query is not None and query.with_() is None else None
    term = body.queryTerm() if body is not None else None
    spec = term.querySpec() if isinstance(term, P.QueryTermDefaultContext) else None
    if not isinstance(spec, P.ValuesRelationContext) or body.sortItem() or body.limitClause() or body.offsetClause():
        raise not_in_double(f"INSERT from `{text_of(source)}`; only VALUES lists")
    return spec.values()
