"""`make bench`: what a year's backfill, loading the code location and verifying a large day cost.

1. 10 tables x every day of 2024, three ways, on the same CrateDB stand-in and SeaweedFS:
   (a) the limit: the same COPY statements through the crate client, 4 in flight, nothing else; measured
       before, between and after (b) and (b'), each compared with the mean of the two around it;
   (b) our range backfill: one run over all assets and days, with clean-up, read-back, manifest, marker;
   (b') the same, the run created with DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=1;
   (c) Dagster's default: one run per partition, each a `dagster asset materialize` process.
2. Loading the code location with 1, 100 and 1,000 tables (fresh processes; time and peak RSS).
3. Peak RSS of a fresh process verifying one exported object of >= 1 GiB uncompressed.

`--only day-checks` measures what the per-day `matches_source` evaluations cost (issue 9, item 3) on a
shorter range (10 tables x 91 days): (a), (b') with them, (b') with them switched off in this process, (a).
`--only parallel-runs` measures the same range as one run and as two runs at once, each in its own process
(what CRATEDB_EXPORT_DAYS_PER_RUN makes of a backfill through the daemon): (a), (b'), (b''), (a).
`--only core` measures the core alone on that range: (a), (b0) the same table-days through the core's
fan-out with no Dagster (lease, clear, COPY, verify, manifest, marker), (b') through Dagster, (a); so what
Dagster adds to a day is (b') - (b0), and what our day adds to a COPY is (b0) - (a).

It measures and prints; it asserts nothing. Figures with a target end in PASS/FAIL and in the summary.
The stand-in runs as a separate process (its CLI), so it does not share a GIL with the measured code.
"""

import argparse
import contextlib
import signal
import statistics
import sys
from collections.abc import Iterator
from pathlib import Path

import code_location_load
import day_exports
import large_day
import report
from cratedb_export_testbed.support import SUBSET_PLANNED_EVENTS
from report import check, failed, heading, reported, say
from services import Services, running_services, temporary_workdir

from cratedb_export.orchestration.assets import GROUP_TABLES


def part_1(services: Services, workdir: Path) -> None:
    heading(
        f"1. A year of day exports: {day_exports.TABLES} tables x {len(day_exports.DAYS)} days of 2024), "
        f"{day_exports.COPIES_IN_FLIGHT} COPYs in flight"
    )
    rows = day_exports.load_tables(services.crate_url)
    table_days = day_exports.TABLES * len(day_exports.DAYS)
    say(f"loaded {day_exports.TABLES} tables, {rows:,} rows (2-3 per table-day); {table_days:,} table-days")
    for name in ("direct", "direct-again", "direct-last", "range", "range-subset", "runs"):
        services.s3.create_bucket(day_exports.BUCKETS[name])

    # The limit is measured before, between and after the two range runs, and each range run is compared
    # with the mean of the two measurements around it: a machine whose speed drifts cancels out.
    direct, cpu_a = _the_limit(services, rows, "direct", "(a1)")
    ranged, cpu_b, complete = _range_backfill(services, workdir, rows, subset_planned_events=False)
    again, _ = _the_limit(services, rows, "direct-again", "(a2)")
    subset, cpu_subset, subset_complete = _range_backfill(services, workdir, rows, subset_planned_events=True)
    last, _ = _the_limit(services, rows, "direct-last", "(a3)")
    ours = [name for name in cpu_a if name != "other processes"]
    extra = ", ".join(f"{name} {(cpu_b[name] - cpu_a[name]) / table_days * 1000:+.1f} ms" for name in ours)
    print(f"  (b) - (a1) CPU per table-day: {extra}", flush=True)
    limit_b, limit_subset = (direct.wall_s + again.wall_s) / 2, (again.wall_s + last.wall_s) / 2
    print(
        f"  the limit: (a1) {direct.wall_s:.1f} s, (a2) {again.wall_s:.1f} s, (a3) {last.wall_s:.1f} s; "
        f"(b) is compared with {limit_b:.1f} s, (b') with {limit_subset:.1f} s",
        flush=True,
    )
    runs = _run_per_partition(services, workdir)
    complete = complete and all(a.rows == rows for a in (direct, again, last))

    for label, result, limit, done in (
        ("(b)/(a) wall time, range backfill vs direct COPYs", ranged, limit_b, complete),
        (f"(b')/(a) the same, with {SUBSET_PLANNED_EVENTS}=1", subset, limit_subset, subset_complete),
    ):
        if done:
            check(f"1. {label}", result.wall_s / limit, at_most=_range_target(services))
        else:
            failed(f"1. {label}", "the run failed or days are incomplete")
    if subset_complete:  # the run is in this process: its CPU is the exporter's
        check(
            "1. (b') exporter CPU per table-day", cpu_subset["this process"] / table_days * 1000, at_most=50, unit=" ms"
        )
    for label, result, done in (("(c)/(b)", ranged, complete), ("(c)/(b')", subset, subset_complete)):
        figure = f"1. {label} time per partition, run-per-partition vs range"
        if done and all(r.ok for r in runs):
            check(figure, day_exports.median_wall(runs) / (result.wall_s / table_days), at_least=50)
        else:
            failed(figure, "a run failed")


