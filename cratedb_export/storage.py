"""The S3 side of a day's directory, through boto3: list, clear, read back, and mark complete.

CrateDB writes the data objects itself; this process only removes what an earlier attempt left, counts
what landed (streaming, gzip-aware, bounded memory) and writes the manifest and `_SUCCESS` marker.
Every operation is confined to one `DayDirectory` prefix, which always ends with '/'.
"""

from __future__ import annotations

import json
import os
import threading
import zlib
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from .errors import ExportError, PermanentError, TransientError, VerificationError
from .target import DayDirectory, S3Access

MANIFEST = "_manifest.json"
SUCCESS = "_SUCCESS"
_CHUNK = 1 << 20
_MAX_INFLATED = 4 << 20
_PERMISSION_CODES = {
    "AccessDenied",
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId",
    "NoSuchBucket",
    "AllAccessDisabled",
}


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]


class ObjectStore:
    """One S3 endpoint, reached with the same keys CrateDB is given."""

    def __init__(self, access: S3Access) -> None:
        self._client = boto3.session.Session().client(
            "s3",
            endpoint_url=access.endpoint_url,
            aws_access_key_id=access.access_key_id,
            aws_secret_access_key=access.secret_access_key,
            region_name=access.region or "us-east-1",
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path" if access.endpoint else "auto"},
                retries={"mode": "standard", "max_attempts": 4},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                max_pool_connections=32,
            ),
        )

    def list_directory(self, directory: DayDirectory) -> list[StoredObject]:
        """Every object below the directory, sorted by key."""
        with _s3_errors(f"listing {directory.display_uri()}"):
            return list(self._list(directory.bucket, directory.prefix))

    def list_directories(self, directories: Sequence[DayDirectory]) -> dict[DayDirectory, list[StoredObject]]:
        """Every object below each of several directories of one bucket, from one listing of their common prefix.

        Day directories end with '/' and never nest, so a key belongs to at most one of them: the greatest
        directory prefix not above it. Keys below the common prefix that belong to none are left alone.
        """
        found: dict[DayDirectory, list[StoredObject]] = {d: [] for d in directories}
        ordered = sorted(found, key=lambda d: d.prefix)
        if not ordered:
            return found
        prefixes = [d.prefix for d in ordered]
        with _s3_errors(f"listing {ordered[0].display_uri()} … {ordered[-1].display_uri()}"):
            for obj in self._list(ordered[0].bucket, os.path.commonprefix(prefixes)):
                index = bisect_right(prefixes, obj.key) - 1
                if index >= 0 and obj.key.startswith(prefixes[index]):
                    found[ordered[index]].append(obj)
        return found

    def _list(self, bucket: str, prefix: str) -> Iterator[StoredObject]:
        pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            for o in page.get("Contents", ()):
                yield StoredObject(o["Key"], o["Size"])

    def clear_directory(self, directory: DayDirectory, listed: list[StoredObject] | None = None) -> int:
        """Delete what an earlier attempt left; the marker goes first, so no reader trusts half a day.

        `listed` is what a run-wide listing found below the directory; without it the directory is listed.
        """
        objects = self.list_directory(directory) if listed is None else listed
        keys = [o.key for o in objects if o.key.startswith(directory.prefix)]
        marker = directory.key(SUCCESS)
        keys.sort(key=lambda k: k != marker)
        with _s3_errors(f"clearing {directory.display_uri()}"):
            if marker in keys:
                self._client.delete_object(Bucket=directory.bucket, Key=marker)
                keys.remove(marker)
            for start in range(0, len(keys), 1000):
                batch = [{"Key": k} for k in keys[start : start + 1000]]
                answer = self._client.delete_objects(Bucket=directory.bucket, Delete={"Objects": batch})
                if answer.get("Errors"):
                    first = answer["Errors"][0]
                    raise PermanentError(
                        f"could not delete {first.get('Key')} in {directory.display_uri()}: {first.get('Code')}"
                    )
        return len(objects)

    def count_rows(self, directory: DayDirectory, obj: StoredObject) -> int:
        """Count the NDJSON lines of one object; a truncated object raises VerificationError."""
        where = f"s3://{directory.bucket}/{obj.key}"
        with _s3_errors(f"reading {where}"):
            body = self._client.get_object(Bucket=directory.bucket, Key=obj.key)["Body"]
            try:
                chunks = body.iter_chunks(_CHUNK)
                if obj.key.endswith(".gz"):
                    chunks = _gunzip(chunks, where)
                return _count_lines(chunks, where)
            finally:
                body.close()

    def put_json(self, directory: DayDirectory, name: str, payload: dict) -> None:
        data = json.dumps(payload, indent=2, sort_keys=True).encode()
        with _s3_errors(f"writing {name} to {directory.display_uri()}"):
            self._client.put_object(
                Bucket=directory.bucket, Key=directory.key(name), Body=data, ContentType="application/json"
            )

    def put_marker(self, directory: DayDirectory) -> None:
        with _s3_errors(f"writing {SUCCESS} to {directory.display_uri()}"):
            self._client.put_object(Bucket=directory.bucket, Key=directory.key(SUCCESS), Body=b"")

    def read_json(self, directory: DayDirectory, name: str) -> dict | None:
        with _s3_errors(f"reading {name} from {directory.display_uri()}"):
            try:
                body = self._client.get_object(Bucket=directory.bucket, Key=directory.key(name))["Body"]
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    return None
                raise
            return json.loads(body.read())


