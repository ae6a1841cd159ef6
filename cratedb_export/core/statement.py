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
    hour = f"date_trunc('hour', {quote_ident(spec.timestamp_column)})"
    sql = (
        f'SELECT {hour} AS "hour", count(*) AS "rows" FROM {qualified_table(spec)} '
        f"WHERE {window_predicate(spec)} GROUP BY 1"
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


def delete_window_statement(spec: ExportSpec, window: DayWindow) -> Statement:
    sql = f"DELETE FROM {qualified_table(spec)} WHERE {window_predicate(spec)}"
    return Statement(sql, (window.start_ms, window.end_ms))


def refresh_statement(spec: ExportSpec) -> Statement:
    return Statement(f"REFRESH TABLE {qualified_table(spec)}", ())
