"""The native conversion path (pyarrow's JSON reader, RE2) of `format: parquet`: which days take it, and the
values a native engine would change arriving exact in the Parquet file — or failing the day naming the
column — exactly as on the exact Python path."""

from __future__ import annotations

import io
import json
import math
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cratedb_export.core.errors import PermanentError
from cratedb_export.core.formats.native import column_paths, day_path
from cratedb_export.core.formats.parquet import CONVERSION_KEY, ParquetDayWriter

WHAT = "doc.t 2024-01-01"
TUTORIAL = [
    ("hash_id", "bigint"), ("timestamp", "timestamp with time zone"), ("name", "text"), ("tags", "object"),
    ("fields", "object"), ("month", "timestamp with time zone"),
]  # fmt: skip
TUTORIAL_ROW = (
    b'{"hash_id":2783377632526337,"timestamp":1718409600017,"name":"mem","tags":{"host":"host-261",'
    b'"region":"us-east-1","cpu":"cpu1"},"fields":{"usage_idle":57.61,"usage_user":27.60,"usage_iowait":0.030},'
    b'"month":"1711929600000"}\n'
)


def _write(columns, data: bytes, **options) -> tuple[pa.Table, dict]:
    sink = io.BytesIO()
    writer = ParquetDayWriter(columns, sink, what=WHAT, **options)
    writer.add_object(iter([data]), where="object 0")
    assert writer.close() == writer.rows_in
    parquet = pq.ParquetFile(io.BytesIO(sink.getvalue()))
    return parquet.read(), json.loads(parquet.metadata.metadata[CONVERSION_KEY.encode()])


def _both(columns, data: bytes) -> pa.Table:
    """The day converted natively and on the exact path: the same table, which is returned."""
    native, how = _write(columns, data)
    exact, exact_how = _write(columns, data, engine="exact")
    assert how["path"] == "native" and exact_how == {"path": "exact", "native_rows": 0, "exact_rows": exact.num_rows}
    assert native.schema.remove_metadata().equals(exact.schema.remove_metadata(), check_metadata=True)
    assert repr(native.to_pylist()) == repr(exact.to_pylist())  # repr: NaN equals NaN
    return native


def _fails(columns, data: bytes, column: str, *, engine: str = "auto") -> str:
    with pytest.raises(PermanentError) as failure:
        _write(columns, data, engine=engine)
    message = str(failure.value)
    assert message.startswith(f"{WHAT}: column {column!r} ("), message
    return message


def test_which_columns_and_days_take_the_native_path():
    assert column_paths(TUTORIAL) == {
        "hash_id": "native", "timestamp": "native", "name": "native", "tags": "json_text", "fields": "json_text",
        "month": "native",
    }  # fmt: skip
    assert day_path(TUTORIAL) == "native"
    assert day_path([("n", "numeric"), ("i", "integer")]) == "exact"
    assert day_path([("ia", "integer_array")]) == "exact"
    assert day_path([("gp", "geo_point")]) == "exact"


def test_a_tutorial_day_really_takes_the_native_path_and_says_so_in_the_file():
    table, how = _write(TUTORIAL, TUTORIAL_ROW * 3)
    assert how == {"path": "native", "native_rows": 3, "exact_rows": 0}
    assert table.to_pylist()[0] == {
        "hash_id": 2783377632526337, "timestamp": datetime(2024, 6, 15, 0, 0, 0, 17000, tzinfo=UTC), "name": "mem",
        "tags": '{"host":"host-261","region":"us-east-1","cpu":"cpu1"}',
        "fields": '{"usage_idle":57.61,"usage_user":27.60,"usage_iowait":0.030}',  # as written: 27.60, 0.030
        "month": datetime(2024, 4, 1, tzinfo=UTC),
    }  # fmt: skip
    _, exact = _write([*TUTORIAL, ("n", "numeric")], TUTORIAL_ROW)
    assert exact == {"path": "exact", "native_rows": 0, "exact_rows": 1}


