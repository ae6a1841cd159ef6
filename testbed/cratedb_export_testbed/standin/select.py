"""SELECT of columns or ``count(*)`` from one table, with WHERE, ORDER BY and LIMIT, or grouped.

Enough to count a day's rows (or many days' rows per ``date_trunc`` bucket with GROUP BY), to look
at ``sys.jobs_log`` and ``sys.nodes``, and for tests to read back what they inserted. The aggregates are
``count(*)`` and ``sum``, ``max``, ``min`` of a number column (a day's ``sum(_seq_no)``, ``max(_seq_no)``).
Joins, HAVING and other expressions in the select list are refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cmp_to_key, partial
from typing import Any

from cratedb_sqlparse.generated_parser.SqlBaseParser import SqlBaseParser as P

from cratedb_export_testbed.standin import coltypes, system
from cratedb_export_testbed.standin.ddl import table_name
from cratedb_export_testbed.standin.errors import CrateError, not_in_double, sql_parse
from cratedb_export_testbed.standin.predicates import Binder, dig, evaluate, matches
from cratedb_export_testbed.standin.sqltree import Col, Expr, Func, Lit, Param, ident, text_of
from cratedb_export_testbed.standin.statement import Relation, Statement
from cratedb_export_testbed.standin.tables import SEQUENCE_COLUMNS, Table

Result = tuple[list[str], list[Any], list[list[Any]]]  # cols, col_types, rows


def select(stmt: Statement, resolve: Callable[[Relation, str], Table]) -> Result:
    try:
        return _select(stmt, resolve)
    except CrateError as error:
        if error.text.startswith("The query contains a parameter placeholder"):
            # CrateDB reports it while planning a query, wrapped with its plan's description
            # ("Couldn't create execution plan from logical plan because of: ...:\nCount[...]").
            raise not_in_double("a query with fewer parameter values than placeholders") from None
        raise


def _select(stmt: Statement, resolve: Callable[[Relation, str], Table]) -> Result:
    query: P.QueryContext = stmt.node.query()
    body = query.queryNoWith() if query.with_() is None else None
    term = body.queryTerm() if body is not None else None
    spec = term.querySpec() if isinstance(term, P.QueryTermDefaultContext) else None
    if not isinstance(spec, P.DefaultQuerySpecContext) or body.offsetClause() is not None:
        raise not_in_double(f"the query `{text_of(query)}`")
    if spec.setQuant() or spec.HAVING() or spec.WINDOW() or len(spec.relation()) > 1:
        raise not_in_double("DISTINCT, HAVING, WINDOW or joins")
    if not spec.relation():
        return _constants(stmt, spec.selectItem())
    table = resolve(_relation(stmt, spec.relation()[0]), "READ")
    where = spec.where()
    binder = Binder(table, stmt.value)
    condition = binder.where(stmt.expr(where.booleanExpression())) if where is not None else None
    system.check_columns_query(table, condition)
    # Only a query that names them reads the sequence columns (every other one reads the stored documents).
    text = text_of(spec)
    with_sequence = any(name in text for name in SEQUENCE_COLUMNS)
    rows = (row.view() if with_sequence else row.doc for row in table.rows)
    docs = [doc for doc in rows if matches(condition, doc)]
    items = spec.selectItem()
    if spec.GROUP():
        if body.sortItem() or body.limitClause() is not None:
            raise not_in_double("ORDER BY or LIMIT with GROUP BY")
        return _grouped(stmt, table, binder, items, spec, docs)
    aggregates = [_aggregate(stmt, binder, item) for item in items]
    if all(aggregates):
        names = [output_name(stmt, item) for item in items]
        return names, [a.type_id for a in aggregates], [[a.of(docs) for a in aggregates]]  # type: ignore[union-attr]
    if any(aggregates):
        raise not_in_double("aggregates beside plain columns without GROUP BY")
    names, columns = _columns(stmt, table, items)
    docs = _order(stmt, table, body.sortItem(), docs, columns)
    limit = body.limitClause()
    if limit is not None and limit.parameterOrInteger() is not None:
        docs = docs[: stmt.value(stmt.builder.integer(limit.parameterOrInteger()))]
    types = [table.column_type(col.path).type_id for col in columns]
    return names, types, [[dig(doc, col.path) for col in columns] for doc in docs]


def _grouped(stmt: Statement, table: Table, binder: Binder, items: list[Any], spec: Any, docs: list[dict]) -> Result:
    """GROUP BY plain expressions (by ordinal or repeated), with the aggregates of ``_aggregate``.

    Like CrateDB, every select item that is not an aggregate must be grouped by, and the groups come
    back in no particular order (here: last group first, so callers cannot rely on time order).
    """
    if spec.ALL():
        raise not_in_double("GROUP BY ALL")
    outputs: list[Expr | _Aggregate] = []
    for item in items:
        if not isinstance(item, P.SelectSingleContext):
            raise not_in_double("SELECT * with GROUP BY")
        outputs.append(_aggregate(stmt, binder, item) or _grouping_expr(stmt, binder, item.expr()))
    keys: list[Expr] = []
    for node in spec.expr():
        expr = stmt.expr(node)
        if isinstance(expr, Lit) and isinstance(expr.value, int) and not isinstance(expr.value, bool):
            if not 1 <= expr.value <= len(outputs):
                raise not_in_double(f"GROUP BY position {expr.value} outside the select list")
            target = outputs[expr.value - 1]
            if isinstance(target, _Aggregate):
                raise sql_parse("Aggregate functions are not allowed in GROUP BY")
            keys.append(target)
        else:
            keys.append(_grouping_expr(stmt, binder, node))
    for item, output in zip(items, outputs, strict=True):
        if not isinstance(output, _Aggregate) and output not in keys:
            raise sql_parse(
                f"'{text_of(item.expr())}' must appear in the GROUP BY clause or be used in an aggregation function. "
                "Perhaps you grouped by an alias that clashes with a column in the relations"
            )
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for doc in docs:
        groups.setdefault(tuple(evaluate(key, doc) for key in keys), []).append(doc)
    rows = [
        [output.of(members) if isinstance(output, _Aggregate) else group[keys.index(output)] for output in outputs]
        for group, members in reversed(list(groups.items()))
    ]
    names = [output_name(stmt, item) for item in items]
    types = [o.type_id if isinstance(o, _Aggregate) else binder.type_of(o).type_id for o in outputs]  # type: ignore[union-attr]
    return names, types, rows


@dataclass(frozen=True)
class _Aggregate:
    """``count(*)``, or ``sum``/``max``/``min`` of a number column: NULLs ignored, NULL over no value."""

    name: str
    column: Col | None
    type_id: int

    def of(self, docs: list[dict[str, Any]]) -> Any:
        if self.column is None:
            return len(docs)
        values = [v for v in (dig(doc, self.column.path) for doc in docs) if v is not None]
        if not values:
            return None
        return {"sum": sum, "max": max, "min": min}[self.name](values)


_NUMBERS = ("bigint", "integer", "smallint", "double", "real")


def _aggregate(stmt: Statement, binder: Binder, item: Any) -> _Aggregate | None:
    """The select item as an aggregate, or None when it is none. CrateDB's sum of an integer column is a
    BIGINT; max and min keep the column's type."""
    if _is_count_star(item):
        return _Aggregate("count", None, coltypes.BIGINT.type_id)
    if not isinstance(item, P.SelectSingleContext):
        return None
    expr = stmt.expr(item.expr())
    if not isinstance(expr, Func) or expr.name.lower() not in ("sum", "max", "min", "count", "avg"):
        return None
    column = expr.args[0] if len(expr.args) == 1 else None
    if expr.name.lower() in ("count", "avg") or not isinstance(column, Col):
        raise not_in_double(f"the aggregate `{text_of(item.expr())}`")
    column_type = binder.type_of(binder.bind(column))
    if column_type is None or column_type.kind not in _NUMBERS:
        raise not_in_double(f"the aggregate `{text_of(item.expr())}` of a column that is not a number")
    name = expr.name.lower()
    whole = name == "sum" and column_type.kind in ("bigint", "integer", "smallint")
    return _Aggregate(name, column, coltypes.BIGINT.type_id if whole else column_type.type_id)


