"""Formats of a day's files besides CrateDB's own NDJSON; free of Dagster.

`format: parquet`: CrateDB still runs the COPY (NDJSON, gzip), into the day's staging directory
`<day directory>/_staging/`, and `publish_parquet` turns the staged objects into one Parquet file in the
day's directory, verifies it and removes the staging objects. Why there: it is below the day's directory,
so the day's lease covers it, the day's clean-up (marker first, unfinished uploads aborted) removes what
a failed attempt left, and the S3 key given to CrateDB needs no rights beyond the export targets; and its
name starts with `_`, which Hive-style readers (pyarrow.dataset, Spark, Hive, Athena's partition
discovery) skip, as they skip `_SUCCESS` and `_manifest.json`.
"""

from __future__ import annotations

from collections.abc import Sequence

from cratedb_export.core.target import DayDirectory

FORMATS = ("json", "parquet")
STAGING = "_staging"

# pyarrow is imported by the modules that need it (parquet, typemap, publish), so a code location or a
# run that exports only JSON does not load it.
__all__ = ["FORMATS", "STAGING", "column_schema", "staging_directory"]


def column_schema(columns: Sequence[tuple[str, str]], format: str) -> list[dict[str, str]]:
    """The exported columns for the manifest: name, CrateDB type and, for Parquet, the Parquet column's type."""
    if format != "parquet":
        return [{"name": name, "data_type": data_type} for name, data_type in columns]
    from cratedb_export.core.formats.typemap import arrow_type

    return [{"name": n, "data_type": t, "parquet_type": str(arrow_type(t))} for n, t in columns]


def staging_directory(directory: DayDirectory) -> DayDirectory:
    """Where CrateDB writes a Parquet day's NDJSON before it is converted."""
    return DayDirectory(directory.bucket, f"{directory.prefix}{STAGING}/")
