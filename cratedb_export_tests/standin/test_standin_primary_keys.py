"""Primary keys in the stand-in against what a real CrateDB answered.

Every expected value below was observed on a real CrateDB 6.4.3 (single node, SeaweedFS as S3) today,
2026-12-05, with the same statements and files; only the node's id and name differ. Where CrateDB's
answer depends on its shard routing (the order of a duplicate error's ``line_numbers``), the
comparison says so. Assertions marked "stand-in only" check a refusal of the double, not CrateDB.
"""

from __future__ import annotations

from typing import Any

from cratedb_export_testbed.seaweedfs import SeaweedS3
from cratedb_export_testbed.standin import CrateDouble

from cratedb_export_tests.standin.talk import COLUMNS, http, reader, sql, target

DUPLICATE = "A document with the same primary key exists already"
NULL_KEY = "A primary key value must not be NULL"
DUPLICATE_ERROR = {"message": f"DuplicateKeyException[{DUPLICATE}]", "code": 4091}
OK = {"cols": [], "col_types": [], "rows": [[]], "rowcount": 1}


def answer(double: CrateDouble, stmt: str, args: list[Any] | None = None, bulk: list[list[Any]] | None = None) -> Any:
    """(status, reply without duration) of one /_sql?types request."""
    body: dict[str, Any] = {"stmt": stmt}
    if args is not None:
        body["args"] = args
    if bulk is not None:
        body["bulk_args"] = bulk
    status, _, reply = http(double, body, path="/_sql?types")
    reply.pop("duration", None)
    return status, reply


def rowcount(count: int) -> dict[str, Any]:
    return {"cols": [], "col_types": [], "rows": [[]], "rowcount": count}


def parse_error(text: str) -> tuple[int, dict[str, Any]]:
    return 400, {"error": {"message": f"SQLParseException[{text}]", "code": 4000}}


