"""The code location: configuration → assets, checks, schedule, bound to the resource from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from dagster import Definitions, EnvVar, in_process_executor

from .assets import build_export_assets
from .checks import build_export_checks
from .config import ExportSpec, load_export_config, parse_export_specs
from .lineage import source_specs
from .resource import CrateDBExportResource
from .schedules import build_export_schedules

RESOURCE_KEY = "cratedb"


def _env(name: str) -> EnvVar | None:
    """Bind a setting to an environment variable only when it is set (an unset EnvVar fails the run)."""
    return EnvVar(name) if os.environ.get(name) else None


def resource_from_env() -> CrateDBExportResource:
    """The resource configured by environment variables; secrets stay EnvVars: Dagster shows names only."""
    optional: dict[str, Any] = {
        "servers": _env("CRATEDB_URL"),
        "username": _env("CRATEDB_USERNAME"),
        "password": _env("CRATEDB_PASSWORD"),
        "s3_endpoint": _env("S3_ENDPOINT"),
        "s3_protocol": _env("S3_PROTOCOL"),
        "s3_region": _env("S3_REGION"),
    }
    numbers = {
        "timeout": ("CRATEDB_TIMEOUT", float),
        "max_concurrent_copies": ("CRATEDB_EXPORT_MAX_CONCURRENT_COPIES", int),
        "retry_attempts": ("CRATEDB_EXPORT_RETRY_ATTEMPTS", int),
        "retry_base_delay": ("CRATEDB_EXPORT_RETRY_BASE_DELAY", float),
    }
    for field, (name, kind) in numbers.items():
        if os.environ.get(name):
            optional[field] = kind(os.environ[name])
    if os.environ.get("CRATEDB_VERIFY_SSL_CERT"):
        optional["verify_ssl_cert"] = os.environ["CRATEDB_VERIFY_SSL_CERT"].lower() not in (
            "0",
            "false",
            "no",
        )
    return CrateDBExportResource(
        aws_access_key_id=EnvVar("ACCESS_KEY_ID"),
        aws_secret_access_key=EnvVar("SECRET_ACCESS_KEY"),
        **{k: v for k, v in optional.items() if v is not None},
    )


def build_definitions(
    specs: Sequence[ExportSpec | Mapping[str, Any]] | None = None,
    resource: CrateDBExportResource | None = None,
) -> Definitions:
    """Definitions for the given exports (Python dicts or ExportSpecs), or for the YAML configuration."""
    export_specs = parse_export_specs(specs) if specs is not None else load_export_config()
    export_assets = build_export_assets(export_specs)
    export_checks, check_schedules = build_export_checks(export_specs)
    return Definitions(
        assets=[*source_specs(export_specs), *export_assets],
        asset_checks=export_checks,
        schedules=[*build_export_schedules(export_assets), *check_schedules],
        resources={RESOURCE_KEY: resource or resource_from_env()},
        # One step per run exports all selected tables and days in threads; a step subprocess would only
        # add a Python start-up to every run.
        executor=in_process_executor,
    )
