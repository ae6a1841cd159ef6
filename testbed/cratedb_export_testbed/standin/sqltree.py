"""Turn the few parse-tree shapes the double evaluates into a tiny expression model.

Only what the exporter and its tests send is translated: column references (with object
subscripts), literals, ``?``/``$n`` parameters, comparisons joined by AND, and function calls.
Any other node (OR, NOT, casts, arithmetic, sub-queries, ...) is refused as unsupported by the
double rather than guessed at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cratedb_sqlparse.generated_parser.SqlBaseParser import SqlBaseParser as P

from cratedb_export_testbed.standin.errors import not_in_double, sql_parse
from cratedb_export_testbed.standin.grammar import Parsed


@dataclass(frozen=True)
class Col:
    path: tuple[str, ...]

    @property
    def name(self) -> str:
        """CrateDB's ``sqlFqn`` form: ``tags['host']``."""
        return self.path[0] + "".join(f"['{key}']" for key in self.path[1:])


@dataclass(frozen=True)
class Lit:
    value: Any
    param: bool = field(default=False, compare=False)  # bound from a ``?``: casts fail as CrateDB's do


@dataclass(frozen=True)
class Param:
    index: int  # 0-based


@dataclass(frozen=True)
class Func:
    name: str
    args: tuple[Expr, ...]


@dataclass(frozen=True)
class Cmp:
    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class And:
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Like:
    """``value [NOT] LIKE|ILIKE pattern [ESCAPE escape]``; ``pattern`` becomes a compiled regex when bound."""

    value: Expr
    pattern: Any
    escape: Expr | None
    negated: bool
    ignore_case: bool


Expr = Col | Lit | Param | Func | Cmp | And | Like
COMPARISONS = {"=", "<>", "!=", "<", "<=", ">", ">="}


def text_of(node: Any) -> str:
    """The statement text a node covers, spaces included, for error messages."""
    stream = node.parser.getTokenStream()
    return stream.getText(node.start, node.stop)


def ident(node: P.IdentContext) -> str:
    """Unquoted identifiers fold to lower case; quoted ones keep case (``""`` is one quote)."""
    raw = node.getText()
    if raw.startswith('"'):
        return raw[1:-1].replace('""', '"')
    if raw.startswith("`"):
        return raw[1:-1].replace("``", "`")
    if raw[:1].isdigit():
        raise sql_parse(f"identifier must not start with a digit: {raw}")
    return raw.lower()


def qualified_name(node: P.QnameContext) -> list[str]:
    return [ident(part) for part in node.ident()]


