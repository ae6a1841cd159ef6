"""CREATE TABLE, DROP TABLE and REFRESH TABLE for the table shapes the exporter uses."""

from __future__ import annotations

from typing import Any

from cratedb_sqlparse.generated_parser.SqlBaseParser import SqlBaseParser as P

from cratedb_export_testbed.standin import coltypes
from cratedb_export_testbed.standin.errors import (
    column_unknown,
    not_in_double,
    operation_not_allowed,
    partition_unknown,
    sql_parse,
    unsupported,
)
from cratedb_export_testbed.standin.sqltree import Col, Func, Lit, generic_properties, ident, text_of, words
from cratedb_export_testbed.standin.statement import Relation, Statement
from cratedb_export_testbed.standin.tables import Catalog, Column, Table, partition_ident, partition_string

READ_ONLY_SCHEMAS = {"sys", "information_schema", "pg_catalog"}
_IGNORED_SETTINGS = {"number_of_replicas", "refresh_interval"}  # accepted, no effect in memory


def table_name(stmt: Statement, node: P.TableContext) -> Relation:
    if not isinstance(node, P.TableNameContext):
        raise not_in_double(f"the relation `{text_of(node)}`")
    return stmt.relation(node.qname())


def create_table(stmt: Statement, catalog: Catalog, default_shards: int) -> int:
    create = stmt.node.createStmt()
    if not isinstance(create, P.CreateTableContext):
        raise not_in_double(f"`{text_of(create)}`")
    schema, name, _ = table_name(stmt, create.table())
    if schema in READ_ONLY_SCHEMAS:
        raise sql_parse(f"Cannot create relation in read-only schema: {schema}")
    columns, primary_key = _columns(stmt, create.tableElement())
    table = Table(schema, name, columns, default_shards, primary_key=primary_key)
    _layout(stmt, create.partitionedByOrClusteredInto(), table)
    for key, value_node in generic_properties(create.withProperties()):
        value = stmt.constant(value_node)
        if key == "column_policy" and value in ("strict", "dynamic"):
            table.dynamic = value == "dynamic"
        elif key not in _IGNORED_SETTINGS:
            raise not_in_double(f"the table setting {key} = {value!r}")
    return 1 if catalog.create(table, if_not_exists=create.EXISTS() is not None) else 0


def _columns(stmt: Statement, elements: list[Any]) -> tuple[dict[str, Column], tuple[str, ...]]:
    """The columns and the primary key's columns (in column order)."""
    columns: dict[str, Column] = {}
    key: list[str] = []  # as declared: column constraints and PRIMARY KEY (...) elements in order
    for element in elements:
        if isinstance(element, P.PrimaryKeyConstraintTableLevelContext):
            _unnamed(element.primaryKeyContraint())
            for expr in element.columns().primaryExpression():
                column = stmt.expr(expr)
                if not isinstance(column, Col) or len(column.path) != 1:
                    raise not_in_double(f"the primary key column `{text_of(expr)}`; only top-level columns")
                key.append(column.path[0])
            continue
        if not isinstance(element, P.ColumnDefinitionDefaultContext):
            raise not_in_double(f"the table element `{text_of(element)}`")
        definition = element.columnDefinition()
        name = ident(definition.ident())
        if name in columns:
            raise sql_parse(f'column "{name}" specified more than once')
        constraints = []
        for constraint in definition.columnConstraint():
            if isinstance(constraint, P.ColumnConstraintPrimaryKeyContext):
                _unnamed(constraint.primaryKeyContraint())
                key.append(name)
            else:
                constraints.append(constraint)
        generated = _generated(stmt, constraints)
        type_node = definition.dataType()
        column_type = coltypes.parse_type(words(type_node)) if type_node else coltypes.TIMESTAMPTZ
        columns[name] = Column(name, column_type, generated)
    for column in columns.values():
        if column.generated is not None:
            source = columns.get(column.generated[1])
            if source is None or not source.type.is_timestamp or not column.type.is_timestamp:
                raise not_in_double(f"the generated column {column.name}: only date_trunc of a timestamp column")
    return columns, _primary_key(columns, key)


def _unnamed(node: P.PrimaryKeyContraintContext) -> None:
    if node.CONSTRAINT() is not None:
        raise not_in_double("a named PRIMARY KEY constraint (CONSTRAINT name PRIMARY KEY)")


def _primary_key(columns: dict[str, Column], key: list[str]) -> tuple[str, ...]:
    """The key's columns checked as CrateDB 6.4.3 checked them: unknown columns, a column named twice
    (also once as a column constraint and once in PRIMARY KEY (...)), object and array columns."""
    for number, name in enumerate(key):
        if name not in columns:
            raise column_unknown(name)
        if name in key[:number]:
            raise sql_parse(f"Columns `{name}` appears twice in primary key constraint")
        column_type = columns[name].type
        if column_type.kind == "object":
            raise unsupported('Cannot use columns of type "object" as primary key')
        if column_type.kind == "array":
            raise unsupported(f'Cannot use column "{name}" with type "{column_type.sql_name}" as primary key')
    return tuple(name for name in columns if name in key)


