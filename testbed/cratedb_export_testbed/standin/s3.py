"""``s3://`` targets as CrateDB 5.x reads them, and the objects written with boto3.

Parsing follows CrateDB's ``S3URI.toS3URI`` on top of ``java.net.URI``:
``s3://[<key>:<secret>@][<host>:<port>/]<bucket>/<path>``. A host is the endpoint only when it has
a port; user info is percent-decoded *before* it is split on ``:``, and only the first two pieces
are used (so a secret containing ``:`` breaks even as ``%3A``). Either key missing means an
anonymous (unsigned) request.

Objects are written like CrateDB 5.x's ``S3FileOutput``: one multipart upload per object
(create, one part, complete), path-style, region us-east-1, ``<protocol>://host:port``. S3 errors
come back as ``AmazonS3Exception[...]`` and connection failures as ``SdkClientException[...]``,
both code 5000 / HTTP 500, as CrateDB up to 6.2 (AWS SDK v1) reports them; for a double of version
6.3 or later, S3 refusals read as CrateDB 6.4.3's ``OpenDALException[...]`` (code 5000), and an
unreachable endpoint is refused as not modelled.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import boto3
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from cratedb_export_testbed.standin import javauri
from cratedb_export_testbed.standin.errors import CrateError, not_in_double, sql_parse

INVALID_URI_MSG = "Invalid URI. Please make sure that given URI is encoded properly."


@dataclass(frozen=True)
class S3Target:
    bucket: str
    key: str
    endpoint: str | None  # "host:port", None for AWS itself
    access_key: str | None
    secret_key: str | None

    @property
    def anonymous(self) -> bool:
        return self.access_key is None or self.secret_key is None


def parse_target(uri: str) -> S3Target:
    """Split one shard's target URI; errors are the ones CrateDB answers, credentials and all."""
    try:
        parsed = javauri.parse(uri)
    except javauri.JavaURISyntaxError:
        raise sql_parse(f"Invalid uri '{uri}'") from None
    text = uri
    if parsed.host is not None and parsed.port == -1:
        # "s3://bucket/key" is read by Java with the bucket as host: CrateDB moves it into the path.
        user = f"{parsed.raw_user_info}@" if parsed.raw_user_info is not None else ""
        text = f"s3://{user}/{parsed.host}{parsed.path}"
        try:
            parsed = javauri.parse(text)
        except javauri.JavaURISyntaxError as error:
            raise sql_parse(str(error)) from None
    user_info = _user_info(parsed)
    access_key = secret_key = None
    if user_info is not None:
        parts = _java_split(user_info, ":")
        access_key = parts[0] if parts else None
        secret_key = parts[1] if len(parts) > 1 else None
    elif "@" in text:
        # CrateDB's guess: an '@' without parsable user info means an unencoded secret.
        raise sql_parse(INVALID_URI_MSG)
    path = (parsed.path or "")[1:]
    bucket, _, key = path.partition("/")
    endpoint = f"{parsed.host}:{parsed.port}" if parsed.host is not None else None
    return S3Target(bucket, key, endpoint, access_key, secret_key)


def _user_info(parsed: javauri.JavaUri) -> str | None:
    if parsed.host is None and parsed.port == -1 and parsed.user_info is None:
        # Java keeps "key:secret@" without a host as a registry authority, not as user info.
        authority = parsed.authority
        if authority is None:
            return None
        at = authority.find("@")
        if at != len(authority) - 1:
            raise sql_parse(INVALID_URI_MSG)
        return authority[:at]
    return parsed.user_info


def _java_split(text: str, separator: str) -> list[str]:
    """``String.split``: trailing empty strings are dropped (``"a:"`` -> ``["a"]``)."""
    parts = text.split(separator)
    if text == "":
        return [""]
    while parts and parts[-1] == "":
        parts.pop()
    return parts


