"""CrateDBExportComponent in a `dg` project of its own: scaffolded, listed, loaded, validated, and run.

Each test builds a temporary `dg` project (pyproject with [tool.dg], a package, a defs folder) and uses the
component from a defs.yaml there, through the `dg` CLI as subprocesses or loaded in this process.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pytest
import yaml
from cratedb_export_testbed.dg_project import COMPONENT_TYPE, DgProject, dg_env, entry, make_project, run_dg
from cratedb_export_testbed.support import create_metrics_table, list_keys, read_rows, spec_for
from dagster import AssetKey

from cratedb_export import ConfigError, build_definitions, load_export_config
from cratedb_export.component import CrateDBExportComponent
from cratedb_export.core.connection import ConnectionSettings, environment_variables
from cratedb_export.core.storage import MANIFEST, SUCCESS
from cratedb_export.orchestration.build import resource_from_env
from cratedb_export.orchestration.resource import CrateDBExportResource

BAD_ENTRIES = [
    entry("doc.metrics", "exports-bucket/metrics"),
    {**entry("doc.events", "exports-bucket/events"), "directory": "{target}/{dt}"},
]
BAD_MESSAGE = "exports[1] (table 'doc.events'): field 'directory': unknown placeholder {dt} in '{target}/{dt}'"


@pytest.fixture
def load_in_process(monkeypatch):
    """Load a temporary project's definitions here, as its code server would."""

    def load(project: DgProject) -> dg.Definitions:
        monkeypatch.syspath_prepend(str(project.root))
        try:
            return dg.load_from_defs_folder(path_within_project=project.root / project.module)
        finally:
            for name in [m for m in sys.modules if m == project.module or m.startswith(f"{project.module}.")]:
                del sys.modules[name]

    return load


def _keys(defs: dg.Definitions) -> set[str]:
    """The export assets (the CrateDB tables upstream of them are external assets, checked on their own)."""
    graph = defs.resolve_asset_graph()
    return {key.to_user_string() for key in graph.get_all_asset_keys() if graph.get(key).is_materializable}


def _sources(defs: dg.Definitions) -> set[str]:
    graph = defs.resolve_asset_graph()
    return {key.to_user_string() for key in graph.get_all_asset_keys() if not graph.get(key).is_materializable}


def test_dg_lists_scaffolds_checks_and_lists_two_clusters(tmp_path):
    """`dg list components` shows the component; `dg scaffold defs` writes a defs.yaml per cluster; two
    scaffolded clusters load together under `dg check defs`, and `dg list defs` shows each one's names."""
    project = make_project(tmp_path)

    listed = project.dg("list", "components", "--json")
    assert listed.returncode == 0, listed.stderr
    assert COMPONENT_TYPE in {c["key"] for c in json.loads(listed.stdout)["items"]}, listed.stdout

    for name in ("analytics", "sales"):
        scaffolded = project.dg("scaffold", "defs", COMPONENT_TYPE, name)
        assert scaffolded.returncode == 0, scaffolded.stdout + scaffolded.stderr
        defs_yaml = project.defs_dir / name / "defs.yaml"
        document = yaml.safe_load(defs_yaml.read_text())
        assert document["type"] == COMPONENT_TYPE
        assert document["attributes"]["name"] == name
        assert document["attributes"]["connection"]["password"] == f"{name.upper()}_CRATEDB_PASSWORD"
        # Two clusters may export tables of the same name, but not into the same directories.
        defs_yaml.write_text(defs_yaml.read_text().replace("my-bucket/metrics", f"my-bucket/{name}-metrics"))

    checked = project.dg("check", "defs")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    output = checked.stdout + checked.stderr
    assert "supersed" not in output.lower(), output

    listed_defs = project.list_defs()
    assert {a["asset_key"] for a in listed_defs["assets"]} == {
        "cratedb_export/analytics/doc/metrics",
        "cratedb_export/sales/doc/metrics",
        "cratedb/analytics/doc/metrics",  # each cluster's CrateDB table, upstream of its export
        "cratedb/sales/doc/metrics",
    }
    assert {r["name"] for r in listed_defs["resources"]} == {"cratedb_analytics", "cratedb_sales"}
    assert {j["name"] for j in listed_defs["jobs"]} == {
        "daily_cratedb_export_analytics",
        "daily_cratedb_export_sales",
        "restore_cratedb_days_analytics",  # each cluster restores its own archive
        "restore_cratedb_days_sales",
    }
    assert {s["name"] for s in listed_defs["schedules"]} == {
        "daily_cratedb_export_analytics_schedule",
        "daily_cratedb_export_sales_schedule",
        "yesterday_landed_analytics_schedule",
        "yesterday_landed_sales_schedule",
    }
    # Each cluster reconciles its own exports' late rows.
    assert {s["name"] for s in listed_defs["sensors"]} == {
        "reconcile_cratedb_exports_analytics",
        "reconcile_cratedb_exports_sales",
    }
    sources = {a["asset_key"]: a["source"] for a in listed_defs["assets"]}
    assert sources["cratedb_export/sales/doc/metrics"].endswith("defs/sales/defs.yaml:1"), sources