def _grouping_expr(stmt: Statement, binder: Binder, node: Any) -> Expr:
    expr = binder.bind(stmt.expr(node))
    if not isinstance(expr, (Col, Func)):
        raise not_in_double(f"grouping by `{text_of(node)}`")
    return expr


def _constants(stmt: Statement, items: list[Any]) -> Result:
    names, values = [], []
    for item in items:
        if not isinstance(item, P.SelectSingleContext):
            raise not_in_double("SELECT * without FROM")
        values.append(stmt.constant(item.expr()))
        names.append(output_name(stmt, item))
    return names, [coltypes.value_type(v).type_id for v in values], [values]


def output_name(stmt: Statement, item: P.SelectSingleContext) -> str:
    """How CrateDB 6.4 names an output column: the alias; a column as ``tags['host']``; a function
    call by its name (``count``, ``date_trunc``); a parameter as ``$1``; a literal as SQL text."""
    if item.ident():
        return ident(item.ident())
    if _is_count_star(item):
        return "count"
    expr = stmt.expr(item.expr())
    if isinstance(expr, Col):
        return expr.name
    if isinstance(expr, Func):
        return expr.name
    if isinstance(expr, Param):
        return f"${expr.index + 1}"
    if isinstance(expr, Lit):
        if expr.value is None:
            return "NULL"
        if isinstance(expr.value, bool):
            return "true" if expr.value else "false"
        if isinstance(expr.value, str):
            return "'" + expr.value.replace("'", "''") + "'"
        return text_of(item.expr())
    raise not_in_double(f"naming the output `{text_of(item.expr())}`")


