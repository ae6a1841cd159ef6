"""One cluster's connection settings, defined once: CrateDB's endpoint and user, the S3 keys, and how hard
to press the cluster.

Each setting is a field of `ConnectionSettings` with the environment variable it is read from by default
(docs/configuration.md, "Environment"). Everything else is derived from these fields: the Dagster resource
is this model with Dagster's config on top, `environment_variables()` is the table of default variables,
and a component's `connection` maps these same setting names to variables of its own.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from cratedb_export.core.cratedb import CrateDB, RetryPolicy
from cratedb_export.core.errors import PermanentError
from cratedb_export.core.redaction import protect_process_logs
from cratedb_export.core.storage import ObjectStore
from cratedb_export.core.target import S3Access

_ENDPOINT = re.compile(r"^[A-Za-z0-9.-]+:\d{1,5}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# An AWS access key ID is also a valid variable name; pasted as one, Dagster would show it ("... is not set").
_AWS_KEY_ID = re.compile(r"^(AKIA|ASIA|AROA|AIDA)[A-Z0-9]{16}$")
_MIN_SECRET = 4


def _env(name: str, *, secret: bool = False) -> dict[str, Any]:
    return {"env": name, "secret": secret}


class ConnectionSettings(BaseModel):
    """What the export needs to reach one CrateDB cluster and its S3 store; one set serves all of a run's days."""

    url: str = Field(
        "http://localhost:4200",
        description="CrateDB HTTP URL, or several separated by whitespace",
        json_schema_extra=_env("CRATEDB_URL"),
    )
    username: str | None = Field(
        None, description="CrateDB user; unset for trust authentication", json_schema_extra=_env("CRATEDB_USERNAME")
    )
    password: str | None = Field(
        None, description="CrateDB password", json_schema_extra=_env("CRATEDB_PASSWORD", secret=True)
    )
    verify_ssl_cert: bool = Field(
        True, description="Verify CrateDB's TLS certificate", json_schema_extra=_env("CRATEDB_VERIFY_SSL_CERT")
    )
    timeout: float = Field(
        3600.0,
        description="Seconds to wait for one statement. A COPY that times out is not re-sent (it may still "
        "be running), so keep this above the longest day's COPY",
        json_schema_extra=_env("CRATEDB_TIMEOUT"),
    )
    copy_wait: float = Field(
        3600.0,
        description="Seconds to wait for a COPY that still runs in CrateDB after its answer was lost (or for "
        "another run to finish a day); past it the day fails unmarked and nothing is sent again",
        json_schema_extra=_env("CRATEDB_EXPORT_COPY_WAIT"),
    )
    access_key_id: str = Field(description="S3 access key", json_schema_extra=_env("ACCESS_KEY_ID", secret=True))
    secret_access_key: str = Field(
        description="S3 secret key", json_schema_extra=_env("SECRET_ACCESS_KEY", secret=True)
    )
    s3_endpoint: str | None = Field(
        None, description="host:port of an S3-compatible store; unset for AWS", json_schema_extra=_env("S3_ENDPOINT")
    )
    s3_protocol: str = Field(
        "https", description="'http' or 'https' for s3_endpoint", json_schema_extra=_env("S3_PROTOCOL")
    )
    s3_region: str | None = Field(
        None, description="Region used by this process's S3 client", json_schema_extra=_env("S3_REGION")
    )
    max_concurrent_copies: int = Field(
        4,
        description="COPY statements in flight at once, per run",
        json_schema_extra=_env("CRATEDB_EXPORT_MAX_CONCURRENT_COPIES"),
    )
    retry_attempts: int = Field(
        5,
        description="Attempts for a statement that fails transiently",
        json_schema_extra=_env("CRATEDB_EXPORT_RETRY_ATTEMPTS"),
    )
    retry_base_delay: float = Field(
        1.0,
        description="First backoff delay in seconds; doubles per attempt",
        json_schema_extra=_env("CRATEDB_EXPORT_RETRY_BASE_DELAY"),
    )

    def problems(self) -> list[str]:
        """Settings CrateDB cannot use, each named by its variable, never by its value."""
        names = environment_variables()
        found = []
        for setting in ("access_key_id", "secret_access_key"):
            if ":" in getattr(self, setting):
                found.append(
                    f"{names[setting]} contains ':', which CrateDB cannot accept in an s3:// URI (it splits the "
                    "credentials on ':'); create a key pair without ':'"
                )
        for setting in secret_settings():
            value = getattr(self, setting)
            if value and len(value) < _MIN_SECRET:
                found.append(f"{names[setting]} is shorter than {_MIN_SECRET} characters and could not be redacted")
            if setting != "password" and not value:
                found.append(f"{names[setting]} is empty")
        if self.s3_endpoint and not _ENDPOINT.match(self.s3_endpoint):
            found.append(
                f"S3 endpoint {self.s3_endpoint!r} must be host:port (CrateDB reads a host without a port as "
                "a bucket name)"
            )
        if self.s3_protocol not in ("http", "https"):
            found.append(f"S3 protocol {self.s3_protocol!r} must be 'http' or 'https'")
        if self.max_concurrent_copies < 1:
            found.append("max_concurrent_copies must be at least 1")
        return found

    @property
    def retry(self) -> RetryPolicy:
        return RetryPolicy(attempts=self.retry_attempts, base_delay=self.retry_base_delay)

    def open(self) -> Connected:
        """Register the secrets for redaction, refuse unusable settings, then make the clients (no request yet)."""
        protect_process_logs(*(getattr(self, s) for s in secret_settings()))
        if problems := self.problems():
            raise PermanentError("cratedb connection: " + "; ".join(problems))
        access = S3Access(
            access_key_id=self.access_key_id,
            secret_access_key=self.secret_access_key,
            endpoint=self.s3_endpoint or None,
            protocol=self.s3_protocol,
            region=self.s3_region,
        )
        crate = CrateDB(
            self.url.split(),
            username=self.username or None,
            password=self.password or None,
            verify_ssl_cert=self.verify_ssl_cert,
            timeout=self.timeout,
            retry=self.retry,
            pool_size=self.max_concurrent_copies * 2 + 2,
        )
        return Connected(crate, ObjectStore(access), access, threading.BoundedSemaphore(self.max_concurrent_copies))


