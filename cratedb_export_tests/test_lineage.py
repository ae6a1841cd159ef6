"""The CrateDB table in the lineage: an external asset upstream of its export, its columns observed per run."""

from __future__ import annotations

from datetime import date

from cratedb_export_testbed.support import create_metrics_table, run_export, spec_for
from dagster import AssetKey

from cratedb_export.orchestration.build import build_definitions, resource_from_env

DAY = date(2024, 9, 2)


def test_the_table_is_an_external_asset_upstream_of_its_export(export_env, monkeypatch, bucket):
    monkeypatch.setenv("CRATEDB_URL", "http://127.0.0.1:9")  # nothing listens: loading must not need CrateDB
    spec = {"table": "doc.readings", "timestamp_column": "ts", "target": f"{bucket}/readings"}
    graph = build_definitions([spec], resource=resource_from_env()).resolve_asset_graph()
    source, export = AssetKey(["cratedb", "doc", "readings"]), AssetKey(["cratedb_export", "doc", "readings"])
    node = graph.get(source)
    assert not node.is_materializable and not node.is_executable
    assert node.kinds == {"cratedb"} and node.metadata["dagster/table_name"] == "doc.readings"
    assert graph.get(export).parent_keys == {source}


def test_a_run_records_the_tables_columns_on_the_table_and_the_exported_ones_on_the_day(
    export_env, instance, bucket, crate
):
    table = create_metrics_table(crate, [DAY], per_day=2)
    spec = spec_for(table, bucket, columns=["hash_id", "timestamp"], compression="gzip")
    assert run_export([spec], instance, partition=DAY.isoformat()).success

    (observation,) = instance.fetch_observations(AssetKey(["cratedb", "doc", table.name]), limit=5).records
    schema = observation.asset_observation.metadata["dagster/column_schema"].value
    columns = {c.name: c.type for c in schema.columns}
    assert {"hash_id", "timestamp", "name", "tags", "fields", "month"} <= set(columns)
    assert columns["hash_id"] == "bigint" and columns["timestamp"] == "timestamp with time zone"

    (materialization,) = instance.fetch_materializations(
        AssetKey(["cratedb_export", "doc", table.name]), limit=5
    ).records
    exported = materialization.asset_materialization.metadata["dagster/column_schema"].value
    assert [(c.name, c.type) for c in exported.columns] == [
        ("hash_id", "bigint"),
        ("timestamp", "timestamp with time zone"),
    ]
