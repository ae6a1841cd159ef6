"""Native (C++) conversion of NDJSON lines: pyarrow's JSON reader for typed columns, RE2 for JSON text.

A day takes the native path when every column's CrateDB type is *native-safe* (`column_paths`):

- "native": integers, real/double, boolean, text/varchar/char, ip, bit, timestamps — read by
  `pyarrow.json.read_json` with an explicit schema (integers as int64, timestamps as int64 or as the string
  a partition column is written as), then brought to the column's type by the same safe casts as the exact
  path (`typemap._cast`).
- "json_text": object, geo_shape and the other non-array types kept as JSON text — the value's text is cut
  out of the line exactly as CrateDB wrote it (RE2, vectorized), never parsed and re-written.
- "exact": numeric, arrays, geo_point, float_vector: the day takes the exact Python path.

Every chunk of lines is checked before its values are trusted; anything the native reader would read
differently from the exact path — a line that is not compact JSON of the known columns, an unknown key,
a blank line, NaN/Infinity inside JSON text, nesting deeper than `_DEPTH`, an integer literal of 16+ digits
in a real/double column (a double cannot hold it exactly), a surrogate escape, a value of another JSON
kind — raises `NotNative`, and the writer converts that chunk with the exact path instead (which produces
the same values, or fails the day naming the column).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from cratedb_export.core.formats.typemap import Unrepresentable, _cast, arrow_type, holds_json_text

NATIVE, JSON_TEXT_PATH, EXACT = "native", "json_text", "exact"
_NATIVE_TYPES = {
    "byte", "char", "smallint", "short", "integer", "int", "bigint", "long", "real", "float",
    "double precision", "double", "boolean", "text", "character", "character varying", "varchar", "ip", "bit",
    "timestamp with time zone", "timestamp without time zone",
}  # fmt: skip
_DEPTH = 3  # levels of nesting inside a JSON text value the extractor follows; deeper: exact path
_STR = r'"(?:[^"\\]|\\.)*"'
_SURROGATE = re.compile(rb"\\u[dD][89abAB]")  # the exact path reads lone surrogates differently


def _memory_pool() -> pa.MemoryPool:
    """jemalloc where pyarrow has it: it hands freed memory back, where the default (mimalloc) keeps it in
    each thread's heap — measured here, the peak RSS of converting a day 60 MiB lower at the same speed."""
    try:
        return pa.jemalloc_memory_pool()
    except NotImplementedError:  # pragma: no cover - a pyarrow built without jemalloc
        return pa.default_memory_pool()


_MEMORY = _memory_pool()
_POOL = ThreadPoolExecutor(max_workers=3, thread_name_prefix="parquet-native")


class NotNative(Exception):
    """This chunk must take the exact path (the native reader might read a value differently)."""


def column_path(data_type: str) -> str:
    base = data_type.lower()
    if base in _NATIVE_TYPES:
        return NATIVE
    if holds_json_text(data_type) and not base.endswith("_array"):
        return JSON_TEXT_PATH
    return EXACT


