"""What a day's materialization shows in the UI: numbers a user can plot, and a location a user can use.

The day's directory is given as a plain `s3://bucket/prefix/` (also under Dagster's `dagster/uri`), which
any S3 tool reads as a bucket and a key prefix; the endpoint of an S3-compatible store is shown on its
own. CrateDB's own form, `s3://host:port/bucket/prefix/`, is only in the statement's parameters. Nothing
here ever holds a credential: the URIs are built from the bucket, the prefix and the endpoint only.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

from dagster import MetadataValue, TableColumn, TableRecord, TableSchema

from cratedb_export.core.export import DayExport, ExportedFile
from cratedb_export.core.target import DayDirectory

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
FILES_SCHEMA = TableSchema(
    columns=[
        TableColumn("name", "string", description="object name in the day's directory"),
        TableColumn("rows", "int", description="rows read back (0 when not read back)"),
        TableColumn("bytes", "int"),
        TableColumn("size", "string"),
    ]
)


def human_size(size: int) -> str:
    """Bytes as a person reads them: `512 B`, `1.2 MiB` (binary units, one decimal above bytes)."""
    value, unit = float(size), 0
    while value >= 1024 and unit < len(_UNITS) - 1:
        value /= 1024
        unit += 1
    return f"{size} B" if unit == 0 else f"{value:.1f} {_UNITS[unit]}"


def location_uri(directory: DayDirectory) -> str:
    """`s3://bucket/prefix/`: the day's directory without endpoint or credentials."""
    return directory.display_uri()


def endpoint_text(endpoint: str | None, protocol: str) -> str:
    return f"{protocol}://{endpoint}" if endpoint else "AWS S3 (default endpoint)"


def files_table(files: Sequence[ExportedFile]) -> MetadataValue:
    return MetadataValue.table(
        records=[
            TableRecord({"name": f.name, "rows": f.rows or 0, "bytes": f.size, "size": human_size(f.size)})
            for f in files
        ],
        schema=FILES_SCHEMA,
    )


def column_schema(columns: Sequence[tuple[str, str]], selected: Sequence[str] | None = None) -> TableSchema:
    """A TableSchema of (name, CrateDB type) pairs; with `selected`, those columns in that order.

    A selected column the table does not list (e.g. a subscript of a dynamic object) gets type `unknown`.
    """
    types = dict(columns)
    names = list(selected) if selected else [name for name, _ in columns]
    return TableSchema(columns=[TableColumn(name, types.get(name, "unknown")) for name in names])


def day_metadata(
    result: DayExport,
    *,
    endpoint: str | None,
    protocol: str,
    columns: TableSchema | None = None,
) -> dict[str, MetadataValue]:
    """The materialization's metadata for one verified day."""
    rows = result.source_rows
    location = location_uri(result.directory)
    metadata: dict[str, MetadataValue] = {
        "dagster/row_count": MetadataValue.int(rows),
        "dagster/uri": MetadataValue.text(location),
        "location": MetadataValue.path(location),
        "s3_endpoint": MetadataValue.text(endpoint_text(endpoint, protocol)),
    }
    if not endpoint:
        console = (
            f"https://s3.console.aws.amazon.com/s3/buckets/{quote(result.directory.bucket, safe='')}"
            f"?prefix={quote(result.directory.prefix, safe='')}"
        )
        metadata["s3_console"] = MetadataValue.url(console)
    metadata.update(
        {
            "rows_exported": MetadataValue.int(rows),
            "copy_rowcount": MetadataValue.int(result.copy_rowcount)
            if result.copy_rowcount is not None
            else MetadataValue.text(f"unknown: {result.copy_recovered}"),
            "source_rows": MetadataValue.int(result.source_rows),
            "rows_read_back": MetadataValue.int(result.exported_rows)
            if result.exported_rows is not None
            else MetadataValue.text("not read back (verify: count)"),
            "day": MetadataValue.text(result.window.day.isoformat()),
            "window": MetadataValue.text(f"[{result.window.start.isoformat()}, {result.window.end.isoformat()})"),
            "window_read_as": MetadataValue.text(result.window_reading),
            "files": files_table(result.files),
            "file_count": MetadataValue.int(len(result.files)),
            "bytes": MetadataValue.int(result.total_bytes),
            "size": MetadataValue.text(human_size(result.total_bytes)),
            "statement": MetadataValue.md(f"```sql\n{result.statement}\n```"),
            "duration_s": MetadataValue.float(round(sum(result.timings.values()), 3)),
            "copy_duration_s": MetadataValue.float(result.timings.get("copy", 0.0)),
            "removed_before": MetadataValue.int(result.removed_before),
            "format": MetadataValue.text(result.spec.format),
        }
    )
    if columns is not None:
        metadata["dagster/column_schema"] = MetadataValue.table_schema(columns)
    return metadata
