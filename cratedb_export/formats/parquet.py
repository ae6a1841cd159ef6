"""NDJSON as COPY TO writes it → one Parquet file per day, streaming, in bounded memory.

Rows are parsed line by line into per-column lists and turned into one Arrow record batch — one Parquet
row group — every `row_group_rows` rows or `row_group_bytes` of input, and at the end of every staged
object (so a batch never mixes files). Memory is that of one batch plus what the Parquet writer holds of
the row group being encoded, however large the day.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from functools import partial

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import PermanentError, VerificationError
from .typemap import Unrepresentable, arrow_field, to_arrow

ROW_GROUP_ROWS = 128 * 1024
ROW_GROUP_BYTES = 48 << 20  # of NDJSON input: bounds memory for wide rows
COMPRESSION = "snappy"  # what every Parquet reader handles


def arrow_schema(columns: Sequence[tuple[str, str]], metadata: dict[str, str] | None = None) -> pa.Schema:
    """The Parquet schema of a day: the exported columns in table order, with their CrateDB types."""
    return pa.schema([arrow_field(name, data_type) for name, data_type in columns], metadata=metadata)


class ParquetDayWriter:
    """Streams the NDJSON objects of one day into one Parquet file written to `sink`.

    `what` ("doc.metrics 2024-06-15") leads every error; a value that its column's type cannot hold fails
    with the table, the day, the column and the value (PermanentError: re-running would not help).
    """

    def __init__(
        self,
        columns: Sequence[tuple[str, str]],
        sink,
        *,
        what: str,
        metadata: dict[str, str] | None = None,
        row_group_rows: int = ROW_GROUP_ROWS,
        row_group_bytes: int = ROW_GROUP_BYTES,
        compression: str = COMPRESSION,
    ) -> None:
        self.columns = list(columns)
        self.schema = arrow_schema(self.columns, metadata)
        self.what = what
        self.rows_in = 0
        self.rows_out = 0
        self._row_group_rows = row_group_rows
        self._row_group_bytes = row_group_bytes
        self._lists: list[list] = [[] for _ in self.columns]
        self._pending_bytes = 0
        exact = any(t.lower().removesuffix("_array") == "numeric" for _, t in self.columns)
        # NUMERIC values are parsed as Decimal, so no digit is lost on the way through a double.
        self._decimals = exact
        self._loads: Callable[[bytes], object] = partial(json.loads, parse_float=Decimal) if exact else json.loads
        self._writer = pq.ParquetWriter(sink, self.schema, compression=compression, store_schema=True)

    def add_object(self, chunks: Iterable[bytes], where: str) -> int:
        """Convert one staged NDJSON object (its inflated bytes); the number of lines it held."""
        lines, rest = 0, b""
        for chunk in chunks:
            if not chunk:
                continue
            data = rest + chunk if rest else chunk
            end = data.rfind(b"\n")
            if end < 0:
                rest = data
                continue
            rest = data[end + 1 :]
            lines += self._add_lines(data[:end].split(b"\n"), where, lines)
            self._pending_bytes += end
            if len(self._lists[0] if self._lists else ()) >= self._row_group_rows or (
                self._pending_bytes >= self._row_group_bytes
            ):
                self._flush()
        if rest:
            raise VerificationError(f"the last line of {where} is not terminated: the object is truncated")
        self._flush()
        self.rows_in += lines
        return lines

    def _add_lines(self, lines: list[bytes], where: str, seen: int) -> int:
        names = [name for name, _ in self.columns]
        appends = [values.append for values in self._lists]
        pairs = list(zip(names, appends, strict=True))
        loads = self._loads
        for number, line in enumerate(lines, start=seen + 1):
            try:
                row = loads(line)
            except ValueError as exc:
                raise PermanentError(f"{self.what}: line {number} of {where} is not a JSON object ({exc})") from None
            if not isinstance(row, dict):
                raise PermanentError(f"{self.what}: line {number} of {where} is not a JSON object")
            for name, append in pairs:
                append(row.pop(name, None))
            if row:
                raise PermanentError(
                    f"{self.what}: column(s) {sorted(row)[:5]} in {where} are not among the columns read when "
                    "the run started (added to the table meanwhile?); re-run the day to export them too"
                )
        return len(lines)

    def _flush(self) -> None:
        if not self._lists or not self._lists[0]:
            self._pending_bytes = 0
            return
        arrays = []
        for (name, data_type), values in zip(self.columns, self._lists, strict=True):
            try:
                arrays.append(to_arrow(values, data_type, decimals=self._decimals))
            except Unrepresentable as exc:
                raise PermanentError(
                    f"{self.what}: column {name!r} ({data_type}): a value cannot be represented in Parquet as "
                    f"{arrow_field(name, data_type).type}: {exc}; the day was not exported"
                ) from None
        batch = pa.RecordBatch.from_arrays(arrays, schema=self.schema)
        self._writer.write_batch(batch)
        self.rows_out += batch.num_rows
        self._lists = [[] for _ in self.columns]
        self._pending_bytes = 0

    def close(self) -> int:
        """Finish the file (its footer); the rows written."""
        self._flush()
        self._writer.close()
        return self.rows_out


def footer(size: int, read_range: Callable[[int, int], bytes]) -> pq.FileMetaData:
    """The Parquet footer of a stored file, read with two ranged reads; raises if it is not Parquet."""
    if size < 12:
        raise VerificationError(f"{size} bytes cannot be a Parquet file")
    tail = read_range(size - 8, size)
    length, magic = struct.unpack("<I4s", tail)
    if magic != b"PAR1" or length + 12 > size:
        raise VerificationError("not a complete Parquet file (no PAR1 footer)")
    block = read_range(size - 8 - length, size)
    # The footer is self-contained: parsed behind a stand-in for the file's first four bytes.
    try:
        return pq.read_metadata(pa.BufferReader(b"PAR1" + block))
    except (pa.ArrowInvalid, OSError) as exc:
        raise VerificationError(f"not a readable Parquet footer ({exc})") from None