DAY_CHECK_DAYS = 91


def part_day_checks(services: Services, workdir: Path) -> None:
    """(b') with and without the per-day check evaluations, between two measurements of the limit."""
    day_exports.use_first_days(DAY_CHECK_DAYS)
    table_days = day_exports.TABLES * DAY_CHECK_DAYS
    heading(f"What the per-day check evaluations cost: {table_days:,} table-days, (b') with and without them")
    rows = day_exports.load_tables(services.crate_url)
    for name in ("checks-direct", "checks-with", "checks-without", "checks-direct-again"):
        services.s3.create_bucket(day_exports.BUCKETS[name])
    before, _ = _the_limit(services, rows, "checks-direct", "(a)")
    walls = {}
    for label, evaluated in (("with", True), ("without", False)):
        say(f"(b') {label} a matches_source evaluation per verified day")
        specs = day_exports.specs_for(day_exports.BUCKETS[f"checks-{label}"])
        home = workdir / f"checks-{label}"
        home.mkdir()
        cpu_before = services.cpu_seconds()
        with day_exports.day_checks_evaluated(evaluated):
            result = day_exports.range_backfill(services, specs, home, subset_planned_events=True)
        cpu = report.cpu_use(f"(b') {label}", cpu_before, services.cpu_seconds(), result.wall_s)
        ours = cpu["this process"] / table_days * 1000
        print(
            f"  (b') {label}: wall {result.wall_s:.1f} s, {result.materializations:,} materializations, "
            f"{'succeeded' if result.success else 'FAILED'}; this process {ours:.1f} ms CPU per table-day",
            flush=True,
        )
        walls[label] = result.wall_s
    after, _ = _the_limit(services, rows, "checks-direct-again", "(a)")
    limit = (before.wall_s + after.wall_s) / 2
    for label, wall in walls.items():
        print(f"  (b') {label} the evaluations / (a): {wall / limit:.2f}x", flush=True)
    print(
        f"  the evaluations add {(walls['with'] - walls['without']) / table_days * 1000:.1f} ms of wall time per "
        f"table-day ({walls['with'] / walls['without']:.2f}x)",
        flush=True,
    )


PARALLEL_RUNS = 2