def test_bad_defs_yaml_fails_dg_check_defs_naming_file_entry_and_field(tmp_path):
    project = make_project(tmp_path)
    project.add_component("exports", {"exports": BAD_ENTRIES})

    checked = project.dg("check", "defs")

    assert checked.returncode != 0
    output = checked.stdout + checked.stderr
    assert f"{project.module}/defs/exports/defs.yaml: {BAD_MESSAGE}" in output, output
    # The same entries in an exports.yaml fail with the same message, naming that file instead.
    exports_yaml = tmp_path / "exports.yaml"
    exports_yaml.write_text(yaml.safe_dump({"exports": BAD_ENTRIES}))
    with pytest.raises(ConfigError) as refused:
        load_export_config(exports_yaml)
    assert f"{exports_yaml}: {BAD_MESSAGE}" in str(refused.value)


def test_defaults_and_every_entry_field_are_validated_like_exports_yaml(tmp_path, load_in_process):
    """`defaults` is merged into each entry and checked with it; messages are those of exports.yaml."""
    entries = [entry("doc.metrics", "exports-bucket/metrics"), entry("doc.other", "exports-bucket/other")]
    document = {"defaults": {"compression": "zstd"}, "exports": entries}
    project = make_project(tmp_path)
    project.add_component("exports", document)
    exports_yaml = tmp_path / "exports.yaml"
    exports_yaml.write_text(yaml.safe_dump(document))

    with pytest.raises(Exception) as from_component:
        load_in_process(project)
    with pytest.raises(ConfigError) as from_file:
        load_export_config(exports_yaml)

    component_text = "".join(str(e) for e in _chain(from_component.value))
    file_lines = [line.strip() for line in str(from_file.value).splitlines()[1:]]
    assert len(file_lines) == 2, file_lines  # one per entry: exports[0] and exports[1]
    for line in file_lines:
        assert line.replace(str(exports_yaml), f"{project.module}/defs/exports/defs.yaml") in component_text


def _chain(exc: BaseException | None):
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__


def test_component_loads_in_process_with_the_assets_of_build_definitions(tmp_path, load_in_process):
    """One unnamed component = the code location of exports.yaml: the same assets, checks, job, schedule."""
    entries = [
        entry("doc.metrics", "exports-bucket/metrics", compression="gzip"),
        entry("doc.events", "exports-bucket/events", directory="{target}/dt={date}/", verify="count"),
        entry("doc.late", "exports-bucket/late", start_date="2024-03-01", timezone="Europe/Vienna"),
    ]
    project = make_project(tmp_path)
    project.add_component("exports", {"exports": entries})

    from_component = load_in_process(project)
    from_python = build_definitions(entries)

    assert (
        _keys(from_component)
        == _keys(from_python)
        == {
            "cratedb_export/doc/metrics",
            "cratedb_export/doc/events",
            "cratedb_export/doc/late",
        }
    )
    assert (
        _sources(from_component)
        == _sources(from_python)
        == {"cratedb/doc/metrics", "cratedb/doc/events", "cratedb/doc/late"}
    )
    graph_a, graph_b = from_component.resolve_asset_graph(), from_python.resolve_asset_graph()
    for key in graph_b.get_all_asset_keys():
        a, b = graph_a.get(key), graph_b.get(key)
        assert (_own(a.metadata), a.description, a.group_name, a.kinds) == (
            b.metadata,
            b.description,
            b.group_name,
            b.kinds,
        )
        assert a.partitions_def == b.partitions_def
        checks = {"matches_source", "no_unexpected_empty_day", "yesterday_landed"} if a.is_materializable else set()
        assert {c.name for c in a.check_keys} == {c.name for c in b.check_keys} == checks
    assert {s.name for s in from_component.schedules} == {s.name for s in from_python.schedules}
    assert set(from_component.resources) == set(from_python.resources) == {"cratedb"}
    assert [op.pool for op in _ops(from_component)] == [op.pool for op in _ops(from_python)]


def _own(metadata: dict) -> dict:
    """The asset's metadata without what Dagster adds to every component's assets (where it was defined)."""
    return {k: v for k, v in metadata.items() if k not in ("dagster/code_references", "dagster/component_origin")}


def _ops(defs: dg.Definitions) -> list:
    return sorted((a.op for a in defs.assets if isinstance(a, dg.AssetsDefinition)), key=lambda op: op.name)


