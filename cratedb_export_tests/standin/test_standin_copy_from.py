"""COPY ... FROM ... [RETURN SUMMARY] of the stand-in against what a real CrateDB answered.

Every expected value below was observed on a real CrateDB 6.4.3 (single node, SeaweedFS as S3) on
2026-12-05, with the same statements and files; only the node's id and name differ.
"""

from __future__ import annotations

import gzip
from typing import Any

from cratedb_export_testbed.seaweedfs import SeaweedS3
from cratedb_export_testbed.standin import CrateDouble

from cratedb_export_tests.standin.talk import http, reader, sql, target

SUMMARY_COLS = ["node", "uri", "success_count", "error_count", "errors"]
SUMMARY_TYPES = [12, 4, 10, 10, 12]  # object, text, bigint, bigint, object (observed on 6.4.3)
FROM = "COPY {table} FROM ? WITH (protocol = 'http'{extra}) RETURN SUMMARY"


def put(seaweed: SeaweedS3, bucket: str, key: str, body: bytes) -> None:
    reader(seaweed).put_object(Bucket=bucket, Key=key, Body=body)


def answer(double: CrateDouble, stmt: str, args: list[Any]) -> tuple[int, dict[str, Any]]:
    status, _, reply = http(double, {"stmt": stmt, "args": args}, path="/_sql?types")
    reply.pop("duration", None)
    return status, reply


def summary(double: CrateDouble, table: str, uri: Any, extra: str = "") -> list[list[Any]]:
    """The summary rows without the node column, after checking the reply's shape."""
    status, reply = answer(double, FROM.format(table=table, extra=extra), [uri])
    assert status == 200, reply
    assert reply["cols"] == SUMMARY_COLS
    assert reply["col_types"] == SUMMARY_TYPES
    assert reply["rowcount"] == len(reply["rows"])
    node = {"id": double.node_info["id"], "name": double.node_info["name"]}
    for row in reply["rows"]:
        assert row[0] == node
    return sorted((row[1:] for row in reply["rows"]), key=lambda r: r[0])


def test_a_copy_to_export_comes_back_with_one_summary_row_per_object_with_lines(
    double: CrateDouble, seaweed: SeaweedS3, bucket: str, table: str
) -> None:
    sql(double, f"CREATE TABLE {table} (id BIGINT, ts TIMESTAMP WITH TIME ZONE, name TEXT, tags OBJECT(DYNAMIC), "
        "arr ARRAY(TEXT)) CLUSTERED INTO 2 SHARDS")  # fmt: skip
    for row in ([1, 1700000000000, "a", {"host": "h1", "n": 1}, ["x", "y"]], [2, 1700000001000, "b", None, None],
                [3, 1700000002000, "c", {}, []]):  # fmt: skip
        sql(double, f"INSERT INTO {table} VALUES (?, ?, ?, ?, ?)", row)
    sql(double, f"COPY {table} TO DIRECTORY ? WITH (protocol = 'http', compression = 'gzip')",
        [target(seaweed, bucket, "gz/")])  # fmt: skip
    sql(double, f"CREATE TABLE {table}_r (id BIGINT, ts TIMESTAMP WITH TIME ZONE, name TEXT, tags OBJECT(DYNAMIC), "
        "arr ARRAY(TEXT)) CLUSTERED INTO 2 SHARDS")  # fmt: skip
    keys = sorted(o["Key"] for o in reader(seaweed).list_objects_v2(Bucket=bucket)["Contents"])
    # One statement per object: the URI is shown as s3://<bucket>/<key>, without credentials or endpoint.
    rows = [summary(double, f"{table}_r", target(seaweed, bucket, key), ", compression = 'gzip'") for key in keys]
    # An object without lines (a shard that had no rows) gives no summary row at all (rows: [], rowcount 0).
    assert sum(r[0][1] for r in rows if r) == 3
    for key, row in zip(keys, rows, strict=True):
        assert row == [] or row == [[f"s3://{bucket}/{key}", row[0][1], 0, {}]]
    # A glob: matched objects are shown by their key only (no s3://<bucket>/), empty objects give no row.
    glob_rows = summary(double, f"{table}_r", target(seaweed, bucket, "gz/*.json.gz"), ", compression = 'gzip'")
    assert [r[0] for r in glob_rows] == [k for k, r in zip(keys, rows, strict=True) if r]
    sql(double, f"REFRESH TABLE {table}_r")
    # Each object was read twice (alone, then by the glob): no primary key, so every row is there twice.
    assert sql(double, f"SELECT id, ts, name, tags, arr FROM {table}_r ORDER BY id") == [
        [1, 1700000000000, "a", {"host": "h1", "n": 1}, ["x", "y"]],
        [1, 1700000000000, "a", {"host": "h1", "n": 1}, ["x", "y"]],
        [2, 1700000001000, "b", None, None],
        [2, 1700000001000, "b", None, None],
        [3, 1700000002000, "c", {}, []],
        [3, 1700000002000, "c", {}, []],
    ]