def test_create_table_with_primary_keys(double: CrateDouble, table: str) -> None:
    assert answer(double, f"CREATE TABLE {table} (id BIGINT PRIMARY KEY, name TEXT) CLUSTERED INTO 2 SHARDS") == (
        200,
        OK,
    )
    assert answer(double, f"CREATE TABLE {table}_c (a TEXT, b INTEGER, v DOUBLE, PRIMARY KEY (a, b))") == (200, OK)
    nullable = (
        'SELECT "column_name", "ordinal_position", "is_nullable", "data_type" FROM "information_schema"."columns" '
        'WHERE "table_schema" = ? AND "table_name" = ? ORDER BY "ordinal_position"'
    )
    # The key's columns are NOT NULL in information_schema.columns.
    assert sql(double, nullable, ["doc", table]) == [["id", 1, "NO", "bigint"], ["name", 2, "YES", "text"]]
    assert sql(double, nullable, ["doc", f"{table}_c"]) == [
        ["a", 1, "NO", "text"],
        ["b", 2, "NO", "integer"],
        ["v", 3, "YES", "double precision"],
    ]
    assert sql(double, COLUMNS, ["doc", f"{table}_c"]) == [["a", "text"], ["b", "integer"], ["v", "double precision"]]
    # Key columns of every scalar type the double models are accepted.
    for number, column_type in enumerate(
        ("DOUBLE", "REAL", "BOOLEAN", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP WITHOUT TIME ZONE", "INTEGER", "TEXT")
    ):
        assert answer(double, f"CREATE TABLE {table}_t{number} (k {column_type} PRIMARY KEY)") == (200, OK)
        assert answer(double, f"DROP TABLE {table}_t{number}") == (200, OK)
    # A column constraint and PRIMARY KEY (...) together make one composite key.
    assert answer(double, f"CREATE TABLE {table}_m (id BIGINT PRIMARY KEY, x TEXT, PRIMARY KEY (x))") == (200, OK)
    assert sql(double, nullable, ["doc", f"{table}_m"]) == [["id", 1, "NO", "bigint"], ["x", 2, "NO", "text"]]


def test_create_table_refusals_of_primary_keys(double: CrateDouble, table: str) -> None:
    assert answer(double, f"CREATE TABLE {table} (k OBJECT PRIMARY KEY)") == (
        400,
        {"error": {"message": 'UnsupportedFeatureException[Cannot use columns of type "object" as primary key]',
                   "code": 4004}},
    )  # fmt: skip
    assert answer(double, f"CREATE TABLE {table} (k ARRAY(TEXT) PRIMARY KEY)") == (
        400,
        {"error": {"message": "UnsupportedFeatureException[Cannot use column \"k\" with type \"text_array\" as "
                              "primary key]", "code": 4004}},
    )  # fmt: skip
    twice = parse_error("Columns `id` appears twice in primary key constraint")
    assert answer(double, f"CREATE TABLE {table} (id BIGINT PRIMARY KEY, PRIMARY KEY (id))") == twice
    assert answer(double, f"CREATE TABLE {table} (id BIGINT, PRIMARY KEY (id, id))") == twice
    assert answer(double, f"CREATE TABLE {table} (id BIGINT, PRIMARY KEY (nope))") == (
        404,
        {"error": {"message": "ColumnUnknownException[Column nope unknown]", "code": 4043}},
    )
    assert answer(
        double,
        f"CREATE TABLE {table} (id BIGINT PRIMARY KEY, ts TIMESTAMP WITH TIME ZONE, "
        "m TIMESTAMP AS date_trunc('month', ts)) PARTITIONED BY (m)",
    ) == parse_error("Cannot use non primary key column 'm' in PARTITIONED BY clause if primary key is set on table")
    # Nothing was created by the refused statements; a partition column that is part of the key is fine.
    assert answer(
        double,
        f"CREATE TABLE {table} (id BIGINT, ts TIMESTAMP WITH TIME ZONE, m TIMESTAMP AS date_trunc('month', ts), "
        "PRIMARY KEY (id, m)) PARTITIONED BY (m)",
    ) == (200, OK)


def test_insert_of_a_taken_key(double: CrateDouble, table: str) -> None:
    sql(double, f"CREATE TABLE {table} (id BIGINT PRIMARY KEY, name TEXT) CLUSTERED INTO 2 SHARDS")
    assert answer(double, f"INSERT INTO {table} (id, name) VALUES (1, 'a')") == (200, OK)
    # One VALUES row: DuplicateKeyException, 4091, HTTP 409 (literals, parameters, and after the cast).
    assert answer(double, f"INSERT INTO {table} (id, name) VALUES (1, 'b')") == (409, {"error": DUPLICATE_ERROR})
    assert answer(double, f"INSERT INTO {table} (id, name) VALUES (?, ?)", [1, "b"]) == (
        409,
        {"error": DUPLICATE_ERROR},
    )
    assert answer(double, f"INSERT INTO {table} (id, name) VALUES ('1', 'a')") == (409, {"error": DUPLICATE_ERROR})
    # Several VALUES rows: a taken key (also one taken by an earlier row) is skipped; rowcount = rows inserted.
    assert answer(double, f"INSERT INTO {table} (id, name) VALUES (2, 'a'), (2, 'b')") == (200, rowcount(1))
    assert answer(double, f"INSERT INTO {table} (id, name) VALUES (3, 'a'), (1, 'b')") == (200, rowcount(1))
    assert answer(double, f"INSERT INTO {table} (id, name) VALUES (1, 'a'), (2, 'b')") == (200, rowcount(0))
    assert answer(double, f"INSERT INTO {table} (id, name) VALUES ('50', 'a')") == (200, OK)
    assert answer(double, f"INSERT INTO {table} (id, name) VALUES (?, 'a')", ["51"]) == (200, OK)
    sql(double, f"REFRESH TABLE {table}")
    assert sql(double, f"SELECT id, name FROM {table} ORDER BY id") == [
        [1, "a"], [2, "a"], [3, "a"], [50, "a"], [51, "a"],
    ]  # fmt: skip
    # A deleted row's key is free again.
    assert answer(double, f"DELETE FROM {table} WHERE id = 1") == (200, rowcount(1))
    assert answer(double, f"INSERT INTO {table} (id, name) VALUES (1, 'again')") == (200, OK)
    sql(double, f"REFRESH TABLE {table}")
    assert sql(double, f"SELECT name FROM {table} WHERE id = 1") == [["again"]]


def test_insert_of_a_null_or_missing_key(double: CrateDouble, table: str) -> None:
    sql(double, f"CREATE TABLE {table} (id BIGINT PRIMARY KEY, name TEXT)")
    sql(double, f"CREATE TABLE {table}_c (a TEXT, b INTEGER, v DOUBLE, PRIMARY KEY (a, b))")
    null_key = parse_error(NULL_KEY)
    assert answer(double, f"INSERT INTO {table} (id, name) VALUES (NULL, 'n')") == null_key
    assert answer(double, f"INSERT INTO {table} (id, name) VALUES (?, 'n')", [None]) == null_key
    # Any row's NULL key fails the whole statement: nothing is inserted.
    assert answer(double, f"INSERT INTO {table} (id, name) VALUES (40, 'a'), (NULL, 'b')") == null_key
    # Casts of every row come first.
    cast = parse_error("Cannot cast `'abc'` of type `text` to type `bigint`")
    assert answer(double, f"INSERT INTO {table} (id, name) VALUES ('abc', 'x'), (NULL, 'y')") == cast
    assert answer(double, f"INSERT INTO {table} (id, name) VALUES (NULL, 'x'), ('abc', 'y')") == cast
    assert answer(double, f"INSERT INTO {table} (id, nope) VALUES (NULL, 'x')") == (
        404,
        {"error": {"message": "ColumnUnknownException[Column nope unknown]", "code": 4043}},
    )
    # A key column left out: backticks for a one-column key, double quotes for a composite one.
    assert answer(double, f"INSERT INTO {table} (name) VALUES ('n')") == parse_error(
        "Column `id` is required but is missing from the insert statement"
    )
    assert answer(double, f"INSERT INTO {table}_c (a, b, v) VALUES ('x', NULL, 2.0)") == null_key
    assert answer(double, f"INSERT INTO {table}_c (a, v) VALUES ('x', 2.0)") == parse_error(
        'Column "b" is required but is missing from the insert statement'
    )
    assert answer(double, f"INSERT INTO {table}_c (v) VALUES (1.0)") == parse_error(
        'Column "a" is required but is missing from the insert statement'
    )
    assert answer(double, f"INSERT INTO {table}_c VALUES ('x', 1, 1.0)") == (200, OK)
    assert answer(double, f"INSERT INTO {table}_c (a, b, v) VALUES ('x', 1, 2.0)") == (409, {"error": DUPLICATE_ERROR})
    assert answer(double, f"INSERT INTO {table}_c (a, b, v) VALUES ('x', 2, 2.0)") == (200, OK)
    sql(double, f"REFRESH TABLE {table}")
    sql(double, f"REFRESH TABLE {table}_c")
    assert sql(double, f"SELECT count(*) FROM {table}") == [[0]]
    assert sql(double, f"SELECT a, b, v FROM {table}_c ORDER BY b") == [["x", 1, 1.0], ["x", 2, 2.0]]


def test_bulk_insert_into_a_table_with_a_primary_key(double: CrateDouble, table: str) -> None:
    sql(double, f"CREATE TABLE {table} (id BIGINT PRIMARY KEY, name TEXT) CLUSTERED INTO 2 SHARDS")
    sql(double, f"INSERT INTO {table} (id, name) VALUES (1, 'a')")
    insert = f"INSERT INTO {table} (id, name) VALUES (?, ?)"
    duplicate = {"rowcount": -2, "error": {"code": 4091, "message": f"DuplicateKeyException[{DUPLICATE}]"}}
    # A taken key is that row's result; the bulk reply has no col_types even with ?types.
    assert answer(double, insert, bulk=[[10, "x"], [1, "dup"], [11, "y"], [10, "again"]]) == (
        200,
        {"cols": [], "results": [{"rowcount": 1}, duplicate, {"rowcount": 1}, duplicate]},
    )
    # A NULL key or a failed cast in any row fails the whole request, and nothing is inserted.
    assert answer(double, insert, bulk=[[20, "x"], [None, "n"]]) == parse_error(NULL_KEY)
    assert answer(double, insert, bulk=[[None, "n"], [21, "x"]]) == parse_error(NULL_KEY)
    assert answer(double, insert, bulk=[[60, "x"], ["abc", "dup"], [61, "y"]]) == parse_error(
        "Cannot cast value `abc` to type `bigint`"
    )
    # Several VALUES rows per bulk row: rowcount is their number.
    assert answer(double, f"INSERT INTO {table} (id, name) VALUES (?, ?), (?, ?)", bulk=[[62, "x", 63, "y"]]) == (
        200,
        {"cols": [], "results": [{"rowcount": 2}]},
    )
    sql(double, f"REFRESH TABLE {table}")
    assert sql(double, f"SELECT id, name FROM {table} ORDER BY id") == [
        [1, "a"], [10, "x"], [11, "y"], [62, "x"], [63, "y"],
    ]  # fmt: skip
    # Stand-in only: with a duplicate among several VALUES rows CrateDB answered -1 or -2 with the
    # DuplicateKeyException (observed: -2 when the last row failed, else -1); the double refuses that.
    status, reply = answer(double, f"INSERT INTO {table} (id, name) VALUES (?, ?), (?, ?)", bulk=[[64, "x", 1, "y"]])
    assert (status, reply["error"]["code"]) == (400, 4004)
    assert "the CrateDB test double does not support" in reply["error"]["message"]


def test_system_columns_are_refused(double: CrateDouble, table: str) -> None:
    """Stand-in only: CrateDB answered ``_id`` "1" for key 1 and "AgF4ATE=" for the composite key ('x', 1);
    the double does not model ``_id`` and refuses it rather than calling it unknown."""
    sql(double, f"CREATE TABLE {table} (id BIGINT PRIMARY KEY, name TEXT)")
    status, reply = answer(double, f"SELECT _id, id FROM {table}")
    assert (status, reply["error"]["code"]) == (400, 4004)
    assert "the system column _id" in reply["error"]["message"]


FROM = "COPY {table} FROM ? WITH (protocol = 'http'{extra}) RETURN SUMMARY"


def put(seaweed: SeaweedS3, bucket: str, key: str, body: str) -> None:
    reader(seaweed).put_object(Bucket=bucket, Key=key, Body=body.encode())


def summary(double: CrateDouble, table: str, uri: str, extra: str = "") -> list[Any]:
    """The one summary row without its node column; a duplicate error's line numbers sorted (CrateDB
    reports them per shard: [3, 1] was observed for lines 1 and 3)."""
    status, reply = answer(double, FROM.format(table=table, extra=extra), [uri])
    assert status == 200, reply
    assert reply["cols"] == ["node", "uri", "success_count", "error_count", "errors"]
    assert reply["col_types"] == [12, 4, 10, 10, 12]
    [[node, *row]] = reply["rows"]
    assert node == {"id": double.node_info["id"], "name": double.node_info["name"]}
    if DUPLICATE in row[3]:
        row[3][DUPLICATE]["line_numbers"].sort()
    return row


F1 = (
    '{"id": 1, "name": "new1"}\n{"id": 3, "name": "n3"}\n{"id": 3, "name": "n3b"}\n{"id": null, "name": "nul"}\n'
    '{"name": "missing"}\n{"id": 2, "name": "new2"}\n{"id": "4", "name": "n4"}\n{"id": "x", "name": "bad"}\n'
)


def test_copy_from_into_a_table_with_a_primary_key(
    double: CrateDouble, seaweed: SeaweedS3, bucket: str, table: str
) -> None:
    sql(double, f"CREATE TABLE {table} (id BIGINT PRIMARY KEY, name TEXT)")
    sql(double, f"INSERT INTO {table} (id, name) VALUES (1, 'old1'), (2, 'old2')")
    put(seaweed, bucket, "pk/f1.json", F1)
    uri = target(seaweed, bucket, "pk/f1.json")
    # Taken keys (rows already there, or an earlier line of the file) are errors; so are NULL or missing keys.
    assert summary(double, table, uri) == [f"s3://{bucket}/pk/f1.json", 2, 6, {
        'For input string: "x"': {"count": 1, "line_numbers": [8]},
        NULL_KEY: {"count": 2, "line_numbers": [4, 5]},
        DUPLICATE: {"count": 3, "line_numbers": [1, 3, 6]},
    }]  # fmt: skip
    sql(double, f"REFRESH TABLE {table}")
    assert sql(double, f"SELECT id, name FROM {table} ORDER BY id") == [
        [1, "old1"], [2, "old2"], [3, "n3"], [4, "n4"],
    ]  # fmt: skip
    # overwrite_duplicates = true: a taken key replaces the row (the last line wins) and counts as a success.
    assert summary(double, table, uri, ", overwrite_duplicates = true") == [f"s3://{bucket}/pk/f1.json", 5, 3, {
        'For input string: "x"': {"count": 1, "line_numbers": [8]},
        NULL_KEY: {"count": 2, "line_numbers": [4, 5]},
    }]  # fmt: skip
    sql(double, f"REFRESH TABLE {table}")
    assert sql(double, f"SELECT id, name FROM {table} ORDER BY id") == [
        [1, "new1"], [2, "new2"], [3, "n3b"], [4, "n4"],
    ]  # fmt: skip
    # Without RETURN SUMMARY: the rows inserted (0: every key is taken) or written over.
    assert answer(double, f"COPY {table} FROM ? WITH (protocol = 'http')", [uri]) == (200, rowcount(0))
    assert answer(double, f"COPY {table} FROM ? WITH (protocol = 'http', overwrite_duplicates = true)", [uri]) == (
        200,
        rowcount(5),
    )
    assert answer(double, FROM.format(table=table, extra=", overwrite_duplicates = 'yes'"), [uri]) == parse_error(
        "Failed to parse value [yes] as only [true] or [false] are allowed."
    )


def test_copy_from_into_a_table_with_a_composite_key(
    double: CrateDouble, seaweed: SeaweedS3, bucket: str, table: str
) -> None:
    sql(double, f"CREATE TABLE {table} (a TEXT, b INTEGER, v DOUBLE, PRIMARY KEY (a, b))")
    sql(double, f"INSERT INTO {table} (a, b, v) VALUES ('x', 1, 1.0)")
    body = (
        '{"a": "x", "b": 1, "v": 9.0}\n{"a": "x", "b": 2, "v": 2.0}\n{"a": "x", "b": 2, "v": 3.0}\n'
        '{"a": "x", "v": 4.0}\n{"a": null, "b": 3, "v": 5.0}\n{"a": "y", "b": "1", "v": 6.0}\n'
        '{"a": 7, "b": 1, "v": 7.0}\n'
    )
    put(seaweed, bucket, "pk/f2.json", body)
    uri = target(seaweed, bucket, "pk/f2.json")
    assert summary(double, table, uri) == [f"s3://{bucket}/pk/f2.json", 3, 4, {
        NULL_KEY: {"count": 2, "line_numbers": [4, 5]},
        DUPLICATE: {"count": 2, "line_numbers": [1, 3]},
    }]  # fmt: skip
    sql(double, f"REFRESH TABLE {table}")
    assert sql(double, f"SELECT a, b, v FROM {table} ORDER BY a, b") == [
        ["7", 1, 7.0], ["x", 1, 1.0], ["x", 2, 2.0], ["y", 1, 6.0],
    ]  # fmt: skip
    assert summary(double, table, uri, ", overwrite_duplicates = true") == [f"s3://{bucket}/pk/f2.json", 5, 2, {
        NULL_KEY: {"count": 2, "line_numbers": [4, 5]},
    }]  # fmt: skip
    sql(double, f"REFRESH TABLE {table}")
    assert sql(double, f"SELECT a, b, v FROM {table} ORDER BY a, b") == [
        ["7", 1, 7.0], ["x", 1, 9.0], ["x", 2, 3.0], ["y", 1, 6.0],
    ]  # fmt: skip


def test_copy_from_converts_key_values_before_the_casts(
    double: CrateDouble, seaweed: SeaweedS3, bucket: str, table: str
) -> None:
    """Key values get other messages than the same values in a column outside the key (last table)."""
    sql(double, f"CREATE TABLE {table} (id BIGINT PRIMARY KEY, name TEXT) CLUSTERED INTO 1 SHARDS")
    sql(double, f"CREATE TABLE {table}_c (a TEXT, b INTEGER, PRIMARY KEY (a, b)) CLUSTERED INTO 1 SHARDS")
    sql(double, f"CREATE TABLE {table}_n (id BIGINT, name TEXT) CLUSTERED INTO 1 SHARDS")
    put(seaweed, bucket, "pk/g1.json", '{"id": 1.5}\n{"id": true}\n{"id": "1.5"}\n{"id": "y", "name": 5}\n'
        '{"id": [1]}\n{"id": {"a": 1}}\n{"id": 9, "name": "a"}\n{"id": 9, "name": "b"}\n{"id": 8}\n{"id": 8}\n'
        '{"id": 7, "nope": 1}\n')  # fmt: skip
    uri = target(seaweed, bucket, "pk/g1.json")
    assert summary(double, table, uri) == [f"s3://{bucket}/pk/g1.json", 3, 8, {
        "Can't cast 'true' to bigint": {"count": 1, "line_numbers": [2]},
        'For input string: "1.5"': {"count": 1, "line_numbers": [3]},
        'For input string: "y"': {"count": 1, "line_numbers": [4]},
        "Can't cast '[1]' to bigint": {"count": 1, "line_numbers": [5]},
        "Column nope unknown": {"count": 1, "line_numbers": [11]},
        NULL_KEY: {"count": 1, "line_numbers": [6]},
        DUPLICATE: {"count": 2, "line_numbers": [8, 10]},
    }]  # fmt: skip
    sql(double, f"REFRESH TABLE {table}")
    assert sql(double, f"SELECT id, name FROM {table} ORDER BY id") == [[1, None], [8, None], [9, "a"]]
    assert summary(double, f"{table}_n", uri) == [f"s3://{bucket}/pk/g1.json", 5, 6, {
        "Cannot cast value `true` to type `bigint`": {"count": 1, "line_numbers": [2]},
        "Cannot cast value `y` to type `bigint`": {"count": 1, "line_numbers": [4]},
        "Cannot cast value `1.5` to type `bigint`": {"count": 1, "line_numbers": [3]},
        "Column nope unknown": {"count": 1, "line_numbers": [11]},
        "Cannot cast value `[1]` to type `bigint`": {"count": 1, "line_numbers": [5]},
        "Cannot cast value `{a=1}` to type `bigint`": {"count": 1, "line_numbers": [6]},
    }]  # fmt: skip
    put(seaweed, bucket, "pk/g2.json", '{"a": "x", "b": "z"}\n{"a": "x", "b": 1.5}\n{"a": {"k": 1}, "b": 1}\n'
        '{"a": "q", "b": 2}\n{"a": "q", "b": 2}\n{"a": "p", "b": 3}\n{"a": "p", "b": 3}\n')  # fmt: skip
    assert summary(double, f"{table}_c", target(seaweed, bucket, "pk/g2.json")) == [
        f"s3://{bucket}/pk/g2.json", 3, 4, {
            'For input string: "z"': {"count": 1, "line_numbers": [1]},
            NULL_KEY: {"count": 1, "line_numbers": [3]},
            DUPLICATE: {"count": 2, "line_numbers": [5, 7]},
        },
    ]  # fmt: skip
    sql(double, f"REFRESH TABLE {table}_c")
    assert sql(double, f"SELECT a, b FROM {table}_c ORDER BY a") == [["p", 3], ["q", 2], ["x", 1]]
