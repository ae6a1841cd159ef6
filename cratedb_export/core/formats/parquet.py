"""NDJSON as COPY TO writes it → one Parquet file per day, streaming, in bounded memory.

Rows are parsed line by line into per-column lists and turned into one Arrow record batch — one Parquet
row group — every `row_group_rows` rows or `row_group_bytes` of input, and at the end of every staged
object (so a batch never mixes files). Memory is that of one batch plus what the Parquet writer holds of
the row group being encoded, however large the day.

Two paths, chosen per day from the column types (`native.day_path`): a day whose every column is
native-safe is converted `NATIVE_CHUNK` bytes of lines at a time by `native.NativeChunks` (pyarrow's C++
JSON reader and RE2; the staged object is read and inflated in a thread of its own, and row groups are
encoded and uploaded in another), and a chunk that path refuses takes the exact path; any other day takes
the exact path (orjson / the json module → Python objects → `typemap.to_arrow`) throughout. Both give the
same values; the file's key-value metadata `cratedb_export_conversion` records which path converted how
many rows.
"""

from __future__ import annotations

import json
import queue
import re
import struct
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from cratedb_export.core.errors import PermanentError, VerificationError
from cratedb_export.core.formats.native import EXACT, NATIVE, NativeChunks, NotNative, day_path
from cratedb_export.core.formats.typemap import (
    NonFinite,
    RawJSON,
    Unrepresentable,
    arrow_field,
    holds_json_text,
    to_arrow,
)

ROW_GROUP_ROWS = 64 * 1024
ROW_GROUP_BYTES = 32 << 20  # of NDJSON input: bounds memory for wide rows
BATCH_ROWS = 8192  # rows held as Python objects at a time
NATIVE_CHUNK = 4 << 20  # of NDJSON lines converted natively at a time
CONVERSION_KEY = "cratedb_export_conversion"  # file key-value metadata: which path converted the rows
COMPRESSION = "zstd"  # read by pyarrow, DuckDB, Spark 3.2+, Trino/Athena, BigQuery; ~45% smaller than snappy here
# A column's dictionary stops growing past this many bytes per row group (the rest of the group is written
# plain). Arrow's default, 1 MiB, is never reached by a 64 Ki-row group of 8-byte values, so a column of
# distinct timestamps or ids got a whole dictionary plus an index per row: measured, a day of distinct
# timestamps 40 % smaller, the tutorial's day 13 % smaller and its encoding 1.3x faster; columns of a few
# thousand distinct values (hosts, codes, two-decimal readings) keep their dictionary and their size.
DICTIONARY_BYTES = 128 << 10


def arrow_schema(columns: Sequence[tuple[str, str]], metadata: dict[str, str] | None = None) -> pa.Schema:
    """The Parquet schema of a day: the exported columns in table order, with their CrateDB types."""
    return pa.schema([arrow_field(name, data_type) for name, data_type in columns], metadata=metadata)


