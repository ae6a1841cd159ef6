"""DELETE FROM t [WHERE ...], as CrateDB 6.4.3 answered it.

Observed: `DELETE FROM "doc"."t" WHERE "ts" >= ? AND "ts" < ?` answers `rowcount` = the rows it removed,
on a partitioned table too (even when the window empties a whole partition); a DELETE whose conditions
are all on the partition column drops the matching partitions and answers -1, even when the partition's
writes are blocked ("blocks.write"), while any other DELETE of rows there is ClusterBlockException (4035);
an unknown table is RelationUnknown (4041).
"""

from __future__ import annotations

from collections.abc import Callable

from cratedb_sqlparse.generated_parser.SqlBaseParser import SqlBaseParser as P

from cratedb_export_testbed.standin.errors import write_blocked
from cratedb_export_testbed.standin.predicates import Binder, matches
from cratedb_export_testbed.standin.select import relation_of
from cratedb_export_testbed.standin.sqltree import Cmp, Col, Expr, conjuncts
from cratedb_export_testbed.standin.statement import Relation, Statement
from cratedb_export_testbed.standin.tables import Catalog, Table


def delete(stmt: Statement, catalog: Catalog, resolve: Callable[[Relation, str], Table]) -> int:
    node: P.DeleteContext = stmt.node
    table = resolve(relation_of(stmt, node.aliasedRelation()), "DELETE")
    where = Binder(table, stmt.value).where(stmt.expr(node.where().booleanExpression())) if node.where() else None
    with catalog.lock:
        hit = [matches(where, row.doc) for row in table.rows]
        kept = [row for row, gone in zip(table.rows, hit, strict=True) if not gone]
        deleted = len(table.rows) - len(kept)
        partitions_only = _on_partitions_only(table, where)
        blocked = {r.partition for r, gone in zip(table.rows, hit, strict=True) if gone} & table.write_blocked
        if blocked and not partitions_only:
            raise write_blocked()  # a DELETE of rows in a write-blocked partition (dropping it whole is allowed)
        table.rows[:] = kept
        table.reindex()
        if partitions_only:
            for ident in [i for i in table.partitions if not any(r.partition == i for r in kept)]:
                del table.partitions[ident]
                table.write_blocked.discard(ident)
            return -1
    return deleted


def _on_partitions_only(table: Table, where: Expr | None) -> bool:
    """Every condition compares the partition column: CrateDB then drops partitions, not rows."""
    if table.partitioned_by is None or where is None:
        return False
    column = (table.partitioned_by,)
    return all(
        isinstance(part, Cmp) and column in [side.path for side in (part.left, part.right) if isinstance(side, Col)]
        for part in conjuncts(where)
    )