def test_lines_that_fail_are_counted_per_message_with_their_line_numbers(
    double: CrateDouble, seaweed: SeaweedS3, bucket: str, table: str
) -> None:
    sql(double, f"CREATE TABLE {table} (id BIGINT, name TEXT, n INTEGER, tags OBJECT(DYNAMIC), flag BOOLEAN, "
        "ts TIMESTAMP WITH TIME ZONE) CLUSTERED INTO 1 SHARDS")  # fmt: skip
    put(seaweed, bucket, "x/mixed.json", b'{"id":1,"name":"a"}\nnot json\n{"id":"abc","name":"b"}\n{"id":4,"zzz":1}\n'
        b'\n{"id":5,"n":99999999999}\n{"id":"6","n":"7","flag":"yes","ts":"2024-01-01T00:00:00Z"}\n'
        b'{"id":7,"tags":"str"}\n{"id":8,"name":{"a":1}}\n[1,2]\n{"id":9}')  # fmt: skip
    assert summary(double, table, target(seaweed, bucket, "x/mixed.json")) == [
        [f"s3://{bucket}/x/mixed.json", 5, 5, {
            "Cannot cast value `str` to type `object`": {"count": 1, "line_numbers": [8]},
            "Column zzz unknown": {"count": 1, "line_numbers": [4]},
            "Cannot cast value `abc` to type `bigint`": {"count": 1, "line_numbers": [3]},
            "Failed to parse content to map": {"count": 1, "line_numbers": [2]},
            "Cannot cast value `99999999999` to type `integer`": {"count": 1, "line_numbers": [6]},
        }],
    ]  # fmt: skip
    sql(double, f"REFRESH TABLE {table}")
    rows = sql(double, f"SELECT id, name, n, tags, flag, ts FROM {table} ORDER BY id")
    # CrateDB sorts NULL last; the stand-in's order of NULLs may differ, so compare as sets of tuples.
    assert sorted(map(repr, rows)) == sorted(map(repr, [
        [1, "a", None, None, None, None], [6, None, 7, None, True, 1704067200000],
        [8, '{"a":1}', None, None, None, None], [9, None, None, None, None, None],
        [None, None, None, None, None, None],
    ]))  # fmt: skip
    # Without RETURN SUMMARY: the number of rows inserted.
    stmt = f"COPY {table} FROM ? WITH (protocol = 'http')"
    assert answer(double, stmt, [target(seaweed, bucket, "x/mixed.json")]) == (
        200,
        {"cols": [], "col_types": [], "rows": [[]], "rowcount": 5},
    )


