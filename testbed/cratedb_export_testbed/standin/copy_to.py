"""COPY t [PARTITION (...)] [(cols)] [WHERE ...] TO DIRECTORY <uri> [WITH (...)], as CrateDB 5.x runs it.

One object per shard that is read, named ``<table>_<shard>_<partitionIdent>.json[.gz]``; every
shard that is read gets one, even when no row matches. A table partitioned by
``date_trunc(unit, ts)`` reads only the partitions a ``ts`` range can touch
(``date_trunc(unit, lower) <= p <= date_trunc(unit, upper)``), as CrateDB's partition pruning
does; a condition on a function of ``ts`` prunes nothing. Target URIs are parsed per shard, so a
COPY that reads no shard fails on nothing, as in CrateDB.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cratedb_sqlparse.generated_parser.SqlBaseParser import SqlBaseParser as P

from cratedb_export_testbed.standin import coltypes, javauri, s3
from cratedb_export_testbed.standin.errors import CrateError, not_in_double, partition_unknown, sql_parse, unsupported
from cratedb_export_testbed.standin.faults import CopyFaults, Faults
from cratedb_export_testbed.standin.predicates import OPS, Binder, dig, matches
from cratedb_export_testbed.standin.sqltree import Cmp, Col, Expr, Lit, Param, conjuncts, generic_properties
from cratedb_export_testbed.standin.statement import Relation, Statement
from cratedb_export_testbed.standin.tables import Catalog, Table, partition_ident, partition_string

_FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "=": "=", "<>": "<>", "!=": "!="}


@dataclass(frozen=True)
class Options:
    gzip: bool
    json_array: bool
    protocol: str
    wait: bool


@dataclass
class ShardFile:
    uri: str
    lines: list[bytes]


def copy_to(
    stmt: Statement,
    catalog: Catalog,
    resolve: Callable[[Relation, str], Table],
    faults: Faults,
    writer: s3.S3Writer,
    running: Callable[[], None] = lambda: None,
) -> int:
    """Run the COPY; ``running`` is called once analysis is done and the statement executes."""
    node: P.CopyToContext = stmt.node
    if node.DIRECTORY() is None:
        raise unsupported("Using COPY TO without specifying a DIRECTORY is not supported")
    target = node.tableWithPartition()
    table = resolve(stmt.relation(target.qname()), "COPY TO")
    columns = [_column(stmt, table, e) for e in node.columns().primaryExpression()] if node.columns() else []
    where = Binder(table, stmt.value).where(stmt.expr(node.where().booleanExpression())) if node.where() else None
    with catalog.lock:
        partition = _partition_clause(stmt, table, target.assignment())
        partitions = dict(table.partitions)
        rows = list(table.rows)
    options = _options(stmt, table, node.withProperties(), columns_defined=bool(columns))
    directory = stmt.constant(node.expr())
    if not isinstance(directory, str):
        # CrateDB casts it with StringType.sanitizeValue: a ClassCastException or NPE, not modelled.
        raise not_in_double(f"a COPY TO directory of type {coltypes.source_type_name(directory)}")
    shards = _shards(table, partition, partitions, where)
    docs: dict[tuple[str, int], list[dict[str, Any]]] = {key: [] for key in shards}
    for row in rows:
        key = (row.partition or "", row.shard)
        if key in docs and matches(where, row.doc):
            docs[key].append(row.doc)
    files = []
    for ident, shard in shards:
        name = f"{table.name}_{shard}_{ident}.json" + (".gz" if options.gzip else "")
        uri = directory + ("" if directory.endswith("/") else "/") + name
        files.append(ShardFile(uri, [_line(table, columns, options, doc) for doc in docs[(ident, shard)]]))
    running()
    copy_faults = faults.take_copy_faults()
    rowcount = sum(len(f.lines) for f in files) + copy_faults.extra_rows
    _drop_lines(files, copy_faults.drop_rows)
    if not options.wait:
        # CrateDB answers at once and never reports what goes wrong afterwards.
        threading.Thread(target=_run_quietly, args=(files, options, writer, copy_faults), daemon=True).start()
        return -1
    _run(files, options, writer, copy_faults)
    if columns and not options.gzip and files:
        raise _closed_twice(writer)
    return rowcount


def _closed_twice(writer: s3.S3Writer) -> CrateError:
    """CrateDB's ColumnRowWriter closes its JSON builder (which closes the stream) and then the stream again.
    Uncompressed, the second close reaches S3: the AWS SDK completes the finished multipart upload again
    (SeaweedFS answers NoSuchUpload) and OpenDAL writes to a dropped writer (seen on 5.10.16 and 6.4.3).
    Through GZIPOutputStream, whose close is idempotent, nothing happens. The objects are written."""
    if writer.opendal:
        text = "Unexpected (permanent) at  => writer has been dropped\n\nBacktrace:\n   0: <unknown>\n"
        return CrateError("OpenDALException", text, 5000)
    text = (
        "The specified multipart upload does not exist. The upload ID may be invalid, or the upload may have "
        "been aborted or completed. (Service: Amazon S3; Status Code: 404; Error Code: NoSuchUpload)"
    )
    return CrateError("AmazonS3Exception", text, 5000)


def _run(files: list[ShardFile], options: Options, writer: s3.S3Writer, copy_faults: CopyFaults) -> None:
    """The execution: the injected slowness, then the objects, then the injected failure if armed."""
    time.sleep(copy_faults.slow_seconds)
    failure = copy_faults.failure
    abandoned = max(files, key=lambda f: len(f.lines)) if copy_faults.abandon_upload and files else None
    written = files if failure is None else files[: failure.files_written]
    _write(written, options, writer, abandoned)
    if failure is not None:
        raise CrateError(failure.name, failure.text, failure.code)


def _run_quietly(files: list[ShardFile], options: Options, writer: s3.S3Writer, copy_faults: CopyFaults) -> None:
    with contextlib.suppress(Exception):  # wait_for_completion = false: errors are never reported
        _run(files, options, writer, copy_faults)


def _column(stmt: Statement, table: Table, node: Any) -> Col:
    expr = stmt.expr(node)
    if not isinstance(expr, Col):
        raise not_in_double(f"COPY TO of the expression `{node.getText()}`; only column references")
    table.column_type(expr.path)
    return expr


def _partition_clause(stmt: Statement, table: Table, assignments: list[Any]) -> str | None:
    if not assignments:
        return None
    if table.partitioned_by is None:
        raise sql_parse(f"table '{table.fqn}' is not partitioned")
    if len(assignments) != 1:
        raise sql_parse(
            f'The table "{table.fqn}" is partitioned by 1 columns but the PARTITION clause '
            f"contains {len(assignments)} columns"
        )
    column = stmt.expr(assignments[0].primaryExpression())
    if not isinstance(column, Col) or column.path != (table.partitioned_by,):
        name = column.name if isinstance(column, Col) else assignments[0].primaryExpression().getText()
        raise sql_parse(f'"{name}" is no known partition column')
    expr = stmt.expr(assignments[0].expr())
    value = coltypes.cast(stmt.value(expr), table.columns[table.partitioned_by].type, param=isinstance(expr, Param))
    ident = partition_ident([partition_string(value)])
    if ident not in table.partitions:
        raise partition_unknown(table.fqn, ident)
    return ident


def _options(stmt: Statement, table: Table, with_node: Any, columns_defined: bool) -> Options:
    """WITH values as CrateDB's CopyToPlan.bind reads them: compression and format through
    ``Validators.stringValidator`` (case-sensitive, lower case), wait_for_completion as a strict
    boolean. An unquoted word is analysed as a column of the table (``NameFieldProvider``)."""
    values: dict[str, Any] = {}
    for key, node in generic_properties(with_node):
        expr = stmt.expr(node)
        if isinstance(expr, Col):
            table.column_type(expr.path)  # ColumnUnknownException, as CrateDB's analyzer raises
            raise not_in_double(f"the column {expr.name} as the value of {key}")
        values[key] = _setting_string(stmt.value(expr))
    compression = _allowed(values.get("compression"), ("gzip",))
    output_format = _allowed(values.get("format"), ("json_array", "json_object"))
    if not columns_defined and output_format == "json_array":
        raise unsupported("Output format not supported without specifying columns.")
    wait = values.get("wait_for_completion", "true")
    if wait not in ("true", "false"):
        raise sql_parse(f"Failed to parse value [{wait}] as only [true] or [false] are allowed.")
    json_array = output_format == "json_array" or (output_format is None and columns_defined)
    return Options(compression == "gzip", json_array, values.get("protocol", "https"), wait == "true")


def _setting_string(value: Any) -> str:
    """WITH values end up in CrateDB's string-typed Settings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _allowed(value: str | None, allowed: tuple[str, ...]) -> str | None:
    """``Validators.StringValidatorAllowedValuesOnly``: exact (case-sensitive) values; an empty string
    means not given. Numbers and booleans are refused like any other value outside the list."""
    if not value:
        return None
    if value not in allowed:
        raise sql_parse(f"Unsupported setting value: {value}. Supported values are: {', '.join(sorted(allowed))}")
    return value


