"""What went wrong, in words a user can act on, and whether trying again can help.

The crate client does not expose CrateDB's numeric error codes, so CrateDB errors are classified by the
exception name that starts CrateDB's message (`RelationUnknown[...]`). Every message is redacted here,
at the one place errors are made, before it can reach a log, the UI or an exception chain.
"""

from __future__ import annotations

from cratedb_export.core.redaction import redact


class ExportError(Exception):
    """An export failed; `str()` is already redacted and says what to fix."""

    retryable = False
    # True when CrateDB received the statement and answered with this error.
    sent = False

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


class TransientError(ExportError):
    """Worth retrying: the cluster or the network was briefly unavailable."""

    retryable = True


class PermanentError(ExportError):
    """Retrying cannot help; the message says what to change."""


class CopyOutcomeUnknown(PermanentError):
    """The COPY may still be running; re-issuing it could write the same day twice at once."""


class AnswerLost(TransientError):
    """The request may have reached CrateDB but its answer never came (reset or closed connection, read
    timeout, a proxy's own page: any 5xx, a 408 or 499): only CrateDB's jobs tables can tell what became of it."""


class VerificationError(PermanentError):
    """The exported files do not match the source; no completion marker was written."""

    def __init__(self, message: str, counts: dict[str, int | None] | None = None) -> None:
        super().__init__(message)
        self.counts = counts or {}


# CrateDB exception names (the prefix of its error messages) → (retryable, what to do).
_CRATEDB_ERRORS: dict[str, tuple[bool, str]] = {
    "RelationUnknown": (False, "check 'table' in the export configuration: CrateDB has no such table"),
    "SchemaUnknownException": (False, "check the schema in 'table' of the export configuration"),
    "ColumnUnknownException": (
        False,
        "check 'timestamp_column' and 'columns' in the export configuration: CrateDB has no such column",
    ),
    "SQLParseException": (False, "CrateDB rejected the statement or the target URI"),
    "ParsingException": (False, "CrateDB could not parse the statement"),
    "UnsupportedFeatureException": (False, "CrateDB does not support this statement"),
    "MissingPrivilegeException": (False, "grant the CrateDB user DQL on the table"),
    "UnauthorizedException": (False, "check CRATEDB_USERNAME / CRATEDB_PASSWORD"),
    "AmazonS3Exception": (
        False,
        "S3 refused the write: check ACCESS_KEY_ID / SECRET_ACCESS_KEY, the bucket and its permissions",
    ),
    "OpenDALException": (False, "S3 refused the write: check the keys, the bucket and the S3 endpoint"),
    "SdkClientException": (True, "CrateDB could not reach S3: check the S3 endpoint and protocol"),
    # Codes 5002 and 5030-5035: shards or nodes temporarily unavailable.
    "UnavailableShardsException": (True, "shards were unavailable"),
    "NoShardAvailableActionException": (True, "no shard was available"),
    "ShardNotFoundException": (True, "a shard was not found"),
    "NodeNotConnectedException": (True, "a node was not connected"),
    "NodeDisconnectedException": (True, "a node disconnected"),
    # Code 5005: a node left during the statement; the job is gone, its files may be partial.
    "JobKilledException": (True, "the job was killed, e.g. a participating node disconnected"),
    "MasterNotDiscoveredException": (True, "the cluster had no master"),
    "ProcessClusterEventTimeoutException": (True, "a cluster event timed out"),
    "ClusterBlockException": (False, "the table or cluster is read-only or blocked"),
}
# A new table or partition beyond cluster.max_shards_per_node (an SQLParseException, CrateDB 6.4.3's wording).
_SHARD_LIMIT = "maximum shards open"
_SHARD_LIMIT_ADVICE = (
    "CrateDB is at its shard limit: drop tables or partitions it no longer needs, or raise cluster.max_shards_per_node"
)


# An exception raised on another node that CrateDB cannot send as itself arrives wrapped, its class name in
# snake case: NotSerializableExceptionWrapper[amazon_s3_exception: ...], ...[open_d_a_l_exception: ...].
_WRAPPER = "NotSerializableExceptionWrapper"


def exception_name(message: str) -> str:
    """The CrateDB exception a message reports, looking through the wrapper of errors from other nodes."""
    name, _, rest = message.partition("[")
    name = name.strip()
    if name == _WRAPPER:
        inner = rest.split(":", 1)[0].strip()
        return "".join(part[:1].upper() + part[1:] for part in inner.split("_"))
    return name


def classify_crate_error(message: str, *, what: str) -> ExportError:
    """Turn a CrateDB error message into a (redacted) ExportError of the right kind."""
    name = exception_name(message)
    retryable, advice = _CRATEDB_ERRORS.get(name, (False, ""))
    if name == "SdkClientException" or "Unable to execute HTTP request" in message:
        retryable, advice = _CRATEDB_ERRORS["SdkClientException"]
    if message.startswith("401") or "Unauthorized" in message.split("[", 1)[0]:
        retryable, advice = _CRATEDB_ERRORS["UnauthorizedException"]
    if _SHARD_LIMIT in message:
        retryable, advice = False, _SHARD_LIMIT_ADVICE
    cls = TransientError if retryable else PermanentError
    suffix = f" ({advice})" if advice else ""
    error = cls(f"{what} failed: {message}{suffix}")
    error.sent = True
    return error