class ExprBuilder:
    """Builds :data:`Expr` values from parse-tree nodes of one parsed statement.

    ``build`` dispatches on the node's class name (``_ColumnReferenceContext`` handles a
    ``ColumnReferenceContext``); a node without a handler is refused.
    """

    def __init__(self, parsed: Parsed) -> None:
        self._parsed = parsed

    def build(self, node: Any) -> Expr:
        handler = getattr(self, "_" + type(node).__name__, None)
        if handler is None:
            raise not_in_double(f"the expression `{text_of(node)}`")
        return handler(node)

    # -- boolean structure -------------------------------------------------------------------------

    def _ExprContext(self, node: P.ExprContext) -> Expr:
        if node.getChildCount() != 1 or node.booleanExpression() is None:
            raise not_in_double(f"the expression `{text_of(node)}`")
        return self.build(node.booleanExpression())

    def _BooleanDefaultContext(self, node: P.BooleanDefaultContext) -> Expr:
        return self.build(node.predicated())

    def _LogicalBinaryContext(self, node: P.LogicalBinaryContext) -> Expr:
        if node.AND() is None:
            raise not_in_double(f"OR in `{text_of(node)}`")
        left, right = node.booleanExpression()
        return And(self.build(left), self.build(right))

    def _PredicatedContext(self, node: P.PredicatedContext) -> Expr:
        left = self.build(node.valueExpression())
        predicate = node.predicate()
        if predicate is None:
            return left
        if isinstance(predicate, P.LikeContext):
            escape = predicate.escape
            return Like(
                left,
                self.build(predicate.pattern),
                self._escape(escape) if escape is not None else None,
                negated=predicate.NOT() is not None,
                ignore_case=predicate.ILIKE() is not None,
            )
        if not isinstance(predicate, P.ComparisonContext):
            raise not_in_double(f"the predicate `{text_of(node)}`")
        op = predicate.cmpOp().getText()
        if op not in COMPARISONS:
            raise not_in_double(f"the operator {op}")
        return Cmp(op, left, self.build(predicate.valueExpression()))

    def _escape(self, node: Any) -> Expr:
        if not isinstance(node, P.SimpleLiteralContext):
            raise not_in_double(f"the ESCAPE `{text_of(node)}`")
        return self.literal(node.parameterOrSimpleLiteral())

    # -- values ------------------------------------------------------------------------------------

    def _ValueExpressionDefaultContext(self, node: P.ValueExpressionDefaultContext) -> Expr:
        return self.build(node.primaryExpression())

    def _ArithmeticUnaryContext(self, node: P.ArithmeticUnaryContext) -> Expr:
        inner = self.build(node.valueExpression())
        sign = node.getChild(0).getText()
        if isinstance(inner, Lit) and isinstance(inner.value, (int, float)) and sign in "+-":
            return Lit(-inner.value if sign == "-" else inner.value)
        raise not_in_double(f"the expression `{text_of(node)}`")

    def _NestedExpressionContext(self, node: P.NestedExpressionContext) -> Expr:
        return self.build(node.expr())

    def _ColumnReferenceContext(self, node: P.ColumnReferenceContext) -> Expr:
        return Col((ident(node.ident()),))

    def _SubscriptContext(self, node: P.SubscriptContext) -> Expr:
        base = self.build(node.primaryExpression())
        key = self.build(node.valueExpression())
        if isinstance(base, Col) and isinstance(key, Lit) and isinstance(key.value, str):
            return Col(base.path + (key.value,))
        raise not_in_double(f"the subscript `{text_of(node)}`")

    def _FunctionCallContext(self, node: P.FunctionCallContext) -> Expr:
        if node.ASTERISK() or node.filter_() or node.over() or node.setQuant():
            raise not_in_double(f"the function call `{text_of(node)}` here")
        name = ".".join(qualified_name(node.qname()))
        return Func(name, tuple(self.build(arg) for arg in node.expr()))

    def _DefaultParamOrLiteralContext(self, node: P.DefaultParamOrLiteralContext) -> Expr:
        inner = node.parameterOrLiteral()
        if not isinstance(inner, P.SimpleLiteralContext):
            raise not_in_double(f"the literal `{text_of(node)}`")
        return self.literal(inner.parameterOrSimpleLiteral())

    def literal(self, node: P.ParameterOrSimpleLiteralContext) -> Expr:
        if node.nullLiteral():
            return Lit(None)
        if node.booleanLiteral():
            return Lit(node.booleanLiteral().TRUE() is not None)
        if node.numericLiteral():
            number = node.numericLiteral()
            return Lit(int(number.getText()) if number.integerLiteral() else float(number.getText()))
        if node.stringLiteral():
            return Lit(string_value(node.stringLiteral()))
        if node.parameterExpr():
            return self.parameter(node.parameterExpr())
        raise not_in_double(f"the literal `{text_of(node)}`")

    def integer(self, node: P.ParameterOrIntegerContext) -> Expr:
        """``n`` or a parameter, as in ``CLUSTERED INTO n SHARDS`` and ``LIMIT n``."""
        if isinstance(node, P.IntAsLiteralContext):
            return Lit(int(node.integerLiteral().getText()))
        if isinstance(node, P.ParameterExpressionContext):
            return self.parameter(node.parameterExpr())
        raise not_in_double(f"`{text_of(node)}` here")

    def parameter(self, node: P.ParameterExprContext) -> Param:
        if isinstance(node, P.PositionalParameterContext):
            return Param(int(node.integerLiteral().getText()) - 1)
        return Param(self._parsed.placeholder_index(node.start.tokenIndex))


def string_value(node: P.StringLiteralContext) -> str:
    """The value of ``'...'`` (``''`` is one quote) or of a dollar-quoted string."""
    if node.STRING() is not None:
        return node.STRING().getText()[1:-1].replace("''", "'")
    body = node.dollarQuotedStringLiteral().DOLLAR_QUOTED_STRING_BODY()
    return "".join(part.getText() for part in body)


def conjuncts(expr: Expr | None) -> list[Expr]:
    """Flatten ``a AND b AND c`` into its parts."""
    if expr is None:
        return []
    if isinstance(expr, And):
        return conjuncts(expr.left) + conjuncts(expr.right)
    return [expr]


def words(node: Any) -> str:
    """The node's tokens joined by single spaces, e.g. ``TIMESTAMP WITH TIME ZONE``."""
    if node.getChildCount() == 0:
        return node.getText()
    return " ".join(words(child) for child in node.getChildren())


def generic_properties(with_node: Any) -> list[tuple[str, Any]]:
    """``WITH (name = expr, ...)`` as (dotted name, expr node) pairs, in statement order."""
    if with_node is None:
        return []
    if not isinstance(with_node, P.WithGenericPropertiesContext):
        raise not_in_double(f"the properties `{text_of(with_node)}`")
    pairs = []
    for prop in with_node.genericProperties().genericProperty():
        idents = prop.ident() if isinstance(prop.ident(), list) else [prop.ident()]
        pairs.append((".".join(ident(part) for part in idents), prop.expr()))
    return pairs
