"""The stand-in's system tables must answer like CrateDB 6.4.3's: sys.jobs, sys.jobs_log, sys.cluster,
sys.nodes, information_schema.columns, with CrateDB's column names, types, order and LIKE semantics.

The statements the exporter sends are used verbatim (quoted identifiers, ``?`` parameters).
"""

from __future__ import annotations

import time
from typing import Any

from cratedb_export_testbed.standin import CrateDouble

from cratedb_export_tests.standin.talk import (
    COLUMNS,
    JOBS,
    JOBS_LOG,
    NODES,
    STATS,
    USER,
    UUID,
    http,
    in_background,
    marker,
    refusal,
    sql,
    wait_for,
)

# -- sys.jobs and sys.jobs_log -----------------------------------------------------------------------


def test_a_statement_is_in_sys_jobs_while_it_runs_then_in_jobs_log(double: CrateDouble, table: str) -> None:
    sql(double, f"CREATE TABLE {table} (a INTEGER)")
    comment, pattern = marker()
    stmt = f"{comment}\nSELECT count(*) FROM {table}"
    double.faults.delay_next(1.0)  # the delay happens while the statement is already in sys.jobs
    before = int(time.time() * 1000)
    thread = in_background(double, stmt)
    wait_for(lambda: any(job["stmt"] == stmt for job in double.jobs))  # no SQL may take the delay first
    running = sql(double, JOBS, [pattern])
    assert sql(double, JOBS_LOG, [pattern]) == []
    [[job_id, started]] = running
    assert UUID.fullmatch(job_id) and before - 5 <= started <= int(time.time() * 1000)
    thread.join(timeout=10)
    assert sql(double, JOBS, [pattern]) == []
    [[logged_id, logged_started, ended, error]] = sql(double, JOBS_LOG, [pattern])
    assert (logged_id, logged_started, error) == (job_id, started, None)
    assert ended - started >= 1000
    # The text is kept exactly as sent, comment and line break included (Session keeps the raw string).
    assert sql(double, 'SELECT "stmt" FROM "sys"."jobs_log" WHERE "id" = ?', [job_id]) == [[stmt]]


def test_jobs_log_columns_are_cratedbs(double: CrateDouble, table: str) -> None:
    sql(double, f"CREATE TABLE {table} (a INTEGER)")
    comment, pattern = marker()
    sql(double, f"{comment} INSERT INTO {table} (a) VALUES (?)", [1])
    status, _, reply = http(double, {"stmt": "SELECT * FROM sys.jobs_log WHERE stmt LIKE ?", "args": [pattern]})
    assert status == 200
    # SysJobsLogTableInfo's columns; SELECT * lists them by name, as CrateDB's SystemTable does.
    assert reply["cols"] == [
        "classification", "ended", "error", "id", "node", "session_id", "started", "stmt", "username",
    ]  # fmt: skip
    [row] = [dict(zip(reply["cols"], r, strict=True)) for r in reply["rows"]]
    assert row["classification"] == {"type": "INSERT", "labels": ["InsertFromValues"]}
    assert row["node"] == {"id": double.node_id, "name": "crate-double"}
    assert row["username"] == USER and isinstance(row["session_id"], int) and row["error"] is None
    status, _, reply = http(double, {"stmt": "SELECT * FROM sys.jobs WHERE stmt LIKE 'SELECT * FROM sys.jobs%'"})
    assert reply["cols"] == ["id", "node", "session_id", "started", "stmt", "username"]
    assert len(reply["rows"]) == 1  # a query on sys.jobs sees itself running
    status, _, reply = http(
        double, {"stmt": 'SELECT "classification"[\'labels\'], "node"[\'id\'] FROM "sys"."jobs_log" LIMIT 1'},
        path="/_sql?types",
    )  # fmt: skip
    assert reply["col_types"] == [[100, 4], 4]


