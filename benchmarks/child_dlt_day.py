"""Run in the peer's own virtualenv (`make bench-real` creates it): export one day of a CrateDB table to S3
as Parquet the way a dlt user would, and report as JSON.

dlt's `sql_database` source reads the day's rows through SQLAlchemy (the `sqlalchemy-cratedb` dialect, over
CrateDB's HTTP endpoint) into this process, `backend="pyarrow"` (dlt's fastest documented backend) builds
Arrow tables, and the `filesystem` destination writes Parquet to S3. Nothing of cratedb_export is imported.
The S3 keys come in through the environment, never on the command line.

    python child_dlt_day.py CRATE_URL SCHEMA TABLE COLUMN DAY_START_MS DAY_END_MS ENDPOINT BUCKET
"""

import json
import os
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime


def main(
    crate_url: str, schema: str, table: str, column: str, start_ms: int, end_ms: int, endpoint: str, bucket: str
) -> dict:
    started = time.perf_counter()
    import dlt
    import sqlalchemy as sa
    from dlt.sources.sql_database import sql_table

    start = datetime.fromtimestamp(start_ms / 1000, UTC)
    end = datetime.fromtimestamp(end_ms / 1000, UTC)

    def one_day(query: sa.Select, source_table: sa.Table) -> sa.Select:
        return query.where(source_table.c[column] >= start, source_table.c[column] < end)

    host = crate_url.split("://", 1)[1].rstrip("/")
    engine = sa.create_engine(f"crate://crate@{host}/?schema={schema}")
    source = sql_table(
        credentials=engine,
        table=table,
        schema=schema,
        backend="pyarrow",
        chunk_size=50_000,
        query_adapter_callback=one_day,
    )
    destination = dlt.destinations.filesystem(
        bucket_url=f"s3://{bucket}/dlt",
        credentials={
            "aws_access_key_id": os.environ["PEER_AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": os.environ["PEER_AWS_SECRET_ACCESS_KEY"],
            "endpoint_url": endpoint,
            "region_name": "us-east-1",
        },
    )
    with tempfile.TemporaryDirectory() as pipelines_dir:
        pipeline = dlt.pipeline(
            pipeline_name="cratedb_day",
            pipelines_dir=pipelines_dir,
            destination=destination,
            dataset_name=table,
            progress="log" if os.environ.get("PEER_VERBOSE") else None,
        )
        imported = time.perf_counter()
        pipeline.run(source, loader_file_format="parquet", write_disposition="append")
        finished = time.perf_counter()
        rows = pipeline.last_trace.last_normalize_info.row_counts.get(table, 0)
    return {
        "rows": rows,
        "seconds": finished - imported,
        "import_seconds": imported - started,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


if __name__ == "__main__":
    crate_url, schema, table, column, start_ms, end_ms, endpoint, bucket = sys.argv[1:9]
    print(json.dumps(main(crate_url, schema, table, column, int(start_ms), int(end_ms), endpoint, bucket)))