def test_an_object_keeps_its_exact_json_text_on_both_paths():
    line = b'{"i":1,"o":{"a": 1.000000000000000000001, "b": 1.10}}\n'
    table = _both([("i", "integer"), ("o", "object")], line)
    assert table.column("o").to_pylist() == ['{"a": 1.000000000000000000001, "b": 1.10}']
    # A table with NUMERIC columns (the exact path): the same text.
    table, how = _write(
        [("n", "numeric"), ("o", "object")], b'{"n":1.10,"o":{"a": 1.000000000000000000001, "b": 1.10}}\n'
    )
    assert how["path"] == "exact"
    assert table.to_pylist() == [{"n": "1.10", "o": '{"a": 1.000000000000000000001, "b": 1.10}'}]


@pytest.mark.parametrize(
    "text",
    [
        '{"s":"a\\"}{,\\"o\\":[","t":"\\u00e9\\n"}',  # quotes, braces and the key inside strings; escapes kept
        '{"big":123456789012345678901234,"e":1.0E-5,"z":-0.0}',
        '{"o":{"o":1}}',  # the column's own key nested in it
        '{"a":{"b":{"c":{"d":{"e":{"f":[1,[2,[3]]]}}}}}}',  # deeper than the native extractor follows
        '[1,{"x":null}]',
        '"just text"',
    ],
)
def test_json_text_that_a_parser_would_rewrite_arrives_as_written(text):
    line = b'{"i":7,"o":%s}\n' % text.encode()
    table = _both([("i", "integer"), ("o", "object")], line * 2)
    assert table.column("o").to_pylist() == [text, text]


def test_lines_the_native_reader_would_read_differently_take_the_exact_path_for_their_chunk():
    lines = b'{"i":1,"o":{"a":1}}\n{ "i" : 2 , "o" : {"a":2} }\n'  # whitespace between the tokens
    table, how = _write([("i", "integer"), ("o", "object")], lines)
    assert how == {"path": "native", "native_rows": 0, "exact_rows": 2}
    assert table.to_pylist() == [{"i": 1, "o": '{"a":1}'}, {"i": 2, "o": '{"a":2}'}]


def test_bigint_near_2_63_is_exact_and_beyond_it_fails_naming_the_column():
    table = _both(
        [("b", "bigint")], b'{"b":9223372036854775807}\n{"b":-9223372036854775808}\n{"b":9223372036854775806}\n'
    )
    assert table.column("b").to_pylist() == [2**63 - 1, -(2**63), 2**63 - 2]
    _fails([("b", "bigint")], b'{"b":9223372036854775808}\n', "b")
    _fails([("i", "integer")], b'{"i":2147483648}\n', "i")
    _fails([("i", "integer")], b'{"i":1.5}\n', "i")


def test_a_double_keeps_nan_and_infinity_and_refuses_what_a_double_cannot_hold():
    table = _both([("d", "double precision")], b'{"d":NaN}\n{"d":Infinity}\n{"d":-Infinity}\n{"d":0.1}\n')
    values = table.column("d").to_pylist()
    assert math.isnan(values[0]) and values[1:] == [math.inf, -math.inf, 0.1]
    # 2^53 + 1 has no double: the exact path refuses it, where a JSON reader would round it silently.
    message = _fails([("d", "double precision")], b'{"d":9007199254740993}\n', "d")
    assert "9007199254740993" in message
    _fails([("r", "real")], b'{"r":1e300}\n', "r")


def test_nan_inside_an_object_fails_the_day_naming_the_column():
    message = _fails([("i", "integer"), ("o", "object")], b'{"i":1,"o":{"x":NaN}}\n', "o")
    assert "no JSON text" in message
    _fails([("i", "integer"), ("o", "object")], b'{"i":1,"o":{"x":[-Infinity]}}\n', "o")


def test_timestamps_as_epoch_milliseconds_and_as_partition_strings_are_exact():
    columns = [
        ("tz", "timestamp with time zone"),
        ("ntz", "timestamp without time zone"),
        ("p", "timestamp with time zone"),
    ]
    table = _both(columns, b'{"tz":1704103200123,"ntz":-1,"p":"1704067200000"}\n{"tz":253402300799999}\n')
    assert table.to_pylist() == [
        {"tz": datetime(2024, 1, 1, 10, 0, 0, 123000, tzinfo=UTC), "ntz": datetime(1969, 12, 31, 23, 59, 59, 999000),
         "p": datetime(2024, 1, 1, tzinfo=UTC)},
        {"tz": datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC), "ntz": None, "p": None},
    ]  # fmt: skip
    _fails([("tz", "timestamp with time zone")], b'{"tz":1704103200123.5}\n', "tz")
    _fails([("tz", "timestamp with time zone")], b'{"tz":"2024-01-01"}\n', "tz")