def column_paths(columns: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Which path each column takes: "native", "json_text" (native, cut out as text) or "exact"."""
    return {name: column_path(data_type) for name, data_type in columns}


def day_path(columns: Sequence[tuple[str, str]]) -> str:
    """ "native" if every column is native-safe, else "exact" (the whole day takes the exact Python path)."""
    return EXACT if EXACT in column_paths(columns).values() or not columns else NATIVE


def _nested(depth: int, excluded: str) -> str:
    inner = rf'(?:[^"{{}}\[\]{excluded}]|{_STR})'
    for _ in range(depth):
        inner = rf'(?:[^"{{}}\[\]{excluded}]|{_STR}|\{{{inner}*\}}|\[{inner}*\])'
    return inner


def _key(name: str) -> str:
    return '"' + re.escape(name) + '"'


class NativeChunks:
    """Converts chunks of complete NDJSON lines of one day into record batches of `schema`."""

    def __init__(self, columns: Sequence[tuple[str, str]], schema: pa.Schema) -> None:
        if pa.default_memory_pool().backend_name != _MEMORY.backend_name:
            # The Parquet writer allocates from the process's default pool (it takes no other): with
            # mimalloc, the default, a native day's threads keep ~60 MiB more of freed memory. pyarrow is used
            # by this package's conversion only, and the pool changes nothing but where memory comes from.
            pa.set_memory_pool(_MEMORY)
        self.columns = list(columns)
        self.schema = schema
        paths = column_paths(columns)
        self._native = [(n, t) for n, t in columns if paths[n] == NATIVE]
        self._texts = [(n, t) for n, t in columns if paths[n] == JSON_TEXT_PATH]
        self._kinds = {n: self._first_kind(t) for n, t in self._native}
        self._names = {n for n, _ in columns}
        anything = _nested(_DEPTH, "")
        value = rf'(?:[^"{{}}\[\],]+|{_STR}|\{{{anything}*\}}|\[{anything}*\])'
        keys = "|".join(re.escape(n) for n, _ in columns)
        pair = rf'"(?:{keys})":{value}'
        # The whole line: compact JSON, an object of known columns only, balanced to _DEPTH.
        self._line = rf"^\{{(?:{pair}(?:,{pair})*)?\}}$"
        self._prefix = rf"^\{{(?:{pair},)*"  # complete top-level pairs before a key
        text = _nested(_DEPTH, "NI")  # NaN and Infinity have no JSON text: the exact path refuses them
        self._text_value = rf"(?P<v>\{{{text}*\}}|\[{text}*\]|{_STR}|null)(?:,|\}}$)"
        self._text_only = text
        self._scalar = rf'(?:[^"{{}}\[\],]+|{_STR})'
        self._value = value
        # A double cannot hold every integer of 16 digits (2^53 + 1), and -0 is the integer 0 to the exact
        # path but -0.0 to a JSON reader: such a literal in a real/double column takes the exact path.
        self._doubles = [
            rf"{_key(n)}:(?:-?\d{{16}}|-0[,}}])" for n, t in self._native if pa.types.is_floating(arrow_type(t))
        ]
        self._in_order: dict[tuple[str, ...], str] = {}

    @staticmethod
    def _first_kind(data_type: str) -> pa.DataType:
        target = arrow_type(data_type)
        if pa.types.is_integer(target) or pa.types.is_timestamp(target):
            return pa.int64()
        if pa.types.is_floating(target):
            return pa.float64()
        return target

    def convert(self, data: bytes, end: int | None = None) -> pa.RecordBatch:
        """The lines of data[:end] (each ending in a newline) as one record batch; NotNative if unsafe."""
        end = len(data) if end is None else end
        if data.find(b"\\u", 0, end) >= 0 and _SURROGATE.search(data, 0, end):
            raise NotNative("surrogate escapes")
        chunk = pa.py_buffer(data).slice(0, end)  # no copy
        lines = self._lines(data, end)
        rows = len(lines)
        first = self._probe(data)
        # The checks and columns are independent, and pyarrow's kernels release the GIL: on two cores,
        # they run side by side. The reader runs even without typed columns: it checks the JSON syntax.
        tasks = [_POOL.submit(self._read_native, chunk, rows, first)]
        if self._texts and all(key in self._names for key in first):
            # Lines whose keys come in the first line's order (as COPY writes a table's rows): one pass
            # checks every line and cuts out every JSON text column (else one pass per column); the longest
            # pass, so the lines are cut in two halves side by side.
            half = rows // 2
            parts = [lines.slice(0, half), lines.slice(half)] if half else [lines]
            cuts = [_POOL.submit(self._cut_in_order, part, tuple(first)) for part in parts]
        else:
            cuts = [_POOL.submit(self._check_lines, lines)]
            cuts += [_POOL.submit(self._cut_text, lines, name) for name, _ in self._texts]
        arrays: dict[str, pa.Array] = {}
        try:
            arrays.update(tasks[0].result())
            pieces = [cut.result() for cut in cuts]
        except pa.ArrowException as exc:  # e.g. a pattern too large for RE2 (a very wide table)
            raise NotNative(str(exc)) from None
        finally:
            for task in [*tasks, *cuts]:
                task.cancel()
        for name, _ in self._texts:
            found = [piece[name] for piece in pieces if name in piece]
            arrays[name] = found[0] if len(found) == 1 else pa.concat_arrays(found, memory_pool=_MEMORY)
        return pa.RecordBatch.from_arrays([arrays[n] for n, _ in self.columns], schema=self.schema)

    def cut_texts(self, data: bytes, end: int) -> dict[str, list] | None:
        """For the exact path: the JSON text columns' texts (str or None) of the lines data[:end], cut out as
        written; None where RE2 cannot cut them safely (the lines are then walked in Python)."""
        try:
            lines = self._lines(data, end)
            first = self._probe(data)
            if all(key in self._names for key in first):
                texts = self._cut_in_order(lines, tuple(first), doubles=False)
            else:
                self._check_lines(lines, doubles=False)
                texts = {name: self._cut_text(lines, name)[name] for name, _ in self._texts}
        except (NotNative, pa.ArrowException):
            return None
        return {name: texts[name].to_pylist() for name, _ in self._texts}

    @staticmethod
    def _lines(data: bytes, end: int) -> pa.Array:
        """data[:end] (lines each ending in a newline) as a string array of the lines, without the newlines."""
        chunk = pa.py_buffer(data).slice(0, end)  # no copy
        whole = pa.Array.from_buffers(pa.large_binary(), 1, [None, pa.array([0, end], pa.int64()).buffers()[1], chunk])
        lines = pc.split_pattern(whole, b"\n", memory_pool=_MEMORY)[0].values
        lines = lines.slice(0, len(lines) - 1)
        try:
            return lines.cast(pa.large_string(), memory_pool=_MEMORY)
        except pa.ArrowInvalid:
            raise NotNative("invalid UTF-8") from None

    def _check_lines(self, lines: pa.Array, doubles: bool = True) -> dict[str, pa.Array]:
        if not pc.all(pc.match_substring_regex(lines, self._line)).as_py():
            raise NotNative("a line is not compact JSON of the known columns")
        for pattern in self._doubles if doubles else ():
            if pc.any(pc.match_substring_regex(lines, pattern)).as_py():
                raise NotNative("a long integer literal in a floating point column")
        return {}

    def _cut_in_order(self, lines: pa.Array, order: tuple[str, ...], doubles: bool = True) -> dict[str, pa.Array]:
        pattern = self._in_order.get(order)
        if pattern is None:
            texts = {name for name, _ in self._texts}
            pairs = [
                rf"{_key(name)}:(?P<c{i}>\{{{self._text_only}*\}}|\[{self._text_only}*\]|{_STR}|null)"
                if name in texts
                else rf"{_key(name)}:{self._scalar}"  # typed columns: JSON reader refuses objects there
                for i, name in enumerate(order)
            ]
            pattern = self._in_order[order] = "^\\{" + ",".join(pairs) + "\\}$"
        found = pc.extract_regex(lines, pattern, memory_pool=_MEMORY)
        if not pc.all(pc.is_valid(found)).as_py():
            # Another order, another set of keys, or a value the pattern does not follow: per column.
            self._check_lines(lines, doubles)
            return {name: self._cut_text(lines, name)[name] for name, _ in self._texts}
        for pattern in self._doubles if doubles else ():
            if pc.any(pc.match_substring_regex(lines, pattern)).as_py():
                raise NotNative("a long integer literal in a floating point column")
        out = {}
        for name, data_type in self._texts:
            if name not in order:
                out[name] = pa.nulls(len(lines), arrow_type(data_type))
                continue
            cut = found.field(f"c{order.index(name)}")
            texts = pc.if_else(pc.equal(cut, "null"), pa.scalar(None, cut.type), cut, memory_pool=_MEMORY)
            out[name] = texts.cast(pa.string(), memory_pool=_MEMORY)
        return out

    def _read_native(self, chunk: bytes, rows: int, first: dict) -> dict[str, pa.Array]:
        kinds = {}
        for name, data_type in self._native:
            # Partition columns come as strings ("1711929600000" for a timestamp, "2024" for an integer): read
            # as the kind of JSON value the chunk's first line holds, then cast as on the exact path.
            value = first.get(name)
            if isinstance(value, str):
                self._kinds[name] = pa.string()
            elif value is not None:
                self._kinds[name] = self._first_kind(data_type)
            kinds[name] = self._kinds[name]
        options = pj.ParseOptions(explicit_schema=pa.schema(list(kinds.items())), unexpected_field_behavior="ignore")
        try:
            table = pj.read_json(
                pa.BufferReader(chunk),
                read_options=pj.ReadOptions(block_size=1 << 20),
                parse_options=options,
                memory_pool=_MEMORY,
            )
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise NotNative(str(exc)) from None
        if table.num_rows != rows:
            raise NotNative("blank lines")  # the reader skips them; the exact path refuses them
        out = {}
        for name, data_type in self._native:
            column = table.column(name).combine_chunks()
            try:
                out[name] = _cast(column, arrow_type(data_type), data_type, [])
            except Unrepresentable:
                raise NotNative(f"column {name}") from None
        return out

    @staticmethod
    def _probe(chunk: bytes) -> dict:
        import orjson

        try:
            row = orjson.loads(chunk[: chunk.index(b"\n")])
        except ValueError:
            return {}
        return row if isinstance(row, dict) else {}

    def _cut_text(self, lines: pa.Array, name: str) -> dict[str, pa.Array]:
        """The column's JSON text in each line, as written. A line holds `"name":` once at most, and where it
        does, at the top level (after complete pairs): so the first match of the key is the column's."""
        key = f'"{name}":'  # as COPY writes it; a key written otherwise fails the line check (_line)
        count = pc.count_substring(lines, key)
        if pc.max(count).as_py() > 1:
            raise NotNative(f"{key} occurs more than once in a line")
        present = pc.equal(count, 1)
        top_level = pc.match_substring_regex(lines, self._prefix + re.escape(key))
        if not pc.all(pc.equal(present, top_level)).as_py():
            raise NotNative(f"{key} is not a top-level key in a line")
        found = pc.extract_regex(lines, re.escape(key) + self._text_value, memory_pool=_MEMORY)
        if not pc.all(pc.equal(present, pc.is_valid(found))).as_py():
            raise NotNative(f"a value of {name} the extractor does not follow")
        cut = found.field("v")  # the struct's nulls (no key in the line) are not the field's
        null = pc.or_kleene(pc.invert(present), pc.equal(cut, "null"))
        texts = pc.if_else(null, pa.scalar(None, cut.type), cut, memory_pool=_MEMORY)
        return {name: texts.cast(pa.string(), memory_pool=_MEMORY)}
