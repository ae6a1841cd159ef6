"""Table groups: many tables load as several multi-assets under one daily job, and a range run exports the
groups in processes of their own while a day's run stays one process (orchestration/executor.py)."""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from datetime import date, timedelta

import pytest
import yaml
from cratedb_export_testbed.support import create_metrics_table, list_keys, materialize_command, spec_for
from dagster import AssetKey, DagsterEventType, DagsterInstance

from cratedb_export.core.config import parse_export_specs
from cratedb_export.core.copy_jobs import COMMENT_PREFIX
from cratedb_export.orchestration.assets import GROUP_TABLES
from cratedb_export.orchestration.build import build_definitions, export_definitions, resource_from_env
from cratedb_export.orchestration.executor import RANGE_PROCESSES_ENV
from cratedb_export.orchestration.names import ExportNames
from cratedb_export.orchestration.schedules import JOB

DAYS = [date(2024, 7, 1) + timedelta(days=i) for i in range(3)]
COPIES = 2  # CRATEDB_EXPORT_MAX_CONCURRENT_COPIES of the runs below


def _specs(count: int) -> list[dict]:
    return [
        {"table": f"doc.t{n:04d}", "timestamp_column": "ts", "target": f"exports/t{n:04d}", "start_date": "2024-01-01"}
        for n in range(count)
    ]


def test_many_tables_are_exported_by_groups_under_one_daily_job_and_schedule():
    tables = 2 * GROUP_TABLES + 20
    defs = build_definitions(_specs(tables), resource=resource_from_env())
    job = defs.resolve_job_def(JOB)
    ops = {node.name: node for node in job.nodes}
    assert sorted(ops) == ["export_tables_group_1", "export_tables_group_2", "export_tables_group_3"]
    # Every table in exactly one group, the groups as even as they can be.
    exported = [AssetKey(["cratedb_export", "doc", f"t{n:04d}"]) for n in range(tables)]
    group_of = {key: defs.resolve_assets_def(key).node_def.name for key in exported}
    sizes = Counter(group_of.values())
    assert set(sizes) == set(ops) and max(sizes.values()) - min(sizes.values()) <= 1
    repository = defs.get_repository_def()
    # The daily schedule and the deadline schedule run the one job.
    assert sorted(s.name for s in repository.schedule_defs if s.job_name == JOB) == [
        f"{JOB}_schedule",
        "yesterday_landed_schedule",
    ]
    # One table is one multi-asset with the plain name, as before groups.
    (single,) = build_definitions(_specs(1), resource=resource_from_env()).resolve_job_def(JOB).nodes
    assert single.name == "export_tables"


def test_a_start_date_of_many_tables_gets_one_daily_job_named_after_it_not_after_a_group():
    """With two partitions definitions, each has its daily job (its deadline schedule runs it too); the one of
    51 tables (two groups) is named after its start date and zone, like the one of a single table."""
    late = {"table": "doc.late", "timestamp_column": "ts", "target": "exports/late", "start_date": "2024-06-01"}
    specs = [*_specs(GROUP_TABLES + 1), late]
    repository = build_definitions(specs, resource=resource_from_env()).get_repository_def()
    jobs = {job.name: sorted(node.name for node in job.nodes) for job in repository.get_all_jobs()}
    assert jobs["daily_export_tables_from_20240101_utc"] == [
        "export_tables_from_20240101_utc_group_1",
        "export_tables_from_20240101_utc_group_2",
    ]
    assert jobs["daily_export_tables_from_20240601_utc"] == ["export_tables_from_20240601_utc"]
    schedules = {s.name: s.job_name for s in repository.schedule_defs}
    # The deadline schedule runs its checks on the daily job of the same partitions: no job of its own.
    assert schedules["yesterday_landed_export_tables_from_20240101_utc_utc_0200_schedule"] == (
        "daily_export_tables_from_20240101_utc"
    )
    assert not [name for name in [*jobs, *schedules] if name.startswith(("daily_", "yesterday_")) and "_group_" in name]

    # A set of exports (a component's cluster) may itself be named like a group: only the number the
    # groups add is dropped, so two such clusters never name their jobs alike.
    for cluster in ("sales_group_1", "sales_group_2"):
        named = export_definitions(parse_export_specs(specs), resource_from_env(), ExportNames(cluster))
        jobs = {job.name: sorted(n.name for n in job.nodes) for job in named.get_repository_def().get_all_jobs()}
        assert jobs[f"daily_export_tables_from_20240101_utc_{cluster}"] == [
            f"export_tables_from_20240101_utc_{cluster}_group_1",
            f"export_tables_from_20240101_utc_{cluster}_group_2",
        ]
        assert jobs[f"daily_export_tables_from_20240601_utc_{cluster}"] == [
            f"export_tables_from_20240601_utc_{cluster}"
        ]


