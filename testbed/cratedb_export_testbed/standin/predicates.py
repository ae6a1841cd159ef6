"""WHERE clauses: bound against a table before any row is read, then evaluated per row.

Binding is where CrateDB's analyzer fails a statement: unknown columns (ColumnUnknownException)
and values that do not cast to the column's type (SQLParseException) fail even on an empty
table. A comparison with NULL matches nothing.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any

from cratedb_export_testbed.standin import coltypes
from cratedb_export_testbed.standin.coltypes import ColumnType
from cratedb_export_testbed.standin.errors import not_in_double, sql_parse
from cratedb_export_testbed.standin.sqltree import And, Cmp, Col, Expr, Func, Like, Lit, Param
from cratedb_export_testbed.standin.tables import Table

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
        if expr is not None and not isinstance(expr, (Cmp, And, Like)):
            raise not_in_double("a WHERE clause that is not a comparison, a LIKE or an AND of them")
        return None if expr is None else self.bind(expr)

    def bind(self, expr: Expr) -> Expr:
        if isinstance(expr, Col):
            self._table.column_type(expr.path)
            return expr
        if isinstance(expr, Func):
            return self._function(expr)
        if isinstance(expr, And):
            return And(self.where(expr.left), self.where(expr.right))  # type: ignore[arg-type]
        if isinstance(expr, Like):
            return self._like(expr)
        if isinstance(expr, Cmp):
            left, right = self.bind(expr.left), self.bind(expr.right)
            left_type, right_type = self.type_of(left), self.type_of(right)
            if left_type is not None and isinstance(right, Lit):
                right = Lit(_compared(right, left_type))
            if right_type is not None and isinstance(left, Lit):
                left = Lit(_compared(left, right_type))
            return Cmp(expr.op, left, right)
        return Lit(self._value_of(expr), param=isinstance(expr, Param))

    def _like(self, expr: Like) -> Like:
        """CrateDB's ``op_like`` / ``op_ilike`` on text: the pattern is compiled when the statement is
        analysed, so a bad pattern fails even on an empty table."""
        value = self.bind(expr.value)
        if isinstance(value, Col) and self.type_of(value) != coltypes.TEXT:
            raise not_in_double(f"LIKE on the {self.type_of(value).sql_name} column {value.name}")  # type: ignore[union-attr]
        pattern = self._value_of(expr.pattern)
        escape = "\\" if expr.escape is None else self._value_of(expr.escape)
        if not isinstance(pattern, str | None) or not isinstance(escape, str):
            raise not_in_double("LIKE with a pattern or ESCAPE that is not text")
        if len(escape) > 1:
            raise sql_parse("ESCAPE must be a single character")
        compiled = None if pattern is None else like_regex(pattern, escape or None, expr.ignore_case)
        return Like(value, compiled, None, expr.negated, expr.ignore_case)

    def _function(self, expr: Func) -> Expr:
        if expr.name != "date_trunc" or len(expr.args) != 2:
            raise not_in_double(f"the function {expr.name} with {len(expr.args)} arguments")
        unit, source = (self.bind(arg) for arg in expr.args)
        if not (isinstance(unit, Lit) and isinstance(unit.value, str)):
            raise not_in_double("date_trunc with a unit that is not a string literal")
        if isinstance(source, Lit):
            ts = coltypes.cast(source.value, coltypes.TIMESTAMPTZ, param=source.param)
            return Lit(coltypes.date_trunc(unit.value, ts))
        source_type = self.type_of(source)
        if source_type is None or not (source_type.is_timestamp or source_type == coltypes.BIGINT):
            raise not_in_double("date_trunc on anything but a timestamp or bigint column")
        coltypes.date_trunc(unit.value, None)  # refuses units the double does not know
        return Func("date_trunc", (unit, source))

    def type_of(self, expr: Expr) -> ColumnType | None:
        if isinstance(expr, Col):
            return self._table.column_type(expr.path)
        if isinstance(expr, Func):
            return coltypes.TIMESTAMPTZ  # date_trunc(unit, ts) is timestamp with time zone for every ts type
        return None


def _compared(value: Lit, column_type: ColumnType) -> Any:
    if isinstance(value.value, bool) and column_type.kind in ("bigint", "integer", "double", "real"):
        # CrateDB resolves the comparison's function differently then (no cast error): not modelled.
        raise not_in_double(f"comparing a column of type {column_type.sql_name} with a boolean")
    return coltypes.cast(value.value, column_type, param=value.param)


def like_regex(pattern: str, escape: str | None, ignore_case: bool) -> re.Pattern[str]:
    """CrateDB's ``LikeOperators.patternToRegex``: ``%`` any run, ``_`` any one character, the escape
    character (default ``\\``) makes the next one literal; matched against the whole value, ``.``
    spanning newlines; ILIKE ignores ASCII case only (``Pattern.CASE_INSENSITIVE``)."""
    regex, escaped = [], False
    for char in pattern:
        if escape is not None and not escaped and char == escape:
            escaped = True
            continue
        if char == "%" and not escaped:
            regex.append(".*")
        elif char == "_" and not escaped:
            regex.append(".")
        else:
            regex.append(re.escape(char))
        escaped = False
    if escaped:
        raise sql_parse(f"pattern '{pattern}' must not end with escape character '{escape}'")
    flags = re.DOTALL | (re.IGNORECASE | re.ASCII if ignore_case else 0)
    return re.compile("".join(regex), flags)


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
    if isinstance(expr, Like):
        value = evaluate(expr.value, doc)
        if value is None or expr.pattern is None:
            return None
        found = expr.pattern.fullmatch(value) is not None
        return found != expr.negated
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
