"""The stand-in's partitions as retention reads and changes them, as CrateDB 6.4.3 answered (docs/conformance.md):
information_schema.tables.partitioned_by, columns.generation_expression, table_partitions, and the write
block of one partition (ALTER TABLE ... PARTITION (...) SET / RESET ("blocks.write"))."""

from __future__ import annotations

from cratedb_export_testbed.standin import CrateDouble
from cratedb_export_testbed.standin.tables import partition_ident

from cratedb_export_tests.standin.talk import http, refusal, sql

NOV, JAN = 1698796800000, 1704067200000  # 2023-11-01, 2024-01-01 (UTC), the months' partition values
BLOCKED = "ClusterBlockException[blocked by: [RELATION_READ_AND_DDL_ONLY/8/index write (api)];]"


def _monthly(double: CrateDouble, table: str) -> None:
    sql(
        double,
        f'CREATE TABLE "doc"."{table}" (ts TIMESTAMP WITH TIME ZONE, v INTEGER, '
        "month TIMESTAMP WITH TIME ZONE GENERATED ALWAYS AS date_trunc('month', ts)) PARTITIONED BY (month)",
    )
    sql(double, f'INSERT INTO "doc"."{table}" (ts, v) VALUES (?, ?), (?, ?)', [1700000000000, 1, 1705000000000, 2])


def test_partitioning_in_information_schema(double: CrateDouble, table: str) -> None:
    _monthly(double, table)
    where = "WHERE table_schema = ? AND table_name = ?"
    assert sql(double, f"SELECT partitioned_by FROM information_schema.tables {where}", ["doc", table]) == [[["month"]]]
    generated = sql(
        double,
        f"SELECT column_name, generation_expression, is_generated FROM information_schema.columns {where} "
        "AND is_generated = ?",
        ["doc", table, "ALWAYS"],
    )
    assert generated == [["month", "date_trunc('month', ts)", "ALWAYS"]]
    partitions = sql(
        double,
        "SELECT partition_ident, \"values\", closed, settings['blocks']['write'] FROM "
        f"information_schema.table_partitions {where} ORDER BY partition_ident",
        ["doc", table],
    )
    assert sorted(partitions) == sorted(
        [
            [partition_ident([str(NOV)]), {"month": NOV}, False, False],
            [partition_ident([str(JAN)]), {"month": JAN}, False, False],
        ]
    )
    sql(double, f'CREATE TABLE "doc"."{table}_plain" (ts TIMESTAMP WITH TIME ZONE)')
    assert sql(double, f"SELECT partitioned_by FROM information_schema.tables {where}", ["doc", f"{table}_plain"]) == [
        [None]
    ]


def test_a_write_blocked_partition_refuses_writes_but_can_be_dropped(double: CrateDouble, table: str) -> None:
    _monthly(double, table)
    alter = f'ALTER TABLE "doc"."{table}" PARTITION (month = ?) '
    assert sql(double, alter + 'SET ("blocks.write" = true)', [NOV]) == -1
    insert = f'INSERT INTO "doc"."{table}" (ts, v) VALUES (?, ?)'
    assert refusal(double, insert, [1700000000001, 3]) == BLOCKED
    # Several rows, one into the blocked partition: nothing is written.
    assert refusal(double, insert + ", (?, ?)", [1705000000001, 4, 1700000000001, 3]) == BLOCKED
    assert sql(double, f'SELECT count(*) FROM "doc"."{table}"') == [[2]]
    assert refusal(double, f'UPDATE "doc"."{table}" SET v = 5 WHERE ts = ?', [1700000000000]) == BLOCKED
    assert sql(double, f'UPDATE "doc"."{table}" SET v = 5 WHERE ts = ?', [1705000000000]) == 1  # another partition
    # A DELETE of rows there is refused too; only dropping the whole partition is not.
    window = f'DELETE FROM "doc"."{table}" WHERE ts >= ? AND ts < ?'
    assert refusal(double, window, [1700000000000, 1700000000001]) == BLOCKED
    assert sql(double, alter + 'RESET ("blocks.write")', [NOV]) == -1
    assert sql(double, insert, [1700000000001, 3]) == 1
    assert sql(double, alter + 'SET ("blocks.write" = true)', [NOV]) == -1
    assert sql(double, f'DELETE FROM "doc"."{table}" WHERE month = ?', [NOV]) == -1
    assert sql(double, f'SELECT count(*) FROM "doc"."{table}"') == [[1]]
    gone = partition_ident([str(NOV)])
    assert refusal(double, alter + 'SET ("blocks.write" = true)', [NOV]) == (
        f"PartitionUnknownException[No partition for table 'doc.{table}' with ident '{gone}' exists]"
    )
    # A new row of the month makes a new, writable partition.
    assert sql(double, insert, [1700000000002, 5]) == 1
    assert http(double, {"stmt": "ALTER TABLE x SET (number_of_replicas = 1)"})[0] >= 400
