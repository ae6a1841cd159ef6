"""The S3 side of a day's directory, through boto3: list, clear, read back, and mark complete.

CrateDB writes the data objects itself; this process only removes what an earlier attempt left, counts
what landed (streaming, gzip-aware, bounded memory) and writes the manifest and `_SUCCESS` marker.
Every operation is confined to one `DayDirectory` prefix, which always ends with '/'.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import threading
from bisect import bisect_right
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, cast

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError
from isal import isal_zlib

from cratedb_export.core.errors import ExportError, PermanentError, TransientError, VerificationError
from cratedb_export.core.target import DayDirectory, S3Access

# isal's stubs declare its error an instance; it is the exception class raised on a corrupt stream.
_GZIP_ERROR = cast("type[Exception]", isal_zlib.error)
MANIFEST = "_manifest.json"
SUCCESS = "_SUCCESS"
# Held while a run exports the day (see lease.py); never cleared by the clean-up, removed when the run is done.
LEASE = "_EXPORTING"
# Written by retention beside a day it deleted from CrateDB (core/retention): when, how, how many rows, and where
# they are now. A day that has it is never exported again: the archive is its only copy.
DELETION_RECORD = "_DELETED_FROM_CRATEDB.json"
# Answers to a conditional write whose condition did not hold (409: a concurrent conditional write won).
_CONDITION_FAILED = {"PreconditionFailed", "ConditionalRequestConflict", "412", "409"}
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
    upload_id: str | None = None  # set for an unfinished multipart upload rather than an object

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

    def list_directories(
        self, directories: Sequence[DayDirectory], *, objects: bool = True
    ) -> dict[DayDirectory, list[StoredObject]]:
        """Every object (unless `objects` is False) and unfinished multipart upload below each of several
        directories of one bucket, from one listing of their common prefix.

        Day directories end with '/' and never nest, so a key belongs to at most one of them: the greatest
        directory prefix not above it. Keys below the common prefix that belong to none are left alone.
        """
        found: dict[DayDirectory, list[StoredObject]] = {d: [] for d in directories}
        ordered = sorted(found, key=lambda d: d.prefix)
        if not ordered:
            return found
        prefixes = [d.prefix for d in ordered]
        bucket, common = ordered[0].bucket, os.path.commonprefix(prefixes)
        with _s3_errors(f"listing {ordered[0].display_uri()} … {ordered[-1].display_uri()}"):
            listed = self._list(bucket, common) if objects else iter(())
            for obj in itertools.chain(listed, self._uploads(bucket, common)):
                index = bisect_right(prefixes, obj.key) - 1
                if index >= 0 and obj.key.startswith(prefixes[index]):
                    found[ordered[index]].append(obj)
        return found

    def _list(self, bucket: str, prefix: str) -> Iterator[StoredObject]:
        pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            for o in page.get("Contents", ()):
                yield StoredObject(o["Key"], o["Size"])

    def _uploads(self, bucket: str, prefix: str) -> Iterator[StoredObject]:
        """Multipart uploads begun and never completed (CrateDB up to 6.2 can leave them after a failed part)."""
        pages = self._client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            for u in page.get("Uploads", ()):
                yield StoredObject(u["Key"], 0, upload_id=u["UploadId"])

    def list_with_uploads(self, directory: DayDirectory) -> list[StoredObject]:
        """Every object below the directory, and every multipart upload begun there and never completed."""
        with _s3_errors(f"listing {directory.display_uri()}"):
            bucket, prefix = directory.bucket, directory.prefix
            return [*self._list(bucket, prefix), *self._uploads(bucket, prefix)]

    def clear_directory(self, directory: DayDirectory, listed: list[StoredObject] | None = None) -> int:
        """Delete what an earlier attempt left, unfinished multipart uploads included; the marker and the
        manifest go first, so no reader trusts half a day. An empty directory costs no request.

        `listed` must have been taken under the day's lease (what is there now); without it the directory is
        listed. Only call this while holding the day's lease: an upload in progress would be aborted too.
        """
        if listed is None:
            listed = self.list_with_uploads(directory)
        lease = directory.key(LEASE)
        objects = [o for o in listed if o.key.startswith(directory.prefix) and o.key != lease]
        uploads = [o for o in objects if o.upload_id]
        present = {o.key for o in objects if not o.upload_id}
        first = [key for key in (directory.key(SUCCESS), directory.key(MANIFEST)) if key in present]
        keys = sorted(present - set(first))
        doing = f"clearing {directory.display_uri()}"
        self._delete_keys(directory, first, doing)  # one request, before anything else goes
        with _s3_errors(doing):
            for upload in uploads:
                self._abort(directory, upload)
        self._delete_keys(directory, keys, doing)
        return len(objects)

    def _abort(self, directory: DayDirectory, upload: StoredObject) -> None:
        """Abort an unfinished upload. One listed before the lease may have been completed or aborted since
        by the run that held the day then: it is gone, as it should be (a completed one is listed as an object)."""
        try:
            self._client.abort_multipart_upload(Bucket=directory.bucket, Key=upload.key, UploadId=upload.upload_id)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
                raise

    def count_rows(self, directory: DayDirectory, obj: StoredObject) -> int:
        """Count the NDJSON lines of one object; a truncated object raises VerificationError."""
        with contextlib.closing(self.stream(directory, obj)) as chunks:
            return _count_lines(chunks, f"s3://{directory.bucket}/{obj.key}")

    def stream(self, directory: DayDirectory, obj: StoredObject) -> Generator[bytes]:
        """The object's bytes, inflated if it is gzip, in pieces of at most a few MiB."""
        where = f"s3://{directory.bucket}/{obj.key}"
        with _s3_errors(f"reading {where}"):
            body = self._client.get_object(Bucket=directory.bucket, Key=obj.key)["Body"]
        try:
            chunks = body.iter_chunks(_CHUNK)
            if obj.key.endswith(".gz"):
                chunks = _gunzip(chunks, where)
            while True:
                with _s3_errors(f"reading {where}"):
                    chunk = next(chunks, None)
                if chunk is None:
                    return
                yield chunk
        finally:
            body.close()

    def read_range(self, directory: DayDirectory, name: str, start: int, end: int) -> bytes:
        """Bytes [start, end) of an object of the directory."""
        with _s3_errors(f"reading {name} in {directory.display_uri()}"):
            answer = self._client.get_object(
                Bucket=directory.bucket, Key=directory.key(name), Range=f"bytes={start}-{end - 1}"
            )
            return answer["Body"].read()

    def upload(self, directory: DayDirectory, name: str) -> MultipartUpload:
        """A multipart upload of one object: invisible to readers until `complete()`, gone after `abort()`."""
        with _s3_errors(f"starting the upload of {name} to {directory.display_uri()}"):
            answer = self._client.create_multipart_upload(Bucket=directory.bucket, Key=directory.key(name))
        return MultipartUpload(self._client, directory, name, answer["UploadId"])

    def delete(self, directory: DayDirectory, objects: Sequence[StoredObject]) -> None:
        """Delete these objects of the directory (only keys below it)."""
        keys = [o.key for o in objects if o.key.startswith(directory.prefix) and not o.upload_id]
        self._delete_keys(directory, keys, f"removing objects from {directory.display_uri()}")

    def _delete_keys(self, directory: DayDirectory, keys: Sequence[str], doing: str) -> None:
        """The one batch delete: 1,000 keys a request (S3's limit); any key S3 did not delete fails the call."""
        with _s3_errors(doing):
            for start in range(0, len(keys), 1000):
                batch = [{"Key": k} for k in keys[start : start + 1000]]
                answer = self._client.delete_objects(Bucket=directory.bucket, Delete={"Objects": batch})
                if answer.get("Errors"):
                    first = answer["Errors"][0]
                    raise PermanentError(
                        f"could not delete {first.get('Key')} in {directory.display_uri()}: {first.get('Code')}"
                    )

    def put_json(self, directory: DayDirectory, name: str, payload: dict) -> None:
        data = json.dumps(payload, indent=2, sort_keys=True).encode()
        with _s3_errors(f"writing {name} to {directory.display_uri()}"):
            self._client.put_object(
                Bucket=directory.bucket, Key=directory.key(name), Body=data, ContentType="application/json"
            )

    def create_json(self, directory: DayDirectory, name: str, payload: dict) -> str | None:
        """Write the object only if none exists (If-None-Match: *); its ETag, or None if one exists."""
        return self._put_conditional(directory, name, payload, IfNoneMatch="*")

    def replace_json(self, directory: DayDirectory, name: str, payload: dict, etag: str) -> str | None:
        """Overwrite the object only if it is still the version `etag`; the new ETag, or None if it changed."""
        return self._put_conditional(directory, name, payload, IfMatch=etag)

    def _put_conditional(self, directory: DayDirectory, name: str, payload: dict, **condition: str) -> str | None:
        data = json.dumps(payload, indent=2, sort_keys=True).encode()
        with _s3_errors(f"writing {name} to {directory.display_uri()}"):
            try:
                answer = self._client.put_object(
                    Bucket=directory.bucket,
                    Key=directory.key(name),
                    Body=data,
                    ContentType="application/json",
                    **condition,
                )
            except ClientError as exc:
                if _error_code(exc) in _CONDITION_FAILED or exc.response.get("ResponseMetadata", {}).get(
                    "HTTPStatusCode"
                ) in (409, 412):
                    return None
                raise
            return str(answer["ETag"])

    def read_json_version(self, directory: DayDirectory, name: str) -> tuple[dict, str] | None:
        """The object's JSON and its ETag, or None if there is none."""
        with _s3_errors(f"reading {name} from {directory.display_uri()}"):
            try:
                answer = self._client.get_object(Bucket=directory.bucket, Key=directory.key(name))
            except ClientError as exc:
                if _error_code(exc) in ("NoSuchKey", "404"):
                    return None
                raise
            return json.loads(answer["Body"].read()), str(answer["ETag"])

    def delete_version(self, directory: DayDirectory, name: str, etag: str) -> None:
        """Delete the object if it is still the version `etag` (someone else's newer version stays)."""
        with _s3_errors(f"removing {name} from {directory.display_uri()}"):
            try:
                self._client.delete_object(Bucket=directory.bucket, Key=directory.key(name), IfMatch=etag)
            except ClientError as exc:
                if _error_code(exc) not in _CONDITION_FAILED | {"NoSuchKey", "404"}:
                    raise

    def put_marker(self, directory: DayDirectory) -> None:
        with _s3_errors(f"writing {SUCCESS} to {directory.display_uri()}"):
            self._client.put_object(Bucket=directory.bucket, Key=directory.key(SUCCESS), Body=b"")

    def read_json(self, directory: DayDirectory, name: str) -> dict | None:
        found = self.read_json_version(directory, name)
        return found[0] if found else None