def test_odd_lines(double: CrateDouble, seaweed: SeaweedS3, bucket: str, table: str) -> None:
    sql(double, f"CREATE TABLE {table} (id BIGINT, name TEXT) CLUSTERED INTO 1 SHARDS")
    files = {
        "empty_line.json": (b'{"id":1}\n\n{"id":2}\n', 2, 0, {}),
        "array.json": (b"[1,2]\n", 1, 0, {}),
        "scalar.json": (b'5\n"str"\nnull\n{}\n', 4, 0, {}),
        "crlf.json": (b'{"id":3}\r\n  {"id":4}  \n', 2, 0, {}),
        "trunc.json": (
            b'{"id":5}\n{"id":6,"na',
            1,
            1,
            {"Failed to parse content to map": {"count": 1, "line_numbers": [2]}},
        ),
        "blank.json": (b"\n  \n", 1, 0, {}),
        "trail.json": (b'{"id":13} x\n{"id":14}{"id":15}\n', 2, 0, {}),
        "list.json": (b'{"id":16,"name":["a"]}\n{"id":17,"name":true}\n{"id":18,"name":1.5}\n', 2, 1,
                      {"Cannot cast value `[a]` to type `text`": {"count": 1, "line_numbers": [1]}}),
        # gzip is recognised by a .gz name; a gzip body under another name is read as text
        "gz.json.gz": (gzip.compress(b'{"id":10}\n'), 1, 0, {}),
        "gzip_named_plain.json": (gzip.compress(b'{"id":12}\n'), 0, 2,
                                  {"Failed to parse content to map": {"count": 2, "line_numbers": [1, 2]}}),
    }  # fmt: skip
    for name, (body, *_) in files.items():
        put(seaweed, bucket, f"y/{name}", body)
    for name, (_, ok, failed, errors) in files.items():
        expected = [[f"s3://{bucket}/y/{name}", ok, failed, errors]]
        if name == "gzip_named_plain.json":  # line splitting of binary data is not modelled byte for byte
            continue
        assert summary(double, table, target(seaweed, bucket, f"y/{name}")) == expected, name
    sql(double, f"REFRESH TABLE {table}")
    assert sql(double, f"SELECT id, name FROM {table} WHERE id > 11 ORDER BY id") == [
        [13, None],
        [14, None],
        [17, "t"],
        [18, "1.5"],
    ]


def test_uris_globs_and_lists(double: CrateDouble, seaweed: SeaweedS3, bucket: str, table: str) -> None:
    sql(double, f"CREATE TABLE {table} (id BIGINT) CLUSTERED INTO 1 SHARDS")
    put(seaweed, bucket, "z/plain.json", b'{"id":11}\n')
    put(seaweed, bucket, "z/empty.json", b"")
    plain = target(seaweed, bucket, "z/plain.json")
    assert summary(double, table, target(seaweed, bucket, "z/empty.json")) == []
    # An array of URIs (parameter); the same URI twice is one row with the counts added up.
    assert summary(double, table, [plain, plain]) == [[f"s3://{bucket}/z/plain.json", 2, 0, {}]]
    assert summary(double, table, target(seaweed, bucket, "z/p*")) == [["z/plain.json", 1, 0, {}]]
    no_match = [[f"s3://{bucket}/", None, None,
                 {f"Cannot find any URI matching: s3://{bucket}/": {"count": 1, "line_numbers": []}}]]  # fmt: skip
    assert summary(double, table, target(seaweed, bucket, "z/*.csv")) == no_match
    assert summary(double, table, target(seaweed, bucket, "nothere/*.json")) == no_match
    assert summary(double, table, target(seaweed, bucket, "*/*.json")) == no_match
    assert summary(double, table, plain, ", compression = 'gzip'") == [
        [f"s3://{bucket}/z/plain.json", None, None, {"Not in GZIP format": {"count": 1, "line_numbers": []}}]
    ]
    stmt = f"COPY {table} FROM ? WITH (protocol = 'http')"
    nothing = (200, {"cols": [], "col_types": [], "rows": [[]], "rowcount": 0})
    assert answer(double, stmt, [target(seaweed, bucket, "z/*.csv")]) == nothing
    gz = f"COPY {table} FROM ? WITH (protocol = 'http', compression = 'gzip')"
    assert answer(double, gz, [plain]) == nothing  # every URI failed: still a success, rowcount 0