def test_a_bad_number_of_range_processes_stops_the_load_naming_it(monkeypatch):
    monkeypatch.setenv(RANGE_PROCESSES_ENV, "two")
    with pytest.raises(ValueError, match=f"{RANGE_PROCESSES_ENV}='two': give a whole number of processes"):
        build_definitions(_specs(1), resource=resource_from_env())


def _materialize(keys: list[str], partition: str, env: dict) -> subprocess.CompletedProcess:
    """The CLI over several assets at once (`--select` takes them comma-separated)."""
    command = materialize_command([",".join(keys)], partition)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def _step_processes(instance: DagsterInstance, run_id: str) -> dict[str, int]:
    return {
        event.dagster_event.step_key: event.dagster_event.pid
        for event in instance.all_logs(run_id, of_type=DagsterEventType.STEP_START)
        if event.dagster_event is not None and event.dagster_event.step_key is not None
    }


def _most_copies_at_once(crate, tables: list[str]) -> int:
    rows = crate.sql(
        'SELECT "started", "ended", "stmt" FROM "sys"."jobs_log" WHERE "stmt" LIKE ?', [f"%{COMMENT_PREFIX}%"]
    )
    moments = []
    for started, ended, stmt in rows:
        if any(f" {table} " in stmt for table in tables):
            moments += [(started, 1), (ended, -1)]
    running = most = 0
    for _, change in sorted(moments, key=lambda m: (m[0], m[1])):  # an end before a start at the same ms
        running += change
        most = max(most, running)
    return most


def test_a_range_exports_groups_in_processes_of_their_own_and_a_day_in_one(export_env, tmp_path, s3, bucket, crate):
    tables = [create_metrics_table(crate, DAYS, per_day=2) for _ in range(GROUP_TABLES + 1)]
    config = tmp_path / "exports.yaml"
    config.write_text(yaml.safe_dump({"exports": [spec_for(t, bucket) for t in tables]}))
    home = tmp_path / "home"
    home.mkdir()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "CRATEDB_EXPORT_CONFIG": str(config),
        "CRATEDB_EXPORT_MAX_CONCURRENT_COPIES": str(COPIES),
        # Two step processes whatever the machine (by default a range uses its cores but one).
        RANGE_PROCESSES_ENV: "2",
    }
    keys = [f"cratedb_export/doc/{t.name}" for t in tables]

    ranged = _materialize(keys, f"{DAYS[0]}...{DAYS[1]}", env)
    assert ranged.returncode == 0, ranged.stderr[-3000:]
    one_day = _materialize(keys, DAYS[2].isoformat(), env)
    assert one_day.returncode == 0, one_day.stderr[-3000:]

    for table in tables:
        marked = {
            d for d in DAYS if f"{table.name}-{d}/_SUCCESS" in list_keys(s3.client(), bucket, f"{table.name}-{d}/")
        }
        assert marked == set(DAYS), table.name
    with DagsterInstance.local_temp(str(home)) as stored:
        records = sorted(stored.get_run_records(), key=lambda r: r.create_timestamp)
        range_steps, day_steps = (_step_processes(stored, r.dagster_run.run_id) for r in records)
        for key in keys:
            materialized = stored.get_materialized_partitions(AssetKey(key.split("/")))
            assert materialized == {d.isoformat() for d in DAYS}, key
    assert set(range_steps) == set(day_steps) == {"export_tables_group_1", "export_tables_group_2"}
    # The range: each group in a process of its own, each with its share of the COPY slots.
    assert len(set(range_steps.values())) == 2
    assert f"at most {COPIES // 2} in flight (this step's share: 2 steps export at once)" in ranged.stderr
    # The day: both groups in the run's one process, one after the other, each with all the slots.
    assert len(set(day_steps.values())) == 1
    assert f"at most {COPIES} in flight" in one_day.stderr
    # However the run is split, CrateDB never had more of its COPYs at once than the connection allows.
    assert 1 <= _most_copies_at_once(crate, [t.table for t in tables]) <= COPIES