def part_parallel_runs(services: Services, workdir: Path) -> None:
    """(b') as one run against the same days as PARALLEL_RUNS runs at once, between two measurements of the limit."""
    day_exports.use_first_days(DAY_CHECK_DAYS)
    table_days = day_exports.TABLES * DAY_CHECK_DAYS
    heading(
        f"A backfill spread over processes: {table_days:,} table-days as one run, and as {PARALLEL_RUNS} runs "
        f"at once ({day_exports.COPIES_IN_FLIGHT} COPYs in flight in all, either way)"
    )
    rows = day_exports.load_tables(services.crate_url)
    for name in ("parallel-direct", "parallel-one", "parallel-runs", "parallel-direct-again"):
        services.s3.create_bucket(day_exports.BUCKETS[name])
    before, _ = _the_limit(services, rows, "parallel-direct", "(a)")
    walls = {}
    for label in ("one", "runs"):
        title = "(b') one run" if label == "one" else f"(b'') {PARALLEL_RUNS} runs at once, one process each"
        say(title)
        specs = day_exports.specs_for(day_exports.BUCKETS[f"parallel-{label}"])
        home = workdir / f"parallel-{label}"
        home.mkdir()
        cpu_before = services.cpu_seconds()
        if label == "one":
            result = day_exports.range_backfill(services, specs, home, subset_planned_events=True)
        else:
            result = day_exports.parallel_range_runs(services, specs, home, PARALLEL_RUNS)
        # The run processes' CPU is counted with this process's once they have been waited for.
        cpu = report.cpu_use(title, cpu_before, services.cpu_seconds(), result.wall_s)
        markers, missing = day_exports.count_markers(services, specs)
        complete = result.success and not missing and result.rows == rows
        print(
            f"  {title}: wall {result.wall_s:.1f} s, {result.materializations:,} materializations, {markers:,} "
            f"markers, {'complete' if complete else 'INCOMPLETE'}; exporter CPU "
            f"{cpu['this process'] / table_days * 1000:.1f} ms per table-day",
            flush=True,
        )
        walls[label] = result.wall_s if complete else None
    after, _ = _the_limit(services, rows, "parallel-direct-again", "(a)")
    limit = (before.wall_s + after.wall_s) / 2
    for label, wall in walls.items():
        name = "(b') one run" if label == "one" else f"(b'') {PARALLEL_RUNS} runs"
        print(f"  {name} / (a): {f'{wall / limit:.2f}x' if wall else 'incomplete'}", flush=True)
    if walls["one"] and walls["runs"]:
        ratio = walls["runs"] / walls["one"]
        print(f"  {PARALLEL_RUNS} runs at once take {ratio:.2f}x the time of one run", flush=True)


def part_core(services: Services, workdir: Path) -> None:
    """(b0) the core alone and (b') through Dagster, between two measurements of the limit."""
    day_exports.use_first_days(DAY_CHECK_DAYS)
    table_days = day_exports.TABLES * DAY_CHECK_DAYS
    heading(f"The core alone: {table_days:,} table-days through core.fanout, and through a Dagster run")
    rows = day_exports.load_tables(services.crate_url)
    for name in ("core-direct", "core", "core-dagster", "core-direct-again"):
        services.s3.create_bucket(day_exports.BUCKETS[name])
    before, _ = _the_limit(services, rows, "core-direct", "(a)")
    walls, cpus = {}, {}
    for label in ("(b0) core", "(b') dagster"):
        say(f"{label}: the range")
        bucket = "core" if label.startswith("(b0)") else "core-dagster"
        specs = day_exports.specs_for(day_exports.BUCKETS[bucket])
        cpu_before = services.cpu_seconds()
        if label.startswith("(b0)"):
            result = day_exports.core_range(services, specs)
        else:
            home = workdir / "core-dagster"
            home.mkdir()
            result = day_exports.range_backfill(services, specs, home, subset_planned_events=True)
        cpu = report.cpu_use(label, cpu_before, services.cpu_seconds(), result.wall_s)
        markers, missing = day_exports.count_markers(services, specs)
        complete = result.success and not missing and result.rows == rows
        cpus[label] = cpu["this process"] / table_days * 1000
        print(
            f"  {label}: wall {result.wall_s:.1f} s, {result.materializations:,} days verified, {markers:,} markers, "
            f"{'complete' if complete else 'INCOMPLETE'}; exporter CPU {cpus[label]:.1f} ms per table-day",
            flush=True,
        )
        walls[label] = result.wall_s if complete else None
        if result.s3_requests:
            _print_s3_requests(result, table_days)
            s3_ms = result.s3_cpu_s / table_days * 1000
            cpus["S3"] = s3_ms
    after, _ = _the_limit(services, rows, "core-direct-again", "(a)")
    limit = (before.wall_s + after.wall_s) / 2
    for label, wall in walls.items():
        print(f"  {label} / (a): {f'{wall / limit:.2f}x' if wall else 'incomplete'}", flush=True)
    core, dagster = walls["(b0) core"], walls["(b') dagster"]
    if dagster:
        check("3. (b') one Dagster run / (a)", dagster / limit, at_most=_range_target(services))
    extra_cpu = cpus["(b') dagster"] - cpus["(b0) core"]
    if "S3" in cpus:
        in_dagster = cpus["(b') dagster"]
        check("2. exporter CPU per table-day in (b')", in_dagster, at_most=50, unit=" ms")
        print(
            f"  of which Dagster "
            f"{extra_cpu:.1f} ms ((b') - (b0)), S3 {cpus['S3']:.1f} ms (botocore, in (b0)), ours "
            f"{cpus['(b0) core'] - cpus['S3']:.1f} ms (the rest of (b0), the CrateDB client included)",
            flush=True,
        )
    if core and dagster:
        print(
            f"  Dagster adds {(dagster - core) / table_days * 1000:.1f} ms of wall time and {extra_cpu:.1f} ms of "
            f"exporter CPU per table-day ({dagster / core:.2f}x)",
            flush=True,
        )


