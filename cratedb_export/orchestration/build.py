"""The code location: configuration → assets, checks, schedule, bound to the resource from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from dagster import Definitions, EnvVar

from cratedb_export.core.config import ExportSpec, load_export_config, parse_export_specs
from cratedb_export.core.connection import ConnectionSettings, check_variables, read_setting, required_settings
from cratedb_export.orchestration.assets import build_export_assets
from cratedb_export.orchestration.executor import days_executor, range_processes
from cratedb_export.orchestration.lineage import source_prefix, source_specs
from cratedb_export.orchestration.names import DEFAULT_NAMES, RESOURCE_KEY, ExportNames
from cratedb_export.orchestration.reconcile import build_reconcile_sensor
from cratedb_export.orchestration.resource import CrateDBExportResource
from cratedb_export.orchestration.restore import build_restore_job
from cratedb_export.orchestration.retention import build_retention
from cratedb_export.orchestration.schedules import build_export_schedules

__all__ = ["RESOURCE_KEY", "build_definitions", "export_definitions", "resource_from_env"]


def resource_from_env(variables: Mapping[str, str] | None = None) -> CrateDBExportResource:
    """The resource configured by environment variables (core/connection.py names them).

    Text settings are bound with EnvVar, so Dagster shows only the variable's name and reads the value when
    a run starts; numbers and switches are read now, so a bad one stops the load naming its variable. The
    required S3 keys are always bound, set or not: a run without them fails naming them. `variables` maps
    settings to other variables (a component's `connection`).
    """
    names = check_variables(variables or {}, "connection")
    values: dict[str, Any] = {}
    for setting, variable in names.items():
        if setting in required_settings() or (
            ConnectionSettings.model_fields[setting].annotation in (str, str | None) and os.environ.get(variable)
        ):
            values[setting] = EnvVar(variable)
        elif (value := read_setting(setting, variable, os.environ)) is not None:
            values[setting] = value
    return CrateDBExportResource(**values)


def build_definitions(
    specs: Sequence[ExportSpec | Mapping[str, Any]] | None = None,
    resource: CrateDBExportResource | None = None,
) -> Definitions:
    """Definitions for the given exports (Python dicts or ExportSpecs), or for the YAML configuration."""
    export_specs = parse_export_specs(specs) if specs is not None else load_export_config()
    return export_definitions(export_specs, resource or resource_from_env())


def export_definitions(
    specs: Sequence[ExportSpec],
    resource: CrateDBExportResource,
    names: ExportNames = DEFAULT_NAMES,
) -> Definitions:
    """Assets (with their per-day checks), jobs and schedules of validated exports, bound to one cluster's
    resource.

    The one place both build_definitions (exports.yaml) and CrateDBExportComponent (defs.yaml) build from.
    """
    export_specs = [s.under_key_prefix(names.key_prefix) for s in specs]
    range_processes()  # a bad CRATEDB_EXPORT_RANGE_PROCESSES stops the load, naming it
    export_assets = build_export_assets(export_specs, names)
    retention_jobs, retention_schedules = build_retention(export_specs, names)
    daily_jobs, export_schedules = build_export_schedules(export_assets, export_specs, names)
    return Definitions(
        assets=[*source_specs(export_specs, source_prefix(names)), *export_assets],
        schedules=[
            *export_schedules,
            *retention_schedules,
        ],
        jobs=[*daily_jobs, build_restore_job(export_specs, names), *retention_jobs],
        # Late rows: the days of each export's reconcile window whose source changed are exported again.
        sensors=[s for s in [build_reconcile_sensor(export_assets, export_specs, names)] if s is not None],
        resources={names.resource_key: resource},
        # A day's run in one process, a range's table groups over the cores (executor.py). The same executor
        # object in every component, so they merge.
        executor=days_executor,
    )
