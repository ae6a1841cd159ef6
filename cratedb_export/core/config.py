"""Export configuration: which tables to export, and where each day's files go.

Read from YAML (`exports.yaml`, or the file named by CRATEDB_EXPORT_CONFIG), from a Python file defining
`TABLES` like the tutorial's `include/table_exports.py`, or given as Python dicts to `build_definitions`.
Everything is validated when the code location loads, so a bad entry stops the load with a message naming
the file, the entry and the field, before anything runs.
"""

from __future__ import annotations

import os
import re
import runpy
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from cratedb_export.core.identifiers import check_column, check_ident
from cratedb_export.core.target import DEFAULT_DIRECTORY, DayDirectory, render_directory, template_fields

CONFIG_ENV_VAR = "CRATEDB_EXPORT_CONFIG"
# The first part of every export's asset key (cratedb_export/<schema>/<table>); the Dagster layer may add a
# cluster's name after it (orchestration/names.py).
KEY_ROOT = "cratedb_export"
DEFAULT_CONFIG_FILE = Path(__file__).resolve().parents[2] / "exports.yaml"
DEFAULT_START_DATE = date(2021, 11, 11)  # the tutorial's first day
# Days used to check directory templates: they differ in every date field, so templates that drop a
# field, or two exports that would share a directory, show up.
_PROBE_DAYS = (date(2021, 11, 11), date(2024, 2, 29), date(2025, 12, 31))


DEFAULT_FRESHNESS_DEADLINE = "02:00"  # two hours after the day's end, in the export's time zone
_DEADLINE = re.compile(r"^(?P<hours>\d{1,3}):(?P<minutes>\d{2})$")
_MAX_DEADLINE_HOURS = 168  # a week


# libyaml's loader when PyYAML was built with it: ~8x faster on a file of a thousand tables.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


# Late rows are looked for in the last week of days: devices that were offline over a long weekend, or a
# loader that caught up after an outage, are covered, and CrateDB pays one pruned, grouped count per table.
DEFAULT_RECONCILE_DAYS = 7
_MAX_RECONCILE_DAYS = 366


class RetentionPolicy(BaseModel):
    """Opt-in: delete a table's days from CrateDB once they are older than `keep_days` and the archive proves
    it holds every one of their rows (docs/retention.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    keep_days: int = Field(
        ge=1,
        description="Days kept in CrateDB: day D is deleted once D is more than keep_days days before today "
        "(in the export's time zone)",
    )
    dry_run: bool = Field(False, description="Prove and report what would be deleted, delete nothing")
    max_days_per_run: int = Field(30, ge=1, description="At most this many days are deleted by one run")


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the source, the entry and the field."""


