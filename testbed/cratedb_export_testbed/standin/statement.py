"""One statement being executed: its parse tree, its parameters and its default schema."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from cratedb_sqlparse.generated_parser.SqlBaseParser import SqlBaseParser as P

from cratedb_export_testbed.standin.errors import not_in_double, sql_parse
from cratedb_export_testbed.standin.grammar import Parsed
from cratedb_export_testbed.standin.sqltree import Col, Expr, ExprBuilder, Lit, Param, qualified_name, text_of


class Relation(NamedTuple):
    schema: str
    name: str
    qualified: bool  # written as schema.table: CrateDB's errors then name it so, else by its bare name

    @property
    def shown(self) -> str:
        return f"{self.schema}.{self.name}" if self.qualified else self.name


@dataclass
class Statement:
    parsed: Parsed
    args: list[Any]
    default_schema: str = "doc"
    builder: ExprBuilder = field(init=False)

    def __post_init__(self) -> None:
        self.builder = ExprBuilder(self.parsed)

    @property
    def node(self) -> P.StatementContext:
        return self.parsed.statement

    def expr(self, node: Any) -> Expr:
        return self.builder.build(node)

    def value(self, expr: Expr) -> Any:
        """The value of a literal or bound parameter; anything else is not a constant here."""
        if isinstance(expr, Lit):
            return expr.value
        if isinstance(expr, Param):
            if not 0 <= expr.index < len(self.args):
                raise sql_parse(
                    f"The query contains a parameter placeholder ${expr.index + 1}, "
                    f"but there are only {len(self.args)} parameter values"
                )
            return self.args[expr.index]
        if isinstance(expr, Col):
            raise not_in_double(f"a column reference ({expr.name}) where a value is expected")
        raise not_in_double("a computed value where a literal or parameter is expected")

    def constant(self, node: Any) -> Any:
        return self.value(self.expr(node))

    def relation(self, qname: P.QnameContext) -> Relation:
        """(schema, table, qualified) with the session's default schema for unqualified names."""
        parts = qualified_name(qname)
        if len(parts) == 1:
            return Relation(self.default_schema, parts[0], False)
        if len(parts) == 2:
            return Relation(parts[0], parts[1], True)
        raise not_in_double(f"the qualified name {text_of(qname)}")
