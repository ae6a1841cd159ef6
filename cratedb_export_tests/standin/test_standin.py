"""The CrateDB stand-in must answer like CrateDB: same protocol, same errors, same COPY TO objects.

Most tests talk to it through the real `crate` client; protocol details use raw HTTP. COPY tests
write to a real SeaweedFS S3 server that rejects wrong keys.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from crate import client as crate_client
from crate.client.exceptions import ConnectionError as CrateConnectionError
from crate.client.exceptions import ProgrammingError
from cratedb_export_testbed.seaweedfs import SeaweedS3
from cratedb_export_testbed.standin import CrateDouble
from cratedb_export_testbed.standin.s3 import parse_target
from cratedb_export_testbed.standin.tables import partition_ident

from cratedb_export_tests.standin.talk import (
    ACCESS_KEY,
    INSERT,
    PASSWORD,
    SECRET_KEY,
    USER,
    WINDOW_COPY,
    bulk,
    http,
    lines_of,
    ms,
    objects,
    reader,
    refusal,
    seed,
    sql,
    target,
    window_ids,
)

ROOT = Path(__file__).resolve().parents[2]


# -- fixtures and helpers ----------------------------------------------------------------------------


# -- HTTP protocol -----------------------------------------------------------------------------------


def test_root_reports_version_as_the_client_expects(double: CrateDouble) -> None:
    status, _, info = http(double, method="GET", path="/")
    assert status == 200 and info["version"]["number"] == "5.10.4" and info["name"]
    assert sql(double, "SELECT name, version['number'] FROM sys.nodes") == [[info["name"], "5.10.4"]]


def test_wrong_password_is_a_plain_text_401(double: CrateDouble) -> None:
    status, headers, body = http(double, {"stmt": "SELECT 1"}, auth=(USER, "wrong"))
    assert status == 401 and headers["Content-Type"].startswith("text/plain")
    assert "WWW-Authenticate" in headers and f'user "{USER}"' in body
    with pytest.raises(ProgrammingError, match="401 Client Error"):
        crate_client.connect(double.url, username=USER, password="wrong")


def test_trust_auth_without_users_is_user_crate() -> None:
    with CrateDouble() as trusting:
        status, _, reply = http(trusting, {"stmt": "SELECT 1"}, auth=None)
        assert status == 200 and reply["rows"] == [[1]]


def test_gzip_body_and_types(double: CrateDouble) -> None:
    body = gzip.compress(json.dumps({"stmt": "SELECT 1"}).encode())
    status, _, reply = http(double, body, path="/_sql?types=true", headers={"Content-Encoding": "gzip"})
    assert status == 200 and reply["cols"] == ["1"] and reply["col_types"] == [9] and reply["rowcount"] == 1
    assert isinstance(reply["duration"], float)


def test_args_and_bulk_args_together_are_refused(double: CrateDouble) -> None:
    status, _, reply = http(double, {"stmt": "SELECT ?", "args": [1], "bulk_args": [[1]]})
    assert (status, reply["error"]["code"]) == (400, 4000)
    assert reply["error"]["message"].startswith("SQLParseException[request body contains args and bulk_args")


def test_syntax_errors_are_refused_like_crate(double: CrateDouble) -> None:
    status, _, reply = http(double, {"stmt": "SELEC 1"})
    assert (status, reply["error"]["code"]) == (400, 4000)
    # CrateDB's ParsingException (code 4000); these three read as a real CrateDB 6.4.3 answered them.
    assert reply["error"]["message"].startswith("ParsingException[line 1:1: mismatched input 'SELEC'")
    assert (
        refusal(double, "COPY t TO DIRECTORY 'x' WITH (a = 1") == "ParsingException[line 1:36: missing ')' at '<EOF>']"
    )
    assert (
        refusal(double, "SELECT 1; SELECT 2")
        == "ParsingException[line 1:11: mismatched input 'SELECT' expecting <EOF>]"
    )


def test_valid_sql_passes_the_grammar(double: CrateDouble, table: str) -> None:
    seed(double, table)
    assert sql(double, f'SELECT count(*) FROM "doc"."{table}"') == [[24]]
    # Valid SQL the double does not model is refused as unsupported (4004), never as a syntax error.
    for stmt in (
        f"UPDATE {table} SET name = name || 'x'",  # only SET column = value is modelled
        f"ALTER TABLE {table} ADD COLUMN extra TEXT",
        f"SELECT name FROM {table} WHERE a = 1 OR b = 2",
    ):
        status, _, reply = http(double, {"stmt": stmt})
        assert (status, reply["error"]["code"]) == (400, 4004), stmt
        assert "CrateDB test double does not support" in reply["error"]["message"]


# -- tables, inserts, counts -------------------------------------------------------------------------


def test_create_insert_and_count_a_window(double: CrateDouble, table: str) -> None:
    seed(double, table)
    window = [ms("2024-02-10T00:00:00"), ms("2024-02-11T00:00:00")]
    where = 'WHERE "timestamp" >= ? AND "timestamp" < ?'
    assert sql(double, f"SELECT count(*) FROM {table} {where}", window) == [[8]]
    assert sql(double, f"SELECT count(*) FROM {table} {where}", ["2024-02-10", "2024-02-11T00:00:00Z"]) == [[8]]
    rows = sql(
        double,
        f"SELECT hash_id, \"timestamp\", month, tags['host'] FROM {table} {where} ORDER BY hash_id LIMIT 2",
        window,
    )
    assert rows == [
        [8, ms("2024-02-10T00:00:00"), ms("2024-01-01T00:00:00"), "h0"],
        [9, ms("2024-02-10T03:00:00"), ms("2024-01-01T00:00:00"), "h1"],
    ]


def test_grouped_counts_per_truncated_timestamp(double: CrateDouble, table: str) -> None:
    seed(double, table)
    window = [ms("2024-02-09T12:00:00"), ms("2024-02-11T00:00:00")]
    where = 'WHERE "timestamp" >= ? AND "timestamp" < ?'
    by_day = sql(
        double, f"SELECT date_trunc('day', \"timestamp\") AS d, count(*) FROM {table} {where} GROUP BY 1", window
    )
    assert sorted(by_day) == [[ms("2024-02-09T00:00:00"), 4], [ms("2024-02-10T00:00:00"), 8]]
    # Grouping by the expression itself works too; groups are not returned in time order.
    hour = "date_trunc('hour', \"timestamp\")"
    by_hour = sql(double, f"SELECT count(*), {hour} FROM {table} {where} GROUP BY {hour}", window)
    assert sorted(by_hour, key=lambda r: r[1]) == [[1, ms(f"2024-02-09T{h:02d}:00:00")] for h in (12, 15, 18, 21)] + [
        [1, ms(f"2024-02-10T{h:02d}:00:00")] for h in range(0, 24, 3)
    ]
    assert by_hour != sorted(by_hour, key=lambda r: r[1])
    not_grouped = refusal(double, f"SELECT date_trunc('hour', \"timestamp\"), name, count(*) FROM {table} GROUP BY 1")
    assert not_grouped == (
        "SQLParseException['name' must appear in the GROUP BY clause or be used in an aggregation function. "
        "Perhaps you grouped by an alias that clashes with a column in the relations]"
    )
    aggregate = refusal(double, f"SELECT count(*) FROM {table} GROUP BY 1")
    assert aggregate == "SQLParseException[Aggregate functions are not allowed in GROUP BY]"
    assert "test double does not support" in refusal(
        double, f"SELECT name, count(*) FROM {table} GROUP BY 1 HAVING count(*) > 1"
    )


def test_timestamps_cast_as_crate_does(double: CrateDouble, table: str) -> None:
    sql(double, f"CREATE TABLE {table} (id INTEGER, ts TIMESTAMP WITH TIME ZONE, local_ts TIMESTAMP WITHOUT TIME ZONE)")
    values = [(1, "2024-01-01T01:00:00+01:00"), (2, 1704067200000), (3, 1704067200.5), (4, "1704067200000")]
    for number, value in values:
        sql(double, f"INSERT INTO {table} (id, ts, local_ts) VALUES (?, ?, ?)", [number, value, value])
    rows = sql(double, f"SELECT id, ts, local_ts FROM {table} ORDER BY id")
    # Offsets count with time zone only; floats are seconds, as in CrateDB's TimestampType.
    assert rows == [[1, 1704067200000, 1704070800000], [2, 1704067200000, 1704067200000],
                    [3, 1704067200500, 1704067200500], [4, 1704067200000, 1704067200000]]  # fmt: skip
    # A parameter and a literal that do not cast fail differently (both as a real CrateDB 6.4.3 does).
    message = refusal(double, f"INSERT INTO {table} (id, ts) VALUES (?, ?)", [5, "bad"])
    assert message == "SQLParseException[Cannot cast value `bad` to type `timestamp with time zone`]"
    message = refusal(double, f"INSERT INTO {table} (id, ts) VALUES (5, 'bad')")
    assert message == "SQLParseException[Cannot cast `'bad'` of type `text` to type `timestamp with time zone`]"


def test_existing_table_is_a_409(double: CrateDouble, table: str) -> None:
    sql(double, f"CREATE TABLE {table} (a INTEGER)")
    status, _, reply = http(double, {"stmt": f"CREATE TABLE {table} (a INTEGER)"})
    assert (status, reply["error"]) == (
        409,
        {"message": f"RelationAlreadyExists[Relation 'doc.{table}' already exists.]", "code": 4093},
    )
    assert sql(double, f"CREATE TABLE IF NOT EXISTS {table} (a INTEGER)") == 0
    assert sql(double, f"DROP TABLE {table}") == 1 and sql(double, f"DROP TABLE IF EXISTS {table}") == 0


def test_unknown_relations_and_columns(double: CrateDouble, table: str) -> None:
    seed(double, table)
    status, _, reply = http(double, {"stmt": "SELECT count(*) FROM doc.nope"})
    assert (status, reply["error"]) == (404, {"message": "RelationUnknown[Relation 'doc.nope' unknown]", "code": 4041})
    # Unqualified, CrateDB names the relation as written (Schemas.findRelation).
    assert refusal(double, "COPY nope TO DIRECTORY 's3://h:1/b'") == "RelationUnknown[Relation 'nope' unknown]"
    assert (
        refusal(double, "SELECT count(*) FROM nosuchschema.t")
        == "SchemaUnknownException[Schema 'nosuchschema' unknown]"
    )
    status, _, reply = http(double, {"stmt": f"COPY {table} WHERE nope >= 1 TO DIRECTORY 's3://h:1/b'"})
    assert (status, reply["error"]) == (404, {"message": "ColumnUnknownException[Column nope unknown]", "code": 4043})
    message = refusal(double, f"COPY {table} (hash_id, tags['nope']) TO DIRECTORY 's3://h:1/b'")
    assert message == "ColumnUnknownException[Column tags['nope'] unknown]"
    # Tables are strict by default in CrateDB; dynamic ones learn new columns.
    assert refusal(double, f"INSERT INTO {table} (nope) VALUES (1)") == "ColumnUnknownException[Column nope unknown]"
    sql(double, f"CREATE TABLE {table}_dyn (a INTEGER) WITH (column_policy = 'dynamic')")
    sql(double, f"INSERT INTO {table}_dyn (a, b) VALUES (1, 'x')")
    assert sql(double, f"SELECT a, b FROM {table}_dyn") == [[1, "x"]]


def test_bulk_insert_reports_each_row(double: CrateDouble, table: str) -> None:
    sql(double, f"CREATE TABLE {table} (ts TIMESTAMP WITH TIME ZONE)")
    status, _, reply = http(double, {"stmt": f"INSERT INTO {table} (ts) VALUES (?)", "bulk_args": [[1], ["bad"], [2]]})
    assert status == 200 and [r["rowcount"] for r in reply["results"]] == [1, -2, 1]
    assert "Cannot cast" in reply["results"][1]["error_message"]


def test_delete_of_a_window_answers_the_rows_it_removed(double: CrateDouble, table: str) -> None:
    """As CrateDB 6.4.3 answered today: rowcount = rows deleted; an unknown table is RelationUnknown."""
    sql(double, f'CREATE TABLE "doc"."{table}" ("ts" TIMESTAMP WITH TIME ZONE, "v" INTEGER)')
    insert = f'INSERT INTO "doc"."{table}" ("ts", "v") VALUES (?, ?)'
    http(double, {"stmt": insert, "bulk_args": [[1704067200000, 1], [1704070800000, 2], [1704153600000, 3]]})
    window = f'DELETE FROM "doc"."{table}" WHERE "ts" >= ? AND "ts" < ?'
    assert sql(double, window, [1704067200000, 1704153600000]) == 2
    assert sql(double, f'SELECT "v" FROM "doc"."{table}"') == [[3]]
    assert "RelationUnknown[Relation 'doc.nosuch' unknown]" in refusal(double, 'DELETE FROM "doc"."nosuch"')


def test_delete_from_a_partitioned_table_counts_rows_unless_it_drops_partitions(
    double: CrateDouble, table: str
) -> None:
    """As CrateDB 6.4.3 answered today: a window on the timestamp answers the rows removed, even when it
    empties a whole partition; conditions on the partition column only drop partitions and answer -1."""
    sql(
        double,
        f'CREATE TABLE "doc"."{table}" ("ts" TIMESTAMP WITH TIME ZONE, "v" INTEGER, "month" TIMESTAMP WITH TIME ZONE '
        'GENERATED ALWAYS AS date_trunc(\'quarter\', "ts")) PARTITIONED BY ("month")',
    )
    insert = f'INSERT INTO "doc"."{table}" ("ts", "v") VALUES (?, ?)'
    rows = [[1704067200000, 1], [1704070800000, 2], [1704153600000, 3], [1719792000000, 4]]
    http(double, {"stmt": insert, "bulk_args": rows})
    window = f'DELETE FROM "doc"."{table}" WHERE "ts" >= ? AND "ts" < ?'
    assert sql(double, window, [1704067200000, 1704153600000]) == 2
    assert sql(double, window, [1719705600000, 1727740800000]) == 1  # the whole of Q3, still a count
    assert sql(double, f'SELECT "v" FROM "doc"."{table}" ORDER BY "v"') == [[3]]
    assert sql(double, f'DELETE FROM "doc"."{table}" WHERE "month" = ?', [1704067200000]) == -1
    assert sql(double, f'SELECT count(*) FROM "doc"."{table}"') == [[0]]


def test_jobs_log_keeps_statement_text_never_args(double: CrateDouble, table: str) -> None:
    sql(double, f"CREATE TABLE {table} (secret TEXT)")
    sql(double, f"INSERT INTO {table} (secret) VALUES (?)", ["hunter2-arg"])
    refusal(double, f"SELECT count(*) FROM {table} WHERE nope = ?", ["hunter2-arg"])
    assert not any("hunter2" in json.dumps(entry) for entry in double.jobs_log)
    last = sql(double, "SELECT stmt, error FROM sys.jobs_log ORDER BY ended DESC LIMIT 1")
    assert last == [[f"SELECT count(*) FROM {table} WHERE nope = ?", "Column nope unknown"]]
    assert set(double.jobs_log[-1]) == {
        "classification", "ended", "error", "id", "node", "session_id", "started", "stmt", "username",
    }  # fmt: skip


def test_identifiers_fold_and_parameters_bind(double: CrateDouble, table: str) -> None:
    mixed = f'"{table}_Mixed"'
    sql(double, f'CREATE TABLE {mixed} ("Ts" TIMESTAMP WITH TIME ZONE, plain INTEGER)')
    sql(double, f'INSERT INTO {mixed} ("Ts", PLAIN) VALUES ($2, $1)', [7, "2024-01-01"])
    where = 'WHERE "Ts" >= $1 AND plain = $2'
    status, _, reply = http(double, {"stmt": f"SELECT count(*) AS n FROM {mixed} {where}", "args": ["2024-01-01", 7]})
    assert (status, reply["cols"], reply["rows"]) == (200, ["n"], [[1]])
    assert refusal(double, f"SELECT count(*) FROM {mixed} WHERE Ts = 1") == "ColumnUnknownException[Column ts unknown]"
    assert refusal(double, f"SELECT count(*) FROM {table}_Mixed").startswith("RelationUnknown[")
    message = refusal(double, f'INSERT INTO {mixed} ("Ts", plain) VALUES ($1, $3)', [1, 2])
    assert message == (
        "SQLParseException[The query contains a parameter placeholder $3, but there are only 2 parameter values]"
    )


# -- COPY TO: objects and lines ----------------------------------------------------------------------


def test_copy_writes_one_object_per_shard_with_exactly_the_window(
    double: CrateDouble, seaweed: SeaweedS3, bucket: str, table: str
) -> None:
    seed(double, table)
    uri = target(seaweed, bucket, "day/2024-02-10")
    args = [ms("2024-02-10T00:00:00"), ms("2024-02-11T00:00:00"), uri]
    assert sql(double, WINDOW_COPY.format(name=table, options="protocol = 'http'"), args) == 8
    bodies = objects(seaweed, bucket)
    assert set(bodies) == {f"day/2024-02-10/{table}_{shard}_.json" for shard in range(3)}
    lines = lines_of(bodies)
    assert {line["hash_id"] for line in lines} == window_ids()
    assert all(b", " not in body and b'": ' not in body for body in bodies.values())  # compact JSON
    first = next(line for line in lines if line["hash_id"] == 8)
    # NULL columns are left out; timestamps and generated columns are epoch-ms numbers.
    assert first == {"hash_id": 8, "timestamp": ms("2024-02-10T00:00:00"), "name": "m8", "tags": {"host": "h0"},
                     "fields": {"v": 4.0}, "month": ms("2024-01-01T00:00:00")}  # fmt: skip
    assert next(line for line in lines if line["hash_id"] == 10)["tags"] == {"host": None}


def test_every_read_shard_gets_an_object_even_when_empty(
    double: CrateDouble, seaweed: SeaweedS3, bucket: str, table: str
) -> None:
    seed(double, table)
    empty = [ms("2030-01-01T00:00:00"), ms("2030-01-02T00:00:00")]
    options = "protocol = 'http'"
    assert sql(double, WINDOW_COPY.format(name=table, options=options), [*empty, target(seaweed, bucket, "a/")]) == 0
    options = "compression = 'gzip', protocol = 'http'"
    assert sql(double, WINDOW_COPY.format(name=table, options=options), [*empty, target(seaweed, bucket, "b")]) == 0
    bodies = objects(seaweed, bucket)
    assert {k: v for k, v in bodies.items() if k.startswith("a/")} == {f"a/{table}_{s}_.json": b"" for s in range(3)}
    gzipped = {k: v for k, v in bodies.items() if k.startswith("b/")}
    assert set(gzipped) == {f"b/{table}_{s}_.json.gz" for s in range(3)}
    assert all(gzip.decompress(body) == b"" for body in gzipped.values())


def test_gzip_objects_hold_the_window(double: CrateDouble, seaweed: SeaweedS3, bucket: str, table: str) -> None:
    seed(double, table)
    args = ["2024-02-10T00:00:00Z", "2024-02-11T00:00:00Z", target(seaweed, bucket, "gz")]
    options = "compression = 'gzip', protocol = 'http'"
    assert sql(double, WINDOW_COPY.format(name=table, options=options), args) == 8
    bodies = objects(seaweed, bucket)
    assert all(key.endswith(".json.gz") for key in bodies) and len(bodies) == 3
    assert {line["hash_id"] for line in lines_of(bodies)} == window_ids()


def test_column_lists_as_objects_and_arrays(double: CrateDouble, seaweed: SeaweedS3, bucket: str, table: str) -> None:
    seed(double, table)
    window = [ms("2024-02-10T00:00:00"), ms("2024-02-11T00:00:00")]
    columns = '("hash_id", "tags"[\'host\'], "timestamp")'
    copy = "COPY {t} " + columns + ' WHERE "timestamp" >= ? AND "timestamp" < ? TO DIRECTORY ? WITH ({o})'
    # Uncompressed, CrateDB writes the objects and then fails closing them a second time (see below).
    for options, where in (("format = 'json_object', protocol = 'http'", "obj"), ("protocol = 'http'", "arr")):
        closed_twice = refusal(double, copy.format(t=table, o=options), [*window, target(seaweed, bucket, where)])
        assert closed_twice.startswith("AmazonS3Exception[The specified multipart upload does not exist")
    as_objects = sorted(lines_of(objects(seaweed, bucket, "obj/")), key=lambda line: line["hash_id"])
    assert as_objects[:3] == [
        {"hash_id": 8, "tags['host']": "h0", "timestamp": ms("2024-02-10T00:00:00")},
        {"hash_id": 9, "tags['host']": "h1", "timestamp": ms("2024-02-10T03:00:00")},
        {"hash_id": 10, "tags['host']": None, "timestamp": ms("2024-02-10T06:00:00")},  # null with a column list
    ]
    arrays = sorted(lines_of(objects(seaweed, bucket, "arr/")))  # type: ignore[type-var]
    assert arrays[0] == [8, "h0", ms("2024-02-10T00:00:00")]


def test_partition_pruning_reads_only_matching_partitions(
    double: CrateDouble, seaweed: SeaweedS3, bucket: str, table: str
) -> None:
    seed(double, table, tail='CLUSTERED INTO 2 SHARDS PARTITIONED BY ("month")')
    bulk(double, INSERT.format(name=table), [[100, "2024-05-05T12:00:00Z", "q2", {}, {}]])
    q1, q2 = (partition_ident([str(ms(day))]) for day in ("2024-01-01T00:00:00", "2024-04-01T00:00:00"))
    assert q1 == "04732dpg6go3cdpi60o30c1g"
    args = [ms("2024-02-10T00:00:00"), ms("2024-02-11T00:00:00"), target(seaweed, bucket, "pruned")]
    assert sql(double, WINDOW_COPY.format(name=table, options="protocol = 'http'"), args) == 8
    pruned = objects(seaweed, bucket, "pruned/")
    assert set(pruned) == {f"pruned/{table}_{shard}_{q1}.json" for shard in range(2)}
    assert {line["month"] for line in lines_of(pruned)} == {str(ms("2024-01-01T00:00:00"))}  # a string since 5.9
    # A function of the column is not expanded: every partition is read (Q2's shards get empty objects).
    day_copy = f"COPY {table} WHERE date_trunc('day', \"timestamp\") = ? TO DIRECTORY ? WITH (protocol = 'http')"
    assert sql(double, day_copy, ["2024-02-10", target(seaweed, bucket, "all")]) == 8
    expected = {f"all/{table}_{shard}_{ident}.json" for shard in range(2) for ident in (q1, q2)}
    assert set(objects(seaweed, bucket, "all/")) == expected
    # The upper bound is truncated too: a window ending on a quarter's first instant reads that quarter.
    edge = ["2024-03-31T00:00:00Z", "2024-04-01T00:00:00Z", target(seaweed, bucket, "edge")]
    assert sql(double, WINDOW_COPY.format(name=table, options="protocol = 'http'"), edge) == 0
    assert set(objects(seaweed, bucket, "edge/")) == {k.replace("all/", "edge/") for k in expected}


def test_copy_overwrites_but_never_deletes(double: CrateDouble, seaweed: SeaweedS3, bucket: str, table: str) -> None:
    seed(double, table)
    uri = target(seaweed, bucket, "same")
    sql(double, WINDOW_COPY.format(name=table, options="protocol = 'http'"), ["2024-02-09", "2024-02-10", uri])
    reader(seaweed).put_object(Bucket=bucket, Key="same/stray.json", Body=b"keep me\n")
    sql(double, WINDOW_COPY.format(name=table, options="protocol = 'http'"), ["2024-02-10", "2024-02-11", uri])
    bodies = objects(seaweed, bucket)
    assert bodies.pop("same/stray.json") == b"keep me\n"
    assert {line["hash_id"] for line in lines_of(bodies)} == window_ids()


def test_wait_for_completion_false_answers_minus_one(
    double: CrateDouble, seaweed: SeaweedS3, bucket: str, table: str
) -> None:
    seed(double, table)
    options = "protocol = 'http', wait_for_completion = false"
    assert (
        sql(
            double,
            WINDOW_COPY.format(name=table, options=options),
            ["2024-02-10", "2024-02-11", target(seaweed, bucket, "bg")],
        )
        == -1
    )
    deadline = time.monotonic() + 10
    while len(objects(seaweed, bucket)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert {line["hash_id"] for line in lines_of(objects(seaweed, bucket))} == window_ids()


# -- COPY TO: refusals -------------------------------------------------------------------------------


def test_copy_refusals_match_crate(double: CrateDouble, table: str) -> None:
    seed(double, table)
    on_table = f"COPY {table} TO DIRECTORY 's3://h:1/b'"
    cases = {
        f"COPY {table} TO 's3://h:1/b'": (
            "UnsupportedFeatureException[Using COPY TO without specifying a DIRECTORY is not supported]"
        ),
        f"{on_table} WITH (format = 'json_array')": (
            "UnsupportedFeatureException[Output format not supported without specifying columns.]"
        ),
        "COPY sys.nodes TO DIRECTORY 's3://h:1/b'": (
            'OperationOnInaccessibleRelationException[The relation "sys.nodes" '
            "doesn't support or allow COPY TO operations]"
        ),
        # COPY TO analyses WITH values against the table (NameFieldProvider): an unquoted word is a column.
        f"{on_table} WITH (compression = gzip)": "ColumnUnknownException[Column gzip unknown]",
        f"{on_table} WITH (compression = 'zip')": (
            "SQLParseException[Unsupported setting value: zip. Supported values are: gzip]"
        ),
        f"COPY {table} TO DIRECTORY 'gs://b/x'": "UnsupportedFeatureException[Unknown scheme 'gs']",
    }
    for stmt, message in cases.items():
        assert refusal(double, stmt) == message, stmt
    status, _, reply = http(double, {"stmt": "COPY sys.nodes TO DIRECTORY 's3://h:1/b'"})
    assert (status, reply["error"]["code"]) == (400, 4007)
    assert "test double does not support" in refusal(double, f"COPY {table} TO DIRECTORY 'file:///tmp/x'")
    assert "test double does not support" in refusal(double, f"COPY {table} TO DIRECTORY 's3://bucket/x'")  # AWS itself


def test_copy_of_an_unknown_partition(double: CrateDouble, table: str) -> None:
    seed(double, table, tail='PARTITIONED BY ("month")')
    message = refusal(double, f"COPY {table} PARTITION (month = '2020-01-01') TO DIRECTORY 's3://h:1/b'")
    ident = partition_ident([str(ms("2020-01-01T00:00:00"))])
    assert message == f"PartitionUnknownException[No partition for table 'doc.{table}' with ident '{ident}' exists]"


def test_invalid_uri_echoes_the_credentials_like_crate(
    double: CrateDouble, seaweed: SeaweedS3, bucket: str, table: str
) -> None:
    seed(double, table)
    directory = f"s3://{ACCESS_KEY}:bad%zzsecret@{seaweed.endpoint}/{bucket}/dir"
    expected = f"Invalid uri '{directory}/{table}_0_.json'"
    status, _, reply = http(double, {"stmt": f"COPY {table} TO DIRECTORY ?", "args": [directory]})
    assert (status, reply["error"]) == (400, {"message": f"SQLParseException[{expected}]", "code": 4000})
    # As in CrateDB: the parameter stays out of jobs_log.stmt, but the error text carries the URI.
    assert double.jobs_log[-1]["stmt"] == f"COPY {table} TO DIRECTORY ?" and double.jobs_log[-1]["error"] == expected
    # In CrateDB 5.x a raw '/' in the secret is caught by S3URI, with a message that names no secret.
    raw_slash = f"s3://{ACCESS_KEY}:raw/slash@{seaweed.endpoint}/{bucket}/dir"
    message = refusal(double, f"COPY {table} TO DIRECTORY ?", [raw_slash])
    assert message == "SQLParseException[Invalid URI. Please make sure that given URI is encoded properly.]"


def test_s3_rejections_are_crate_5000s(double: CrateDouble, seaweed: SeaweedS3, bucket: str, table: str) -> None:
    seed(double, table)
    stmt = f"COPY {table} TO DIRECTORY ? WITH (protocol = 'http')"
    status, _, reply = http(double, {"stmt": stmt, "args": [target(seaweed, bucket, "x", secret="wrong-secret")]})
    assert (status, reply["error"]["code"]) == (500, 5000)
    assert (
        reply["error"]["message"].startswith("AmazonS3Exception[")
        and "SignatureDoesNotMatch" in reply["error"]["message"]
    )
    assert "InvalidAccessKeyId" in refusal(double, stmt, [target(seaweed, bucket, "x", key="AKIDUNKNOWN")])
    assert "AccessDenied" in refusal(double, stmt, [f"s3://{seaweed.endpoint}/{bucket}/x"])  # anonymous
    assert "NoSuchBucket" in refusal(double, stmt, [target(seaweed, "no-such-bucket", "x")])
    message = refusal(double, stmt, [f"s3://{ACCESS_KEY}:x@127.0.0.1:1/{bucket}/x"])
    assert message.startswith("SdkClientException[Unable to execute HTTP request: Connect to 127.0.0.1:1")
    assert objects(seaweed, bucket) == {}


def test_s3_uris_are_read_like_crate() -> None:
    # CrateDB's own test vector, then the rules of reference §2.
    parsed = parse_target("s3://minio:miniostorage%2F@127.0.0.1:9000/my-bucket/key/t1_0_.json")
    assert (parsed.bucket, parsed.key, parsed.endpoint) == ("my-bucket", "key/t1_0_.json", "127.0.0.1:9000")
    assert (parsed.access_key, parsed.secret_key) == ("minio", "miniostorage/")
    no_port = parse_target("s3://k:s@my-bucket/dir/t_0_.json")
    assert (no_port.bucket, no_port.key, no_port.endpoint) == ("my-bucket", "dir/t_0_.json", None)
    assert parse_target("s3://k:a+b%2Bc@h:1/b/x").secret_key == "a+b+c"  # RFC 3986: '+' stays '+'
    assert parse_target("s3://k:abc%3Adef@h:1/b/x").secret_key == "abc"  # split after decoding
    assert parse_target("s3://h:1/b/x").anonymous and parse_target("s3://k@h:1/b/x").anonymous


def test_secrets_with_reserved_characters_work_when_encoded(
    double: CrateDouble, seaweed: SeaweedS3, bucket: str, table: str
) -> None:
    seed(double, table)
    assert "/" in SECRET_KEY and "+" in SECRET_KEY and "=" in SECRET_KEY
    assert sql(double, f"COPY {table} TO DIRECTORY ? WITH (protocol = 'http')", [target(seaweed, bucket, "ok")]) == 24


def test_partition_idents_are_cratedbs() -> None:
    # The ident of CrateDB's documentation example partition (value 1395874800000).
    assert partition_ident(["1395874800000"]) == "04732cpp6ks3ed1o60o30c1g"


# -- faults ------------------------------------------------------------------------------------------


def test_fail_next_answers_errors_without_running(double: CrateDouble) -> None:
    double.faults.fail_next(count=2, status=503, code=5030, message="UnavailableException[node is starting]")
    before = len(double.jobs_log)
    status, _, reply = http(double, {"stmt": "SELECT 1"})
    assert (status, reply) == (503, {"error": {"message": "UnavailableException[node is starting]", "code": 5030}})
    # With a single server the crate client reports a 503 as "No more Servers available".
    with pytest.raises(ProgrammingError, match="No more Servers available.*Service Unavailable"):
        sql(double, "SELECT 1")
    assert sql(double, "SELECT 1") == [[1]] and len(double.jobs_log) == before + 1


def test_fail_next_is_counted_across_threads(double: CrateDouble) -> None:
    double.faults.fail_next(count=5, status=500, code=5000, message="JobKilledException[Job killed]")
    statuses: list[int] = []
    threads = [
        threading.Thread(target=lambda: statuses.append(http(double, {"stmt": "SELECT 1"})[0])) for _ in range(12)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] * 7 + [500] * 5


def test_delay_next_provokes_read_timeouts_but_still_runs(double: CrateDouble, table: str) -> None:
    sql(double, f"CREATE TABLE {table} (a INTEGER)")
    double.faults.delay_next(0.8)
    with pytest.raises(CrateConnectionError):
        sql(double, f"INSERT INTO {table} (a) VALUES (1)", timeout=0.2)
    time.sleep(1.0)
    assert sql(double, f"SELECT count(*) FROM {table}") == [[1]]


def test_truncate_and_inflate_make_rowcount_lie(
    double: CrateDouble, seaweed: SeaweedS3, bucket: str, table: str
) -> None:
    seed(double, table)
    stmt = f"COPY {table} TO DIRECTORY ? WITH (protocol = 'http')"
    double.faults.truncate_next_copy(drop_rows=2)
    assert sql(double, stmt, [target(seaweed, bucket, "cut")]) == 24
    assert len(lines_of(objects(seaweed, bucket, "cut/"))) == 22
    double.faults.inflate_next_copy_rowcount(extra=3)
    assert sql(double, stmt, [target(seaweed, bucket, "more")]) == 27
    assert len(lines_of(objects(seaweed, bucket, "more/"))) == 24
    double.faults.truncate_next_copy()
    double.faults.reset()
    assert sql(double, stmt, [target(seaweed, bucket, "honest")]) == 24
    assert len(lines_of(objects(seaweed, bucket, "honest/"))) == 24


# -- strictness: CrateDB's exact values, types, codes and messages ----------------------------------


def test_copy_option_values_are_case_sensitive(double: CrateDouble, table: str) -> None:
    seed(double, table)
    copy = f"COPY {table} TO DIRECTORY 's3://k:s@127.0.0.1:1/b/x' WITH ({{}})"
    # CopyStatementSettings: Validators.stringValidator, lower case only, allowed values sorted.
    cases = {
        "compression = 'GZIP'": "SQLParseException[Unsupported setting value: GZIP. Supported values are: gzip]",
        "format = 'JSON_OBJECT'": (
            "SQLParseException[Unsupported setting value: JSON_OBJECT. Supported values are: json_array, json_object]"
        ),
        "compression = true": "SQLParseException[Unsupported setting value: true. Supported values are: gzip]",
        # The S3 plugin's S3Protocol, read when a shard's output is created.
        "protocol = 'HTTP'": "SQLParseException[invalid protocol `HTTP`. Expected HTTP or HTTPS]",
        "wait_for_completion = 'TRUE'": (
            "SQLParseException[Failed to parse value [TRUE] as only [true] or [false] are allowed.]"
        ),
    }
    for options, message in cases.items():
        status, _, reply = http(double, {"stmt": copy.format(options)})
        assert (status, reply["error"]) == (400, {"message": message, "code": 4000}), options
    # An empty value is no value; the lower-case ones are accepted (and fail later, on the closed port).
    for options in ("compression = ''", "compression = 'gzip', format = 'json_object', protocol = 'http'"):
        assert refusal(double, copy.format(options)).startswith("SdkClientException[Unable to execute HTTP request")


def test_date_trunc_is_timestamp_with_time_zone(double: CrateDouble, table: str) -> None:
    sql(double, f'CREATE TABLE {table} ("local" TIMESTAMP WITHOUT TIME ZONE, "n" BIGINT)')
    sql(double, f'INSERT INTO {table} ("local", "n") VALUES (?, ?)', ["2024-01-01T10:00:00", 1704067200123])
    day = "date_trunc('day', \"local\")"
    query = {"stmt": f"SELECT {day}, count(*) FROM {table} GROUP BY 1"}
    status, _, reply = http(double, query, path="/_sql?types")
    assert reply["rows"] == [[ms("2024-01-01T00:00:00"), 1]] and reply["col_types"] == [11, 10]
    by_bigint = {"stmt": f"SELECT date_trunc('second', \"n\") AS s, count(*) FROM {table} GROUP BY 1"}
    assert http(double, by_bigint, path="/_sql?types")[2]["col_types"] == [11, 10]
    # Compared with date_trunc's result a string keeps its offset: it is cast to timestamp WITH time zone.
    matching = f"SELECT count(*) FROM {table} WHERE {day} = ?"
    assert sql(double, matching, ["2024-01-01T01:00:00+01:00"]) == [[1]]
    assert sql(double, matching, ["2024-01-01T00:00:00+01:00"]) == [[0]]


def test_five_digit_codes_get_cratedbs_http_status(double: CrateDouble, table: str) -> None:
    from cratedb_export_testbed.standin.errors import http_status

    # HttpErrorStatus: five-digit codes sit in the range of their first three digits' status.
    expected = {40000: 400, 40013: 400, 40410: 404, 40411: 404, 40910: 409, 40911: 409, 4290: 429, 4093: 409}
    expected |= {4046: 404, 5005: 500, 5035: 503, 4037: 403}
    assert {code: http_status(code) for code in expected} == expected
    for unknown in (4009, 4050, 5007, 1234):
        with pytest.raises(ValueError):
            http_status(unknown)
    seed(double, table)
    double.faults.fail_next_copy("RoleUnknownException[Role 'x' does not exist]", 40410, files_written=0)
    status, _, reply = http(double, {"stmt": f"COPY {table} TO DIRECTORY 's3://h:1/b'"})
    assert (status, reply["error"]["code"]) == (404, 40410)
    with pytest.raises(ValueError):
        double.faults.fail_next_copy("X[y]", 4009)


def test_request_bodies_are_refused_as_cratedbs_sql_request_parser(double: CrateDouble) -> None:
    cases: list[tuple[Any, int, int, str]] = [
        (b"", 400, 4000, "SQLParseException[Missing request body]"),
        (
            b"{not json",
            400,
            4000,
            "SQLParseException[Can't parse [{not json]. Expecting payload with `stmt` string and `args` or "
            "`bulk_args` arrays]",
        ),
        (
            {"stmt": "SELECT 1", "nope": 1},
            400,
            4000,
            'SQLParseException[Can\'t parse [{"stmt": "SELECT 1", "nope": 1}]. Expecting payload with `stmt` '
            "string and `args` or `bulk_args` arrays]",
        ),
        # SQLParseSourceException has no status of its own: 5000, HTTP 500.
        ({"args": []}, 500, 5000, "SQLParseSourceException[Field [stmt] is missing]"),
        ({"stmt": ""}, 500, 5000, "SQLParseSourceException[Field [stmt] has no value]"),
        ({"stmt": ["SELECT 1"]}, 500, 5000, "SQLParseSourceException[Field [stmt] has an invalid value]"),
        (
            {"stmt": "SELECT ?", "args": "x"},
            500,
            5000,
            "SQLParseSourceException[`args` must start with an array, not `VALUE_STRING`]",
        ),
        (
            {"stmt": "SELECT ?", "bulk_args": [1]},
            500,
            5000,
            "SQLParseSourceException[`bulk_args` must contain a list of `args` (values list). Got unexpected: "
            "VALUE_NUMBER]",
        ),
    ]
    before = len(double.jobs_log)
    for body, status, code, message in cases:
        got_status, _, reply = http(double, body)
        assert (got_status, reply["error"]) == (status, {"message": message, "code": code}), body
    assert len(double.jobs_log) == before  # the request never became a statement
    # A number is a statement too: its text, then the grammar's verdict.
    assert http(double, {"stmt": 1})[2]["error"]["message"].startswith("ParsingException[line 1:1: ")


def test_messages_read_as_cratedbs(double: CrateDouble, table: str) -> None:
    sql(double, f"CREATE TABLE {table} (a INTEGER, o OBJECT)")
    cases = {
        "SELECT 1abc FROM t": (
            "ParsingException[line 1:8: identifiers must not start with a digit; surround the identifier with "
            "double quotes]"
        ),
        "SELECT `a` FROM t": (
            "ParsingException[line 1:8: backquoted identifiers are not supported; use double quotes to quote "
            "identifiers]"
        ),
        f"SELECT a FROM {table}x": f"RelationUnknown[Relation '{table}x' unknown. Maybe you meant '{table}']",
        f"SELECT a FROM doc.{table}x": f"RelationUnknown[Relation 'doc.{table}x' unknown. Maybe you meant '{table}']",
        f"SELECT a FROM docc.{table}": "SchemaUnknownException[Schema 'docc' unknown. Maybe you meant 'doc']",
        f"INSERT INTO {table} (a, a) VALUES (1, 2)": 'SQLParseException[column "a" specified more than once]',
        "DROP TABLE sys.nodes": (
            'OperationOnInaccessibleRelationException[The relation "sys.nodes" doesn\'t support or allow DROP '
            "operations]"
        ),
        f"CREATE TABLE {table}_p (o OBJECT) PARTITIONED BY (o)": (
            "SQLParseException[Cannot use column o of type object in PARTITIONED BY clause]"
        ),
        f"CREATE TABLE {table}_p (a INTEGER) PARTITIONED BY (b)": "ColumnUnknownException[Column b unknown]",
        f"INSERT INTO {table} (a) VALUES (?)": (
            "SQLParseException[The query contains a parameter placeholder $1, but there are only 0 parameter values]"
        ),
    }
    for stmt, message in cases.items():
        assert refusal(double, stmt) == message, stmt
    # Quoted when it must be (Identifiers.quoteIfNeeded): upper case or a reserved keyword.
    sql(double, 'CREATE TABLE "Metrics" (a INTEGER)')
    assert (
        refusal(double, 'SELECT a FROM "Metric"')
        == "RelationUnknown[Relation 'Metric' unknown. Maybe you meant '\"Metrics\"']"
    )
    status, _, reply = http(double, {"stmt": "SELECT ?", "args": [5]}, path="/_sql?types")
    assert reply["col_types"] == [9]  # a JSON number that fits an int is an integer
    assert refusal(double, f"SELECT a FROM {table} WHERE a = ?", ["x"]) == (
        "SQLParseException[Cannot cast value `x` to type `integer`]"
    )
    assert "does not support" in refusal(double, f"SELECT a FROM {table} WHERE a = ?", [True])


# -- compared with a real CrateDB 6.4.3 --------------------------------------------------------------


def test_output_columns_are_named_as_crate_names_them(double: CrateDouble, table: str) -> None:
    sql(double, f"CREATE TABLE {table} (n INTEGER, ts TIMESTAMP WITH TIME ZONE, o OBJECT(DYNAMIC))")
    sql(double, f"INSERT INTO {table} (n, ts, o) VALUES (1, 0, ?)", [{"a": "x"}])
    day = "date_trunc('day', ts)"
    grouped = {"stmt": f"SELECT count(*) AS c, count(*), n, {day} FROM {table} GROUP BY n, {day}"}
    assert http(double, grouped)[2]["cols"] == ["c", "count", "n", "date_trunc"]
    assert http(double, {"stmt": f"SELECT count(*) FROM {table}"})[2]["cols"] == ["count"]
    constants = {"stmt": "SELECT ?, $1, 1, 'a', true, null", "args": [1]}
    assert http(double, constants)[2]["cols"] == ["$1", "$1", "1", "'a'", "true", "NULL"]
    columns = {"stmt": f"SELECT o['a'], o['a'] AS v, \"n\" FROM {table} ORDER BY 3"}
    assert http(double, columns)[2]["cols"] == ["o['a']", "v", "n"]
    status, _, reply = http(double, {"stmt": f"SELECT n FROM {table} WHERE n = ?"})
    assert (status, reply["error"]["code"]) == (400, 4004)  # CrateDB's message here quotes its plan


def test_smallint_char_ip_and_geo_point_are_typed_and_refused_as_crate_does(double: CrateDouble, table: str) -> None:
    """As CrateDB 6.4.3 answered the same statements (2026-12-06)."""
    sql(double, f'CREATE TABLE {table} ("s" SMALLINT, "c" "char", "gp" GEO_POINT, "ip" IP, "sa" ARRAY(SMALLINT))')
    insert = f'INSERT INTO {table} ("s", "c", "gp", "ip", "sa") VALUES (?, ?, ?, ?, ?)'
    sql(double, insert, [-32768, -128, [9.5, 50.1], "10.0.0.1", [1, 2]])
    sql(double, insert, ["12", 1, "POINT(9.5 50.1)", "::1", None])
    status, _, reply = http(
        double, {"stmt": f'SELECT "s", "c", "gp", "ip", "sa" FROM {table} ORDER BY "s"'}, path="/_sql?types"
    )
    assert status == 200 and reply["col_types"] == [8, 2, 13, 5, [100, 8]]
    assert reply["rows"] == [[-32768, -128, [9.5, 50.1], "10.0.0.1", [1, 2]], [12, 1, [9.5, 50.1], "::1", None]]
    types = sql(
        double,
        'SELECT "column_name", "data_type" FROM "information_schema"."columns" WHERE "table_schema" = ? '
        'AND "table_name" = ? ORDER BY "ordinal_position"',
        ["doc", table],
    )
    assert types == [["s", "smallint"], ["c", "byte"], ["gp", "geo_point"], ["ip", "ip"], ["sa", "smallint_array"]]
    for column, value, shown, type_name in (
        ("s", 40000, "40000", "smallint"),
        ("c", 200, "200", "byte"),
        ("c", "a", "a", "byte"),
        ("gp", [200, 10], "[200, 10]", "geo_point"),
        ("gp", [9.5], "[9.5]", "geo_point"),
        ("gp", "abc", "abc", "geo_point"),
        ("ip", "10.0.0.300", "10.0.0.300", "ip"),
    ):
        expected = f"SQLParseException[Cannot cast value `{shown}` to type `{type_name}`]"
        assert refusal(double, f'INSERT INTO {table} ("{column}") VALUES (?)', [value]) == expected


def test_values_cast_as_crate_casts_them(double: CrateDouble, table: str) -> None:
    sql(double, f"CREATE TABLE {table} (id INTEGER, n INTEGER, s TEXT, b BOOLEAN, big BIGINT)")
    rows = [
        ("s, b", [True, 2]),  # boolean -> 't', number > 0 -> true
        ("s, b", [1.5, 0]),
        ("b", ["yes"]),  # BooleanType's strings: t/true/y/yes/on/1 and their opposites
        ("n", [2.7]),  # numbers are truncated, not rounded
        ("n", ["7"]),
        ("big", [1.5]),
    ]
    for number, (columns, args) in enumerate(rows, 1):
        marks = ", ".join("?" for _ in args)
        sql(double, f"INSERT INTO {table} (id, {columns}) VALUES ({number}, {marks})", args)
    assert sql(double, f"SELECT id, n, s, b, big FROM {table} ORDER BY id") == [
        [1, None, "t", True, None],
        [2, None, "1.5", False, None],
        [3, None, None, True, None],
        [4, 2, None, None, None],
        [5, 7, None, None, None],
        [6, None, None, None, 1],
    ]
    expected = "SQLParseException[Cannot convert VALUES element in row 1 of type `boolean` to `integer` for `n`]"
    assert refusal(double, f"INSERT INTO {table} (id, n) VALUES (7, true)") == expected
    assert refusal(double, f"INSERT INTO {table} (id, n) VALUES (7, ?)", [True]) == expected
    assert refusal(double, f"INSERT INTO {table} (n) VALUES (?)", [5_000_000_000]) == (
        "SQLParseException[Cannot cast value `5000000000` to type `integer`]"
    )
    assert refusal(double, f"INSERT INTO {table} (n) VALUES (1, 2)") == (
        "SQLParseException[Number of target columns (n) of insert statement doesn't match number of source "
        "columns (col1, col2)]"
    )
    assert refusal(double, f"INSERT INTO {table} (n, n2) VALUES (1)") == "ColumnUnknownException[Column n2 unknown]"


def test_s3_refusals_of_a_6_4_double_read_as_opendal_errors(seaweed: SeaweedS3, bucket: str, table: str) -> None:
    # The layout of CrateDB 6.4.3's answer to a COPY that SeaweedFS refused (read off a real 6.4.3).
    with CrateDouble(version="6.4.3") as newer:
        http(newer, {"stmt": f"CREATE TABLE {table} (a INTEGER) CLUSTERED INTO 1 SHARDS"}, auth=None)
        http(newer, {"stmt": f"INSERT INTO {table} (a) VALUES (1)"}, auth=None)
        uri = target(seaweed, bucket, "x", secret="wrong-secret")
        status, _, reply = http(
            newer, {"stmt": f"COPY {table} TO DIRECTORY ? WITH (protocol = 'http')", "args": [uri]}, auth=None
        )
        assert (status, reply["error"]["code"]) == (500, 5000)
        message = reply["error"]["message"]
        key = f"x/{table}_0_.json"
        assert message.startswith(
            'OpenDALException[PermissionDenied (permanent) at write => S3Error { code: "SignatureDoesNotMatch", '
        )
        assert f'resource: "/{bucket}/{key}", request_id: "' in message
        assert (
            f"\n\nContext:\n   uri: http://{seaweed.endpoint}/{bucket}/{key}\n   response: Parts {{ status: 403, "
            in message
        )
        assert message.endswith(f"\n   service: s3\n   path: {key}\n   written: 8\n]")  # the bytes of {"a":1}\n
        with pytest.raises(ValueError, match="6.3"):
            newer.faults.abandon_next_copy_upload()


# -- command line ------------------------------------------------------------------------------------


def test_cli_serves_until_sigterm_with_admin_faults() -> None:
    command = ["-m", "cratedb_export_testbed.standin", "--port", "0", "--user", USER, "--password", PASSWORD]
    process = subprocess.Popen(
        [sys.executable, *command],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split()[-1]
        assert url.startswith("http://127.0.0.1:")
        connection = crate_client.connect(url, username=USER, password=PASSWORD)
        assert connection.cursor().execute("SELECT 1") is None

        def arm(spec: dict[str, Any]) -> Any:
            request = urllib.request.Request(url + "/_double/faults", data=json.dumps(spec).encode())
            with urllib.request.urlopen(request, timeout=5) as response:
                return json.loads(response.read())

        with pytest.raises(urllib.error.HTTPError, match="400"):
            arm({"fault": "no_such_fault"})
        assert arm({"fault": "fail_next", "count": 1, "status": 503})["fail_next"]["remaining"] == 1
        with pytest.raises(ProgrammingError, match="Service Unavailable"):
            connection.cursor().execute("SELECT 1")
        connection.close()
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


def test_uncompressed_column_list_copy_fails_after_writing_as_crate_does(
    double: CrateDouble, seaweed: SeaweedS3, bucket: str, table: str
) -> None:
    # Seen on real CrateDB 5.10.16 (AWS SDK) and 6.4.3 (OpenDAL) against SeaweedFS: each file is closed twice.
    seed(double, table)
    copy = 'COPY "doc"."{name}" ("hash_id") WHERE "timestamp" >= ? AND "timestamp" < ? TO DIRECTORY ? WITH ({options})'
    args = ["2024-02-10", "2024-02-11"]
    message = refusal(
        double, copy.format(name=table, options="protocol = 'http'"), [*args, target(seaweed, bucket, "a")]
    )
    assert message.startswith("AmazonS3Exception[The specified multipart upload does not exist.")
    assert objects(seaweed, bucket)  # the objects were written before the second close failed
    options = "protocol = 'http', compression = 'gzip'"
    assert sql(double, copy.format(name=table, options=options), [*args, target(seaweed, bucket, "b")]) == len(
        window_ids()
    )