class ExportSpec(BaseModel):
    """One table to export daily: what to read, which column decides the day, where the files go."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    table: str = Field(description="Schema-qualified table, e.g. doc.metrics")
    timestamp_column: str = Field(description="Column whose value decides which day a row belongs to")
    target: str = Field(description="Bucket and path, e.g. crate-astro-tutorial/metrics")
    start_date: date = Field(DEFAULT_START_DATE, description="First day (partition) to export")
    columns: tuple[str, ...] | None = Field(None, description="Columns to export; all when omitted")
    compression: Literal["gzip"] | None = None
    format: Literal["json", "parquet"] = Field(
        "json",
        description="json: the day's files are CrateDB's NDJSON; parquet: CrateDB's NDJSON (gzip) is staged and "
        "converted into one Parquet file per day",
    )
    directory: str = Field(
        DEFAULT_DIRECTORY,
        validate_default=True,
        description="Per-day directory template; placeholders {target} {date} {year} {month} {day} {schema} {table}",
    )
    timezone: str = Field("UTC", description="Time zone that decides where a day starts and ends")
    verify: Literal["read_back", "count"] = Field(
        "read_back",
        description="read_back: count the rows in the exported objects too (safe default); "
        "count: compare COPY's rowcount with the source only",
    )
    description: str | None = None
    freshness_deadline: str | None = Field(
        DEFAULT_FRESHNESS_DEADLINE,
        description="HH:MM after the end of a day by which that day must have landed (check "
        "yesterday_landed, evaluated by a schedule then); null turns the check off",
    )
    reconcile_days: int = Field(
        DEFAULT_RECONCILE_DAYS,
        ge=0,
        le=_MAX_RECONCILE_DAYS,
        description="Days before today whose source is recounted against their manifest, and re-exported when "
        "it changed (late rows, updates, deletes); 0 turns reconciling off",
    )
    retention: RetentionPolicy | None = Field(
        None, description="Delete days from CrateDB once archived and proved; off unless set"
    )
    # Not a field: where the asset keys live (see orchestration/names.py); set with `under_key_prefix`.
    _key_prefix: tuple[str, ...] = PrivateAttr(default=(KEY_ROOT,))

    @field_validator("table")
    @classmethod
    def _table(cls, value: str) -> str:
        parts = value.split(".")
        if len(parts) != 2:
            raise ValueError(f"{value!r} must be schema-qualified as <schema>.<table>, e.g. doc.metrics")
        check_ident(parts[0], "schema")
        check_ident(parts[1], "table name")
        return value

    @field_validator("timestamp_column")
    @classmethod
    def _timestamp_column(cls, value: str) -> str:
        return check_ident(value, "timestamp column")

    @field_validator("columns")
    @classmethod
    def _columns(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("must list at least one column, or be omitted to export all columns")
        for column in value:
            check_column(column, "column")
        if len(set(value)) != len(value):
            raise ValueError("lists a column more than once")
        return value

    @field_validator("start_date")
    @classmethod
    def _start_date(cls, value: date) -> date:
        if value > datetime.now(UTC).date():
            raise ValueError(f"{value.isoformat()} is in the future; the first partition must be a past day")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name like UTC or Europe/Vienna)") from None
        return value

    @field_validator("freshness_deadline", mode="before")
    @classmethod
    def _freshness_deadline(cls, value: object) -> str | None:
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            # YAML 1.1 reads an unquoted 02:00 as the sexagesimal integer 120: minutes.
            value = f"{value // 60:02d}:{value % 60:02d}" if value >= 0 else str(value)
        match = _DEADLINE.match(value) if isinstance(value, str) else None
        if not match or int(match["minutes"]) > 59:
            raise ValueError(f"{value!r} must be HH:MM after the end of the day, e.g. '02:00' (or null for no check)")
        hours, minutes = int(match["hours"]), int(match["minutes"])
        if not (0 < hours * 60 + minutes <= _MAX_DEADLINE_HOURS * 60):
            raise ValueError(f"{value!r} must be after the day's end and at most {_MAX_DEADLINE_HOURS}:00 after it")
        return f"{hours:02d}:{minutes:02d}"

    @field_validator("target")
    @classmethod
    def _target(cls, value: str) -> str:
        bucket, _, path = value.partition("/")
        DayDirectory.parse(f"{bucket}/{path or 'day'}")  # raises ValueError naming the bad part
        return value

    @field_validator("directory")
    @classmethod
    def _directory(cls, value: str, info: ValidationInfo) -> str:
        fields = set(template_fields(value))
        if "target" not in fields:
            raise ValueError(f"template {value!r} must contain {{target}}")
        if "date" not in fields and not {"year", "month", "day"} <= fields:
            raise ValueError(
                f"template {value!r} must contain {{date}} (or {{year}}, {{month}} and {{day}}) so that "
                "every day gets its own directory"
            )
        target, table = info.data.get("target"), info.data.get("table")
        if target is None or table is None:
            return value  # already reported on those fields
        schema, name = table.split(".")
        bucket = target.partition("/")[0]
        for day in _PROBE_DAYS:
            rendered = render_directory(value, target=target, day=day, schema=schema, table=name)
            if DayDirectory.parse(rendered).bucket != bucket:
                raise ValueError(
                    f"with target {target!r}, template {value!r} changes the bucket {bucket!r}; give the "
                    "target a path below the bucket, e.g. bucket/table"
                )
        return value

    @field_validator("retention")
    @classmethod
    def _retention_after_archive(cls, value: RetentionPolicy | None, info: ValidationInfo) -> RetentionPolicy | None:
        deadline, reconcile = info.data.get("freshness_deadline"), info.data.get("reconcile_days")
        if value is None or reconcile is None:
            return value  # off, or reconcile_days already reported
        least = minimum_keep_days(deadline, reconcile)
        if value.keep_days < least:
            after = f"freshness_deadline {deadline}" if deadline else "no freshness deadline"
            raise ValueError(
                f"keep_days {value.keep_days} is shorter than the days a day may still change in the archive "
                f"({after} plus reconcile_days {reconcile}); set keep_days to at least {least}, or lower "
                "reconcile_days"
            )
        return value

    @property
    def minimum_keep_days(self) -> int:
        return minimum_keep_days(self.freshness_deadline, self.reconcile_days)

    @property
    def copy_compression(self) -> str | None:
        """The compression of the files COPY writes: a Parquet day's staged NDJSON is always gzip."""
        return "gzip" if self.format == "parquet" else self.compression

    @property
    def schema_name(self) -> str:
        return self.table.split(".")[0]

    @property
    def table_name(self) -> str:
        return self.table.split(".")[1]

    @property
    def asset_path(self) -> list[str]:
        return [*self._key_prefix, self.schema_name, self.table_name]

    def under_key_prefix(self, prefix: Sequence[str]) -> ExportSpec:
        """The same export, its asset key below `prefix` (one CrateDB cluster's namespace, see names.py)."""
        copy = self.model_copy()
        copy._key_prefix = tuple(prefix)
        return copy

    def directory_for(self, day: date) -> DayDirectory:
        return DayDirectory.parse(self.layout(day))

    def layout(self, day: date | None = None) -> str:
        """bucket/path of the day's directory, or of every day's (with YYYY-MM-DD) when no day is given."""
        return render_directory(
            self.directory, target=self.target, day=day, schema=self.schema_name, table=self.table_name
        )