def test_failures_are_logged_with_their_error_and_classification(double: CrateDouble, table: str) -> None:
    comment, pattern = marker()
    refusal(double, f"{comment} SELECT nope FROM {table}")
    [[_, _, _, error]] = sql(double, JOBS_LOG, [pattern])
    assert error == f"Relation '{table}' unknown"
    # Failing before it runs (parse, analysis, plan), CrateDB logs a job as UNDEFINED (logPreExecutionFailure).
    kind = 'SELECT "classification"[\'type\'], "classification"[\'labels\'] FROM "sys"."jobs_log" WHERE "stmt" LIKE ?'
    assert sql(double, kind, [pattern]) == [["UNDEFINED", []]]
    comment, pattern = marker()
    refusal(double, f"{comment} SELEC 1")
    assert sql(double, kind, [pattern]) == [["UNDEFINED", []]]


def test_jobs_log_keeps_jobs_log_size_entries_and_nothing_without_stats() -> None:
    with CrateDouble(jobs_log_size=3) as small:
        for number in range(5):
            http(small, {"stmt": f"SELECT {number}"}, auth=None)
        assert [row[0] for row in sql(small, "SELECT stmt FROM sys.jobs_log ORDER BY ended")] == [
            "SELECT 2", "SELECT 3", "SELECT 4",
        ]  # fmt: skip
        assert sql(small, STATS) == [[True, 3]]
    with CrateDouble(stats_enabled=False) as quiet:
        http(quiet, {"stmt": "SELECT 1"}, auth=None)
        assert sql(quiet, "SELECT count(*) FROM sys.jobs") == [[0]]
        assert sql(quiet, "SELECT count(*) FROM sys.jobs_log") == [[0]]
        assert sql(quiet, STATS) == [[False, 10_000]]


def test_like_is_cratedbs(double: CrateDouble, table: str) -> None:
    sql(double, f"CREATE TABLE {table} (s TEXT, n INTEGER)")
    values = ["abc", "aXc", "a_c", "a%c", "ABC", "a\nc", "abcd", None]
    for number, value in enumerate(values):
        sql(double, f"INSERT INTO {table} (s, n) VALUES (?, ?)", [value, number])

    def where(condition: str, args: list[Any] | None = None) -> list[str]:
        return [row[0] for row in sql(double, f"SELECT s FROM {table} WHERE {condition} ORDER BY n", args)]

    assert where("s LIKE ?", ["a_c"]) == ["abc", "aXc", "a_c", "a%c", "a\nc"]  # _ is any one char, newline too
    assert where("s LIKE 'a%'") == ["abc", "aXc", "a_c", "a%c", "a\nc", "abcd"]  # case-sensitive, whole value
    assert where("s LIKE 'a\\_c'") == ["a_c"] and where("s LIKE 'a\\%c'") == ["a%c"]  # \ escapes by default
    assert where("s LIKE 'a#_c' ESCAPE '#'") == ["a_c"]
    assert where("s ILIKE 'abc'") == ["abc", "ABC"]
    assert where("s NOT LIKE 'a%'") == ["ABC"]  # NULL is neither LIKE nor NOT LIKE
    assert where("s LIKE ?", [None]) == []
    assert where("s LIKE 'a.c'") == [] and where("s LIKE '(abc)'") == []  # regex characters are literal
    assert refusal(double, f"SELECT s FROM {table} WHERE s LIKE 'ab\\'") == (
        "SQLParseException[pattern 'ab\\' must not end with escape character '\\']"
    )
    assert refusal(double, f"SELECT s FROM {table} WHERE s LIKE 'x' ESCAPE '##'") == (
        "SQLParseException[ESCAPE must be a single character]"
    )
    assert "does not support" in refusal(double, f"SELECT s FROM {table} WHERE n LIKE '1'")


# -- sys.cluster and sys.nodes -----------------------------------------------------------------------


def test_sys_cluster_stats_settings(double: CrateDouble) -> None:
    status, _, reply = http(double, {"stmt": STATS}, path="/_sql?types")
    assert status == 200 and reply["rows"] == [[True, 10_000]]
    assert reply["cols"] == ["settings['stats']['enabled']", "settings['stats']['jobs_log_size']"]
    assert reply["col_types"] == [3, 9]  # boolean, integer
    # Only these settings are modelled: others are refused, never answered as unknown or NULL.
    assert "does not support" in refusal(double, "SELECT settings['stats']['jobs_log_expiration'] FROM sys.cluster")
    assert "does not support" in refusal(double, "SELECT settings['udc'] FROM sys.cluster")
    assert "does not support" in refusal(double, "SELECT * FROM sys.cluster")