def _generated(stmt: Statement, constraints: list[Any]) -> tuple[str, str] | None:
    generated = None
    for constraint in constraints:
        if not isinstance(constraint, P.ColumnGeneratedConstraintContext):
            raise not_in_double(f"the column constraint `{text_of(constraint)}`")
        expr = stmt.expr(constraint.expr())
        if not (
            isinstance(expr, Func)
            and expr.name == "date_trunc"
            and len(expr.args) == 2
            and isinstance(expr.args[0], Lit)
            and isinstance(expr.args[1], Col)
            and len(expr.args[1].path) == 1
        ):
            raise not_in_double(f"the generated column expression `{text_of(constraint.expr())}`")
        unit = str(expr.args[0].value)
        coltypes.date_trunc(unit, None)  # refuses units the double does not model
        generated = (unit.lower(), expr.args[1].path[0])
    return generated


def _layout(stmt: Statement, node: P.PartitionedByOrClusteredIntoContext, table: Table) -> None:
    clustered, partitioned = node.clusteredBy(), node.partitionedBy()
    if clustered is not None:
        if clustered.BY() is not None:
            raise not_in_double("CLUSTERED BY a routing column")
        count_node = clustered.parameterOrInteger()
        if count_node is not None:
            shards = stmt.value(stmt.builder.integer(count_node))
            if not isinstance(shards, int) or isinstance(shards, bool) or shards < 1:
                raise sql_parse("num_shards in CLUSTERED clause must be greater than 0")
            table.shards = shards
    if partitioned is not None:
        exprs = [stmt.expr(e) for e in partitioned.columns().primaryExpression()]
        if len(exprs) != 1 or not isinstance(exprs[0], Col) or len(exprs[0].path) != 1:
            raise not_in_double("PARTITIONED BY anything but one top-level column")
        column = exprs[0].path[0]
        if column not in table.columns:
            raise column_unknown(column)  # TableElementsAnalyzer
        column_type = table.columns[column].type
        if column_type.kind in ("object", "array"):
            raise sql_parse(f"Cannot use column {column} of type {column_type.sql_name} in PARTITIONED BY clause")
        if table.primary_key and column not in table.primary_key:
            raise sql_parse(
                f"Cannot use non primary key column '{column}' in PARTITIONED BY clause if primary key is set on table"
            )
        table.partitioned_by = column


def drop_table(stmt: Statement, catalog: Catalog) -> int:
    drop = stmt.node.dropStmt()
    if not isinstance(drop, P.DropTableContext):
        raise not_in_double(f"`{text_of(drop)}`")
    schema, name, qualified = table_name(stmt, drop.table())
    if schema in READ_ONLY_SCHEMAS:
        raise operation_not_allowed(f"{schema}.{name}", "DROP")
    return 1 if catalog.drop(schema, name, if_exists=drop.EXISTS() is not None, qualified=qualified) else 0


def refresh_table(stmt: Statement, catalog: Catalog) -> int:
    """Nothing to refresh in memory; still fails for unknown tables, as CrateDB does."""
    targets = stmt.node.tableWithPartitions().tableWithPartition()
    for target in targets:
        if target.PARTITION() is not None:
            raise not_in_double("REFRESH TABLE ... PARTITION")
        catalog.get(*stmt.relation(target.qname()))
    return len(targets)


def alter_table(stmt: Statement, catalog: Catalog) -> int:
    """``ALTER TABLE t PARTITION (col = v) SET ("blocks.write" = true)`` and ``RESET ("blocks.write")``, as
    CrateDB 6.4.3 answers them: -1; an unknown partition value is PartitionUnknownException (4046)."""
    alter = stmt.node.alterStmt()
    if not isinstance(alter, P.AlterTablePropertiesContext):
        raise not_in_double(f"`{text_of(alter)}`")
    target = alter.alterTableDefinition()
    if not isinstance(target, P.TableWithPartitionDefaultContext):
        raise not_in_double(f"ALTER of `{text_of(target)}`")
    partition = target.tableWithPartition()
    if partition.PARTITION() is None:
        raise not_in_double("ALTER TABLE settings of a whole table")
    table = catalog.get(*stmt.relation(partition.qname()))
    assignments = partition.assignment()
    column = stmt.expr(assignments[0].primaryExpression()) if len(assignments) == 1 else None
    if not isinstance(column, Col) or column.path != (table.partitioned_by,):
        raise not_in_double(f"the partition spec `{text_of(partition)}`; only the one partition column")
    value = coltypes.cast(stmt.constant(assignments[0].expr()), table.columns[column.path[0]].type, param=True)
    if alter.SET() is not None:
        properties = alter.genericProperties().genericProperty()
        settings = [(_dotted(p.ident()), p.expr()) for p in properties]
        if len(settings) != 1 or settings[0][0] != "blocks.write" or stmt.constant(settings[0][1]) not in (True, False):
            raise not_in_double(f"the partition settings `{text_of(alter.genericProperties())}`; only blocks.write")
        blocked = bool(stmt.constant(settings[0][1]))
    else:
        names = [_dotted(alter.ident())]
        if names != ["blocks.write"]:
            raise not_in_double(f"RESET of {names}; only blocks.write")
        blocked = False
    ident_ = partition_ident([partition_string(value)])
    with catalog.lock:
        if ident_ not in table.partitions:
            raise partition_unknown(table.fqn, ident_)
        (table.write_blocked.add if blocked else table.write_blocked.discard)(ident_)
    return -1


def _dotted(idents: Any) -> str:
    """A property name: one ident (\"blocks.write\") or several (blocks.write unquoted)."""
    return ".".join(ident(part) for part in (idents if isinstance(idents, list) else [idents]))
