"""Run in a fresh process: load the code location as `dagster` does, then report time and peak RSS as JSON.

Imports nothing before the clock starts, so the time includes importing Dagster itself, as every run
process, the webserver and the daemon pay it.
"""

import time

_STARTED = time.perf_counter()

import json  # noqa: E402

from procstat import peak_rss_kib  # noqa: E402


def main() -> None:
    import dagster

    imported_dagster = time.perf_counter()
    from cratedb_export.definitions import defs as code_location

    defs = code_location()  # builds the definitions from CRATEDB_EXPORT_CONFIG

    built = time.perf_counter()
    dagster.Definitions.validate_loadable(defs)
    validated = time.perf_counter()
    print(
        json.dumps(
            {
                "total_s": validated - _STARTED,
                "import_dagster_s": imported_dagster - _STARTED,
                "build_defs_s": built - imported_dagster,
                "validate_s": validated - built,
                "assets": len(list(defs.resolve_all_asset_keys())),
                "peak_rss_kib": peak_rss_kib(),
            }
        )
    )


if __name__ == "__main__":
    main()