def _check_protocol(protocol: str) -> None:
    """The S3 plugin's ``S3Protocol`` setting, read when a shard's output is created."""
    if protocol not in ("http", "https"):
        raise sql_parse(f"invalid protocol `{protocol}`. Expected HTTP or HTTPS")


def _shards(
    table: Table, partition: str | None, partitions: dict[str, Any], where: Expr | None
) -> list[tuple[str, int]]:
    """(partition ident, shard id) of every shard the COPY reads."""
    if table.partitioned_by is None:
        return [("", shard) for shard in range(table.shards)]
    idents = [partition] if partition else [i for i, v in partitions.items() if _may_match(table, v, where)]
    return [(ident, shard) for ident in sorted(idents) for shard in range(table.shards)]


def _may_match(table: Table, value: Any, where: Expr | None) -> bool:
    """Partition pruning: AND-ed comparisons of the partition column, or of the timestamp a
    ``date_trunc`` partition column is generated from, against constants."""
    column = table.columns[table.partitioned_by or ""]
    for part in conjuncts(where):
        if not isinstance(part, Cmp):
            continue
        if isinstance(part.left, Col) and isinstance(part.right, Lit):
            path, op, constant = part.left.path, part.op, part.right.value
        elif isinstance(part.right, Col) and isinstance(part.left, Lit):
            path, op, constant = part.right.path, _FLIPPED[part.op], part.left.value
        else:
            continue
        if path == (column.name,):
            if value is None or constant is None or not OPS[op](value, constant):
                return False
        elif column.generated is not None and path == (column.generated[1],) and op in ("<", "<=", ">", ">=", "="):
            bound = coltypes.date_trunc(column.generated[0], constant)
            if value is None or bound is None:
                return False
            inside = value <= bound if op in ("<", "<=") else value >= bound if op in (">", ">=") else value == bound
            if not inside:
                return False
    return True