GROUP_DAYS = 9  # days of the groups range: 2 groups x 50 tables x 9 days, about as many table-days as --only core
DAILY_TABLES = 1000
REAL_SIZE = (3, 30, 100_000)  # tables, days, rows a day: days of real size (issue 16, item 3)


def part_groups(services: Services, workdir: Path) -> None:
    """Issue 16, item 3: a range of two table groups in one process, and over the cores as the CLI runs it."""
    tables = 2 * GROUP_TABLES
    day_exports.use_shape(tables, GROUP_DAYS)
    table_days = tables * GROUP_DAYS
    heading(f"Range runs across cores: {tables} tables (2 groups) x {GROUP_DAYS} days = {table_days:,} table-days")
    rows = day_exports.load_tables(services.crate_url)
    for name in ("groups-direct", "groups-one", "groups-cores", "groups-direct-again"):
        services.s3.create_bucket(day_exports.BUCKETS[name])
    before, _ = _the_limit(services, rows, "groups-direct", "(a)")
    walls: dict[str, float | None] = {}
    for label in ("(b') one process", "(b') through the CLI"):
        say(f"{label}: the range")
        specs = day_exports.specs_for(day_exports.BUCKETS["groups-one" if "one" in label else "groups-cores"])
        cpu_before = services.cpu_seconds()
        if "one" in label:  # execute_in_process: the groups' steps one after the other in this process
            home = workdir / "groups-one"
            home.mkdir()
            result = day_exports.range_backfill(services, specs, home, subset_planned_events=True)
            processes = 1
        else:  # `dagster asset materialize --partition-range`: the code location's executor
            result = day_exports.cli_run(services, specs, workdir, "groups-cores")
            processes = result.events["step processes"]
        cpu = report.cpu_use(label, cpu_before, services.cpu_seconds(), result.wall_s)
        complete = _report_run(label, services, specs, result, rows, processes)
        walls[label] = result.wall_s if complete else None
        print(
            f"  {label}: exporter CPU {(cpu['this process'] + cpu['other processes']) / table_days * 1000:.1f} ms "
            "per table-day",
            flush=True,
        )
    after, _ = _the_limit(services, rows, "groups-direct-again", "(a)")
    limit = (before.wall_s + after.wall_s) / 2
    for label, wall in walls.items():
        print(f"  {label} / (a): {f'{wall / limit:.2f}x' if wall else 'incomplete'}", flush=True)
    one, cores = walls["(b') one process"], walls["(b') through the CLI"]
    if one and cores:
        check("3. range run through the CLI / (a)", cores / limit, at_most=_range_target(services), unit="x")
        print(f"  through the CLI ÷ one process: {cores / one:.2f}x", flush=True)


