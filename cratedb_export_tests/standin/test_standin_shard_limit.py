"""The stand-in's shard limit (cluster.max_shards_per_node) against what CrateDB 6.4.3 answered on 2026-12-06
(single node, the same statements): a table or partition that would open shards beyond the limit is refused,
the whole statement and before any row is written; SET GLOBAL / RESET GLOBAL of the setting, and sys.cluster."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from cratedb_export_testbed.seaweedfs import SeaweedS3
from cratedb_export_testbed.standin import CrateDouble

from cratedb_export_tests.standin.talk import PASSWORD, USER, reader, refusal, sql, target


def _limit_refusal(adding: int, held: int, limit: int) -> str:
    return (
        f"SQLParseException[Validation Failed: 1: this action would add [{adding}] total shards, but this cluster "
        f"currently has [{held}]/[{limit}] maximum shards open;]"
    )


@pytest.fixture
def fresh() -> Iterator[CrateDouble]:
    """A stand-in of its own: no shards held but what the test opens."""
    with CrateDouble(users={USER: PASSWORD}) as double:
        yield double


def test_tables_and_partitions_beyond_the_limit_are_refused_whole(fresh: CrateDouble) -> None:
    sql(fresh, "CREATE TABLE doc.a (a INT) CLUSTERED INTO 2 SHARDS")
    sql(fresh, 'SET GLOBAL TRANSIENT "cluster.max_shards_per_node" = 3')
    assert sql(fresh, "SELECT settings['cluster']['max_shards_per_node'] FROM sys.cluster") == [[3]]
    # A partitioned table opens no shards before its first row.
    sql(fresh, "CREATE TABLE doc.p (a INT, p INT) CLUSTERED INTO 1 SHARDS PARTITIONED BY (p)")
    assert refusal(fresh, "CREATE TABLE doc.q (a INT) CLUSTERED INTO 2 SHARDS") == _limit_refusal(2, 2, 3)
    sql(fresh, "INSERT INTO doc.p (a, p) VALUES (1, 1)")  # the one shard left
    assert refusal(fresh, "INSERT INTO doc.p (a, p) VALUES (1, 1), (2, 2)") == _limit_refusal(1, 3, 3)
    sql(fresh, "REFRESH TABLE doc.p")
    assert sql(fresh, "SELECT count(*) FROM doc.p") == [[1]]  # nothing of the refused statement
    sql(fresh, "INSERT INTO doc.p (a, p) VALUES (2, 1)")  # an existing partition opens nothing


def test_copy_from_needing_partitions_beyond_the_limit_writes_nothing(
    fresh: CrateDouble, seaweed: SeaweedS3, bucket: str
) -> None:
    sql(fresh, "CREATE TABLE doc.p (a INT, p INT) CLUSTERED INTO 2 SHARDS PARTITIONED BY (p)")
    sql(fresh, "INSERT INTO doc.p (a, p) VALUES (1, 1)")
    sql(fresh, 'SET GLOBAL TRANSIENT "cluster.max_shards_per_node" = 3')
    lines = "".join(json.dumps({"a": n, "p": n}) + "\n" for n in (1, 2, 3)).encode()
    reader(seaweed).put_object(Bucket=bucket, Key="rows.json", Body=lines)
    uri = target(seaweed, bucket, "rows.json")
    for summary in (" RETURN SUMMARY", ""):
        stmt = f"COPY doc.p FROM ? WITH (protocol = 'http'){summary}"
        assert refusal(fresh, stmt, [uri]) == _limit_refusal(4, 2, 3)
    sql(fresh, "REFRESH TABLE doc.p")
    assert sql(fresh, "SELECT count(*) FROM doc.p") == [[1]]


def test_the_setting_is_checked_and_reset_to_crates_default(fresh: CrateDouble) -> None:
    shown = "SELECT settings['cluster']['max_shards_per_node'] FROM sys.cluster"
    assert sql(fresh, shown) == [[1000]]
    assert refusal(fresh, 'SET GLOBAL TRANSIENT "cluster.max_shards_per_node" = 0') == (
        "SQLParseException[Failed to parse value [0] for setting [cluster.max_shards_per_node] must be >= 1]"
    )
    assert refusal(fresh, "SET GLOBAL TRANSIENT \"cluster.max_shards_per_node\" = 'x'") == (
        "SQLParseException[Failed to parse value [x] for setting [cluster.max_shards_per_node]]"
    )
    sql(fresh, 'SET GLOBAL PERSISTENT "cluster.max_shards_per_node" = 5')
    sql(fresh, 'SET GLOBAL TRANSIENT "cluster.max_shards_per_node" = 3')
    assert sql(fresh, shown) == [[3]]  # the transient value wins
    assert sql(fresh, 'RESET GLOBAL "cluster.max_shards_per_node"') == 1
    assert sql(fresh, shown) == [[1000]]  # both gone
    assert "does not support the cluster setting stats.jobs_log_size" in refusal(
        fresh, 'SET GLOBAL TRANSIENT "stats.jobs_log_size" = 0'
    )