class MultipartUpload:
    """A writable stream into one S3 object, sent in parts of `part_size`; the object exists only once
    `complete()` succeeded, so a failure anywhere before leaves nothing a reader could pick up."""

    def __init__(
        self, client: Any, directory: DayDirectory, name: str, upload_id: str, part_size: int = 8 << 20
    ) -> None:
        self._client, self._directory, self.name, self._id = client, directory, name, upload_id
        self._part_size = part_size
        self._pending = bytearray()
        self._parts: list[dict[str, Any]] = []
        self.size = 0
        self.closed = False

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.size

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._pending += data
        self.size += len(data)
        if len(self._pending) >= self._part_size:
            self._send()
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:  # pyarrow closes its sink; completing is explicit
        self.closed = True

    def _send(self) -> None:
        number = len(self._parts) + 1
        key = self._directory.key(self.name)
        with _s3_errors(f"uploading {self.name} to {self._directory.display_uri()}"):
            answer = self._client.upload_part(
                Bucket=self._directory.bucket, Key=key, UploadId=self._id, PartNumber=number, Body=bytes(self._pending)
            )
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})
        self._pending.clear()

    def complete(self) -> int:
        """Finish the object; its size."""
        if self._pending or not self._parts:
            self._send()
        with _s3_errors(f"completing {self.name} in {self._directory.display_uri()}"):
            self._client.complete_multipart_upload(
                Bucket=self._directory.bucket,
                Key=self._directory.key(self.name),
                UploadId=self._id,
                MultipartUpload={"Parts": self._parts},
            )
        return self.size

    def abort(self) -> None:
        """Discard the parts sent; best effort (a left-over upload is aborted by the day's next clean-up)."""
        with contextlib.suppress(ClientError, BotoCoreError):
            self._client.abort_multipart_upload(
                Bucket=self._directory.bucket, Key=self._directory.key(self.name), UploadId=self._id
            )


