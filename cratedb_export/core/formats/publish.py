"""`publish_parquet`: a staged day's NDJSON → its verified Parquet file; see the package docstring."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cratedb_export.core.errors import ExportError, VerificationError
from cratedb_export.core.formats import staging_directory
from cratedb_export.core.formats.parquet import ParquetDayWriter, footer
from cratedb_export.core.storage import ObjectStore, StoredObject
from cratedb_export.core.target import DayDirectory
from cratedb_export.core.verification import check_counts, check_only_own_files


@dataclass(frozen=True)
class PublishedFile:
    name: str
    size: int
    rows: int


def publish_parquet(
    store: ObjectStore,
    columns: Sequence[tuple[str, str]],
    directory: DayDirectory,
    *,
    file_name: str,
    what: str,
    counts: dict[str, int | None],
    metadata: dict | None = None,
) -> PublishedFile:
    """Convert the staged NDJSON of a day into `file_name` in its directory, verify it, remove the staging.

    `counts` are the numbers already agreed on (COPY's rowcount, the source's count, the staged lines): the
    Parquet file's rows, read back from its footer in S3, must equal them. On any failure the file is
    aborted or deleted, so the directory holds no Parquet a reader could take for the day.
    """
    staging = staging_directory(directory)
    staged = store.list_directory(staging)
    upload = store.upload(directory, file_name)
    completed = False
    try:
        writer = ParquetDayWriter(
            columns,
            upload,
            what=what,
            metadata={"cratedb_export": json.dumps(metadata or {}, sort_keys=True)},
        )
        for obj in staged:
            if obj.size:
                writer.add_object(store.stream(staging, obj), where=f"s3://{staging.bucket}/{obj.key}")
        rows = writer.close()
        size = upload.complete()
        completed = True
        found = footer(size, lambda start, end: store.read_range(directory, file_name, start, end))
        numbers = {
            **counts,
            "ndjson_lines": writer.rows_in,
            "parquet_rows_written": rows,
            "parquet_rows": found.num_rows,
        }
        try:
            check_counts(what, numbers, "the Parquet file does not match the export")
        except VerificationError as error:
            raise VerificationError(str(error), counts={**counts, "exported_rows": found.num_rows}) from None
        if found.schema.to_arrow_schema().remove_metadata() != writer.schema.remove_metadata():
            raise VerificationError(f"{what}: the Parquet file read back has another schema than was written")
        store.delete(staging, staged)
        check_only_own_files(what, directory, store.list_directory(directory), lambda o: o.name == file_name)
        return PublishedFile(file_name, size, found.num_rows)
    except BaseException:
        if completed:
            _quietly(lambda: store.delete(directory, [StoredObject(directory.key(file_name), 0)]))
        else:
            upload.abort()
        raise


def _quietly(action: Callable[[], None]) -> None:
    with contextlib.suppress(ExportError):
        action()
