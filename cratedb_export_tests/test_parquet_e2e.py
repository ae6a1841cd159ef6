"""`format: parquet` end to end through Dagster, and both formats read back by readers nobody here wrote:
pyarrow.dataset (its own S3 filesystem, Hive partitions) and DuckDB (through an fsspec S3 filesystem)."""

from __future__ import annotations

import base64
import json
import os
import uuid
from datetime import UTC, date, datetime

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest
from cratedb_export_testbed.support import (
    TEST_SECRETS,
    create_metrics_table,
    epoch_ms,
    failure_message,
    list_keys,
    run_export,
    spec_for,
)
from dagster import AssetKey
from fsspec.implementations.arrow import ArrowFSWrapper

from cratedb_export.core.config import ConfigError
from cratedb_export.core.formats import staging_directory
from cratedb_export.core.formats.publish import publish_parquet
from cratedb_export.core.storage import ObjectStore
from cratedb_export.core.target import DayDirectory, S3Access
from cratedb_export.orchestration.build import build_definitions

D0, D1, D2 = date(2024, 3, 30), date(2024, 3, 31), date(2024, 4, 1)
HIVE = "{target}/dt={date}/"

# One column of each kind: (name, DDL type, value inserted, Parquet type, DuckDB's type).
TYPED = [
    ("i", "INTEGER", 2147483647, pa.int32(), "INTEGER"),
    ("s", "SMALLINT", -32768, pa.int16(), "SMALLINT"),
    ("b", "BIGINT", 9007199254740993, pa.int64(), "BIGINT"),
    ("c", '"char"', -128, pa.int8(), "TINYINT"),
    ("r", "REAL", 1.1, pa.float32(), "FLOAT"),
    ("d", "DOUBLE PRECISION", 2.2, pa.float64(), "DOUBLE"),
    ("t", "TEXT", "grüße", pa.string(), "VARCHAR"),
    ("bo", "BOOLEAN", False, pa.bool_(), "BOOLEAN"),
    ("ntz", "TIMESTAMP WITHOUT TIME ZONE", "2024-03-31T23:59:59.999", pa.timestamp("ms"), "TIMESTAMP"),
    ("o", "OBJECT(DYNAMIC)", {"a": 1, "b": {"c": "z"}}, pa.string(), "VARCHAR"),
    ("ta", "ARRAY(TEXT)", ["x", None], pa.list_(pa.string()), "VARCHAR[]"),
    ("ia", "ARRAY(INTEGER)", [1, 2], pa.list_(pa.int32()), "INTEGER[]"),
    ("gp", "GEO_POINT", [9.5, 50.1], pa.list_(pa.float64()), "DOUBLE[]"),
    ("ip", "IP", "10.0.0.1", pa.string(), "VARCHAR"),
]
TYPED_DDL = """CREATE TABLE "doc"."{name}" ("ts" TIMESTAMP WITH TIME ZONE, {columns},
  "month" TIMESTAMP WITH TIME ZONE GENERATED ALWAYS AS date_trunc('month', "ts")
) CLUSTERED INTO 2 SHARDS PARTITIONED BY ("month")"""


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
    """Staged NDJSON whose second object holds a value its column cannot hold, after parts of the Parquet
    file were uploaded: the upload is aborted and nothing is published."""
    access = S3Access(TEST_SECRETS.access_key, TEST_SECRETS.secret_key, endpoint=s3.endpoint, protocol="http")
    store = ObjectStore(access)
    parts: list[str] = []
    store._client.meta.events.register("before-call.s3.UploadPart", lambda **_: parts.append("part"))
    directory = DayDirectory(bucket, "t/dt=2024-01-01/")
    staging = staging_directory(directory)
    client = s3.client()
    # Text that does not compress, so the rows before the bad value fill more than one 5 MiB part.
    good = b"".join(b'{"a":%d,"t":"%s"}\n' % (n, base64.b64encode(os.urandom(150))) for n in range(60_000))
    client.put_object(Bucket=bucket, Key=staging.key("t_0_.json"), Body=good)
    client.put_object(Bucket=bucket, Key=staging.key("t_1_.json"), Body=b'{"a":1}\n{"a":2147483648}\n')
    monkeypatch.setattr("cratedb_export.core.storage.MultipartUpload.__init__.__defaults__", (5 << 20,))
    with pytest.raises(Exception, match=r"doc\.t 2024-01-01: column 'a' \(integer\)"):
        publish_parquet(
            store,
            [("a", "integer"), ("t", "text")],
            directory,
            file_name="t_2024-01-01.parquet",
            what="doc.t 2024-01-01",
            counts={"copy_rowcount": 60_002, "source_rows": 60_002},
        )
    assert parts, "no part was uploaded before the bad value: the abort was not exercised"
    assert list_keys(client, bucket, directory.prefix) == [staging.key("t_0_.json"), staging.key("t_1_.json")]
    assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_a_column_added_between_days_keeps_the_lake_one_dataset(export_env, instance, s3, bucket, crate):
    name = f"grows_{uuid.uuid4().hex[:10]}"
    crate.sql(
        f'CREATE TABLE "doc"."{name}" ("hash_id" BIGINT, "timestamp" TIMESTAMP WITH TIME ZONE, "tags" OBJECT(DYNAMIC)) '
        "WITH (column_policy = 'dynamic')"
    )
    insert = f'INSERT INTO "doc"."{name}" ("hash_id", "timestamp", "tags") VALUES (?, ?, ?)'
    crate.sql(insert, [1, epoch_ms(datetime(2024, 3, 30, 12, tzinfo=UTC)), {"host": "a"}])
    crate.sql(f'REFRESH TABLE "doc"."{name}"')
    spec = {
        "table": f"doc.{name}", "timestamp_column": "timestamp", "target": f"{bucket}/{name}",
        "start_date": "2024-01-01", "format": "parquet", "directory": HIVE,
    }  # fmt: skip
    assert run_export([spec], instance, partition=D0.isoformat()).success
    # Before the next day is exported, the table grows a column (inserted into a dynamic table, as CrateDB
    # tables grow; ALTER TABLE ADD COLUMN is the same to the export) and its object a key.
    crate.sql(
        f'INSERT INTO "doc"."{name}" ("hash_id", "timestamp", "tags", "unit") VALUES (?, ?, ?, ?)',
        [999, epoch_ms(datetime(2024, 3, 31, 12, tzinfo=UTC)), {"host": "h", "rack": "r7"}, "percent"],
    )
    crate.sql(f'REFRESH TABLE "doc"."{name}"')
    assert run_export([spec], instance, partition=D1.isoformat()).success

    root = f"{bucket}/{name}"
    fs = _arrow_s3(s3)
    # pyarrow: unify the days' schemas (the day before has no "unit"), then read them as one dataset.
    found = ds.dataset(root, filesystem=fs, format="parquet", partitioning="hive")
    unified = pa.unify_schemas([fragment.physical_schema for fragment in found.get_fragments()])
    table = ds.dataset(root, filesystem=fs, format="parquet", partitioning="hive", schema=unified).to_table()
    assert table.schema.field("unit").type == pa.string() and table.schema.field("tags").type == pa.string()
    rows = {r["hash_id"]: r for r in table.to_pylist()}
    assert set(rows) == {1, 999}
    assert rows[999]["unit"] == "percent" and json.loads(rows[999]["tags"]) == {"host": "h", "rack": "r7"}
    assert rows[1]["unit"] is None and json.loads(rows[1]["tags"]) == {"host": "a"}
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