def minimum_keep_days(freshness_deadline: str | None, reconcile_days: int) -> int:
    """Days a day stays in CrateDB at least: until it is due (the deadline) and past the reconcile window."""
    deadline_days = 0
    if freshness_deadline:
        hours, minutes = (int(part) for part in freshness_deadline.split(":"))
        deadline_days = -(-(hours * 60 + minutes) // 1440)
    return max(1, deadline_days + reconcile_days)


def config_path() -> Path:
    return Path(os.environ.get(CONFIG_ENV_VAR) or DEFAULT_CONFIG_FILE)


def load_export_config(path: str | Path | None = None) -> list[ExportSpec]:
    """Read and validate the YAML configuration file."""
    path = Path(path) if path is not None else config_path()
    if path.suffix == ".py":
        return _load_python_tables(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the export configuration: {exc.strerror}") from None
    try:
        document = yaml.load(text, Loader=_YAML_LOADER)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_export_document(document, source=str(path))


def parse_export_document(document: object, *, source: str) -> list[ExportSpec]:
    """Validate a configuration document: `{exports: [...], defaults: {...}}`, or a bare list of entries.

    exports.yaml and a CrateDBExportComponent's defs.yaml attributes both go through here; `source` names
    the file in every message.
    """
    if isinstance(document, Mapping):
        unknown = sorted(set(document) - {"defaults", "exports"})
        if unknown:
            raise ConfigError(f"{source}: unknown top-level key(s) {unknown}; expected 'exports' and 'defaults'")
        defaults = document.get("defaults") or {}
        entries = document.get("exports")
        if not isinstance(defaults, Mapping):
            raise ConfigError(f"{source}: 'defaults' must be a mapping of field: value")
    else:
        defaults, entries = {}, document
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{source}: 'exports' must be a non-empty list of tables to export")
    return parse_export_specs(entries, source=source, defaults=defaults)


def _load_python_tables(path: Path) -> list[ExportSpec]:
    """A Python file defining TABLES, a list of dicts like the tutorial's include/table_exports.py."""
    try:
        namespace = runpy.run_path(str(path))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the export configuration: {exc.strerror}") from None
    except Exception as exc:
        raise ConfigError(f"{path}: failed to run: {type(exc).__name__}: {exc}") from None
    tables = namespace.get("TABLES")
    if not isinstance(tables, list) or not tables:
        raise ConfigError(f"{path}: must define TABLES, a non-empty list of tables to export")
    return parse_export_specs(tables, source=str(path))


def parse_export_specs(
    entries: Sequence[Mapping[str, Any] | ExportSpec] | Sequence[object],
    *,
    source: str = "python",
    defaults: Mapping[str, Any] | None = None,
) -> list[ExportSpec]:
    """Validate a list of entries (dicts or ExportSpecs) and check them against each other."""
    problems: list[str] = []
    specs: list[ExportSpec] = []
    for index, entry in enumerate(entries):
        if isinstance(entry, ExportSpec):
            specs.append(entry)
            continue
        label = _entry_label(index, entry)
        if not isinstance(entry, Mapping):
            problems.append(f"{source}: {label}: must be a mapping of field: value, got {type(entry).__name__}")
            continue
        try:
            specs.append(ExportSpec.model_validate({**(defaults or {}), **entry}))
        except ValidationError as exc:
            problems.extend(f"{source}: {label}: {line}" for line in _describe(exc))
    if not problems:
        problems = _cross_check(specs, source)
    if problems:
        raise ConfigError("invalid export configuration:\n  " + "\n  ".join(problems))
    return specs


def _entry_label(index: int, entry: object) -> str:
    table = entry.get("table") if isinstance(entry, Mapping) else None
    return f"exports[{index}]" + (f" (table {table!r})" if isinstance(table, str) else "")


def _describe(exc: ValidationError) -> Iterable[str]:
    for error in exc.errors(include_url=False):
        field = ".".join(str(part) for part in error["loc"]) or "entry"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            model = RetentionPolicy if error["loc"][:1] == ("retention",) else ExportSpec
            message = f"unknown field (known fields: {', '.join(model.model_fields)})"
        elif error["type"] == "missing":
            message = "required field is missing"
        yield f"field '{field}': {message}"


def _cross_check(specs: list[ExportSpec], source: str) -> list[str]:
    """Problems between entries: a table exported twice, or two tables whose day directories overlap."""
    problems = []
    first_index: dict[str, int] = {}
    for index, spec in enumerate(specs):
        if spec.table in first_index:
            problems.append(
                f"{source}: exports[{index}] (table {spec.table!r}): field 'table': duplicate of "
                f"exports[{first_index[spec.table]}]"
            )
        first_index.setdefault(spec.table, index)
    if problems:
        return problems
    # Clean-up deletes everything below a day's directory, so no directory may equal or contain another
    # table's. Sorting puts every prefix right before the paths it contains.
    placed = sorted(
        (f"{d.bucket}/{d.prefix}", index)
        for index, spec in enumerate(specs)
        for d in {spec.directory_for(day) for day in _PROBE_DAYS}
    )
    reported = set()
    for (path, index), (next_path, next_index) in zip(placed, placed[1:], strict=False):
        if index != next_index and next_path.startswith(path) and (index, next_index) not in reported:
            reported.add((index, next_index))
            problems.append(
                f"{source}: exports[{next_index}] (table {specs[next_index].table!r}): field 'target': "
                f"its day directory {next_path!r} overlaps exports[{index}] (table {specs[index].table!r}) "
                f"at {path!r}; each table needs a directory of its own"
            )
    return problems