def part_daily(services: Services, workdir: Path) -> None:
    """Issue 16, item 3: the daily run of 1,000 tables (one day each) against the same COPYs sent directly."""
    day_exports.use_shape(DAILY_TABLES, 1)
    heading(f"The daily run of {DAILY_TABLES:,} tables: one day each, one run, one process")
    real = services.crate_pid is None
    # One shard a table (a day is one partition): a thousand tables still need as many shards, and a CrateDB
    # node (and the stand-in) holds 1,000 unless told otherwise. The benchmark changes no cluster setting.
    if real:
        day_exports.drop_tables(services.crate_url)  # this benchmark's own tables of earlier parts or runs
        held, allowed = day_exports.shard_room(services.crate_url)
        if held + DAILY_TABLES > allowed:
            failed(
                f"3. the daily run of {DAILY_TABLES:,} tables",
                f"CrateDB holds {held:,} shards and allows {allowed:,}; {DAILY_TABLES:,} more are needed. On a "
                f'CrateDB for benchmarks: SET GLOBAL TRANSIENT "cluster.max_shards_per_node" = '
                f"{held + DAILY_TABLES + 100}",
            )
            return
    try:
        rows = day_exports.load_tables(services.crate_url, shards=1)
        ratios = _cli_runs_between_limits(services, workdir, rows, "daily", {"(d) the daily run": {}})
    finally:
        if real:
            day_exports.drop_tables(services.crate_url)
    for ratio in ratios.values():
        reported(f"3. the daily run of {DAILY_TABLES:,} tables (one day each) / the same COPYs sent directly", ratio)


def part_real_size(services: Services, workdir: Path) -> None:
    """Issue 16, item 3: days of real size on a real CrateDB, a range run against the same COPYs sent directly.

    With 100,000 rows a day the COPYs are CrateDB's work, so this is the exporter at its heaviest per day:
    the read-back of every exported object, and everything Dagster stores per day, beside COPYs of seconds.
    The same range with `verify: count` shows what the read-back costs.
    """
    tables, days, per_day = REAL_SIZE
    if services.crate_pid is not None:
        say(f"days of real size need a real CrateDB ({tables * days * per_day:,} rows): skipped on the stand-in")
        return
    day_exports.use_shape(tables, days)
    heading(f"Days of real size: {tables} tables x {days} days x {per_day:,} rows = {tables * days:,} table-days")
    rows = day_exports.load_days_of_size(services.crate_url, per_day)
    runs = {"(b') the range": {}, "(b') the range, verify: count": {"verify": "count"}}
    ratios = _cli_runs_between_limits(services, workdir, rows, "real-size", runs)
    for label, ratio in ratios.items():
        if "count" in label:
            print(f"  {label} / (a): {ratio:.2f}x (no read-back)", flush=True)
        else:
            check("3. days of real size: range run through the CLI / (a)", ratio, at_most=1.1, unit="x")


def _cli_runs_between_limits(
    services: Services, workdir: Path, rows: int, prefix: str, runs: dict[str, dict[str, str]]
) -> dict[str, float]:
    """(a), each run as `dagster asset materialize` starts it (its start-up and load included), (a) again:
    each complete run's wall time over the mean of the two limits. `runs`: label -> exports.yaml settings."""
    buckets = {
        label: f"{prefix}-{'count' if settings.get('verify') == 'count' else 'run'}" for label, settings in runs.items()
    }
    for name in (f"{prefix}-direct", *buckets.values(), f"{prefix}-direct-again"):
        services.s3.create_bucket(day_exports.BUCKETS[name])
    before, _ = _the_limit(services, rows, f"{prefix}-direct", "(a)")
    walls = {}
    for label, settings in runs.items():
        specs = day_exports.specs_for(day_exports.BUCKETS[buckets[label]], **settings)
        say(f"{label}: `dagster asset materialize` of every table")
        cpu_before = services.cpu_seconds()
        result = day_exports.cli_run(services, specs, workdir, buckets[label])
        report.cpu_use(label, cpu_before, services.cpu_seconds(), result.wall_s)
        if _report_run(label, services, specs, result, rows, result.events["step processes"]):
            walls[label] = result.wall_s
    after, _ = _the_limit(services, rows, f"{prefix}-direct-again", "(a)")
    return {label: wall / ((before.wall_s + after.wall_s) / 2) for label, wall in walls.items()}


def _range_target(services: Services) -> float:
    """Issue 16's target for a range of tiny days over its COPYs: 1.5x on the stand-in, 3x on a real CrateDB
    (whose COPYs of tiny days take a few ms, so the exporter's own work per day weighs more)."""
    return 1.5 if services.crate_pid is not None else 3.0