def test_two_components_two_clusters_coexist(tmp_path, load_in_process):
    project = make_project(tmp_path)
    for name in ("prod", "staging"):
        project.add_component(
            name,
            {
                "name": name,
                "connection": {
                    "url": f"{name.upper()}_CRATEDB_URL",
                    "password": f"{name.upper()}_CRATEDB_PASSWORD",
                    "access_key_id": f"{name.upper()}_KEY",
                    "secret_access_key": f"{name.upper()}_SECRET",
                },
                "defaults": {"compression": "gzip"},
                "exports": [entry("doc.metrics", f"exports-{name}/metrics")],
            },
        )

    defs = load_in_process(project)

    assert _keys(defs) == {"cratedb_export/prod/doc/metrics", "cratedb_export/staging/doc/metrics"}
    assert _sources(defs) == {"cratedb/prod/doc/metrics", "cratedb/staging/doc/metrics"}
    assert set(defs.resources) == {"cratedb_prod", "cratedb_staging"}
    for name in ("prod", "staging"):
        resource = defs.resources[f"cratedb_{name}"]
        # The secrets are bound by name (EnvVar): what the UI shows, and what is read when a run starts.
        assert (resource.access_key_id, resource.secret_access_key) == (
            f"{name.upper()}_KEY",
            f"{name.upper()}_SECRET",
        )
        assert isinstance(resource.secret_access_key, dg.EnvVar)
        assert defs.resolve_job_def(f"daily_cratedb_export_{name}") is not None
        assert defs.resolve_schedule_def(f"daily_cratedb_export_{name}_schedule").cron_schedule == "0 0 * * *"
    pools = {op.name: op.pool for op in _ops(defs)}
    assert pools == {"export_tables_prod": "cratedb_prod", "export_tables_staging": "cratedb_staging"}
    dg.Definitions.validate_loadable(defs)


def test_two_unnamed_components_are_refused(tmp_path, load_in_process):
    """Without names both would define resource `cratedb` and the same keys: Dagster refuses to merge them."""
    project = make_project(tmp_path)
    project.add_component("one", {"exports": [entry("doc.metrics", "exports-one/metrics")]})
    project.add_component("two", {"exports": [entry("doc.events", "exports-two/events")]})

    with pytest.raises(Exception) as refused:
        load_in_process(project)

    assert "different resources with same key 'cratedb'" in "".join(str(e) for e in _chain(refused.value))


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ({"name": "Prod Cluster"}, "must be a lower-case name"),
        ({"connection": {"password": "hunter2!"}}, "is not an environment variable name"),
        ({"exports": []}, "'exports' must be a non-empty list"),
    ],
)
def test_component_attributes_are_checked(tmp_path, load_in_process, attributes, message):
    project = make_project(tmp_path)
    project.add_component("exports", {"exports": [entry("doc.metrics", "exports-bucket/metrics")], **attributes})

    with pytest.raises(Exception) as refused:
        load_in_process(project)

    assert message in "".join(str(e) for e in _chain(refused.value))