def _line(table: Table, columns: list[Col], options: Options, doc: dict[str, Any]) -> bytes:
    if options.json_array:
        data: Any = [dig(doc, col.path) for col in columns]
    elif columns:
        data = {col.name: dig(doc, col.path) for col in columns}
    else:
        data = {key: value for key, value in doc.items() if value is not None}
        if table.partitioned_by in data:
            data[table.partitioned_by] = partition_string(data[table.partitioned_by])
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _drop_lines(files: list[ShardFile], drop: int) -> None:
    """The truncation fault: the largest object loses its last lines, the rowcount does not."""
    if drop and files:
        largest = max(files, key=lambda f: len(f.lines))
        del largest.lines[max(0, len(largest.lines) - drop) :]


def _write(files: list[ShardFile], options: Options, writer: s3.S3Writer, abandoned: ShardFile | None) -> None:
    for file in files:
        target = _target(file.uri)
        _check_protocol(options.protocol)
        body = b"".join(line + b"\n" for line in file.lines)
        data = gzip.compress(body, mtime=0) if options.gzip else body
        if file is abandoned:
            writer.abandon(target, options.protocol, data)
        else:
            writer.put(target, options.protocol, data)


def _target(uri: str) -> s3.S3Target:
    """Pick the output by scheme as CrateDB's FileWriterCountCollector does."""
    try:
        scheme = javauri.parse(uri).scheme or "file"
    except javauri.JavaURISyntaxError:
        raise sql_parse(f"Invalid uri '{uri}'") from None
    if scheme == "file":
        raise not_in_double("COPY TO a local path or file:// URI; use s3://")
    if scheme != "s3":
        raise unsupported(f"Unknown scheme '{scheme}'")
    return s3.parse_target(uri)