class ParquetDayWriter:
    """Streams the NDJSON objects of one day into one Parquet file written to `sink`.

    `what` ("doc.metrics 2024-06-15") leads every error; a value that its column's type cannot hold fails
    with the table, the day, the column and the value (PermanentError: re-running would not help).

    Lines are parsed with orjson where that is exact, else with the json module: for tables with NUMERIC
    columns (parsed with Decimal), and for input holding a run of 20 or more digits (orjson reads an
    integer beyond 64 bits as a double). Every `batch_rows` lines the per-column lists become Arrow
    arrays, so only that many rows are Python objects at a time; a row group is written per
    `row_group_rows` rows, per `row_group_bytes` of input and at the end of each staged object.
    """

    def __init__(
        self,
        columns: Sequence[tuple[str, str]],
        sink: Any,  # a writable binary file-like object
        *,
        what: str,
        metadata: dict[str, str] | None = None,
        row_group_rows: int = ROW_GROUP_ROWS,
        row_group_bytes: int = ROW_GROUP_BYTES,
        batch_rows: int = BATCH_ROWS,
        compression: str = COMPRESSION,
        engine: str = "auto",  # "exact": the Python path even where the native one is safe (for comparisons)
    ) -> None:
        self.columns = list(columns)
        self.schema = arrow_schema(self.columns, metadata)
        self.what = what
        self.rows_in = 0
        self.rows_out = 0
        self._row_group_rows = row_group_rows
        self._row_group_bytes = row_group_bytes
        self._batch_rows = min(batch_rows, row_group_rows)
        self._lists: list[list] = [[] for _ in self.columns]
        self._batches: list[pa.RecordBatch] = []
        self._group_rows = 0
        self._group_bytes = 0
        self._decimals = any(t.lower().removesuffix("_array") == "numeric" for _, t in self.columns)
        # Columns kept as JSON text: the exact path cuts their text out of the line as written (RawJSON).
        self._raw = {n: t.lower().endswith("_array") for n, t in self.columns if holds_json_text(t)}
        self._decoder = json.JSONDecoder(parse_float=Decimal if self._decimals else None, parse_constant=_non_finite)
        # "native" (pyarrow's JSON reader, RE2; see native.py) or "exact" (Python)
        self.path = EXACT if engine == EXACT else day_path(self.columns)
        self._native = NativeChunks(self.columns, self.schema) if self.path == NATIVE else None
        # On the exact path, JSON text columns are cut out of the lines by RE2 too, where it can (no arrays
        # of JSON text); lines it cannot cut are walked in Python (`_raw_row`).
        self._cutter = None
        if self.path == EXACT and self._raw and not any(self._raw.values()):
            self._cutter = NativeChunks(self.columns, self.schema)
        self.native_rows = 0
        self.exact_rows = 0
        # Native days encode and upload a row group in a thread while the next chunk is converted.
        self._write_pool = ThreadPoolExecutor(1, "parquet-write") if self._native is not None else None
        self._writing: Future | None = None
        self._writer = pq.ParquetWriter(
            sink, self.schema, compression=compression, store_schema=True, dictionary_pagesize_limit=DICTIONARY_BYTES
        )

    def add_object(self, chunks: Iterable[bytes], where: str) -> int:
        """Convert one staged NDJSON object (its inflated bytes); the number of lines it held."""
        if self._native is not None:
            try:
                return self._add_object_natively(chunks, where)
            except BaseException:
                self._finish_writing(quietly=True)  # the sink is not touched once this returns
                raise
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
            body = data[:end]
            exact = self._decimals or _LONG_DIGITS.search(body) is not None
            texts = self._cutter.cut_texts(data, end + 1) if self._cutter is not None else None
            lines = self._add_lines(body.split(b"\n"), where, lines, exact, texts)
            self._group_bytes += end
            if self._group_bytes >= self._row_group_bytes:
                self._end_row_group()
        if rest:
            raise VerificationError(f"the last line of {where} is not terminated: the object is truncated")
        self._end_row_group()
        self.rows_in += lines
        return lines

    def _add_object_natively(self, chunks: Iterable[bytes], where: str) -> int:
        """The native path: chunks of whole lines through NativeChunks; a chunk it refuses takes the exact path."""
        lines, pieces, size = 0, [], 0
        for chunk in _prefetch(chunks):
            if not chunk:
                continue
            pieces.append(chunk)
            size += len(chunk)
            if size >= NATIVE_CHUNK:
                data = b"".join(pieces)
                end = data.rfind(b"\n") + 1
                if end:
                    lines = self._convert_natively(data, end, where, lines)
                    data = data[end:]
                pieces, size = ([data], len(data)) if data else ([], 0)
        if pieces:
            data = b"".join(pieces)
            if not data.endswith(b"\n"):
                raise VerificationError(f"the last line of {where} is not terminated: the object is truncated")
            lines = self._convert_natively(data, len(data), where, lines)
        self._end_row_group()
        self.rows_in += lines
        return lines

    def _convert_natively(self, data: bytes, end: int, where: str, seen: int) -> int:
        """Lines data[:end] (ending in a newline)."""
        assert self._native is not None
        try:
            batch = self._native.convert(data, end)
        except NotNative:
            number = self._add_lines(data[: end - 1].split(b"\n"), where, seen, True)
            self.exact_rows += number - seen
            self._to_arrow()
        else:
            number = seen + batch.num_rows
            self.native_rows += batch.num_rows
            while batch.num_rows:
                part = batch.slice(0, self._row_group_rows - self._group_rows)
                batch = batch.slice(part.num_rows)
                self._batches.append(part)
                self._group_rows += part.num_rows
                if self._group_rows >= self._row_group_rows:
                    self._end_row_group()
        self._group_bytes += end
        if self._group_bytes >= self._row_group_bytes:
            self._end_row_group()
        return number

    def _add_lines(
        self, lines: list[bytes], where: str, seen: int, exact: bool, texts: dict[str, list] | None = None
    ) -> int:
        """`texts`: the JSON text columns' texts of these lines, cut out by `NativeChunks.cut_texts`."""
        pairs = list(zip([name for name, _ in self.columns], [v.append for v in self._lists], strict=True))
        loads = (_decimal_loads if self._decimals else _exact_loads) if exact else orjson.loads
        raw = bool(self._raw) and texts is None
        cut = list(texts.items()) if texts else []
        number = seen
        row: Any
        for index, line in enumerate(lines):
            number += 1
            if raw:  # JSON text columns: their text as written, the other values as the json module reads them
                try:
                    row = _raw_row(line.decode(), self._decoder, self._raw)
                except ValueError as exc:
                    raise PermanentError(
                        f"{self.what}: line {number} of {where} is not a JSON object ({exc})"
                    ) from None
            else:
                try:
                    row = loads(line)
                except ValueError:
                    row = _fallback_loads(line, self.what, where, number)  # NaN, Infinity: orjson refuses them
                if cut and type(row) is dict:
                    for name, values in cut:
                        text = values[index]
                        row[name] = None if text is None else RawJSON(text)
            if type(row) is not dict:
                raise PermanentError(f"{self.what}: line {number} of {where} is not a JSON object")
            for name, append in pairs:
                append(row.pop(name, None))
            if row:
                raise PermanentError(
                    f"{self.what}: column(s) {sorted(row)[:5]} in {where} are not among the columns read when "
                    "the run started (added to the table meanwhile?); re-run the day to export them too"
                )
            if len(self._lists[0]) >= self._batch_rows:
                self._to_arrow()
                if self._group_rows >= self._row_group_rows:
                    self._end_row_group()
        return number

    def _to_arrow(self) -> None:
        """The rows collected so far as one Arrow record batch (the Python objects are let go)."""
        if not self._lists or not self._lists[0]:
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
        self._batches.append(batch)
        self._group_rows += batch.num_rows
        for values in self._lists:
            values.clear()  # in place: _add_lines holds their append methods

    def _end_row_group(self) -> None:
        self._to_arrow()
        if self._batches:
            table = pa.Table.from_batches(self._batches, schema=self.schema)
            if self._write_pool is None:
                self._writer.write_table(table, row_group_size=max(table.num_rows, 1))
            else:
                self._finish_writing()
                self._writing = self._write_pool.submit(
                    self._writer.write_table, table, row_group_size=max(table.num_rows, 1)
                )
            self.rows_out += table.num_rows
        self._batches, self._group_rows, self._group_bytes = [], 0, 0

    def _finish_writing(self, quietly: bool = False) -> None:
        writing, self._writing = self._writing, None
        if writing is not None:
            try:
                writing.result()
            except Exception:
                if not quietly:
                    raise

    def close(self) -> int:
        """Finish the file (its footer); the rows written."""
        self._end_row_group()
        self._finish_writing()
        if self._write_pool is not None:
            self._write_pool.shutdown()
        if self.path == EXACT:
            self.exact_rows = self.rows_in
        conversion = {"path": self.path, "native_rows": self.native_rows, "exact_rows": self.exact_rows}
        self._writer.add_key_value_metadata({CONVERSION_KEY: json.dumps(conversion, sort_keys=True)})
        self._writer.close()
        return self.rows_out


