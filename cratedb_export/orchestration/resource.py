"""The Dagster resource: the CrateDB connection, the S3 keys, and how hard to press the cluster.

Bind credentials with `EnvVar` (see definitions.py): Dagster then stores and shows only the variable's
name. Credentials are checked and registered for redaction when a run starts, before any statement.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr

from cratedb_export.core.config import ExportSpec
from cratedb_export.core.cratedb import CrateDB, RetryPolicy
from cratedb_export.core.errors import PermanentError
from cratedb_export.core.export import ExportRun
from cratedb_export.core.lease import Holder
from cratedb_export.core.redaction import protect_process_logs
from cratedb_export.core.storage import ObjectStore
from cratedb_export.core.target import S3Access

_ENDPOINT = re.compile(r"^[A-Za-z0-9.-]+:\d{1,5}$")
_MIN_SECRET = 4


class CrateDBExportResource(ConfigurableResource):
    """CrateDB and S3 as the export needs them; one instance serves all exports of a run."""

    servers: str = Field("http://localhost:4200", description="CrateDB HTTP URL, or several separated by whitespace")
    username: str | None = Field(None, description="CrateDB user; unset for trust authentication")
    password: str | None = Field(None, description="CrateDB password (bind with EnvVar)")
    verify_ssl_cert: bool = Field(True, description="Verify CrateDB's TLS certificate")
    timeout: float = Field(
        3600.0,
        description="Seconds to wait for one statement. A COPY that times out is not re-sent (it may still "
        "be running), so keep this above the longest day's COPY",
    )
    copy_wait: float = Field(
        3600.0,
        description="Seconds to wait for a COPY that still runs in CrateDB after its answer was lost (or for "
        "another run to finish a day); past it the day fails unmarked and nothing is sent again",
    )
    aws_access_key_id: str = Field(description="S3 access key (bind with EnvVar('ACCESS_KEY_ID'))")
    aws_secret_access_key: str = Field(description="S3 secret key (bind with EnvVar('SECRET_ACCESS_KEY'))")
    s3_endpoint: str | None = Field(None, description="host:port of an S3-compatible store; unset for AWS")
    s3_protocol: str = Field("https", description="'http' or 'https' for s3_endpoint")
    s3_region: str | None = Field(None, description="Region used by this process's S3 client")
    max_concurrent_copies: int = Field(4, description="COPY statements in flight at once, per run")
    retry_attempts: int = Field(5, description="Attempts for a statement that fails transiently")
    retry_base_delay: float = Field(1.0, description="First backoff delay in seconds; doubles per attempt")

    _crate: CrateDB = PrivateAttr()
    _store: ObjectStore = PrivateAttr()
    _access: S3Access = PrivateAttr()
    _copy_slots: threading.BoundedSemaphore = PrivateAttr()

    def setup_for_execution(self, context: InitResourceContext) -> None:
        protect_process_logs(self.aws_access_key_id, self.aws_secret_access_key, self.password)
        self._check()
        self._access = S3Access(
            access_key_id=self.aws_access_key_id,
            secret_access_key=self.aws_secret_access_key,
            endpoint=self.s3_endpoint or None,
            protocol=self.s3_protocol,
            region=self.s3_region,
        )
        self._crate = CrateDB(
            self.servers.split(),
            username=self.username or None,
            password=self.password or None,
            verify_ssl_cert=self.verify_ssl_cert,
            timeout=self.timeout,
            retry=RetryPolicy(attempts=self.retry_attempts, base_delay=self.retry_base_delay),
            pool_size=self.max_concurrent_copies * 2 + 2,
        )
        self._store = ObjectStore(self._access)
        self._copy_slots = threading.BoundedSemaphore(self.max_concurrent_copies)

    def _check(self) -> None:
        """Refuse settings CrateDB cannot use, naming the setting but never its value."""
        problems = []
        if ":" in self.aws_secret_access_key:
            problems.append(
                "SECRET_ACCESS_KEY contains ':', which CrateDB cannot accept in an s3:// URI (it splits the "
                "credentials on ':'); create a key pair without ':'"
            )
        if ":" in self.aws_access_key_id:
            problems.append("ACCESS_KEY_ID contains ':', which CrateDB cannot accept in an s3:// URI")
        for name, value in (
            ("ACCESS_KEY_ID", self.aws_access_key_id),
            ("SECRET_ACCESS_KEY", self.aws_secret_access_key),
            ("CRATEDB_PASSWORD", self.password),
        ):
            if value is not None and value != "" and len(value) < _MIN_SECRET:
                problems.append(f"{name} is shorter than {_MIN_SECRET} characters and could not be redacted")
            if name != "CRATEDB_PASSWORD" and not value:
                problems.append(f"{name} is empty")
        if self.s3_endpoint and not _ENDPOINT.match(self.s3_endpoint):
            problems.append(
                f"S3 endpoint {self.s3_endpoint!r} must be host:port (CrateDB reads a host without a port as "
                "a bucket name)"
            )
        if self.s3_protocol not in ("http", "https"):
            problems.append(f"S3 protocol {self.s3_protocol!r} must be 'http' or 'https'")
        if self.max_concurrent_copies < 1:
            problems.append("max_concurrent_copies must be at least 1")
        if problems:
            raise PermanentError("cratedb resource: " + "; ".join(problems))

    @property
    def copy_slots(self) -> int:
        return self.max_concurrent_copies

    def start_run(self, specs: Sequence[ExportSpec], holder: Holder, log: Callable[[str], None]) -> ExportRun:
        """Learn what the run's days share (cluster, tables) before any COPY; export days through the result.

        Safe to use from several threads.
        """
        return ExportRun.start(
            specs,
            crate=self._crate,
            store=self._store,
            access=self._access,
            holder=holder,
            log=log,
            retry=RetryPolicy(attempts=self.retry_attempts, base_delay=self.retry_base_delay),
            max_wait=self.copy_wait,
            copy_slots=self._copy_slots,
        )