def _report_run(
    label: str,
    services: Services,
    specs: list,
    result: day_exports.RangeResult,
    rows: int,
    processes: int,
) -> bool:
    """Print a run's outcome; whether every day is marked and every row exported."""
    markers, missing = day_exports.count_markers(services, specs)
    complete = result.success and not missing and result.rows == rows
    print(
        f"  {label}: wall {result.wall_s:.1f} s, {result.materializations:,} days verified, {markers:,} markers, "
        f"{'complete' if complete else 'INCOMPLETE'}, steps in {processes} process(es)",
        flush=True,
    )
    return complete


def _print_s3_requests(result: day_exports.RangeResult, table_days: int) -> None:
    total = sum(result.s3_requests.values())
    print(f"  (b0) S3 requests per table-day: {total / table_days:.2f}", flush=True)
    for operation, count in result.s3_requests.most_common():
        why = day_exports.S3_REQUEST_WHY.get(operation, "")
        print(f"    {operation:<22} {count / table_days:5.2f}  {why}", flush=True)


def _the_limit(
    services: Services, rows: int, bucket: str, label: str
) -> tuple[day_exports.DirectResult, dict[str, float]]:
    say(f"{label} THE LIMIT: the same COPY statements straight through crate.client, ThreadPoolExecutor(4)")
    before = services.cpu_seconds()
    direct = day_exports.direct_limit(services, day_exports.specs_for(day_exports.BUCKETS[bucket]))
    cpu = report.cpu_use(label, before, services.cpu_seconds(), direct.wall_s)
    objects = day_exports.count_objects(services, day_exports.BUCKETS[bucket])
    print(
        f"  {label} wall {direct.wall_s:.1f} s for {direct.statements:,} COPYs ({direct.rows:,} of {rows:,} rows, "
        f"{objects:,} objects written); {direct.wall_s / direct.statements * 1000:.1f} ms per table-day; "
        f"COPY latency median {statistics.median(direct.copy_latencies) * 1000:.1f} ms",
        flush=True,
    )
    return direct, cpu


def _range_backfill(
    services: Services, workdir: Path, rows: int, *, subset_planned_events: bool
) -> tuple[day_exports.RangeResult, dict[str, float], bool]:
    first, last = day_exports.DAYS[0], day_exports.DAYS[-1]
    if subset_planned_events:
        label, bucket = "(b')", "range-subset"
        say(f"{label} THE SAME, run created with {SUBSET_PLANNED_EVENTS}=1 (a planned event per asset)")
    else:
        label, bucket = "(b)", "range"
        say(f"{label} OUR RANGE BACKFILL: daily_cratedb_export over {first}...{last} as one run, in-process")
    specs = day_exports.specs_for(day_exports.BUCKETS[bucket])
    before = services.cpu_seconds()
    ranged = day_exports.range_backfill(services, specs, workdir, subset_planned_events=subset_planned_events)
    cpu = report.cpu_use(label, before, services.cpu_seconds(), ranged.wall_s)
    markers, missing = day_exports.count_markers(services, specs)
    table_days = len(specs) * len(day_exports.DAYS)
    done = max(ranged.materializations, 1)
    print(
        f"  {label} wall {ranged.wall_s:.1f} s, run {'succeeded' if ranged.success else 'FAILED'}; "
        f"{ranged.materializations:,} materializations, {ranged.rows:,} of {rows:,} rows; {markers:,} _SUCCESS "
        f"markers (paginated listing), {len(missing)} table-day(s) without one {missing[:5]}",
        flush=True,
    )
    print(
        f"  {label} {ranged.wall_s / table_days * 1000:.1f} ms per table-day; export_day mean "
        f"{ranged.stage_s['duration_s'] / done * 1000:.1f} ms, of which COPY in its slot (not waiting for one) "
        f"{ranged.stage_s['copy_duration_s'] / done * 1000:.1f} ms",
        flush=True,
    )
    phases = "; ".join(f"{name} {seconds:.1f} s" for name, seconds in ranged.phase_s.items())
    print(f"  {label} run wall time: {phases}", flush=True)
    kinds = ", ".join(f"{kind} {count:,}" for kind, count in ranged.events.most_common(4))
    print(
        f"  {label} events stored in the run's SQLite event log: {sum(ranged.events.values()):,} ({kinds}, ...)",
        flush=True,
    )
    complete = ranged.success and not missing and markers == table_days and ranged.rows == rows
    return ranged, cpu, complete


