"""What day D means for each type of timestamp column, end to end through the code location's job."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from cratedb_export_testbed.support import CrateUnderTest, failure_message, list_keys, read_rows, run_export


def _wall_ms(text: str) -> int:
    """A wall-clock time as TIMESTAMP WITHOUT TIME ZONE stores it: its digits read as UTC."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def _table(crate: CrateUnderTest, column_type: str, values: list[int | str]) -> str:
    name = f"days_{uuid.uuid4().hex[:10]}"
    crate.sql(f'CREATE TABLE "doc"."{name}" ("id" BIGINT, "ts" {column_type}) CLUSTERED INTO 2 SHARDS')
    crate.sql(
        f'INSERT INTO "doc"."{name}" ("id", "ts") VALUES (?, ?)', bulk_args=[[i, v] for i, v in enumerate(values)]
    )
    crate.sql(f'REFRESH TABLE "doc"."{name}"')
    return name


def _spec(name: str, bucket: str, timezone: str) -> dict:
    return {
        "table": f"doc.{name}",
        "timestamp_column": "ts",
        "target": f"{bucket}/{name}",
        "start_date": "2024-01-01",
        "timezone": timezone,
    }


@pytest.mark.parametrize(
    ("day", "inside", "outside"),
    [
        # Vienna springs forward on 2024-03-31 (02:00 -> 03:00) and falls back on 2024-10-27 (03:00 -> 02:00).
        (
            "2024-03-31",
            ["2024-03-31T00:00:00", "2024-03-31T02:30:00", "2024-03-31T23:00:00", "2024-03-31T23:59:59.999"],
            ["2024-03-30T23:59:59.999", "2024-03-30T22:30:00", "2024-04-01T00:00:00", "2024-04-01T01:30:00"],
        ),
        (
            "2024-10-27",
            ["2024-10-27T00:00:00", "2024-10-27T02:30:00", "2024-10-27T22:30:00", "2024-10-27T23:59:59.999"],
            ["2024-10-26T23:59:59.999", "2024-10-26T22:30:00", "2024-10-28T00:00:00", "2024-10-28T00:30:00"],
        ),
    ],
)
def test_timestamp_without_time_zone_days_are_wall_clock_days_whatever_the_zone(
    export_env, instance, crate, s3, bucket, day, inside, outside
):
    name = _table(crate, "TIMESTAMP WITHOUT TIME ZONE", [_wall_ms(t) for t in inside + outside])
    result = run_export([_spec(name, bucket, "Europe/Vienna")], instance, partition=day)
    assert result.success, failure_message(result)
    rows = read_rows(s3.client(), bucket, f"{name}-{day}/")
    assert sorted(r["ts"] for r in rows) == sorted(_wall_ms(t) for t in inside)
    manifest = json.loads(s3.client().get_object(Bucket=bucket, Key=f"{name}-{day}/_manifest.json")["Body"].read())
    assert manifest["window"]["start"] == f"{day}T00:00:00"  # no offset: wall clock
    assert "ts is timestamp without time zone, read as wall-clock time" in manifest["window"]["read_as"]
    materialization = instance.get_latest_materialization_event(
        result.asset_materializations_for_node("export_tables")[0].asset_key
    )
    assert "wall-clock" in materialization.asset_materialization.metadata["window_read_as"].value


def test_timestamp_with_time_zone_days_follow_the_zone_across_dst(export_env, instance, crate, s3, bucket):
    # 2024-03-31 in Vienna is [2024-03-30T23:00Z, 2024-03-31T22:00Z): 23 hours.
    start = datetime(2024, 3, 30, 23, tzinfo=UTC)
    inside = [start, start + timedelta(hours=22, minutes=59, milliseconds=59_999)]
    outside = [start - timedelta(milliseconds=1), start + timedelta(hours=23)]
    name = _table(crate, "TIMESTAMP WITH TIME ZONE", [int(t.timestamp() * 1000) for t in inside + outside])
    assert run_export([_spec(name, bucket, "Europe/Vienna")], instance, partition="2024-03-31").success
    rows = read_rows(s3.client(), bucket, f"{name}-2024-03-31/")
    assert sorted(r["ts"] for r in rows) == sorted(int(t.timestamp() * 1000) for t in inside)


def test_bigint_columns_are_read_as_epoch_milliseconds(export_env, instance, crate, s3, bucket):
    day = date(2024, 5, 2)
    start = int(datetime(2024, 5, 2, tzinfo=UTC).timestamp() * 1000)
    name = _table(crate, "BIGINT", [start - 1, start, start + 86_399_999, start + 86_400_000])
    assert run_export([_spec(name, bucket, "UTC")], instance, partition_range=("2024-05-01", "2024-05-03")).success
    rows = read_rows(s3.client(), bucket, f"{name}-{day.isoformat()}/")
    assert sorted(r["ts"] for r in rows) == [start, start + 86_399_999]


def test_a_column_of_another_type_is_refused_before_any_copy(export_env, instance, crate, s3, bucket):
    name = _table(crate, "TEXT", ["2024-05-02T10:00:00"])
    result = run_export([_spec(name, bucket, "UTC")], instance, partition="2024-05-02")
    assert not result.success
    message = failure_message(result)
    assert f"doc.{name}: timestamp_column 'ts' is of type text" in message
    assert "TIMESTAMP WITH TIME ZONE, TIMESTAMP WITHOUT TIME ZONE or BIGINT" in message
    assert list_keys(s3.client(), bucket) == []
    copies = crate.sql('SELECT "stmt" FROM "sys"."jobs_log" WHERE "stmt" LIKE ?', [f'%COPY "doc"."{name}"%'])
    assert copies == []
