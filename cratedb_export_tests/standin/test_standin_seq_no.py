"""`_seq_no` and `_primary_term`, UPDATE and the aggregates reconcile reads: as CrateDB 6.4.3 answers them.

Observed on CrateDB 6.4.3: `SELECT date_trunc('day', ts), count(*), sum(_seq_no), max(_seq_no) ... GROUP BY 1`
works; an UPDATE of one row raised its day's sum (144 → 338) and max (12 → 195), the other days' did not
move. The stand-in numbers writes per table rather than per shard (tables.py says why that is enough).
"""

from __future__ import annotations

from cratedb_export_testbed.standin import CrateDouble

from cratedb_export_tests.standin.talk import refusal, sql

DAY = 86_400_000
DIGEST = 'SELECT date_trunc(\'day\', "ts") AS "day", count(*), sum("_seq_no"), max("_seq_no") FROM "doc"."{t}" '


def _create(double: CrateDouble, table: str) -> None:
    sql(
        double,
        f'CREATE TABLE "doc"."{table}" ("id" BIGINT, "ts" TIMESTAMP WITH TIME ZONE, "v" TEXT, '
        '"m" TIMESTAMP WITH TIME ZONE AS date_trunc(\'month\', "ts")) PARTITIONED BY ("m")',
    )
    for i in range(6):
        sql(double, f'INSERT INTO "doc"."{table}" ("id", "ts", "v") VALUES (?, ?, ?)', [i, (i % 3) * DAY + i, "a"])


def _digests(double: CrateDouble, table: str) -> dict[int, list[int]]:
    rows = sql(double, DIGEST.format(t=table) + 'WHERE "ts" >= ? AND "ts" < ? GROUP BY 1', [0, 3 * DAY])
    return {day: rest for day, *rest in rows}


def test_every_write_gives_the_row_the_next_seq_no_and_an_update_changes_only_its_days_digest(
    double: CrateDouble, table: str
) -> None:
    _create(double, table)
    before = _digests(double, table)
    assert {day: count for day, (count, _, _) in before.items()} == {0: 2, DAY: 2, 2 * DAY: 2}
    assert sql(double, f'SELECT "_seq_no", "_primary_term" FROM "doc"."{table}" WHERE "id" = ?', [4]) == [[4, 1]]

    assert sql(double, f'UPDATE "doc"."{table}" SET "v" = ? WHERE "id" = ?', ["b", 4]) == 1
    after = _digests(double, table)
    assert after[0] == before[0] and after[2 * DAY] == before[2 * DAY]
    count, total, highest = after[DAY]
    assert count == 2 and total > before[DAY][1] and highest > before[DAY][2]
    assert sql(double, f'SELECT "v", "_seq_no" FROM "doc"."{table}" WHERE "id" = ?', [4]) == [["b", 6]]


def test_aggregates_without_group_by_and_over_no_row(double: CrateDouble, table: str) -> None:
    _create(double, table)
    where = 'WHERE "ts" >= ? AND "ts" < ?'
    query = f'SELECT count(*), sum("_seq_no"), max("_seq_no"), min("id") FROM "doc"."{table}" {where}'
    assert sql(double, query, [0, DAY]) == [[2, 0 + 3, 3, 0]]
    assert sql(double, query, [10 * DAY, 11 * DAY]) == [[0, None, None, None]]


def test_what_is_not_modelled_is_refused(double: CrateDouble, table: str) -> None:
    _create(double, table)
    assert "does not support" in refusal(double, f'SELECT "_id" FROM "doc"."{table}"')
    assert "does not support" in refusal(double, f'SELECT avg("id") FROM "doc"."{table}"')
    assert "does not support" in refusal(double, f'UPDATE "doc"."{table}" SET "m" = ?', [0])