@dataclass(frozen=True)
class Connected:
    """The clients of one cluster, and the COPY slots that bound its COPYs in flight across a run's threads."""

    crate: CrateDB
    store: ObjectStore
    access: S3Access
    copy_slots: threading.BoundedSemaphore


def _extra(setting: str) -> dict[str, Any]:
    extra = ConnectionSettings.model_fields[setting].json_schema_extra
    assert isinstance(extra, dict)
    return extra


def environment_variables() -> dict[str, str]:
    """Setting -> the environment variable it is read from by default."""
    return {setting: str(_extra(setting)["env"]) for setting in ConnectionSettings.model_fields}


def secret_settings() -> tuple[str, ...]:
    """The settings that are credentials: bound by variable name only, redacted wherever text leaves us."""
    return tuple(s for s in ConnectionSettings.model_fields if _extra(s)["secret"])


def required_settings() -> tuple[str, ...]:
    return tuple(s for s, f in ConnectionSettings.model_fields.items() if f.is_required())


def check_variables(variables: Mapping[str, str], where: str) -> dict[str, str]:
    """A mapping of settings to environment variable NAMES (a component's `connection`), checked."""
    known = environment_variables()
    problems = [f"unknown setting {s!r} (known: {', '.join(known)})" for s in variables if s not in known]
    # The value is never shown: what was pasted where a name belongs is often the secret itself.
    problems += [
        f"{s}: the value given is not an environment variable name; give the variable's NAME (e.g. "
        "ANALYTICS_CRATEDB_PASSWORD), never its value"
        for s, v in variables.items()
        if s in known and (not _ENV_NAME.match(str(v)) or _AWS_KEY_ID.match(str(v)))
    ]
    if problems:
        raise ValueError(f"{where}: " + "; ".join(problems))
    return {**known, **variables}


def read_setting(setting: str, variable: str, environ: Mapping[str, str]) -> Any:
    """The value of a non-secret setting from its variable, converted to the setting's type; None when unset.

    A value that does not convert is refused naming the variable (booleans: true/false, 1/0, yes/no, on/off).
    """
    text = environ.get(variable)
    if not text:
        return None
    annotation = ConnectionSettings.model_fields[setting].annotation
    try:
        return TypeAdapter(annotation if annotation is not None else str).validate_python(text)
    except ValidationError:
        kind = getattr(annotation, "__name__", str(annotation))
        raise ValueError(f"environment variable {variable}={text!r} is not a valid {kind} for {setting}") from None