def test_sys_nodes_name_version_and_arch() -> None:
    with CrateDouble(version="6.4.3", arch="aarch64") as arm:
        status, _, reply = http(arm, {"stmt": NODES}, path="/_sql?types", auth=None)
        assert reply["rows"] == [["crate-double", "6.4.3", "aarch64"]] and reply["col_types"] == [4, 4, 4]
        assert reply["cols"] == ["name", "version['number']", "os_info['arch']"]
        assert http(arm, method="GET", path="/", auth=None)[2]["version"]["number"] == "6.4.3"
    with CrateDouble() as default:
        assert sql(default, NODES) == [["crate-double", "5.10.4", "amd64"]]  # Java's os.arch on x86_64 Linux


def test_system_tables_refuse_what_they_do_not_model(double: CrateDouble) -> None:
    assert refusal(double, "SELECT nope FROM sys.nodes") == "ColumnUnknownException[Column nope unknown]"
    assert refusal(double, "SELECT node['nope'] FROM sys.jobs") == "ColumnUnknownException[Column node['nope'] unknown]"
    for stmt in ("SELECT load FROM sys.nodes", "SELECT os_info['jvm'] FROM sys.nodes", "SELECT * FROM sys.nodes"):
        status, _, reply = http(double, {"stmt": stmt})
        assert (status, reply["error"]["code"]) == (400, 4004) and "test double does not support" in str(reply)
    assert "does not support the table sys.shards" in refusal(double, "SELECT * FROM sys.shards")
    assert (
        refusal(double, "SELECT * FROM sys.job")
        == "RelationUnknown[Relation 'sys.job' unknown. Maybe you meant 'jobs']"
    )
    assert refusal(double, "SELECT * FROM sys.nope") == "RelationUnknown[Relation 'sys.nope' unknown]"
    status, _, reply = http(double, {"stmt": "INSERT INTO sys.jobs (id) VALUES ('x')"})
    assert (status, reply["error"]["message"]) == (
        400,
        'OperationOnInaccessibleRelationException[The relation "sys.jobs" doesn\'t support or allow INSERT operations]',
    )


# -- information_schema.columns and timestamps without time zone ------------------------------------


def test_information_schema_columns_names_types_as_crate(double: CrateDouble, table: str) -> None:
    sql(
        double,
        f"""CREATE TABLE "doc"."{table}" (
          "hash_id" BIGINT, "n" INTEGER, "ts" TIMESTAMP WITH TIME ZONE, "local" TIMESTAMP WITHOUT TIME ZONE,
          "name" TEXT, "d" DOUBLE PRECISION, "r" REAL, "b" BOOLEAN, "tags" OBJECT(DYNAMIC), "labels" ARRAY(TEXT),
          "month" TIMESTAMP AS date_trunc('quarter', "ts")
        ) PARTITIONED BY ("month")""",
    )
    # Keys of dynamic objects become columns in the order they are first seen, after the table's own.
    sql(
        double,
        f'INSERT INTO "doc"."{table}" ("hash_id", "ts", "tags") VALUES (?, ?, ?)',
        [1, 0, {"host": "h1", "cpu": {"load": 0.5}, "gone": None, "ports": [80, 443]}],
    )
    status, _, reply = http(double, {"stmt": COLUMNS, "args": ["doc", table]}, path="/_sql?types")
    assert status == 200 and reply["cols"] == ["column_name", "data_type"] and reply["col_types"] == [4, 4]
    assert reply["rows"] == [
        ["hash_id", "bigint"],
        ["n", "integer"],
        ["ts", "timestamp with time zone"],
        ["local", "timestamp without time zone"],
        ["name", "text"],
        ["d", "double precision"],
        ["r", "real"],
        ["b", "boolean"],
        ["tags", "object"],
        ["labels", "text_array"],  # ArrayType.getName(): <inner>_array
        ["month", "timestamp without time zone"],  # plain TIMESTAMP is without time zone
        ["tags['host']", "text"],  # sqlFqn of the sub-column
        ["tags['cpu']", "object"],
        ["tags['cpu']['load']", "double precision"],
        ["tags['ports']", "bigint_array"],
        ["tags['gone']", "undefined"],  # first seen as NULL: a column of type undefined, numbered last
    ]
    details = sql(
        double,
        "SELECT ordinal_position, is_generated, datetime_precision FROM information_schema.columns "
        "WHERE table_schema = ? AND table_name = ? AND column_name = ?",
        ["doc", table, "month"],
    )
    assert details == [[11, "ALWAYS", 3]]
    # An unknown table (or schema) is no error: there are just no rows.
    assert sql(double, COLUMNS, ["doc", f"{table}_nope"]) == [] and sql(double, COLUMNS, ["nope", table]) == []


