"""Where a day's files go: the per-day directory template, the S3 location, and the s3:// target URI.

The target URI is the only place credentials are combined with a location. It is passed to CrateDB as a
statement parameter and never logged; `DayDirectory.display_uri` is the credential-free form for humans.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from datetime import date
from urllib.parse import quote

DEFAULT_DIRECTORY = "{target}-{date}"
HIVE_DIRECTORY = "{target}/dt={date}/"
PLACEHOLDERS = ("target", "date", "year", "month", "day", "schema", "table")

BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
KEY_SEGMENT = re.compile(r"^[A-Za-z0-9._=+-]+$")


def template_fields(template: str) -> list[str]:
    """The placeholders a directory template uses; raises ValueError on malformed braces or format specs."""
    fields = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"malformed template {template!r}: {exc}") from None
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if spec or conversion:
            raise ValueError(f"placeholder {{{field}}} must not have a format spec or conversion")
        if field not in PLACEHOLDERS:
            known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
            raise ValueError(f"unknown placeholder {{{field}}} in {template!r} (known: {known})")
        fields.append(field)
    return fields


def render_directory(template: str, *, target: str, schema: str, table: str, day: date | None = None) -> str:
    """The directory of `day`; without a day, the layout with YYYY-MM-DD placeholders, for display."""
    return template.format(
        target=target,
        date=day.isoformat() if day else "YYYY-MM-DD",
        year=f"{day.year:04d}" if day else "YYYY",
        month=f"{day.month:02d}" if day else "MM",
        day=f"{day.day:02d}" if day else "DD",
        schema=schema,
        table=table,
    )


@dataclass(frozen=True)
class DayDirectory:
    """One day's directory in S3: a bucket and a key prefix that always ends with '/'.

    The trailing slash is what keeps `metrics-2024-01-1/` apart from `metrics-2024-01-10/` when listing
    or deleting, and it is where CrateDB puts the files anyway (it adds the slash if missing).
    """

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, rendered: str) -> DayDirectory:
        bucket, _, key = rendered.partition("/")
        if not BUCKET.match(bucket):
            raise ValueError(
                f"bucket {bucket!r} is not a valid S3 bucket name (3-63 lower-case letters, digits, '.', '-')"
            )
        segments = key.rstrip("/").split("/") if key.strip("/") else []
        if not segments:
            raise ValueError(f"{rendered!r} has no path below the bucket; each day needs its own directory")
        for segment in segments:
            if segment in ("", ".", "..") or not KEY_SEGMENT.match(segment):
                raise ValueError(
                    f"path segment {segment!r} in {rendered!r} is empty or has characters other than "
                    "letters, digits and . _ = + -"
                )
        return cls(bucket=bucket, prefix="/".join(segments) + "/")

    def key(self, name: str) -> str:
        return self.prefix + name

    def display_uri(self, endpoint: str | None = None) -> str:
        """The directory as an s3:// URI without credentials, safe to log and show."""
        host = f"{endpoint}/" if endpoint else ""
        return f"s3://{host}{self.bucket}/{self.prefix}"


@dataclass(frozen=True)
class S3Access:
    """How CrateDB and this process reach the S3 store."""

    access_key_id: str
    secret_access_key: str
    endpoint: str | None = None  # "host:port" for S3-compatible stores; None for AWS
    protocol: str = "https"
    region: str | None = None

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.access_key_id, self.secret_access_key)

    @property
    def endpoint_url(self) -> str | None:
        return f"{self.protocol}://{self.endpoint}" if self.endpoint else None


def target_uri(directory: DayDirectory, access: S3Access) -> str:
    """The s3:// URI CrateDB writes to, with percent-encoded credentials (RFC 3986, as CrateDB decodes them).

    Never put this into SQL text or a log line: pass it as a statement parameter.
    """
    user_info = f"{quote(access.access_key_id, safe='')}:{quote(access.secret_access_key, safe='')}@"
    host = f"{access.endpoint}/" if access.endpoint else ""
    return f"s3://{user_info}{host}{directory.bucket}/{directory.prefix}"