def _run_per_partition(services: Services, workdir: Path) -> list[day_exports.RunResult]:
    say(
        f"(c) DAGSTER'S DEFAULT: {day_exports.RUN_SAMPLES} partitions, each its own "
        "`dagster asset materialize --partition` process"
    )
    runs = day_exports.per_partition_runs(services, day_exports.specs_for(day_exports.BUCKETS["runs"]), workdir)
    print(
        f"  (c) median {day_exports.median_wall(runs):.2f} s per partition (one table-day) over {len(runs)} "
        f"runs, {sum(r.ok for r in runs)} succeeded with a marker",
        flush=True,
    )
    return runs


def part_2(workdir: Path) -> None:
    heading(
        "2. Loading the code location (import cratedb_export + Definitions.validate_loadable), fresh "
        f"process, median of {code_location_load.REPEATS}"
    )
    results = {n: code_location_load.measure_load(workdir, n) for n in code_location_load.TABLE_COUNTS}
    print(
        f"  {'tables':>7} {'total s':>8} {'import dagster s':>17} {'build defs s':>13} {'validate s':>11} "
        f"{'peak RSS MiB':>13}"
    )
    for n, r in results.items():
        print(
            f"  {n:>7} {r.seconds:>8.2f} {r.median('import_dagster_s'):>17.2f} "
            f"{r.median('build_defs_s'):>13.2f} {r.median('validate_s'):>11.2f} {r.peak_rss_mib:>13.0f}"
        )
    small, large = results[min(results)], results[max(results)]
    check("2. load time, 1,000 tables / 1 table", large.seconds / small.seconds, at_most=2)
    check("2. peak RSS, 1,000 tables / 1 table", large.peak_rss_mib / small.peak_rss_mib, at_most=2)


def part_3(services: Services) -> None:
    heading("3. Verifying one large exported day: ObjectStore.count_rows on one gzip NDJSON object, fresh process")
    upload = large_day.upload_large_day(services)
    print(
        f"  object: {upload.rows:,} rows, {upload.uncompressed / (1 << 20):,.0f} MiB uncompressed, "
        f"{upload.compressed / (1 << 20):,.0f} MiB gzip; generated and uploaded in {upload.seconds:.1f} s",
        flush=True,
    )
    count = large_day.count_in_fresh_process(services, upload)
    print(
        f"  counted {count.rows:,} rows in {count.seconds:.1f} s "
        f"({upload.uncompressed / (1 << 20) / count.seconds:,.0f} MiB/s uncompressed)",
        flush=True,
    )
    print(
        f"  RSS after imports, S3 client and listing (before counting): {count.baseline_rss_mib:.0f} MiB "
        f"(imports took {count.setup_s:.1f} s); peak: {count.peak_rss_mib:.0f} MiB; counting added "
        f"{count.peak_rss_mib - count.baseline_rss_mib:.0f} MiB",
        flush=True,
    )
    if count.rows != upload.rows:
        failed("3. peak RSS verifying a >= 1 GiB day", f"counted {count.rows} rows of {upload.rows}")
    else:
        check("3. peak RSS verifying a >= 1 GiB day", count.peak_rss_mib, at_most=200, unit=" MiB")

    conversion = large_day.convert_in_fresh_process(services, upload)
    mib = upload.uncompressed / (1 << 20)
    print(
        f"  format: parquet: converted {conversion.rows:,} rows in {conversion.seconds:.1f} s "
        f"({mib / conversion.seconds:,.1f} MiB/s of NDJSON, {conversion.rows / conversion.seconds:,.0f} rows/s) "
        f"into {conversion.parquet_bytes / (1 << 20):,.0f} MiB of Parquet "
        f"({conversion.parquet_bytes / upload.compressed:.2f}x the gzip NDJSON)",
        flush=True,
    )
    print(
        f"  RSS before converting: {conversion.baseline_rss_mib:.0f} MiB; peak: {conversion.peak_rss_mib:.0f} MiB; "
        f"converting added {conversion.peak_rss_mib - conversion.baseline_rss_mib:.0f} MiB",
        flush=True,
    )
    print(
        f"  a Parquet day against a JSON day (same COPY): {conversion.seconds:.1f} s converting instead of "
        f"{count.seconds:.1f} s reading back ({conversion.seconds / count.seconds:.1f}x); "
        f"{conversion.parquet_bytes / (1 << 20):,.0f} MiB stored instead of {upload.compressed / (1 << 20):,.0f} MiB",
        flush=True,
    )
    if conversion.rows != upload.rows:
        failed("3. peak RSS converting a >= 1 GiB day to Parquet", f"wrote {conversion.rows} rows of {upload.rows}")
    else:
        check("3. peak RSS converting a >= 1 GiB day to Parquet", conversion.peak_rss_mib, at_most=300, unit=" MiB")


