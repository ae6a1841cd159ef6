"""Run in a fresh process: one run of the daily export job over a range of days, as one of several at once.

What a backfill with `CRATEDB_EXPORT_DAYS_PER_RUN` becomes through the daemon: runs of a chunk of days
each, every run in a process of its own, two at a time under the pool's default limit. The configuration
and the resource come from the environment, as in a deployment (CRATEDB_EXPORT_CONFIG, CRATEDB_URL, the
S3 keys); the instance is the shared SQLite one in the directory given.

    child_range_run.py <first day> <last day> <instance directory>

Prints the run's outcome as JSON on its last line of standard output; Dagster's console log goes to
standard error.
"""

import json
import sys
import time

from cratedb_export_testbed.support import scheduled_daily_job
from dagster import DagsterInstance

from cratedb_export.orchestration.build import build_definitions


def main() -> None:
    first, last, home = sys.argv[1:4]
    started = time.perf_counter()
    job = scheduled_daily_job(build_definitions())
    tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
    with DagsterInstance.local_temp(tempdir=home) as instance:
        result = job.execute_in_process(instance=instance, tags=tags, raise_on_error=False)
    materializations = result.get_asset_materialization_events()
    rows = sum(e.step_materialization_data.materialization.metadata["rows_exported"].value for e in materializations)
    print(
        json.dumps(
            {
                "success": result.success,
                "materializations": len(materializations),
                "rows": rows,
                "wall_s": time.perf_counter() - started,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