def test_information_schema_columns_refuses_what_it_cannot_list(double: CrateDouble, table: str) -> None:
    # CrateDB lists its system tables' columns too; the double only user tables, so it needs the schema.
    for stmt, args in (
        ('SELECT "column_name" FROM "information_schema"."columns" WHERE "table_name" = ?', ["jobs"]),
        (COLUMNS, ["sys", "jobs"]),
        ("SELECT * FROM information_schema.columns WHERE table_schema = 'doc'", []),
        ("SELECT character_maximum_length FROM information_schema.columns WHERE table_schema = 'doc'", []),
        ("SELECT table_name FROM information_schema.tables", []),
    ):
        status, _, reply = http(double, {"stmt": stmt, "args": args})
        assert (status, reply["error"]["code"]) == (400, 4004), stmt
    message = refusal(double, "SELECT * FROM information_schema.colums")
    assert message == "RelationUnknown[Relation 'information_schema.colums' unknown. Maybe you meant 'columns']"


def test_timestamps_without_time_zone_are_wall_clock_compared_as_utc(double: CrateDouble, table: str) -> None:
    sql(double, f'CREATE TABLE "doc"."{table}" ("id" INTEGER, "local" TIMESTAMP WITHOUT TIME ZONE, "ms" BIGINT)')
    rows = [
        (1, "2024-01-01T00:30:00", None),
        (2, "2024-01-01T23:30:00+01:00", None),  # the offset is dropped: 23:30 wall-clock
        (3, "2024-01-02T00:30:00", None),
        (4, None, 1704067200000),
    ]
    for row in rows:
        sql(double, f'INSERT INTO "doc"."{table}" ("id", "local", "ms") VALUES (?, ?, ?)', list(row))
    stored = sql(double, f'SELECT "id", "local" FROM "doc"."{table}" WHERE "local" >= ? ORDER BY "id"', [0])
    assert stored == [[1, 1704069000000], [2, 1704151800000], [3, 1704155400000]]  # wall clock as if UTC
    between = f'SELECT "id" FROM "doc"."{table}" WHERE "local" >= ? AND "local" < ? ORDER BY "id"'
    # Europe/Vienna's 2024-01-01 as UTC instants, 2023-12-31T23:00Z .. 2024-01-01T23:00Z, compared as
    # numbers with the wall clock: the window is shifted by the offset and loses the day's last hour.
    assert sql(double, between, [1704063600000, 1704150000000]) == [[1]]
    # The wall-clock window itself, as epoch ms of the local midnights read as UTC, is right.
    assert sql(double, between, [1704067200000, 1704153600000]) == [[1], [2]]
    # String arguments with an offset lose it too, on this column type only.
    assert sql(double, between, ["2024-01-01T00:00:00+05:00", "2024-01-02T00:00:00-08:00"]) == [[1], [2]]
    # BIGINT "timestamps" compare as numbers; a date string does not cast to bigint.
    assert sql(
        double, f'SELECT "id" FROM "doc"."{table}" WHERE "ms" >= ? AND "ms" < ?', [1704067200000, 1704067200001]
    ) == [[4]]
    message = refusal(double, f'SELECT "id" FROM "doc"."{table}" WHERE "ms" >= ?', ["2024-01-01"])
    assert message == "SQLParseException[Cannot cast value `2024-01-01` to type `bigint`]"  # as a parameter
