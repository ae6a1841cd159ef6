"""The code location: configuration → assets, checks, schedule, bound to the resource from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from dagster import Definitions, EnvVar, in_process_executor

from cratedb_export.core.config import ExportSpec, load_export_config, parse_export_specs
from cratedb_export.orchestration.assets import build_export_assets
from cratedb_export.orchestration.checks import build_export_checks
from cratedb_export.orchestration.lineage import source_prefix, source_specs
from cratedb_export.orchestration.names import DEFAULT_NAMES, RESOURCE_KEY, ExportNames
from cratedb_export.orchestration.resource import CrateDBExportResource
from cratedb_export.orchestration.schedules import build_export_schedules

__all__ = ["DEFAULT_ENV", "RESOURCE_KEY", "build_definitions", "export_definitions", "resource_from_env"]

# Resource setting -> the environment variable it is read from (README: Environment). A component can name
# other variables per cluster (CrateDBExportComponent's `connection`).
DEFAULT_ENV: Mapping[str, str] = {
    "url": "CRATEDB_URL",
    "username": "CRATEDB_USERNAME",
    "password": "CRATEDB_PASSWORD",
    "verify_ssl_cert": "CRATEDB_VERIFY_SSL_CERT",
    "timeout": "CRATEDB_TIMEOUT",
    "copy_wait": "CRATEDB_EXPORT_COPY_WAIT",
    "access_key_id": "ACCESS_KEY_ID",
    "secret_access_key": "SECRET_ACCESS_KEY",
    "s3_endpoint": "S3_ENDPOINT",
    "s3_protocol": "S3_PROTOCOL",
    "s3_region": "S3_REGION",
    "max_concurrent_copies": "CRATEDB_EXPORT_MAX_CONCURRENT_COPIES",
    "retry_attempts": "CRATEDB_EXPORT_RETRY_ATTEMPTS",
    "retry_base_delay": "CRATEDB_EXPORT_RETRY_BASE_DELAY",
}


def _env(name: str) -> EnvVar | None:
    """Bind a setting to an environment variable only when it is set (an unset EnvVar fails the run)."""
    return EnvVar(name) if os.environ.get(name) else None


def resource_from_env(env: Mapping[str, str] | None = None) -> CrateDBExportResource:
    """The resource configured by environment variables; secrets stay EnvVars: Dagster shows names only.

    `env` maps settings (the keys of DEFAULT_ENV) to the variables to read instead of the default ones.
    """
    names = {**DEFAULT_ENV, **(env or {})}
    optional: dict[str, Any] = {
        "servers": _env(names["url"]),
        "username": _env(names["username"]),
        "password": _env(names["password"]),
        "s3_endpoint": _env(names["s3_endpoint"]),
        "s3_protocol": _env(names["s3_protocol"]),
        "s3_region": _env(names["s3_region"]),
    }
    numbers: dict[str, type[int] | type[float]] = {
        "timeout": float,
        "copy_wait": float,
        "max_concurrent_copies": int,
        "retry_attempts": int,
        "retry_base_delay": float,
    }
    for field, kind in numbers.items():
        if os.environ.get(names[field]):
            optional[field] = kind(os.environ[names[field]])
    if os.environ.get(names["verify_ssl_cert"]):
        optional["verify_ssl_cert"] = os.environ[names["verify_ssl_cert"]].lower() not in (
            "0",
            "false",
            "no",
        )
    return CrateDBExportResource(
        aws_access_key_id=EnvVar(names["access_key_id"]),
        aws_secret_access_key=EnvVar(names["secret_access_key"]),
        **{k: v for k, v in optional.items() if v is not None},
    )


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
    """Assets, checks, job and schedule of validated exports, bound to one cluster's resource.

    The one place both build_definitions (exports.yaml) and CrateDBExportComponent (defs.yaml) build from.
    """
    export_specs = [s.under_key_prefix(names.key_prefix) for s in specs]
    export_assets = build_export_assets(export_specs, names)
    export_checks, check_schedules = build_export_checks(export_specs, names)
    return Definitions(
        assets=[*source_specs(export_specs, source_prefix(names)), *export_assets],
        asset_checks=export_checks,
        schedules=[*build_export_schedules(export_assets, names.job), *check_schedules],
        resources={names.resource_key: resource},
        # One step per run exports all selected tables and days in threads; a step subprocess would only
        # add a Python start-up to every run. (The same executor object in every component, so they merge.)
        executor=in_process_executor,
    )
