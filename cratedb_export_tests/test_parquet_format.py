"""The conversion core of `format: parquet`, without CrateDB or S3: the type mapping, the streaming
NDJSON → Parquet writer, values that cannot be represented, and bounded row groups."""

from __future__ import annotations

import gzip
import io
import json
import math
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cratedb_export.core.errors import PermanentError, VerificationError
from cratedb_export.core.formats import column_schema
from cratedb_export.core.formats.parquet import ParquetDayWriter, footer
from cratedb_export.core.formats.typemap import arrow_type
from cratedb_export.core.storage import _gunzip

# information_schema.columns of a table with one column of each kind, and a row as COPY TO wrote it —
# both verbatim from CrateDB 6.4.3 (the partition column "p" comes as a string, as CrateDB writes it).
COLUMNS = [
    ("i", "integer"), ("s", "smallint"), ("b", "bigint"), ("c", "byte"), ("r", "real"), ("d", "double precision"),
    ("t", "text"), ("v", "text"), ("bo", "boolean"), ("tz", "timestamp with time zone"),
    ("ntz", "timestamp without time zone"), ("o", "object"), ("ta", "text_array"), ("ia", "integer_array"),
    ("oa", "object_array"), ("gp", "geo_point"), ("ip", "ip"), ("n", "numeric"), ("fv", "float_vector"),
    ("bt", "bit"), ("gs", "geo_shape"), ("p", "timestamp with time zone"),
]  # fmt: skip
ROW = (
    b'{"b":9223372036854775806,"c":3,"d":2.2,"tz":1704103200123,"ip":"10.0.0.1","gp":[9.5,50.1],"i":1,'
    b'"gs":{"coordinates":[1.0,2.0],"type":"Point"},"ta":["a","b"],"bo":true,"n":12.34,'
    b'"o":{"a":1,"b":{"c":"z"},"f":1.5},"fv":[1.5,2.5],"p":"1704067200000","oa":[{"k":1}],"r":1.1,'
    b'"bt":"B\'1010\'","s":2,"t":"x","ntz":1704103200123,"v":"y","ia":[1,null]}\n'
)
NULL_ROW = b'{"p":null}\n'  # CrateDB leaves out the columns that are null, but the partition column


def _convert(columns, *objects: bytes, **options) -> pa.Table:
    sink = io.BytesIO()
    writer = ParquetDayWriter(columns, sink, what="doc.t 2024-01-01", **options)
    for number, data in enumerate(objects):
        writer.add_object(iter([data]), where=f"object {number}")
    assert writer.close() == writer.rows_in
    sink.seek(0)
    return pq.read_table(sink)


def test_each_cratedb_type_has_its_parquet_type():
    expected = {
        "byte": pa.int8(), "smallint": pa.int16(), "integer": pa.int32(), "bigint": pa.int64(),
        "real": pa.float32(), "double precision": pa.float64(), "boolean": pa.bool_(), "text": pa.string(),
        "timestamp with time zone": pa.timestamp("ms", tz="UTC"), "timestamp without time zone": pa.timestamp("ms"),
        "text_array": pa.list_(pa.string()), "integer_array": pa.list_(pa.int32()),
        "object": pa.string(), "object_array": pa.list_(pa.string()), "geo_point": pa.list_(pa.float64()),
        "float_vector": pa.list_(pa.float32()), "ip": pa.string(), "numeric": pa.string(), "bit": pa.string(),
        "geo_shape": pa.string(), "interval": pa.string(),
    }  # fmt: skip
    assert {t: arrow_type(t) for t in expected} == expected
    assert column_schema([("tz", "timestamp with time zone")], "parquet") == [
        {"name": "tz", "data_type": "timestamp with time zone", "parquet_type": "timestamp[ms, tz=UTC]"}
    ]


def test_a_row_of_every_type_converts_exactly():
    table = _convert(COLUMNS, gzip.decompress(gzip.compress(ROW + NULL_ROW)))
    assert table.schema.field("o").metadata == {b"cratedb_type": b"object", b"encoding": b"json"}
    first, second = table.to_pylist()
    moment = datetime(2024, 1, 1, 10, 0, 0, 123000)
    assert first == {
        "i": 1, "s": 2, "b": 9223372036854775806, "c": 3, "r": pytest.approx(1.1, rel=1e-7), "d": 2.2,
        "t": "x", "v": "y", "bo": True, "tz": moment.replace(tzinfo=UTC), "ntz": moment,
        "o": '{"a":1,"b":{"c":"z"},"f":1.5}', "ta": ["a", "b"], "ia": [1, None], "oa": ['{"k":1}'],
        "gp": [9.5, 50.1], "ip": "10.0.0.1", "n": "12.34", "fv": [1.5, 2.5], "bt": "B'1010'",
        "gs": '{"coordinates":[1.0,2.0],"type":"Point"}', "p": datetime(2024, 1, 1, tzinfo=UTC),
    }  # fmt: skip
    assert pa.array([first["r"]], pa.float32()).to_pylist() == pa.array([1.1], pa.float32()).to_pylist()
    assert all(value is None for value in second.values())
    assert json.loads(first["o"]) == {"a": 1, "b": {"c": "z"}, "f": 1.5}
    assert str(table.schema.field("tz").type) == "timestamp[ms, tz=UTC]"


def test_numeric_keeps_every_digit():
    table = _convert([("n", "numeric")], b'{"n":12345678901234567890.123456789}\n{"n":7}\n')
    assert table.column("n").to_pylist() == ["12345678901234567890.123456789", "7"]