_LONG_DIGITS = re.compile(rb"\d{20}")


def _skip(text: str, idx: int) -> int:
    """The index of the first character at or after `idx` that is not JSON whitespace."""
    while idx < len(text) and text[idx] in " \t\n\r":
        idx += 1
    return idx


_scanstring = json.decoder.scanstring  # type: ignore[attr-defined]


def _raw_row(text: str, decoder: json.JSONDecoder, raw: dict[str, bool]) -> dict:
    """One line's row: the columns in `raw` (name → is an array) as RawJSON, the others parsed by `decoder`."""
    idx = _skip(text, 0)
    if text[idx : idx + 1] != "{":
        raise ValueError("not an object")
    idx = _skip(text, idx + 1)
    row: dict = {}
    if text[idx : idx + 1] == "}":
        idx += 1
    else:
        while True:
            if text[idx : idx + 1] != '"':
                raise ValueError(f"expected a key at {idx}")
            key, idx = _scanstring(text, idx + 1)
            idx = _skip(text, idx)
            if text[idx : idx + 1] != ":":
                raise ValueError(f"expected ':' at {idx}")
            idx = _skip(text, idx + 1)
            if key in raw:
                row[key], idx = _raw_value(text, idx, decoder, raw[key])
            else:
                row[key], idx = decoder.raw_decode(text, idx)
            idx = _skip(text, idx)
            separator = text[idx : idx + 1]
            idx = _skip(text, idx + 1)
            if separator == "}":
                break
            if separator != ",":
                raise ValueError(f"expected ',' or '}}' at {idx}")
    if _skip(text, idx) != len(text):
        raise ValueError("extra data after the object")
    return row