def test_refusals(double: CrateDouble, seaweed: SeaweedS3, bucket: str, table: str) -> None:
    sql(double, f"CREATE TABLE {table} (id BIGINT) CLUSTERED INTO 1 SHARDS")
    uri = target(seaweed, bucket, "z/plain.json")
    stmt = FROM.format(table=table, extra="")

    def error(stmt: str, args: list[Any]) -> tuple[int, dict[str, Any]]:
        status, reply = answer(double, stmt, args)
        return status, reply["error"]

    def parse(text: str) -> tuple[int, dict[str, Any]]:
        return 400, {"message": f"SQLParseException[{text}]", "code": 4000}

    assert error(stmt, [5]) == parse("fileUri must be of type STRING or STRING ARRAY. Got integer")
    assert error(stmt, [None]) == parse("fileUri must be of type STRING or STRING ARRAY. Got undefined")
    assert error(stmt, [1.5]) == parse("fileUri must be of type STRING or STRING ARRAY. Got double precision")
    assert error(stmt, [[1]]) == parse("fileUri must be of type STRING or STRING ARRAY. Got integer_array")
    assert error(stmt, [[]]) == (
        500,
        {"message": "ArrayIndexOutOfBoundsException[Index 0 out of bounds for length 0]", "code": 5000},
    )
    with_options = f"COPY {table} FROM ? WITH (protocol = 'http', {{}}) RETURN SUMMARY"
    assert error(with_options.format("compression = 'GZIP'"), [uri]) == parse(
        "Unsupported setting value: GZIP. Supported values are: gzip"
    )
    assert error(f"COPY {table} FROM ? WITH (protocol = 'ftp') RETURN SUMMARY", [uri]) == parse(
        "invalid protocol `ftp`. Expected HTTP or HTTPS"
    )
    assert error(with_options.format("wait_for_completion = false"), [uri]) == (400, {
        "message": "UnsupportedFeatureException[Cannot use RETURN SUMMARY with wait_for_completion=false. "
        "Either set wait_for_completion=true, or remove RETURN SUMMARY]", "code": 4004,
    })  # fmt: skip
    assert error(FROM.format(table="doc.nope", extra=""), [uri]) == (
        404,
        {"message": "RelationUnknown[Relation 'doc.nope' unknown]", "code": 4041},
    )
    assert error(FROM.format(table="sys.nodes", extra=""), [uri]) == (400, {
        "message": "OperationOnInaccessibleRelationException[The relation \"sys.nodes\" doesn't support or allow "
        "INSERT operations]", "code": 4007,
    })  # fmt: skip
    bad = target(seaweed, bucket, "z/[pq]lain.json")
    assert error(stmt, [bad]) == parse(f"Illegal character in path at index {bad.index('[')}: {bad}")
    # Not modelled (CrateDB 6.4.3 accepts or answers them otherwise): refused loudly.
    for refused, args in [
        (with_options.format("shared = true"), [uri]),  # CrateDB ignores unknown options
        (with_options.format("format = 'csv'"), [uri]),
        (f"COPY {table} (id) FROM ? WITH (protocol = 'http') RETURN SUMMARY", [uri]),
        (f"COPY {table} FROM ? RETURN SUMMARY", [uri]),  # 6.4.3: OpenDALException[ConfigInvalid ... region is missing
        (stmt, ["s3://bkt/z/plain.json"]),
        (stmt, ["/tmp/x.json"]),  # 6.4.3: SQLParseException[Setting 'protocol' is not supported]
        (stmt, [target(seaweed, bucket, "z/plai?.json")]),
    ]:
        status, message = error(refused, args)
        assert (status, message["code"]) == (400, 4004), refused
        assert "the CrateDB test double does not support" in message["message"]


