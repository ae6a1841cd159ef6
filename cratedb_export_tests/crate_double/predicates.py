"""WHERE clauses: bound against a table before any row is read, then evaluated per row.

Binding is where CrateDB's analyzer fails a statement: unknown columns (ColumnUnknownException)
and values that do not cast to the column's type (SQLParseException) fail even on an empty
table. A comparison with NULL matches nothing.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from . import coltypes
from .coltypes import ColumnType
from .errors import not_in_double
from .sqltree import And, Cmp, Col, Expr, Func, Lit
from .tables import Table

OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq, "<>": operator.ne, "!=": operator.ne,
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}  # fmt: skip


class Binder:
    """Resolves columns and casts constants of an expression against one table."""

    def __init__(self, table: Table, value_of: Callable[[Expr], Any]) -> None:
        self._table = table
        self._value_of = value_of

    def where(self, expr: Expr | None) -> Expr | None:
        if expr is not None and not isinstance(expr, (Cmp, And)):
            raise not_in_double("a WHERE clause that is not a comparison or an AND of comparisons")
        return None if expr is None else self.bind(expr)

    def bind(self, expr: Expr) -> Expr:
        if isinstance(expr, Col):
            self._table.column_type(expr.path)
            return expr
        if isinstance(expr, Func):
            return self._function(expr)
        if isinstance(expr, And):
            return And(self.where(expr.left), self.where(expr.right))  # type: ignore[arg-type]
        if isinstance(expr, Cmp):
            left, right = self.bind(expr.left), self.bind(expr.right)
            left_type, right_type = self.type_of(left), self.type_of(right)
            if left_type is not None and isinstance(right, Lit):
                right = Lit(coltypes.cast(right.value, left_type))
            if right_type is not None and isinstance(left, Lit):
                left = Lit(coltypes.cast(left.value, right_type))
            return Cmp(expr.op, left, right)
        return Lit(self._value_of(expr))

    def _function(self, expr: Func) -> Expr:
        if expr.name != "date_trunc" or len(expr.args) != 2:
            raise not_in_double(f"the function {expr.name} with {len(expr.args)} arguments")
        unit, source = (self.bind(arg) for arg in expr.args)
        if not (isinstance(unit, Lit) and isinstance(unit.value, str)):
            raise not_in_double("date_trunc with a unit that is not a string literal")
        if isinstance(source, Lit):
            return Lit(coltypes.date_trunc(unit.value, coltypes.cast(source.value, coltypes.TIMESTAMPTZ)))
        source_type = self.type_of(source)
        if source_type is None or not source_type.is_timestamp:
            raise not_in_double("date_trunc on anything but a timestamp column")
        coltypes.date_trunc(unit.value, None)  # refuses units the double does not know
        return Func("date_trunc", (unit, source))

    def type_of(self, expr: Expr) -> ColumnType | None:
        if isinstance(expr, Col):
            return self._table.column_type(expr.path)
        if isinstance(expr, Func):
            return self.type_of(expr.args[1])
        return None


def dig(doc: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = doc
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def evaluate(expr: Expr, doc: dict[str, Any]) -> Any:
    if isinstance(expr, Lit):
        return expr.value
    if isinstance(expr, Col):
        return dig(doc, expr.path)
    if isinstance(expr, Func):
        unit = expr.args[0].value  # type: ignore[union-attr]
        return coltypes.date_trunc(unit, evaluate(expr.args[1], doc))
    if isinstance(expr, And):
        return evaluate(expr.left, doc) is True and evaluate(expr.right, doc) is True
    if isinstance(expr, Cmp):
        left, right = evaluate(expr.left, doc), evaluate(expr.right, doc)
        if left is None or right is None:
            return None
        try:
            return OPS[expr.op](left, right)
        except TypeError:
            return False
    raise not_in_double(f"evaluating {expr}")


def matches(where: Expr | None, doc: dict[str, Any]) -> bool:
    return where is None or evaluate(where, doc) is True