def _raw_value(text: str, idx: int, decoder: json.JSONDecoder, array: bool) -> tuple[object, int]:
    if array and text[idx : idx + 1] == "[":
        items: list[object] = []
        idx = _skip(text, idx + 1)
        if text[idx : idx + 1] == "]":
            return items, idx + 1
        while True:
            item, idx = _raw_value(text, idx, decoder, False)
            items.append(item)
            idx = _skip(text, idx)
            separator = text[idx : idx + 1]
            idx = _skip(text, idx + 1)
            if separator == "]":
                return items, idx
            if separator != ",":
                raise ValueError(f"expected ',' or ']' at {idx}")
    value, end = decoder.raw_decode(text, idx)
    if value is None or array:  # null; or not an array where one belongs (to_arrow names it)
        return value, end
    return RawJSON(text[idx:end]), end


def _prefetch(chunks: Iterable[bytes], depth: int = 2) -> Iterator[bytes]:
    """`chunks`, read (downloaded, inflated) in a thread of its own while the caller converts."""
    pieces: queue.Queue = queue.Queue(depth)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        iterator = iter(chunks)
        try:
            for chunk in iterator:
                while not stop.is_set():
                    try:
                        pieces.put(chunk, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            pieces.put(done)
        except BaseException as exc:  # handed to the caller
            pieces.put(exc)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="ndjson-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = pieces.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def _non_finite(name: str) -> NonFinite:
    return NonFinite(name)


def _exact_loads(line: bytes) -> object:
    return json.loads(line, parse_constant=_non_finite)


def _decimal_loads(line: bytes) -> object:
    return json.loads(line, parse_float=Decimal, parse_constant=_non_finite)


def _fallback_loads(line: bytes, what: str, where: str, number: int) -> object:
    try:
        return _exact_loads(line)
    except ValueError as exc:
        raise PermanentError(f"{what}: line {number} of {where} is not a JSON object ({exc})") from None


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
