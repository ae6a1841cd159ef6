"""`format: parquet` end to end through Dagster, and both formats read back by readers nobody here wrote:
pyarrow.dataset (its own S3 filesystem, Hive partitions) and DuckDB (through an fsspec S3 filesystem)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest
from dagster import AssetKey
from fsspec.implementations.arrow import ArrowFSWrapper

from cratedb_export.formats import publish_parquet, staging_directory
from cratedb_export.storage import ObjectStore
from cratedb_export.target import DayDirectory, S3Access
from cratedb_export_tests.support import (
    TEST_SECRETS,
    create_metrics_table,
    epoch_ms,
    failure_message,
    list_keys,
    run_export,
    spec_for,
)

D0, D1, D2 = date(2024, 3, 30), date(2024, 3, 31), date(2024, 4, 1)
HIVE = "{target}/dt={date}/"

# One column of each kind CrateDB has (its information_schema names: 'byte', 'text_array', 'geo_point', ...).
TYPED_DDL = """CREATE TABLE "doc"."{name}" (
  "ts" TIMESTAMP WITH TIME ZONE, "i" INTEGER, "s" SMALLINT, "b" BIGINT, "c" "char", "r" REAL,
  "d" DOUBLE PRECISION, "t" TEXT, "bo" BOOLEAN, "ntz" TIMESTAMP WITHOUT TIME ZONE, "o" OBJECT(DYNAMIC),
  "ta" ARRAY(TEXT), "ia" ARRAY(INTEGER), "gp" GEO_POINT, "ip" IP,
  "month" TIMESTAMP WITH TIME ZONE GENERATED ALWAYS AS date_trunc('month', "ts")
) CLUSTERED INTO 2 SHARDS PARTITIONED BY ("month")"""
TYPED_ROW = {
    "ts": "2024-03-31T10:00:00.123Z", "i": 2147483647, "s": -32768, "b": 9007199254740993, "c": -128,
    "r": 1.1, "d": 2.2, "t": "grüße", "bo": False, "ntz": "2024-03-31T23:59:59.999",
    "o": {"a": 1, "b": {"c": "z"}}, "ta": ["x", None], "ia": [1, 2], "gp": [9.5, 50.1], "ip": "10.0.0.1",
}  # fmt: skip
TYPED_ARROW = {
    "ts": pa.timestamp("ms", tz="UTC"), "i": pa.int32(), "s": pa.int16(), "b": pa.int64(), "c": pa.int8(),
    "r": pa.float32(), "d": pa.float64(), "t": pa.string(), "bo": pa.bool_(), "ntz": pa.timestamp("ms"),
    "o": pa.string(), "ta": pa.list_(pa.string()), "ia": pa.list_(pa.int32()), "gp": pa.list_(pa.float64()),
    "ip": pa.string(), "month": pa.timestamp("ms", tz="UTC"),
}  # fmt: skip


@pytest.fixture
def metrics(crate):
    return create_metrics_table(crate, [D0, D1, D2], per_day=6)


def _arrow_s3(s3) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(
        access_key=TEST_SECRETS.access_key,
        secret_key=TEST_SECRETS.secret_key,
        endpoint_override=s3.endpoint,
        scheme="http",
        region="us-east-1",
        allow_bucket_creation=False,
    )


class _S3Wrapper(ArrowFSWrapper):
    protocol = "s3"  # so that DuckDB hands s3:// paths to it


def _duckdb(s3) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    connection.register_filesystem(_S3Wrapper(_arrow_s3(s3)))
    connection.execute("SET TimeZone = 'UTC'")
    return connection


def _manifest(s3, bucket, prefix) -> dict:
    return json.loads(s3.client().get_object(Bucket=bucket, Key=f"{prefix}_manifest.json")["Body"].read())


def test_a_parquet_day_holds_only_its_parquet_file_manifest_and_marker(export_env, instance, s3, bucket, metrics):
    spec = spec_for(metrics, bucket, format="parquet", directory=HIVE)
    assert run_export([spec], instance, partition=D1.isoformat()).success
    prefix = f"{metrics.name}/dt={D1.isoformat()}/"
    parquet = f"{prefix}{metrics.name}_{D1.isoformat()}.parquet"
    assert list_keys(s3.client(), bucket) == sorted([parquet, f"{prefix}_manifest.json", f"{prefix}_SUCCESS"])

    manifest = _manifest(s3, bucket, prefix)
    rows = len(metrics.rows_by_day[D1])
    assert manifest["format"] == "parquet"
    assert manifest["columns"] == [
        {"name": "hash_id", "data_type": "bigint", "parquet_type": "int64"},
        {"name": "timestamp", "data_type": "timestamp with time zone", "parquet_type": "timestamp[ms, tz=UTC]"},
        {"name": "name", "data_type": "text", "parquet_type": "string"},
        {"name": "tags", "data_type": "object", "parquet_type": "string"},
        {"name": "fields", "data_type": "object", "parquet_type": "string"},
        {"name": "month", "data_type": "timestamp with time zone", "parquet_type": "timestamp[ms, tz=UTC]"},
    ]
    size = s3.client().head_object(Bucket=bucket, Key=parquet)["ContentLength"]
    assert manifest["files"] == [{"name": parquet.rsplit("/", 1)[1], "size": size, "rows": rows}]
    assert manifest["totals"]["copy_rowcount"] == manifest["totals"]["source_rows"] == rows
    assert manifest["totals"]["exported_rows"] == rows

    (event,) = instance.fetch_materializations(AssetKey(["cratedb_export", "doc", metrics.name]), limit=5).records
    metadata = event.asset_materialization.metadata
    schema = metadata["dagster/column_schema"].value
    assert [(c.name, c.type) for c in schema.columns][:2] == [
        ("hash_id", "bigint"),
        ("timestamp", "timestamp with time zone"),
    ]
    assert metadata["format"].value == "parquet"

    table = ds.dataset(f"{bucket}/{metrics.name}", filesystem=_arrow_s3(s3), format="parquet", partitioning="hive")
    read = table.to_table().to_pylist()
    assert sorted(r["hash_id"] for r in read) == sorted(metrics.hash_ids(D1))
    by_id = {r["hash_id"]: r for r in read}
    for row in metrics.rows_by_day[D1]:
        got = by_id[row["hash_id"]]
        assert got["timestamp"] == datetime.fromtimestamp(row["timestamp"] / 1000, UTC)
        assert json.loads(got["tags"]) == row["tags"] and json.loads(got["fields"]) == row["fields"]
        assert got["dt"] == D1.isoformat()  # the day as the partition field


def test_parquet_reruns_leave_one_identical_copy_and_failures_leave_no_parquet(
    export_env, instance, s3, bucket, metrics
):
    spec = spec_for(metrics, bucket, format="parquet")
    prefix = f"{metrics.name}-{D0.isoformat()}/"
    snapshots = []
    for _ in range(2):
        assert run_export([spec], instance, partition=D0.isoformat()).success
        client = s3.client()
        snapshots.append(
            {k: client.get_object(Bucket=bucket, Key=k)["Body"].read() for k in list_keys(client, bucket, prefix)}
        )
        snapshots[-1].pop(f"{prefix}_manifest.json")
    assert snapshots[0] == snapshots[1] and len(snapshots[0]) == 2


def test_a_failed_conversion_leaves_no_parquet_no_upload_and_no_marker(s3, bucket, monkeypatch):
    """Staged NDJSON whose second object holds a value its column cannot hold: nothing is published."""
    access = S3Access(TEST_SECRETS.access_key, TEST_SECRETS.secret_key, endpoint=s3.endpoint, protocol="http")
    store = ObjectStore(access)
    directory = DayDirectory(bucket, "t/dt=2024-01-01/")
    staging = staging_directory(directory)
    client = s3.client()
    good = b"".join(b'{"a":%d,"t":"%s"}\n' % (n, b"x" * 200) for n in range(40_000))
    client.put_object(Bucket=bucket, Key=staging.key("t_0_.json"), Body=good)
    client.put_object(Bucket=bucket, Key=staging.key("t_1_.json"), Body=b'{"a":1}\n{"a":2147483648}\n')
    monkeypatch.setattr("cratedb_export.storage.MultipartUpload.__init__.__defaults__", (5 << 20,))
    with pytest.raises(Exception, match=r"doc\.t 2024-01-01: column 'a' \(integer\)"):
        publish_parquet(
            store,
            [("a", "integer"), ("t", "text")],
            directory,
            file_name="t_2024-01-01.parquet",
            what="doc.t 2024-01-01",
            counts={"copy_rowcount": 40_002, "source_rows": 40_002},
        )
    assert list_keys(client, bucket, directory.prefix) == [staging.key("t_0_.json"), staging.key("t_1_.json")]
    assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_a_column_added_between_days_keeps_the_lake_one_dataset(export_env, instance, s3, bucket, metrics, crate):
    spec = spec_for(metrics, bucket, format="parquet", directory=HIVE)
    assert run_export([spec], instance, partition=D0.isoformat()).success
    # The table grows a column, and its dynamic object a key, before the next day is exported.
    crate.sql(f'ALTER TABLE "doc"."{metrics.name}" ADD COLUMN "unit" TEXT')
    moment = epoch_ms(datetime(2024, 3, 31, 12, tzinfo=UTC))
    crate.sql(
        f'INSERT INTO "doc"."{metrics.name}" ("hash_id", "timestamp", "name", "tags", "fields", "unit") '
        "VALUES (?, ?, ?, ?, ?, ?)",
        [999, moment, "cpu", {"host": "h", "rack": "r7"}, {"usage_idle": 1.0}, "percent"],
    )
    crate.sql(f'REFRESH TABLE "doc"."{metrics.name}"')
    assert run_export([spec], instance, partition=D1.isoformat()).success

    root = f"{bucket}/{metrics.name}"
    fs = _arrow_s3(s3)
    # pyarrow: unify the days' schemas (the day before has no "unit"), then read them as one dataset.
    found = ds.dataset(root, filesystem=fs, format="parquet", partitioning="hive")
    unified = pa.unify_schemas([fragment.physical_schema for fragment in found.get_fragments()])
    table = ds.dataset(root, filesystem=fs, format="parquet", partitioning="hive", schema=unified).to_table()
    assert table.schema.field("unit").type == pa.string() and table.schema.field("tags").type == pa.string()
    rows = {r["hash_id"]: r for r in table.to_pylist()}
    assert set(rows) == metrics.hash_ids(D0) | metrics.hash_ids(D1) | {999}
    assert rows[999]["unit"] == "percent" and json.loads(rows[999]["tags"]) == {"host": "h", "rack": "r7"}
    assert all(rows[h]["unit"] is None for h in metrics.hash_ids(D0))
    # DuckDB, by name across files.
    counted = (
        _duckdb(s3)
        .execute(
            f"SELECT count(*), count(unit), count(DISTINCT dt) FROM read_parquet('s3://{root}/*/*.parquet', "
            "hive_partitioning = true, union_by_name = true)"
        )
        .fetchone()
    )
    assert counted == (len(rows), 1, 2)


def _typed_table(crate) -> str:
    name = f"typed_{uuid.uuid4().hex[:10]}"
    crate.sql(TYPED_DDL.format(name=name))
    columns = list(TYPED_ROW)
    marks = ", ".join("?" for _ in columns)
    quoted = ", ".join(f'"{c}"' for c in columns)
    crate.sql(f'INSERT INTO "doc"."{name}" ({quoted}) VALUES ({marks})', [TYPED_ROW[c] for c in columns])
    crate.sql(f'INSERT INTO "doc"."{name}" ("ts") VALUES (?)', ["2024-03-31T00:00:00Z"])
    crate.sql(f'REFRESH TABLE "doc"."{name}"')
    return name


def test_readers_see_every_type_of_a_parquet_lake(export_env, instance, s3, bucket, crate):
    name = _typed_table(crate)
    spec = {"table": f"doc.{name}", "timestamp_column": "ts", "target": f"{bucket}/{name}", "start_date": "2024-01-01"}
    assert run_export([{**spec, "format": "parquet", "directory": HIVE}], instance, partition=D1.isoformat()).success

    table = ds.dataset(f"{bucket}/{name}", filesystem=_arrow_s3(s3), format="parquet", partitioning="hive")
    assert {f.name: f.type for f in table.schema if f.name != "dt"} == TYPED_ARROW
    full, empty = sorted(table.to_table().to_pylist(), key=lambda r: r["i"] is None)
    assert full["ts"] == datetime(2024, 3, 31, 10, 0, 0, 123000, tzinfo=UTC)
    assert full["ntz"] == datetime(2024, 3, 31, 23, 59, 59, 999000)  # naive: wall clock as stored
    assert (full["i"], full["s"], full["b"], full["c"]) == (2147483647, -32768, 9007199254740993, -128)
    assert full["r"] == pa.scalar(1.1, pa.float32()).as_py() and full["d"] == 2.2
    assert (full["t"], full["bo"], full["ip"], full["ta"], full["ia"]) == (
        "grüße",
        False,
        "10.0.0.1",
        ["x", None],
        [1, 2],
    )
    assert full["gp"] == [9.5, 50.1] and json.loads(full["o"]) == {"a": 1, "b": {"c": "z"}}
    assert all(v is None for k, v in empty.items() if k not in ("ts", "month", "dt"))

    connection = _duckdb(s3)
    query = f"FROM read_parquet('s3://{bucket}/{name}/*/*.parquet', hive_partitioning = true)"
    types = dict(connection.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * {query})").fetchall())
    assert types == {
        "ts": "TIMESTAMP WITH TIME ZONE", "i": "INTEGER", "s": "SMALLINT", "b": "BIGINT", "c": "TINYINT",
        "r": "FLOAT", "d": "DOUBLE", "t": "VARCHAR", "bo": "BOOLEAN", "ntz": "TIMESTAMP", "o": "VARCHAR",
        "ta": "VARCHAR[]", "ia": "INTEGER[]", "gp": "DOUBLE[]", "ip": "VARCHAR",
        "month": "TIMESTAMP WITH TIME ZONE", "dt": "DATE",
    }  # fmt: skip
    b, o_b_c, dt = connection.execute(
        f"SELECT b, json_extract_string(o, '$.b.c'), dt {query} WHERE i IS NOT NULL"
    ).fetchone()
    assert (b, o_b_c, dt) == (9007199254740993, "z", D1)


def test_readers_see_the_rows_of_a_json_lake(export_env, instance, s3, bucket, metrics):
    spec = spec_for(metrics, bucket, compression="gzip", directory=HIVE)
    assert run_export([spec], instance, partition_range=(D0.isoformat(), D1.isoformat())).success
    expected = metrics.hash_ids(D0) | metrics.hash_ids(D1)

    connection = _duckdb(s3)
    query = (
        f"FROM read_json('s3://{bucket}/{metrics.name}/*/*.json.gz', format = 'newline_delimited', "
        "hive_partitioning = true)"
    )
    types = dict(connection.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * {query})").fetchall())
    assert types["hash_id"] == "BIGINT" and types["timestamp"] == "BIGINT"  # epoch ms, as COPY writes it
    assert types["name"] == "VARCHAR" and types["tags"].startswith("STRUCT(host VARCHAR") and types["dt"] == "DATE"
    rows = connection.execute(f'SELECT hash_id, "timestamp", tags.host, dt {query}').fetchall()
    assert {r[0] for r in rows} == expected
    by_id = {r["hash_id"]: r for day in (D0, D1) for r in metrics.rows_by_day[day]}
    for hash_id, timestamp, host, dt in rows:
        assert (timestamp, host) == (by_id[hash_id]["timestamp"], by_id[hash_id]["tags"]["host"])
        assert dt == datetime.fromtimestamp(timestamp / 1000, UTC).date()

    # COPY writes a file for every shard, an empty one where no row matched, which pyarrow's JSON reader
    # refuses ("Empty JSON stream"): it reads the lake when told to skip files that hold no rows.
    table = ds.dataset(
        f"{bucket}/{metrics.name}",
        filesystem=_arrow_s3(s3),
        format="json",
        partitioning="hive",
        exclude_invalid_files=True,
    ).to_table()
    assert set(table.column("hash_id").to_pylist()) == expected
    assert table.schema.field("hash_id").type == pa.int64() and pa.types.is_struct(table.schema.field("tags").type)


def test_an_unknown_format_is_refused_when_the_code_location_loads(export_env, instance, bucket, metrics):
    result = None
    with pytest.raises(Exception, match="field 'format'"):
        result = run_export([spec_for(metrics, bucket, format="orc")], instance, partition=D0.isoformat())
    assert result is None or not failure_message(result)