def _relation(stmt: Statement, relation: Any) -> Relation:
    aliased = relation.aliasedRelation() if isinstance(relation, P.RelationDefaultContext) else None
    return relation_of(stmt, aliased)


def relation_of(stmt: Statement, aliased: Any) -> Relation:
    """A plain table relation (no alias, no subquery): the only kind the double reads or deletes from."""
    primary = aliased.relationPrimary() if aliased is not None else None
    if not isinstance(primary, P.TableRelationContext) or aliased.ident() is not None:
        raise not_in_double(f"the relation `{text_of(aliased)}`")
    return table_name(stmt, primary.table())


def _is_count_star(item: Any) -> bool:
    if not isinstance(item, P.SelectSingleContext):
        return False
    return re.fullmatch(r"count\(\*\)", text_of(item.expr()).replace(" ", ""), re.IGNORECASE) is not None


def _columns(stmt: Statement, table: Table, items: list[Any]) -> tuple[list[str], list[Col]]:
    names, columns = [], []
    for item in items:
        if isinstance(item, P.SelectAllContext) and item.qname() is None:
            if not table.complete:
                raise not_in_double(f"SELECT * from {table.fqn}: the double models only some of its columns")
            for name in table.columns:
                names.append(name)
                columns.append(Col((name,)))
            continue
        expr = stmt.expr(item.expr()) if isinstance(item, P.SelectSingleContext) else None
        if not isinstance(expr, Col):
            raise not_in_double(f"the select item `{text_of(item)}`")
        table.column_type(expr.path)
        names.append(output_name(stmt, item))
        columns.append(expr)
    return names, columns


def _order(
    stmt: Statement, table: Table, sort_items: list[Any], docs: list[dict[str, Any]], outputs: list[Col]
) -> list[dict[str, Any]]:
    """ORDER BY columns or output positions, like PostgreSQL and CrateDB: NULLs last ascending,
    first descending by default."""
    for item in reversed(sort_items):
        expr = stmt.expr(item.expr())
        if isinstance(expr, Lit) and isinstance(expr.value, int) and not isinstance(expr.value, bool):
            if not 1 <= expr.value <= len(outputs):
                raise not_in_double(f"ORDER BY position {expr.value} outside the select list")
            expr = outputs[expr.value - 1]
        if not isinstance(expr, Col):
            raise not_in_double(f"ORDER BY `{text_of(item)}`")
        table.column_type(expr.path)
        descending = item.DESC() is not None
        nulls_first = item.FIRST() is not None if item.NULLS() is not None else descending

        docs = sorted(docs, key=cmp_to_key(partial(_compare, expr.path, descending, nulls_first)))
    return docs


def _compare(path: tuple[str, ...], descending: bool, nulls_first: bool, a: dict[str, Any], b: dict[str, Any]) -> int:
    x, y = dig(a, path), dig(b, path)
    if x is None or y is None:
        return 0 if x is y else (-1 if (x is None) == nulls_first else 1)
    order = (x > y) - (x < y)
    return -order if descending else order