def _typed_table(crate) -> tuple[str, list]:
    """A table with a column of each kind; one full row."""
    name = f"typed_{uuid.uuid4().hex[:10]}"
    typed = TYPED
    crate.sql(TYPED_DDL.format(name=name, columns=", ".join(f'"{c}" {ddl}' for c, ddl, *_ in typed)))
    quoted = ", ".join(f'"{c}"' for c, *_ in typed)
    marks = ", ".join("?" for _ in typed)
    row = ["2024-03-31T10:00:00.123Z", *(value for _, _, value, *_ in typed)]
    crate.sql(f'INSERT INTO "doc"."{name}" ("ts", {quoted}) VALUES (?, {marks})', row)
    crate.sql(f'INSERT INTO "doc"."{name}" ("ts") VALUES (?)', ["2024-03-31T00:00:00Z"])
    crate.sql(f'REFRESH TABLE "doc"."{name}"')
    return name, typed


def test_readers_see_every_type_of_a_parquet_lake(export_env, instance, s3, bucket, crate):
    name, typed = _typed_table(crate)
    spec = {"table": f"doc.{name}", "timestamp_column": "ts", "target": f"{bucket}/{name}", "start_date": "2024-01-01"}
    assert run_export([{**spec, "format": "parquet", "directory": HIVE}], instance, partition=D1.isoformat()).success

    table = ds.dataset(f"{bucket}/{name}", filesystem=_arrow_s3(s3), format="parquet", partitioning="hive")
    utc = pa.timestamp("ms", tz="UTC")
    assert {f.name: f.type for f in table.schema} == {
        "ts": utc,
        **{c: t for c, _, _, t, *_ in typed},
        "month": utc,
        "dt": pa.string(),
    }
    full, empty = sorted(table.to_table().to_pylist(), key=lambda r: r["i"] is None)
    expected = {c: value for c, _, value, *_ in typed}
    expected["ntz"] = datetime(2024, 3, 31, 23, 59, 59, 999000)  # naive: the wall clock as stored
    expected["o"] = '{"a":1,"b":{"c":"z"}}'  # the object's JSON text
    expected["r"] = pa.scalar(1.1, pa.float32()).as_py()  # REAL is float32, exactly
    assert {c: full[c] for c in expected} == expected
    assert full["ts"] == datetime(2024, 3, 31, 10, 0, 0, 123000, tzinfo=UTC)
    assert all(v is None for k, v in empty.items() if k not in ("ts", "month", "dt"))

    connection = _duckdb(s3)
    query = f"FROM read_parquet('s3://{bucket}/{name}/*/*.parquet', hive_partitioning = true)"
    types = dict(connection.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * {query})").fetchall())
    zoned = "TIMESTAMP WITH TIME ZONE"
    assert types == {"ts": zoned, **{c: duck for c, _, _, _, duck in typed}, "month": zoned, "dt": "DATE"}
    got = connection.execute(f"SELECT b, json_extract_string(o, '$.b.c'), dt, ntz {query} WHERE i IS NOT NULL")
    assert got.fetchone() == (9007199254740993, "z", D1, expected["ntz"])


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
    with pytest.raises(ConfigError, match="field 'format'"):
        build_definitions([spec_for(metrics, bucket, format="orc")])


