"""SQL statements sent to CrateDB: the one place SQL text is built.

Identifiers are validated and quoted; the day window and the target URI are always parameters, so the
statement text (which CrateDB keeps in sys.jobs_log) never holds a credential or a value.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import ExportSpec
from .identifiers import quote_column, quote_ident
from .window import DayWindow

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


def copy_statement(spec: ExportSpec, window: DayWindow, uri: str, *, protocol: str | None = None) -> Statement:
    """COPY one day of a table to a directory; `uri` carries the credentials and is bound as a parameter."""
    columns = ""
    if spec.columns:
        columns = " (" + ", ".join(quote_column(c) for c in spec.columns) + ")"
    options = []
    if spec.compression:
        options.append(f"compression = '{spec.compression}'")
    if spec.columns:
        # With a column list CrateDB defaults to json_array; keep one self-describing object per line.
        options.append("format = 'json_object'")
    if protocol:
        options.append(f"protocol = '{protocol}'")
    with_clause = f" WITH ({', '.join(options)})" if options else ""
    sql = f"COPY {qualified_table(spec)}{columns} WHERE {window_predicate(spec)} TO DIRECTORY ?{with_clause}"
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
