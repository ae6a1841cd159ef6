"""Run in a fresh process: count one exported object's rows with the package's read-back; report as JSON.

The baseline is taken where `export_day` stands before reading back: package imported, S3 client made,
the day's directory listed. What the peak adds on top of it is what counting costs. The keys come in
through the environment (ACCESS_KEY_ID / SECRET_ACCESS_KEY), never on the command line.
"""

import json
import os
import sys
import time

from procstat import peak_rss_kib, rss_kib


def main(endpoint: str, bucket: str, prefix: str, key: str, size: int) -> None:
    started = time.perf_counter()
    from cratedb_export.core.storage import ObjectStore, StoredObject
    from cratedb_export.core.target import DayDirectory, S3Access

    store = ObjectStore(
        S3Access(os.environ["ACCESS_KEY_ID"], os.environ["SECRET_ACCESS_KEY"], endpoint=endpoint, protocol="http")
    )
    directory = DayDirectory(bucket=bucket, prefix=prefix)
    listed = store.list_directory(directory)
    imported = time.perf_counter()
    baseline = {"baseline_rss_kib": rss_kib(), "baseline_peak_kib": peak_rss_kib()}
    counting = time.perf_counter()
    rows = store.count_rows(directory, StoredObject(key, size))
    counted = time.perf_counter()
    print(
        json.dumps(
            {
                **baseline,
                "setup_s": imported - started,
                "count_s": counted - counting,
                "rows": rows,
                "listed": [[o.key, o.size] for o in listed],
                "peak_rss_kib": peak_rss_kib(),
                "final_rss_kib": rss_kib(),
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