def test_s3_failures_read_as_opendal_errors(seaweed: SeaweedS3, bucket: str, table: str) -> None:
    with CrateDouble(version="6.4.3") as newer:
        http(newer, {"stmt": f"CREATE TABLE {table} (id BIGINT) CLUSTERED INTO 1 SHARDS"}, auth=None)
        stmt = FROM.format(table=table, extra="")
        missing = target(seaweed, bucket, "p1/nothere.json")
        status, _, reply = http(newer, {"stmt": stmt, "args": [missing]}, auth=None)
        message = reply["error"]["message"]
        assert (status, reply["error"]["code"]) == (500, 5000)
        assert message.startswith(
            "OpenDALException[Unexpected (permanent) at  => NotFound (permanent) at read, context: { uri: "
            f"http://{seaweed.endpoint}/{bucket}/p1/nothere.json, response: Parts {{ status: 404, version: HTTP/1.1, "
            "headers: {"
        )
        assert 'service: s3, path: p1/nothere.json, range: 0- } => S3Error { code: "NoSuchKey", message: ' in message
        assert f'"The specified key does not exist.", resource: "/{bucket}/p1/nothere.json", request_id: "' in message
        assert message.endswith(
            '" }\n\nBacktrace:\n   0: <unknown>\n   1: Java_org_apache_opendal_OperatorInputStream_readNextBytes\n\n]'
        )
        wrong = target(seaweed, bucket, "x/*.json", secret="wrong")
        status, _, reply = http(newer, {"stmt": stmt, "args": [wrong]}, auth=None)
        message = reply["error"]["message"]
        assert (status, reply["error"]["code"]) == (500, 5000)
        assert message.startswith(
            'OpenDALException[PermissionDenied (permanent) at list => S3Error { code: "SignatureDoesNotMatch", '
            'message: "The request signature we calculated does not match the signature you provided. Check your '
            f'key and signing method.", resource: "/{bucket}", request_id: "'
        )
        assert (
            f'" }}\n\nContext:\n   uri: http://{seaweed.endpoint}/{bucket}?delimiter=%2F&list-type=2&prefix=x%2F\n'
            "   response: Parts { status: 403, version: HTTP/1.1, headers: {" in message
        )
        assert message.endswith("} }\n   service: s3\n   path: x/\n   listed: 0\n]")


def test_dynamic_tables_learn_columns_and_partitioned_tables_compute_their_partition(
    double: CrateDouble, seaweed: SeaweedS3, bucket: str, table: str
) -> None:
    sql(double, f"CREATE TABLE {table} (id BIGINT, name TEXT, tags OBJECT(DYNAMIC)) CLUSTERED INTO 1 SHARDS "
        "WITH (column_policy = 'dynamic')")  # fmt: skip
    put(seaweed, bucket, "z/dyn.json", b'{"id":1,"extra":"e","num":2.5,"tags":{"new":1}}\n{"id":2,"extra":5}\n')
    assert summary(double, table, target(seaweed, bucket, "z/dyn.json")) == [[f"s3://{bucket}/z/dyn.json", 1, 1, {
        "Column `extra` already exists with type `text`. Cannot add same column with type `bigint`":
            {"count": 1, "line_numbers": [2]},
    }]]  # fmt: skip
    sql(double, f"REFRESH TABLE {table}")
    assert sql(double, f"SELECT id, name, tags, extra, num FROM {table} ORDER BY id") == [
        [1, None, {"new": 1}, "e", 2.5]
    ]
    strict = f"{table}_s"
    sql(double, f"CREATE TABLE {strict} (id BIGINT, name TEXT) CLUSTERED INTO 1 SHARDS")
    assert summary(double, strict, target(seaweed, bucket, "z/dyn.json")) == [[f"s3://{bucket}/z/dyn.json", 0, 2, {
        "Column extra unknown": {"count": 2, "line_numbers": [1, 2]},
    }]]  # fmt: skip
    parted = f"{table}_p"
    sql(double, f'CREATE TABLE {parted} ("hash_id" BIGINT, "timestamp" TIMESTAMP WITH TIME ZONE, "name" TEXT, '
        "\"month\" TIMESTAMP WITH TIME ZONE GENERATED ALWAYS AS date_trunc('quarter', \"timestamp\")) "
        'CLUSTERED INTO 2 SHARDS PARTITIONED BY ("month")')  # fmt: skip
    # What COPY TO wrote for a partitioned table: the partition value as a string inside each line.
    put(seaweed, bucket, "pt/a.json", b'{"name":"a","month":"1704067200000","hash_id":1,"timestamp":1707526800000}\n'
        b'{"hash_id":4,"timestamp":1707526800000,"month":1}\n')  # fmt: skip
    assert summary(double, parted, target(seaweed, bucket, "pt/a.json")) == [[f"s3://{bucket}/pt/a.json", 2, 0, {}]]
    sql(double, f"REFRESH TABLE {parted}")
    assert sql(double, f'SELECT "hash_id", "name", "month" FROM {parted} ORDER BY "hash_id"') == [
        [1, "a", 1704067200000],
        [4, None, 1704067200000],
    ]