# The --only parts that measure against the servers, each on its own.
PARTS = {
    "day-checks": part_day_checks,
    "parallel-runs": part_parallel_runs,
    "core": part_core,
    "groups": part_groups,
    "daily": part_daily,
    "real-size": part_real_size,
}


@contextlib.contextmanager
def _dagster_storage(kind: str) -> Iterator[None]:
    """PostgreSQL: one server for the benchmark, a new database for each run through the CLI."""
    if kind == "sqlite":
        yield
        return
    from cratedb_export_testbed.postgres import running_postgres

    with running_postgres() as server:
        say(f"Dagster instances on PostgreSQL at 127.0.0.1:{server.port}")
        password = {"BENCH_DAGSTER_PG_PASSWORD": server.password}
        day_exports.DAGSTER_STORAGE = lambda: (
            server.create_database().instance_storage("BENCH_DAGSTER_PG_PASSWORD"),
            password,
        )
        try:
            yield
        finally:
            day_exports.DAGSTER_STORAGE = None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--crate-url",
        help="a CrateDB someone started (e.g. http://127.0.0.1:4200, trust auth, reaching 127.0.0.1); "
        "default: the CrateDB stand-in",
    )
    parser.add_argument(
        "--only",
        choices=["large-day", *PARTS, "code-location"],
        help="large-day: only part 3 (verifying and converting the >= 1 GiB day, a few minutes); "
        "day-checks: what the per-day check evaluations cost (a shorter range, about 6 minutes); "
        "parallel-runs: one run against two runs at once, each its own process (a shorter range, about 6 "
        "minutes); core: the core alone against a Dagster run (a shorter range, about 6 minutes); "
        "groups: a range of two table groups in one process and over the cores (about 5 minutes); daily: the "
        "daily run of 1,000 tables against their COPYs sent directly (one shard a table on a real CrateDB); "
        "real-size: 3 tables x 30 days of 100,000 "
        "rows, a range run against its COPYs (a real CrateDB only, about 10 minutes); "
        "code-location: only part 2 (loading the code location, a minute)",
    )
    parser.add_argument(
        "--dagster-storage",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="the Dagster instance of the runs started through the CLI (groups, daily, real-size): SQLite, the "
        "CLI's default, or PostgreSQL as docs/deploying.md deploys it (a server from the test extras)",
    )
    options = parser.parse_args()
    # SIGTERM (e.g. a CI timeout) unwinds through the `finally` blocks that stop weed and the stand-in.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    report.machine()
    with temporary_workdir() as tmp:
        workdir = Path(tmp)
        if options.only == "code-location":
            part_2(workdir)
            report.summary()
            return 0
        say("starting SeaweedFS" + ("" if options.crate_url else " and the CrateDB stand-in (separate processes)"))
        with running_services(workdir, options.crate_url) as services, _dagster_storage(options.dagster_storage):
            say(f"{services.crate_name} at {services.crate_url}, SeaweedFS S3 at {services.s3.endpoint_url}")
            if options.only in PARTS:
                PARTS[options.only](services, workdir)
            else:
                if not options.only:
                    part_1(services, workdir)
                    part_daily(services, workdir)
                part_3(services)
        say("servers stopped")
        if not options.only:
            part_2(workdir)  # with no servers running beside it
    report.summary()
    return 0


if __name__ == "__main__":
    sys.exit(main())