def test_text_and_booleans_of_another_kind_fail_as_on_the_exact_path():
    _fails([("t", "text")], b'{"t":5}\n', "t")
    _fails([("bo", "boolean")], b'{"bo":1}\n', "bo")
    table = _both([("t", "text"), ("bo", "boolean")], b'{"t":"gr\xc3\xbc\\u00dfe \\"x\\"","bo":false}\n{"t":null}\n')
    assert table.to_pylist() == [{"t": 'grü\u00dfe "x"', "bo": False}, {"t": None, "bo": None}]


def test_an_unknown_column_or_a_blank_line_still_fails_the_native_day():
    with pytest.raises(PermanentError, match=r"column\(s\) \['added'\]"):
        _write([("a", "integer"), ("o", "object")], b'{"a":1,"o":{},"added":2}\n')
    with pytest.raises(PermanentError, match="line 2 of object 0 is not a JSON object"):
        _write([("a", "integer")], b'{"a":1}\n\n{"a":2}\n')


def test_native_row_groups_stay_bounded_across_chunks():
    lines = b"".join(b'{"a":%d,"o":{"n":%d}}\n' % (n, n) for n in range(1000))
    sink = io.BytesIO()
    writer = ParquetDayWriter([("a", "bigint"), ("o", "object")], sink, what=WHAT, row_group_rows=300)
    writer.add_object((lines[i : i + 777] for i in range(0, len(lines), 777)), where="first")
    assert writer.close() == 1000 and writer.native_rows == 1000
    meta = pq.ParquetFile(io.BytesIO(sink.getvalue())).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [300, 300, 300, 100]
    table = pq.read_table(io.BytesIO(sink.getvalue()))
    assert table.column("o").to_pylist() == [f'{{"n":{n}}}' for n in range(1000)]


def test_the_sign_of_an_integer_zero_in_a_double_column_is_as_on_the_exact_path():
    # -0 is the integer 0 (a JSON reader would make it -0.0); -0.0 is negative zero on both paths.
    table = _both([("d", "double precision")], b'{"d":-0}\n{"d":-0.0}\n{"d":0}\n')
    assert [math.copysign(1, v) for v in table.column("d").to_pylist()] == [1, -1, 1]


def test_a_day_of_json_text_only_is_still_checked_for_json_syntax():
    with pytest.raises(PermanentError, match="line 1 of object 0 is not a JSON object"):
        _write([("o", "object")], b'{"o":{"a":01}}\n')
    table, how = _write([("o", "object")], b'{"o":{"a":1}}\n{}\n')
    assert how == {"path": "native", "native_rows": 2, "exact_rows": 0}
    assert table.column("o").to_pylist() == ['{"a":1}', None]


def test_partition_columns_written_as_strings_and_names_with_punctuation_convert_natively():
    columns = [("year", "integer"), ("on", "boolean"), ("my-col.x", "object"), ("a b", "text")]
    lines = b'{"year":"2024","on":"true","my-col.x":{"k":1.50},"a b":"x"}\n{"year":"2025","my-col.x":null}\n'
    table, how = _write(columns, lines)
    assert how == {"path": "native", "native_rows": 2, "exact_rows": 0}
    assert table.to_pylist() == [
        {"year": 2024, "on": True, "my-col.x": '{"k":1.50}', "a b": "x"},
        {"year": 2025, "on": None, "my-col.x": None, "a b": None},
    ]
    assert table.equals(_write(columns, lines, engine="exact")[0].replace_schema_metadata(table.schema.metadata))


def test_a_wide_table_converts_natively():
    columns = [(f"column_{i}", "bigint") for i in range(300)] + [("o", "object")]
    line = ("{" + ",".join(f'"column_{i}":{i}' for i in range(300)) + ',"o":{"a":[1,2]}}\n').encode()
    table, how = _write(columns, line * 2)
    assert how["native_rows"] == 2
    assert table.column("column_299").to_pylist() == [299, 299] and table.column("o").to_pylist() == ['{"a":[1,2]}'] * 2
