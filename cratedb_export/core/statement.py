"""SQL statements sent to CrateDB: the one place SQL text is built.

Identifiers are validated and quoted; the day window and the target URI are always parameters, so the
statement text (which CrateDB keeps in sys.jobs_log) never holds a credential or a value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cratedb_export.core.config import ExportSpec
from cratedb_export.core.identifiers import quote_column, quote_ident
from cratedb_export.core.window import DayWindow

HOUR_MS = 3_600_000


@dataclass(frozen=True)
class Statement:
    sql: str
    args: tuple[object, ...]


def qualified_table(spec: ExportSpec) -> str:
    return f"{quote_ident(spec.schema_name)}.{quote_ident(spec.table_name)}"


def window_predicate(spec: ExportSpec) -> str:
    column = quote_ident(spec.timestamp_column)
    return f"{column} >= ? AND {column} < ?"


def copy_statement(
    spec: ExportSpec, window: DayWindow, uri: str, *, protocol: str | None = None, comment: str = ""
) -> Statement:
    """COPY one day of a table to a directory; `uri` carries the credentials and is bound as a parameter.

    `comment` (a CopyTag's) leads the text, so that CrateDB's jobs tables tell this COPY from any other.
    """
    columns = ""
    if spec.columns:
        columns = " (" + ", ".join(quote_column(c) for c in spec.columns) + ")"
    options = []
    if spec.copy_compression:
        options.append(f"compression = '{spec.copy_compression}'")
    if spec.columns:
        # With a column list CrateDB defaults to json_array; keep one self-describing object per line.
        options.append("format = 'json_object'")
    if protocol:
        options.append(f"protocol = '{protocol}'")
    with_clause = f" WITH ({', '.join(options)})" if options else ""
    lead = f"{comment} " if comment else ""
    sql = f"{lead}COPY {qualified_table(spec)}{columns} WHERE {window_predicate(spec)} TO DIRECTORY ?{with_clause}"
    return Statement(sql, (window.start_ms, window.end_ms, uri))


def count_statement(spec: ExportSpec, window: DayWindow) -> Statement:
    """Count the source rows of the same window, with the same predicate as the COPY."""
    sql = f"SELECT count(*) FROM {qualified_table(spec)} WHERE {window_predicate(spec)}"
    return Statement(sql, (window.start_ms, window.end_ms))


def hourly_count_statement(spec: ExportSpec, first: DayWindow, last: DayWindow) -> Statement:
    """Count the source rows of the days first..last at once, per UTC hour (epoch ms of the hour's start).

    Same predicate as the COPY over the whole span, so CrateDB prunes partitions just the same.
    """
    return _hourly(spec, first, last, 'count(*) AS "rows"')


def _hourly(spec: ExportSpec, first: DayWindow, last: DayWindow, aggregates: str) -> Statement:
    hour = f"date_trunc('hour', {quote_ident(spec.timestamp_column)})"
    sql = (
        f'SELECT {hour} AS "hour", {aggregates} FROM {qualified_table(spec)} WHERE {window_predicate(spec)} GROUP BY 1'
    )
    return Statement(sql, (first.start_ms, last.end_ms))


def jobs_lookup_statement(table: str, pattern: str) -> Statement:
    """Jobs whose statement text matches `pattern`: running ones in sys.jobs, ended ones in sys.jobs_log.

    The pattern is a parameter, so this statement's own text (also in sys.jobs) never matches it.
    """
    if table == "jobs":
        return Statement('SELECT "id", "started" FROM "sys"."jobs" WHERE "stmt" LIKE ?', (pattern,))
    if table == "jobs_log":
        return Statement(
            'SELECT "id", "started", "ended", "error" FROM "sys"."jobs_log" WHERE "stmt" LIKE ?', (pattern,)
        )
    raise ValueError(f"no jobs table {table!r}")


def columns_statement(spec: ExportSpec) -> Statement:
    """The table's columns and their CrateDB types, in table order."""
    sql = (
        'SELECT "column_name", "data_type" FROM "information_schema"."columns" '
        'WHERE "table_schema" = ? AND "table_name" = ? ORDER BY "ordinal_position"'
    )
    return Statement(sql, (spec.schema_name, spec.table_name))


# What the run learns of the cluster once, before any COPY: each node's version and processor, and
# whether it keeps the jobs tables that recovering a lost COPY answer depends on.
NODES_STATEMENT = Statement('SELECT "name", "version"[\'number\'], "os_info"[\'arch\'] FROM "sys"."nodes"', ())
STATS_STATEMENT = Statement(
    "SELECT \"settings\"['stats']['enabled'], \"settings\"['stats']['jobs_log_size'] FROM \"sys\".\"cluster\"", ()
)


# -- restoring archived days ---------------------------------------------------------------------------

# information_schema's data_type -> the type a CREATE TABLE names for it, for the types whose name says all
# there is to know. numeric, character, bit and float_vector lose their parameters (precision, length,
# dimensions) in information_schema: a table is not created from them; name an existing table instead.
_DDL_TYPES = {
    "text": "TEXT",
    "bigint": "BIGINT",
    "integer": "INTEGER",
    "smallint": "SMALLINT",
    "byte": "BYTE",  # the type `"char"`, which information_schema names byte
    "boolean": "BOOLEAN",
    "double precision": "DOUBLE PRECISION",
    "real": "REAL",
    "timestamp with time zone": "TIMESTAMP WITH TIME ZONE",
    "timestamp without time zone": "TIMESTAMP WITHOUT TIME ZONE",
    "ip": "IP",
    "geo_point": "GEO_POINT",
    "geo_shape": "GEO_SHAPE",
    "object": "OBJECT(DYNAMIC)",
}


def ddl_type(data_type: str) -> str | None:
    """The CREATE TABLE type of an information_schema data_type, or None where it cannot be told exactly."""
    if data_type.endswith("_array"):
        inner = ddl_type(data_type[: -len("_array")])
        return f"ARRAY({inner})" if inner else None
    return _DDL_TYPES.get(data_type)


def create_table_statement(spec: ExportSpec, columns: Sequence[tuple[str, str]]) -> Statement:
    """A plain table (no partitions, no generated columns) with these (name, data_type) columns."""
    defined = []
    for name, data_type in columns:
        kind = ddl_type(data_type)
        if kind is None:
            raise ValueError(f"column {name!r} of type {data_type} cannot be created from its recorded type")
        defined.append(f"{quote_ident(name)} {kind}")
    return Statement(f"CREATE TABLE {qualified_table(spec)} ({', '.join(defined)})", ())


def copy_from_statement(spec: ExportSpec, uris: Sequence[str], *, gzip: bool, protocol: str | None) -> Statement:
    """Load files into a table; the URIs carry the credentials and are bound as one array parameter."""
    options = (["compression = 'gzip'"] if gzip else []) + ([f"protocol = '{protocol}'"] if protocol else [])
    with_clause = f" WITH ({', '.join(options)})" if options else ""
    return Statement(f"COPY {qualified_table(spec)} FROM ?{with_clause} RETURN SUMMARY", (list(uris),))


def delete_window_statement(spec: ExportSpec, window: DayWindow, *, comment: str = "") -> Statement:
    """Delete the rows of a day's window; `comment` (retention's) ends the text, to be found in sys.jobs."""
    tail = f" {comment}" if comment else ""
    sql = f"DELETE FROM {qualified_table(spec)} WHERE {window_predicate(spec)}{tail}"
    return Statement(sql, (window.start_ms, window.end_ms))


def refresh_statement(spec: ExportSpec) -> Statement:
    return Statement(f"REFRESH TABLE {qualified_table(spec)}", ())


# -- retention: deleting proven days from CrateDB -------------------------------------------------------


def partitioned_by_statement(spec: ExportSpec) -> Statement:
    """The table's partition columns (information_schema.tables.partitioned_by; NULL: not partitioned)."""
    sql = 'SELECT "partitioned_by" FROM "information_schema"."tables" WHERE "table_schema" = ? AND "table_name" = ?'
    return Statement(sql, (spec.schema_name, spec.table_name))


def generated_columns_statement(spec: ExportSpec) -> Statement:
    """The table's generated columns and their expressions, e.g. `date_trunc('month', ts)`."""
    sql = (
        'SELECT "column_name", "generation_expression" FROM "information_schema"."columns" '
        'WHERE "table_schema" = ? AND "table_name" = ? AND "is_generated" = ?'
    )
    return Statement(sql, (spec.schema_name, spec.table_name, "ALWAYS"))


def partitions_statement(spec: ExportSpec) -> Statement:
    """The table's partitions: ident, values ({column: value}, epoch ms for timestamps), write-blocked or not."""
    sql = (
        'SELECT "partition_ident", "values", "settings"[\'blocks\'][\'write\'] '
        'FROM "information_schema"."table_partitions" WHERE "table_schema" = ? AND "table_name" = ?'
    )
    return Statement(sql, (spec.schema_name, spec.table_name))


def partition_write_block_statement(spec: ExportSpec, column: str, value: object, *, blocked: bool) -> Statement:
    """Block (or allow again) writes into one partition; CrateDB then refuses INSERT, UPDATE and COPY FROM
    there with ClusterBlockException (4035), while a DELETE of the whole partition still drops it."""
    change = 'SET ("blocks.write" = true)' if blocked else 'RESET ("blocks.write")'
    sql = f"ALTER TABLE {qualified_table(spec)} PARTITION ({quote_ident(column)} = ?) {change}"
    return Statement(sql, (value,))


def delete_partition_statement(spec: ExportSpec, column: str, value: object, *, comment: str = "") -> Statement:
    """Drop one partition whole: a DELETE whose only condition is on the partition column (answers -1)."""
    tail = f" {comment}" if comment else ""
    return Statement(f"DELETE FROM {qualified_table(spec)} WHERE {quote_ident(column)} = ?{tail}", (value,))


# -- reconciling archived days with the source ---------------------------------------------------------

# A day's fingerprint besides its count: every write of a row (insert, update, COPY FROM) gives it the next
# _seq_no of its shard, so an UPDATE in place or a delete plus an insert changes the day's sum and max of
# _seq_no even when its count stays (observed on CrateDB 6.4.3: one UPDATE, sum 144 → 338, max 12 → 195).
_DIGEST = 'count(*) AS "rows", sum("_seq_no") AS "seq_no_sum", max("_seq_no") AS "seq_no_max"'


def digest_statement(spec: ExportSpec, window: DayWindow) -> Statement:
    """The day's source digest: its rows, and the sum and max of their _seq_no, with the COPY's predicate."""
    sql = f"SELECT {_DIGEST} FROM {qualified_table(spec)} WHERE {window_predicate(spec)}"
    return Statement(sql, (window.start_ms, window.end_ms))


def hourly_digest_statement(spec: ExportSpec, first: DayWindow, last: DayWindow) -> Statement:
    """The digests of the days first..last at once, per UTC hour, like hourly_count_statement."""
    return _hourly(spec, first, last, _DIGEST)