def test_a_json_day_records_its_columns_too(export_env, instance, s3, bucket, metrics):
    spec = spec_for(metrics, bucket, columns=["hash_id", "timestamp", "tags['host']"], compression="gzip")
    assert run_export([spec], instance, partition=D0.isoformat()).success
    manifest = _manifest(s3, bucket, f"{metrics.name}-{D0.isoformat()}/")
    assert manifest["format"] == "json"
    assert manifest["columns"] == [
        {"name": "hash_id", "data_type": "bigint"},
        {"name": "timestamp", "data_type": "timestamp with time zone"},
        {"name": "tags['host']", "data_type": "text"},
    ]
    (event,) = instance.fetch_materializations(AssetKey(["cratedb_export", "doc", metrics.name]), limit=5).records
    schema = event.asset_materialization.metadata["dagster/column_schema"].value
    assert [(c.name, c.type) for c in schema.columns] == [(c["name"], c["data_type"]) for c in manifest["columns"]]


@pytest.mark.parametrize(
    "fault",
    [
        lambda double: double.faults.truncate_next_copy(drop_rows=1),
        lambda double: double.faults.inflate_next_copy_rowcount(extra=2),
    ],
    ids=["object shorter than reported", "rowcount higher than written"],
)
def test_a_parquet_day_that_does_not_add_up_leaves_no_parquet_and_no_marker(
    export_env, instance, s3, bucket, metrics, double, fault
):
    spec = spec_for(metrics, bucket, format="parquet", directory=HIVE)
    prefix = f"{metrics.name}/dt={D1.isoformat()}/"
    fault(double)
    result = run_export([spec], instance, partition=D1.isoformat())
    assert not result.success
    message = failure_message(result)
    assert "does not match" in message and "copy_rowcount=" in message and "source_rows=" in message
    left = list_keys(s3.client(), bucket, prefix)
    assert not [k for k in left if k.endswith((".parquet", "_SUCCESS"))], left  # only staging may remain
    assert not s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads")
    # The next run clears the staging and leaves one clean, marked day.
    assert run_export([spec], instance, partition=D1.isoformat()).success
    assert len(list_keys(s3.client(), bucket, prefix)) == 3


def test_a_parquet_day_whose_copy_answer_was_lost_is_converted_from_the_staged_files(
    export_env, monkeypatch, instance, s3, crate, bucket, metrics, double
):
    monkeypatch.setenv("CRATEDB_URL", f"{crate.url} {crate.url.replace('127.0.0.1', 'localhost')}")
    monkeypatch.setenv("CRATEDB_TIMEOUT", "1")
    double.faults.slow_next_copy(seconds=3)
    result = run_export([spec_for(metrics, bucket, format="parquet", directory=HIVE)], instance, partition="2024-03-31")
    assert result.success, failure_message(result)
    manifest = _manifest(s3, bucket, f"{metrics.name}/dt=2024-03-31/")
    assert manifest["copy_answer"].startswith("answer lost; sys.jobs_log shows job")
    assert manifest["totals"]["copy_rowcount"] is None
    assert manifest["totals"]["source_rows"] == manifest["totals"]["exported_rows"] == len(metrics.rows_by_day[D1])
    assert manifest["files"][0]["name"].endswith(".parquet")