class S3Writer:
    """Writes objects; boto3 clients are cached per endpoint, protocol and key pair.

    ``version``: up to 6.2 CrateDB writes with the AWS SDK v1 and reports ``AmazonS3Exception`` /
    ``SdkClientException``; from 6.3 with OpenDAL, reporting ``OpenDALException`` with the Rust error's
    debug text (as a real 6.4.3 answered a refused write, see :func:`opendal_exception`).
    """

    def __init__(self, version: str = "5.10.4") -> None:
        self._clients: dict[tuple[Any, ...], Any] = {}
        self._lock = threading.Lock()
        self.opendal = _version(version) >= (6, 3)

    def _refused(self, error: ClientError, target: S3Target, protocol: str, written: int) -> CrateError:
        if self.opendal:
            return opendal_exception(error, target, protocol, written)
        return _amazon_s3_exception(error)

    def _unreachable(self, error: BotoCoreError, target: S3Target) -> CrateError:
        if self.opendal:
            return not_in_double(f"CrateDB 6.3+'s (OpenDAL's) message for an S3 endpoint it cannot reach ({error})")
        assert target.endpoint is not None
        return _sdk_client_exception(error, target.endpoint)

    def put(self, target: S3Target, protocol: str, body: bytes) -> None:
        if target.endpoint is None:
            raise not_in_double("writing to AWS S3 itself; give the store's host:port in the URI")
        if not target.bucket:
            raise sql_parse("The bucket name parameter must be specified when initiating a multipart upload")
        client = self._client(target, protocol)
        names = {"Bucket": target.bucket, "Key": target.key}
        try:
            upload_id = client.create_multipart_upload(**names)["UploadId"]
            part = client.upload_part(**names, UploadId=upload_id, PartNumber=1, Body=body)
            parts = {"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]}
            client.complete_multipart_upload(**names, UploadId=upload_id, MultipartUpload=parts)
        except ClientError as error:
            raise self._refused(error, target, protocol, len(body)) from None
        except BotoCoreError as error:
            raise self._unreachable(error, target) from None

    def abandon(self, target: S3Target, protocol: str, body: bytes) -> None:
        """Start a multipart upload and upload its part, but never complete nor abort it: what CrateDB up
        to 6.2 leaves behind when a background part upload fails and closing the writer swallows it."""
        if target.endpoint is None:
            raise not_in_double("writing to AWS S3 itself; give the store's host:port in the URI")
        client = self._client(target, protocol)
        names = {"Bucket": target.bucket, "Key": target.key}
        try:
            upload_id = client.create_multipart_upload(**names)["UploadId"]
            client.upload_part(**names, UploadId=upload_id, PartNumber=1, Body=body)
        except ClientError as error:
            raise self._refused(error, target, protocol, len(body)) from None
        except BotoCoreError as error:
            raise self._unreachable(error, target) from None

    def client(self, target: S3Target, protocol: str) -> Any:
        """The cached boto3 client for a target (COPY FROM reads with it)."""
        return self._client(target, protocol)

    def _client(self, target: S3Target, protocol: str) -> Any:
        key = (target.endpoint, protocol, target.access_key, target.secret_key)
        with self._lock:
            if key not in self._clients:
                config = Config(
                    s3={"addressing_style": "path"},
                    signature_version=UNSIGNED if target.anonymous else "s3v4",
                    retries={"max_attempts": 2, "mode": "standard"},
                    connect_timeout=5,
                    read_timeout=60,
                )
                client = boto3.session.Session().client(
                    "s3",
                    endpoint_url=f"{protocol}://{target.endpoint}",
                    region_name="us-east-1",
                    aws_access_key_id=None if target.anonymous else target.access_key,
                    aws_secret_access_key=None if target.anonymous else target.secret_key,
                    config=config,
                )
                # CrateDB's SDK sends any bucket name and lets S3 judge it; so does the double.
                client.meta.events.unregister("before-parameter-build.s3", _bucket_validator())
                self._clients[key] = client
            return self._clients[key]


def _bucket_validator() -> Any:
    from botocore.handlers import validate_bucket_name

    return validate_bucket_name


def _amazon_s3_exception(error: ClientError) -> CrateError:
    details = error.response.get("Error", {})
    meta = error.response.get("ResponseMetadata", {})
    text = (
        f"{details.get('Message', '')} (Service: Amazon S3; Status Code: {meta.get('HTTPStatusCode')}; "
        f"Error Code: {details.get('Code')}; Request ID: {meta.get('RequestId')}; "
        f"S3 Extended Request ID: {meta.get('HostId')}; Proxy: null)"
    )
    return CrateError("AmazonS3Exception", text, 5000)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("-")[0].split(".")[:3])


# OpenDAL's s3 parse_error: the kind by HTTP status, some S3 error codes overriding it; retryable
# errors are "temporary", and "persistent" once CrateDB's RetryLayer gave up on them.
_OPENDAL_KIND_BY_STATUS = {403: "PermissionDenied", 404: "NotFound", 304: "ConditionNotMatch", 412: "ConditionNotMatch"}
_OPENDAL_KIND_BY_CODE = {
    "NoSuchBucket": ("ConfigInvalid", False), "RequestTimeout": ("Unexpected", True),
    "InternalError": ("Unexpected", True), "OperationAborted": ("Unexpected", True),
    "SlowDown": ("RateLimited", True), "ServiceUnavailable": ("Unexpected", True),
}  # fmt: skip


def opendal_exception(error: ClientError, target: S3Target, protocol: str, written: int) -> CrateError:
    """``OpenDALException[<Kind> (<status>) at write => S3Error { ... }`` followed by the error's context,
    in the layout a real CrateDB 6.4.3 answered with (the OpenDAL error's Debug text)."""
    details = error.response.get("Error", {})
    meta = error.response.get("ResponseMetadata", {})
    status = int(meta.get("HTTPStatusCode") or 0)
    kind, retryable = _OPENDAL_KIND_BY_STATUS.get(status, "Unexpected"), status in (499, 500, 502, 503, 504)
    kind, retryable = _OPENDAL_KIND_BY_CODE.get(str(details.get("Code")), (kind, retryable))
    s3_error = (
        f'S3Error {{ code: "{details.get("Code", "")}", message: "{details.get("Message", "")}", '
        f'resource: "{details.get("Resource", "")}", request_id: "{meta.get("RequestId", "")}" }}'
    )
    headers = ", ".join(f'"{name}": "{value}"' for name, value in (meta.get("HTTPHeaders") or {}).items())
    text = (
        f"{kind} ({'persistent' if retryable else 'permanent'}) at write => {s3_error}\n\nContext:\n"
        f"   uri: {protocol}://{target.endpoint}/{target.bucket}/{target.key}\n"
        f"   response: Parts {{ status: {status}, version: HTTP/1.1, headers: {{{headers}}} }}\n"
        f"   service: s3\n   path: {target.key}\n   written: {written}\n"
    )
    return CrateError("OpenDALException", text, 5000)


def _sdk_client_exception(error: BotoCoreError, endpoint: str) -> CrateError:
    if isinstance(error, EndpointConnectionError):
        host = endpoint.rpartition(":")[0]
        detail = f"Connect to {endpoint} [/{host}] failed: Connection refused"
    else:
        detail = str(error)
    return CrateError("SdkClientException", f"Unable to execute HTTP request: {detail}", 5000)
