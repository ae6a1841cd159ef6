"""``python -m cratedb_export_testbed.standin --port 4200 [--user NAME --password PW]``.

Serves the CrateDB stand-in until SIGTERM or SIGINT and prints one line ending in its URL once it
answers, for the local sandbox, benchmarks and end-to-end tests that run ``dagster dev`` against it.
"""

from __future__ import annotations

import argparse
import signal
import threading

from cratedb_export_testbed.standin.server import CrateDouble


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cratedb_export_testbed.standin", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4200)
    parser.add_argument("--user", help="require HTTP Basic auth for this user (default: trust, user crate)")
    parser.add_argument("--password", default="")
    parser.add_argument("--version", default="5.10.4", help="CrateDB version to report")
    parser.add_argument("--shards", type=int, default=4, help="shards of a table without CLUSTERED INTO")
    options = parser.parse_args(argv)
    users = {options.user: options.password} if options.user else None
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with CrateDouble(users, options.version, options.shards, host=options.host, port=options.port) as double:
        print(f"CrateDB test double (not CrateDB) listening on {double.url}", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