class RunUploads:
    """The unfinished multipart uploads below a run's day directories of one table, listed when first needed.

    One listing per group of directories (the export groups a month's days), instead of one per day. The
    objects of a day are listed under its lease (export.py); an upload is invisible to readers, so one that
    this listing missed only waits for the next clear-up of its day.
    """

    def __init__(self, store: ObjectStore, groups: Sequence[Sequence[DayDirectory]]) -> None:
        self._store = store
        self._groups = [list(group) for group in groups if group]
        self._lock = threading.Lock()
        self._found: dict[DayDirectory, list[StoredObject]] | None = None

    def below(self, directory: DayDirectory) -> list[StoredObject] | None:
        """The uploads found below `directory`, or None if it is to be listed on its own."""
        if sum(len(group) for group in self._groups) < 2:
            return None
        with self._lock:
            if self._found is None:
                self._found = {}
                for group in self._groups:
                    self._found.update(self._store.list_directories(group, objects=False))
        return self._found.get(directory)


def _gunzip(chunks: Iterable[bytes], where: str) -> Iterator[bytes]:
    """Inflate a (possibly multi-member) gzip stream in bounded pieces.

    ISA-L (zlib's interface, the same output) inflates about twice as fast as zlib: measured here, 1,090
    against 493 MiB/s of NDJSON, on every JSON day read back and every Parquet day converted."""
    inflater = isal_zlib.decompressobj(wbits=31)
    seen_input = False
    try:
        for chunk in chunks:
            data = chunk
            seen_input = seen_input or bool(chunk)
            while data:
                if inflater.eof:
                    inflater = isal_zlib.decompressobj(wbits=31)
                out = inflater.decompress(data, _MAX_INFLATED)
                if out:
                    yield out
                data = inflater.unused_data if inflater.eof else inflater.unconsumed_tail
    except _GZIP_ERROR as exc:
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


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


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