@pytest.mark.parametrize(
    ("column", "line", "reason"),
    [
        (("i", "integer"), b'{"i":2147483648}', "not in range"),
        (("i", "integer"), b'{"i":1.5}', "truncated"),
        (("b", "bigint"), b'{"b":"x"}', "cannot be int64"),
        (("r", "real"), b'{"r":1e300}', "beyond the range of real"),
        (("t", "text"), b'{"t":5}', "expected text"),
        (("bo", "boolean"), b'{"bo":1}', "expected booleans"),
        (("ta", "text_array"), b'{"ta":"a"}', "expected JSON arrays"),
        (("o", "object"), b'{"o":{"x":NaN}}', "no JSON text"),
    ],
)
def test_a_value_that_cannot_be_represented_fails_the_day_naming_table_day_and_column(column, line, reason):
    with pytest.raises(PermanentError) as failure:
        _convert([("ok", "integer"), column], b'{"ok":1}\n' + line + b"\n")
    message = str(failure.value)
    assert message.startswith(f"doc.t 2024-01-01: column {column[0]!r} ({column[1]}):"), message
    assert reason in message


def test_a_column_the_run_did_not_read_fails_rather_than_being_dropped():
    with pytest.raises(PermanentError, match=r"column\(s\) \['added'\] in object 0 are not among the columns"):
        _convert([("a", "integer")], b'{"a":1,"added":2}\n')


def test_truncated_or_broken_objects_fail():
    with pytest.raises(VerificationError, match="not terminated"):
        _convert([("a", "integer")], b'{"a":1}\n{"a":')
    with pytest.raises(PermanentError, match="line 2 of object 0 is not a JSON object"):
        _convert([("a", "integer")], b'{"a":1}\n{"a"\n')
    with pytest.raises(VerificationError, match="truncated gzip"):
        list(_gunzip([gzip.compress(b'{"a":1}\n' * 1000)[:-20]], "x.json.gz"))


def test_row_groups_are_bounded_and_objects_never_share_one():
    lines = b"".join(b'{"a":%d,"t":"%s"}\n' % (n, b"x" * 50) for n in range(1000))
    sink = io.BytesIO()
    writer = ParquetDayWriter([("a", "bigint"), ("t", "text")], sink, what="doc.t d", row_group_rows=300)
    # Pieces that split lines anywhere, as S3 and gzip hand them over.
    writer.add_object((lines[i : i + 777] for i in range(0, len(lines), 777)), where="first")
    writer.add_object(iter([b'{"a":-1}\n']), where="second")
    assert writer.close() == 1001
    meta = pq.ParquetFile(io.BytesIO(sink.getvalue())).metadata
    assert meta.num_rows == 1001
    assert max(meta.row_group(i).num_rows for i in range(meta.num_row_groups)) <= 300 + 60
    assert meta.row_group(meta.num_row_groups - 1).num_rows == 1  # the second object's own group
    assert pq.read_table(io.BytesIO(sink.getvalue())).column("a").to_pylist() == [*range(1000), -1]


def test_an_empty_day_is_a_parquet_file_with_the_schema_and_no_rows():
    table = _convert([("a", "bigint"), ("o", "object")], b"")
    assert table.num_rows == 0 and table.schema.names == ["a", "o"]


def test_the_footer_is_read_with_ranged_reads():
    sink = io.BytesIO()
    pq.write_table(pa.table({"a": list(range(10_000))}), sink)
    data = sink.getvalue()
    reads = []

    def read_range(start: int, end: int) -> bytes:
        reads.append((start, end))
        return data[start:end]

    assert footer(len(data), read_range).num_rows == 10_000
    assert len(reads) == 2 and all(end - start < 4096 for start, end in reads)
    with pytest.raises(VerificationError, match="not a complete Parquet file"):
        footer(len(data) - 1, read_range)


def test_values_orjson_would_change_are_parsed_exactly_or_refused():
    # orjson reads integers beyond 64 bits as doubles and writes NaN as null: such input takes the json path.
    table = _convert([("o", "object"), ("d", "double precision")], b'{"o":{"big":123456789012345678901234}}\n')
    assert table.column("o").to_pylist() == ['{"big":123456789012345678901234}']
    assert math.isnan(_convert([("d", "double precision")], b'{"d":NaN}\n').column("d").to_pylist()[0])
    with pytest.raises(PermanentError, match=r"column 'o' \(object\): .*has no JSON text"):
        _convert([("o", "object")], b'{"o":{"x":Infinity}}\n')


def test_distinct_values_are_not_stored_as_a_dictionary_and_repeated_ones_are():
    """A column of distinct timestamps costs about what it costs written plain, where Arrow's default limit
    would store it as a dictionary plus an index per row; a column of a few hosts keeps its dictionary."""
    columns = [("ts", "timestamp with time zone"), ("host", "text")]
    lines = b"".join(b'{"ts":%d,"host":"host-%d"}\n' % (1718409600000 + n * 1317, n % 50) for n in range(65_536))
    sink = io.BytesIO()
    writer = ParquetDayWriter(columns, sink, what="doc.t 2024-01-01")
    writer.add_object(iter([lines]), where="object 0")
    writer.close()
    table = pq.read_table(io.BytesIO(sink.getvalue()))

    def sizes(data: bytes) -> list[int]:
        group = pq.ParquetFile(io.BytesIO(data)).metadata.row_group(0)
        return [group.column(i).total_compressed_size for i in range(2)]

    def written(**options) -> bytes:
        out = io.BytesIO()
        pq.write_table(table, out, compression="zstd", row_group_size=65_536, **options)
        return out.getvalue()

    ours = sizes(sink.getvalue())
    plain, default = sizes(written(use_dictionary=False)), sizes(written())
    assert ours[0] <= plain[0] * 1.25 and ours[0] * 1.5 <= default[0], (ours, plain, default)
    assert ours[1] == default[1], (ours, default)
