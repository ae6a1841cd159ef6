"""DELETE FROM t [WHERE ...], as CrateDB 6.4.3 answered it: the number of rows deleted.

Observed: `DELETE FROM "doc"."t" WHERE "ts" >= ? AND "ts" < ?` answers `rowcount` = the rows it removed;
an unknown table is RelationUnknown (4041). A DELETE that drops whole partitions of a partitioned table
answers -1 in CrateDB; partitioned tables are not modelled here and are refused.
"""

from __future__ import annotations

from collections.abc import Callable

from cratedb_sqlparse.generated_parser.SqlBaseParser import SqlBaseParser as P

from cratedb_export_testbed.standin.errors import not_in_double
from cratedb_export_testbed.standin.predicates import Binder, matches
from cratedb_export_testbed.standin.select import relation_of
from cratedb_export_testbed.standin.statement import Relation, Statement
from cratedb_export_testbed.standin.tables import Catalog, Table


def delete(stmt: Statement, catalog: Catalog, resolve: Callable[[Relation, str], Table]) -> int:
    node: P.DeleteContext = stmt.node
    table = resolve(relation_of(stmt, node.aliasedRelation()), "DELETE")
    if table.partitioned_by is not None:
        raise not_in_double("DELETE from a partitioned table (CrateDB may drop whole partitions and answer -1)")
    where = Binder(table, stmt.value).where(stmt.expr(node.where().booleanExpression())) if node.where() else None
    with catalog.lock:
        kept = [row for row in table.rows if not matches(where, row.doc)]
        deleted = len(table.rows) - len(kept)
        table.rows[:] = kept
    return deleted