@pytest.mark.parametrize(
    ("setting", "pasted"),
    [("secret_access_key", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"), ("access_key_id", "AKIAIOSFODNN7EXAMPLE")],
)
def test_a_secret_pasted_where_a_variable_name_belongs_is_refused_without_echoing_it(
    tmp_path, load_in_process, setting, pasted
):
    """`connection` takes variable NAMES; a user who pastes the value instead gets an error naming the setting,
    and the value is nowhere in what Dagster shows (the message, its causes, pydantic's input). An access key
    ID is a valid variable name, so it is recognised as a key."""
    project = make_project(tmp_path)
    project.add_component(
        "exports", {"exports": [entry("doc.metrics", "exports-bucket/metrics")], "connection": {setting: pasted}}
    )

    with pytest.raises(Exception) as refused:
        load_in_process(project)

    shown = "".join(f"{e}{e!r}" for e in _chain(refused.value))
    assert setting in shown and "is not an environment variable name" in shown
    assert pasted not in shown and pasted[:5] not in shown


def test_component_asset_materializes_end_to_end(
    tmp_path, monkeypatch, load_in_process, export_env, crate, s3, bucket, instance
):
    """A component-defined asset, its connection read from variables of its own, exports a range of days
    from CrateDB (the stand-in, or a real one) to SeaweedFS, each day verified and marked."""
    days = [date(2024, 6, 3) + timedelta(days=i) for i in range(3)]
    table = create_metrics_table(crate, days, per_day=4)
    variables = {
        "url": ("E2E_CRATEDB_URL", crate.url),
        "username": ("E2E_CRATEDB_USERNAME", crate.username or ""),
        "password": ("E2E_CRATEDB_PASSWORD", crate.password or ""),
        "access_key_id": ("E2E_ACCESS_KEY_ID", os.environ["ACCESS_KEY_ID"]),
        "secret_access_key": ("E2E_SECRET_ACCESS_KEY", os.environ["SECRET_ACCESS_KEY"]),
        "s3_endpoint": ("E2E_S3_ENDPOINT", s3.endpoint),
        "s3_protocol": ("E2E_S3_PROTOCOL", "http"),
    }
    for name, value in variables.values():
        if value:
            monkeypatch.setenv(name, value)
    # Only the component's own variables point at the servers: the default ones are gone.
    for default in (
        "CRATEDB_URL",
        "CRATEDB_USERNAME",
        "CRATEDB_PASSWORD",
        "ACCESS_KEY_ID",
        "SECRET_ACCESS_KEY",
        "S3_ENDPOINT",
    ):
        monkeypatch.delenv(default, raising=False)
    project = make_project(tmp_path)
    project.add_component(
        "cluster",
        {
            "name": "e2e",
            "connection": {setting: name for setting, (name, _) in variables.items()},
            "exports": [spec_for(table, bucket)],
        },
    )

    defs = load_in_process(project)
    job = defs.resolve_job_def("daily_cratedb_export_e2e")
    result = job.execute_in_process(
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": days[0].isoformat(),
            "dagster/asset_partition_range_end": days[-1].isoformat(),
        },
        raise_on_error=False,
    )

    assert result.success, [e.message for e in result.all_events if e.is_failure]
    key = AssetKey(["cratedb_export", "e2e", "doc", table.name])
    records = instance.fetch_materializations(key, limit=100).records
    assert sorted(r.partition_key or "" for r in records) == [d.isoformat() for d in days]
    client = s3.client()
    for day in days:
        prefix = f"{table.name}-{day.isoformat()}/"
        keys = list_keys(client, bucket, prefix)
        assert {f"{prefix}{SUCCESS}", f"{prefix}{MANIFEST}"} <= set(keys), keys
        assert sorted(r["hash_id"] for r in read_rows(client, bucket, prefix)) == sorted(table.hash_ids(day))


def test_component_resource_reads_the_named_variables(monkeypatch):
    monkeypatch.setenv("OTHER_URL", "http://crate-a:4200 http://crate-b:4200")
    monkeypatch.setenv("OTHER_TIMEOUT", "12.5")
    component = CrateDBExportComponent(
        exports=[entry("doc.metrics", "exports-bucket/m")],
        connection={"url": "OTHER_URL", "timeout": "OTHER_TIMEOUT", "secret_access_key": "OTHER_SECRET"},
    )
    resource = resource_from_env(component.connection)
    assert resource.url == "OTHER_URL"  # bound by name: the UI shows the variable, not the URL
    assert resource.timeout == 12.5
    assert resource.secret_access_key == "OTHER_SECRET"
    assert resource.access_key_id == "ACCESS_KEY_ID"


def test_the_connection_settings_are_one_table(monkeypatch):
    """The resource's fields, the default variables and what a component's `connection` accepts are the
    same settings; a setting the table does not know, or a value that is no variable name, is refused."""
    assert set(CrateDBExportResource.model_fields) == set(ConnectionSettings.model_fields)
    variables = environment_variables()
    assert variables["url"] == "CRATEDB_URL" and variables["secret_access_key"] == "SECRET_ACCESS_KEY"
    assert set(variables) == set(ConnectionSettings.model_fields)
    with pytest.raises(ValueError, match="unknown setting 'servers'"):
        CrateDBExportComponent(exports=[entry("doc.metrics", "exports-bucket/m")], connection={"servers": "X"})


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CRATEDB_TIMEOUT", "ten minutes"),
        ("CRATEDB_VERIFY_SSL_CERT", "maybe"),
        ("CRATEDB_EXPORT_MAX_CONCURRENT_COPIES", "4.5"),
    ],
)
def test_a_bad_setting_in_the_environment_stops_the_load_naming_its_variable(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=f"environment variable {variable}=") as refused:
        build_definitions([entry("doc.metrics", "exports-bucket/m")])
    assert "Traceback" not in str(refused.value)


def test_repository_definitions_load_with_dg_check_defs():
    """From the repository root, as CI runs it: exports.yaml, loaded by `dg check defs`, without warnings.

    No DAGSTER_HOME, as in CI: Dagster's temporary instance, configured by the repository's dagster.yaml.
    """
    env = {k: v for k, v in dg_env().items() if k not in ("DAGSTER_HOME", "CRATEDB_EXPORT_CONFIG")}
    checked = run_dg("check", "defs", cwd=Path(__file__).resolve().parent.parent, env=env)
    output = checked.stdout + checked.stderr
    assert checked.returncode == 0, output
    assert "All definitions loaded successfully" in output
    assert "supersed" not in output.lower(), output
    assert "warning" not in output.lower(), output
