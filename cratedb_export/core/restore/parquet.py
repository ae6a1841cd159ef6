"""A Parquet day made loadable again: its rows written back as NDJSON, exactly, for `COPY FROM`.

CrateDB's COPY FROM reads JSON lines only. The day's Parquet file is read row group by row group (its
columns typed as formats/typemap.py wrote them) and each row becomes the JSON object COPY TO would have
written: integers and floats as numbers (a float32's exact value, which reads back to the same float32),
timestamps as epoch milliseconds, lists as arrays, and the JSON-text columns (objects,
geo_shape, ...) as the text itself, unparsed. A NaN or an infinity has no JSON form COPY FROM reads, so a
day holding one fails naming the column instead of loading a NULL. The lines go, gzip-compressed, to a
staging directory below the day's (`_restore/`, skipped by Hive-style readers like `_staging/`), and are
removed after the load, whatever its outcome.
"""

from __future__ import annotations

import contextlib
import gzip
import math
import tempfile
import uuid
from collections.abc import Iterator, Sequence

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cratedb_export.core.archive import ArchivedDay
from cratedb_export.core.errors import VerificationError
from cratedb_export.core.formats.typemap import holds_json_text
from cratedb_export.core.storage import ObjectStore, StoredObject
from cratedb_export.core.target import DayDirectory

RESTORE_STAGING = "_restore"
BATCH_ROWS = 65_536


@contextlib.contextmanager
def staged_as_ndjson(store: ObjectStore, archived: ArchivedDay) -> Iterator[tuple[DayDirectory, list[StoredObject]]]:
    """The day's rows as gzip NDJSON objects in a staging directory of their own, removed afterwards."""
    staging = DayDirectory(
        archived.directory.bucket, f"{archived.directory.prefix}{RESTORE_STAGING}/{uuid.uuid4().hex[:12]}/"
    )
    staged: list[StoredObject] = []
    try:
        rows = 0
        with tempfile.TemporaryFile() as local:
            for obj in archived.files:
                for chunk in store.stream(archived.directory, obj):
                    local.write(chunk)
            local.seek(0)
            parquet = pq.ParquetFile(local)
            types = dict(archived.columns or ())
            for number, batch in enumerate(parquet.iter_batches(batch_size=BATCH_ROWS)):
                body = gzip.compress(b"".join(_lines(batch, types, archived.what)), compresslevel=1)
                upload = store.upload(staging, f"part-{number:05d}.json.gz")
                try:
                    upload.write(body)
                    size = upload.complete()
                except BaseException:
                    upload.abort()
                    raise
                staged.append(StoredObject(staging.key(f"part-{number:05d}.json.gz"), size))
                rows += batch.num_rows
        if rows != archived.rows:
            raise VerificationError(
                f"{archived.what}: the Parquet file holds {rows} row(s), the manifest {archived.rows}"
            )
        yield staging, staged
    finally:
        with contextlib.suppress(Exception):
            store.delete(staging, staged)


def _lines(batch: pa.RecordBatch, types: dict[str, str], what: str) -> Iterator[bytes]:
    columns = [_column_values(batch.column(i), batch.schema.field(i), types, what) for i in range(batch.num_columns)]
    names = batch.schema.names
    for values in zip(*columns, strict=True):
        yield orjson.dumps(dict(zip(names, values, strict=True))) + b"\n"


def _column_values(array: pa.Array, field: pa.Field, types: dict[str, str], what: str) -> Sequence[object]:
    data_type = types.get(field.name) or (field.metadata or {}).get(b"cratedb_type", b"text").decode()
    if holds_json_text(data_type):
        return _json_texts(array)
    return _plain(array, f"{what}: column {field.name}")


def _json_texts(array: pa.Array) -> list[object]:
    """JSON-text values (or lists of them, for arrays of objects) as pre-serialized JSON, never re-parsed."""
    if pa.types.is_list(array.type):
        return _lists(array, _json_texts(array.flatten()))
    return [None if text is None else orjson.Fragment(text) for text in array.to_pylist()]


def _lists(array: pa.Array, flat: list[object]) -> list[object]:
    offsets, valid = array.offsets.to_pylist(), array.is_valid().to_pylist()
    base = offsets[0]  # a sliced list array's offsets count from its parent's start
    return [flat[offsets[i] - base : offsets[i + 1] - base] if valid[i] else None for i in range(len(array))]


def _plain(array: pa.Array, where: str) -> list[object]:
    """A column's values as COPY TO wrote them: timestamps as epoch ms, floats checked for NaN/infinity."""
    kind = array.type
    if pa.types.is_timestamp(kind):
        return pc.cast(array, pa.int64()).to_pylist()
    if pa.types.is_list(kind):
        return _lists(array, _plain(array.flatten(), where))
    values = array.to_pylist()
    if pa.types.is_floating(kind) and any(v is not None and not math.isfinite(v) for v in values):
        raise VerificationError(
            f"{where} holds NaN or an infinity, which COPY FROM cannot read from JSON; the day is not restored"
        )
    return values
