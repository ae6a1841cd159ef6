"""Run in a fresh process: turn one staged day (the large gzip NDJSON object) into Parquet, as
`format: parquet` does (`formats.publish_parquet`: stream, convert, upload, read the footer back, remove
the staging); report as JSON. The keys come in through the environment, never on the command line.
"""

import json
import os
import sys
import time

from procstat import peak_rss_kib, rss_kib

# The tutorial's metrics table as information_schema.columns describes it.
COLUMNS = [
    ("hash_id", "bigint"),
    ("timestamp", "timestamp with time zone"),
    ("name", "text"),
    ("tags", "object"),
    ("fields", "object"),
    ("month", "timestamp with time zone"),
]


def main(endpoint: str, bucket: str, prefix: str, rows: int) -> None:
    started = time.perf_counter()
    from cratedb_export.core.formats import staging_directory
    from cratedb_export.core.formats.publish import publish_parquet
    from cratedb_export.core.storage import ObjectStore
    from cratedb_export.core.target import DayDirectory, S3Access

    store = ObjectStore(
        S3Access(os.environ["ACCESS_KEY_ID"], os.environ["SECRET_ACCESS_KEY"], endpoint=endpoint, protocol="http")
    )
    directory = DayDirectory(bucket=bucket, prefix=prefix)
    staged = store.list_directory(staging_directory(directory))
    imported = time.perf_counter()
    baseline = {"baseline_rss_kib": rss_kib(), "baseline_peak_kib": peak_rss_kib()}
    converting = time.perf_counter()
    published = publish_parquet(
        store,
        COLUMNS,
        directory,
        file_name="metrics_2024-06-15.parquet",
        what="doc.metrics 2024-06-15",
        counts={"copy_rowcount": rows, "source_rows": rows},
    )
    converted = time.perf_counter()
    from cratedb_export.core.formats.parquet import CONVERSION_KEY, footer

    # Which path converted the rows (native / exact), as the file itself records it.
    found = footer(published.size, lambda start, end: store.read_range(directory, published.name, start, end)).metadata
    print(
        json.dumps(
            {
                **baseline,
                "setup_s": imported - started,
                "convert_s": converted - converting,
                "rows": published.rows,
                "conversion": json.loads(found[CONVERSION_KEY.encode()]),
                "parquet_bytes": published.size,
                "staged": [[o.key, o.size] for o in staged],
                "left": [[o.key, o.size] for o in store.list_directory(directory)],
                "peak_rss_kib": peak_rss_kib(),
                "final_rss_kib": rss_kib(),
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