class RunListing:
    """What is already below a run's day directories of one table, listed when first needed.

    One listing per group of directories (the export groups a month's days), instead of one per day.
    Taken before the first day is cleared; an object that appears later in a day's directory is caught
    by that day's verification (stray names, rows that do not add up), never trusted.
    """

    def __init__(self, store: ObjectStore, groups: Sequence[Sequence[DayDirectory]]) -> None:
        self._store = store
        self._groups = [list(group) for group in groups if group]
        self._lock = threading.Lock()
        self._found: dict[DayDirectory, list[StoredObject]] | None = None

    def below(self, directory: DayDirectory) -> list[StoredObject] | None:
        """The objects found below `directory`, or None if it is to be listed on its own."""
        if sum(len(group) for group in self._groups) < 2:
            return None
        with self._lock:
            if self._found is None:
                self._found = {}
                for group in self._groups:
                    self._found.update(self._store.list_directories(group))
        return self._found.get(directory)


def _gunzip(chunks: Iterable[bytes], where: str) -> Iterator[bytes]:
    """Inflate a (possibly multi-member) gzip stream in bounded pieces."""
    inflater = zlib.decompressobj(wbits=31)
    seen_input = False
    try:
        for chunk in chunks:
            data = chunk
            seen_input = seen_input or bool(chunk)
            while data:
                if inflater.eof:
                    inflater = zlib.decompressobj(wbits=31)
                out = inflater.decompress(data, _MAX_INFLATED)
                if out:
                    yield out
                data = inflater.unused_data if inflater.eof else inflater.unconsumed_tail
    except zlib.error as exc:
        raise VerificationError(f"{where} is not a valid gzip stream ({exc})") from None
    if seen_input and not inflater.eof:
        raise VerificationError(f"{where} is a truncated gzip stream: the object is incomplete")


def _count_lines(chunks: Iterable[bytes], where: str) -> int:
    lines, last = 0, b"\n"
    for chunk in chunks:
        if chunk:
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    if last != b"\n":
        raise VerificationError(f"the last line of {where} is not terminated: the object is truncated")
    return lines


class _s3_errors:
    """Turn boto3's exceptions into redacted ExportErrors that say what was being done."""

    def __init__(self, doing: str) -> None:
        self._doing = doing

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Literal[False]:
        if exc is None or isinstance(exc, ExportError):
            return False
        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code", "")
            message = exc.response.get("Error", {}).get("Message", "") or code
            if code in _PERMISSION_CODES:
                error: ExportError = PermanentError(
                    f"S3 refused {self._doing}: {code}: {message} (check ACCESS_KEY_ID / SECRET_ACCESS_KEY, "
                    "the bucket and its permissions)"
                )
            else:
                error = TransientError(f"S3 failed {self._doing}: {code}: {message}")
        elif isinstance(exc, EndpointConnectionError | BotoCoreError):
            error = TransientError(f"S3 failed {self._doing}: {exc} (check the S3 endpoint)")
        else:
            return False
        raise error from None
