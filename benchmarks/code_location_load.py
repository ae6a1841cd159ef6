"""Part 2: how loading the code location grows with the number of configured tables.

Every run process, the webserver and the daemon load the code location, so its cost is paid over and
over; it should not grow with the configuration by more than a small factor.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

import yaml
from report import say
from services import run_child

TABLE_COUNTS = (1, 100, 1000)
REPEATS = 3
CHILD = Path(__file__).resolve().parent / "child_load.py"


@dataclass(frozen=True)
class LoadResult:
    tables: int
    seconds: float  # median of REPEATS fresh processes
    peak_rss_mib: float
    samples: list[dict]

    def median(self, key: str) -> float:
        return statistics.median(s[key] for s in self.samples)


def write_config(path: Path, tables: int) -> None:
    """`tables` entries like exports.yaml's, each with its own table and directory."""
    entries = [
        {
            "table": f"doc.metrics_{n:04d}",
            "timestamp_column": "timestamp",
            "target": f"bench-load/metrics_{n:04d}",
            "start_date": "2021-11-11",
        }
        for n in range(tables)
    ]
    path.write_text(yaml.safe_dump({"exports": entries}, sort_keys=False))


def measure_load(workdir: Path, tables: int) -> LoadResult:
    config = workdir / f"exports-{tables}.yaml"
    write_config(config, tables)
    samples = []
    for repeat in range(REPEATS):
        sample = run_child(CHILD, what=f"loading {tables} table(s)", CRATEDB_EXPORT_CONFIG=str(config))
        # Each table is two assets: its export and the CrateDB table upstream of it (lineage.py).
        if sample["assets"] != 2 * tables:
            raise RuntimeError(f"expected {2 * tables} assets, the code location has {sample['assets']}")
        samples.append(sample)
        say(
            f"  {tables:>5} table(s), run {repeat + 1}/{REPEATS}: {sample['total_s']:.2f} s, "
            f"peak RSS {sample['peak_rss_kib'] / 1024:.0f} MiB"
        )
    return LoadResult(
        tables=tables,
        seconds=statistics.median(s["total_s"] for s in samples),
        peak_rss_mib=statistics.median(s["peak_rss_kib"] for s in samples) / 1024,
        samples=samples,
    )
