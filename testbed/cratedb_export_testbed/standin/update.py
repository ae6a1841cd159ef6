"""UPDATE t SET column = value [, ...] [WHERE ...]: enough to change rows in place, as late corrections do.

Each updated row is written again, so it gets the table's next ``_seq_no`` (tables.py), as CrateDB gives an
updated document the next sequence number of its shard (observed on 6.4.3: one UPDATE raised its day's
``sum(_seq_no)`` from 144 to 338). The answer is the number of rows updated. Refused: assigning the
partition column, a primary key column or a generated column (CrateDB refuses the first two and computes
the third), RETURNING, and values that are not literals or parameters.
"""

from __future__ import annotations

from collections.abc import Callable

from cratedb_sqlparse.generated_parser.SqlBaseParser import SqlBaseParser as P

from cratedb_export_testbed.standin.errors import not_in_double, write_blocked
from cratedb_export_testbed.standin.predicates import Binder, matches
from cratedb_export_testbed.standin.select import relation_of
from cratedb_export_testbed.standin.sqltree import Col, Lit, Param, text_of
from cratedb_export_testbed.standin.statement import Relation, Statement
from cratedb_export_testbed.standin.tables import Catalog, Table


def update(stmt: Statement, catalog: Catalog, resolve: Callable[[Relation, str], Table]) -> int:
    node: P.UpdateContext = stmt.node
    if node.returning() is not None:
        raise not_in_double("UPDATE ... RETURNING")
    table = resolve(relation_of(stmt, node.aliasedRelation()), "UPDATE")
    binder = Binder(table, stmt.value)
    where = binder.where(stmt.expr(node.where().booleanExpression())) if node.where() else None
    values: dict[str, Lit] = {}
    for assignment in node.assignment():
        target = stmt.expr(assignment.primaryExpression())
        value = stmt.expr(assignment.expr())
        if not isinstance(target, Col) or len(target.path) != 1 or not isinstance(value, (Lit, Param)):
            raise not_in_double(f"the assignment `{text_of(assignment)}`")
        column = table.columns.get(target.path[0])
        table.column_type(target.path)  # ColumnUnknownException for an unknown column
        if column is None or column.generated or target.path[0] in (table.partitioned_by, *table.primary_key):
            raise not_in_double(f"updating the column {target.name} of {table.fqn}")
        values[target.path[0]] = Lit(stmt.value(value), param=isinstance(value, Param))
    params = {name for name, value in values.items() if value.param}
    with catalog.lock:
        if table.write_blocked and any(r.partition in table.write_blocked for r in table.rows if matches(where, r.doc)):
            raise write_blocked()  # an UPDATE of rows in a write-blocked partition, as CrateDB 6.4.3 answered it
        updated = 0
        for row in table.rows:
            if matches(where, row.doc):
                # Cast as an insert casts, generated columns computed again; the row is written anew.
                row.doc = table.prepare({**row.doc, **{name: v.value for name, v in values.items()}}, params)
                table.written(row)
                updated += 1
    return updated
