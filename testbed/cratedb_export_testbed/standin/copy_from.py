"""COPY t FROM <uri | [uri, ...]> [WITH (...)] [RETURN SUMMARY], as a real CrateDB 6.4.3 answered it.

Only NDJSON from ``s3://<key>:<secret>@<host>:<port>/<bucket>/<key>`` URIs, read with boto3 like the
COPY TO objects are written. What was observed on CrateDB 6.4.3 and is modelled here:

* RETURN SUMMARY answers the columns ``node`` (object ``{id, name}``), ``uri`` (text),
  ``success_count``, ``error_count`` (bigint) and ``errors`` (object: message ->
  ``{count, line_numbers}``), col_types ``[12, 4, 10, 10, 12]``, one row per URI read (a URI given
  twice is one row with the counts added up); an object without a line that counts gives no row.
  A plain URI is shown as ``s3://<bucket>/<key>`` (no credentials, no endpoint), a URI a glob matched
  as ``<key>`` only. A glob that matches nothing (and any ``*`` in a directory segment) is a row
  ``s3://<bucket>/`` with NULL counts and ``Cannot find any URI matching: s3://<bucket>/``;
  ``compression = 'gzip'`` on an object that is not gzip is a row with NULL counts and
  ``Not in GZIP format``. A key ending in ``.gz`` is decompressed without the option too.
* Without RETURN SUMMARY the answer is the number of rows inserted, 0 when every line failed.
* Lines: an empty line is skipped (but numbered); a line with only blanks, or a JSON value that is
  not an object, inserts a row of NULLs; the first JSON value of a line is read and the rest of the
  line ignored; a line that is no JSON value is ``Failed to parse content to map``. Values are cast as
  parameters of an INSERT (``Cannot cast value `abc` to type `bigint```), an object into a text column
  becomes its JSON text; unknown columns of a strict table are ``Column x unknown``; a dynamic column
  learnt earlier in the same COPY refuses another type (``Column `x` already exists with type `text`.
  Cannot add same column with type `bigint```). A value given for a generated column is ignored and
  computed again (seen for a ``date_trunc`` partition column).
* A missing object, a wrong key or bucket: ``OpenDALException`` (5000) with OpenDAL's read or list
  error text.

* Into a table with a primary key: a line whose key is taken (by a row already there or an earlier
  line) is ``A document with the same primary key exists already``; with ``overwrite_duplicates =
  true`` it replaces that row and counts as a success (the last line wins). A key value that is
  NULL, missing or an object is ``A primary key value must not be NULL``. Key values are converted
  before the row's casts, with other messages than those: for a BIGINT / INTEGER key a number is
  truncated (1.5 is 1, where a column outside the key refuses it), a string is read as a Java
  ``Long.parseLong`` reads it (``For input string: "1.5"``), ``true`` and arrays of numbers are
  ``Can't cast 'true' to bigint`` / ``Can't cast '[1]' to bigint`` (BIGINT only). CrateDB reports the
  duplicates per shard, so their ``line_numbers`` need not be in line order there (they are here).
  ``overwrite_duplicates`` other than true / false is ``Failed to parse value [yes] as only [true]
  or [false] are allowed.``

Refused as not modelled: PARTITION clauses, column lists, WITH options other than ``compression``,
``protocol``, ``overwrite_duplicates`` and ``wait_for_completion = true``; (CrateDB ignores unknown
options, the double refuses them); ``file://`` and anonymous or AWS URIs, ``?`` globs, S3 failures as
CrateDB before 6.3 reports them; key values other than those above, and keys with columns of other
types than BIGINT, INTEGER and TEXT.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from botocore.exceptions import BotoCoreError, ClientError
from cratedb_sqlparse.generated_parser.SqlBaseParser import SqlBaseParser as P

from cratedb_export_testbed.standin import coltypes, javauri, s3
from cratedb_export_testbed.standin.copy_to import _allowed, _check_protocol, _setting_string
from cratedb_export_testbed.standin.errors import CrateError, not_in_double, sql_parse, unsupported
from cratedb_export_testbed.standin.sqltree import Col, generic_properties
from cratedb_export_testbed.standin.statement import Relation, Statement
from cratedb_export_testbed.standin.tables import Catalog, Column, Table

SUMMARY_COLUMNS = ["node", "uri", "success_count", "error_count", "errors"]
SUMMARY_TYPES = [12, 4, 10, 10, 12]
PARSE_FAILED = "Failed to parse content to map"
NOT_GZIP = "Not in GZIP format"
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_OPTIONS = ("compression", "protocol", "overwrite_duplicates", "wait_for_completion")
_KEY_KINDS = ("bigint", "integer", "text")  # primary key column types whose COPY FROM was observed
_JAVA_LONG = re.compile(r"[+-]?[0-9]+")


@dataclass
class Summary:
    """One row of RETURN SUMMARY; counts are None when the URI could not be read at all."""

    uri: str
    success: int | None = 0
    errors: dict[str, dict[str, Any]] = field(default_factory=dict)
    error_count: int | None = 0

    def fail(self, message: str, line: int | None) -> None:
        entry = self.errors.setdefault(message, {"count": 0, "line_numbers": []})
        entry["count"] += 1
        if line is not None:
            entry["line_numbers"].append(line)
            self.error_count = (self.error_count or 0) + 1

    @property
    def counted(self) -> bool:
        return self.success is None or bool(self.success) or bool(self.error_count)


def copy_from(
    stmt: Statement,
    catalog: Catalog,
    resolve: Callable[[Relation, str], Table],
    writer: s3.S3Writer,
    node_info: dict[str, Any],
) -> tuple[list[str], list[Any], list[list[Any]], int] | int:
    """The summary (cols, col_types, rows, rowcount) with RETURN SUMMARY, else the rowcount."""
    node: P.CopyFromContext = stmt.node
    target = node.tableWithPartition()
    table = resolve(stmt.relation(target.qname()), "INSERT")
    if target.assignment():
        raise not_in_double("COPY FROM with a PARTITION clause")
    if node.ident():
        raise not_in_double("COPY FROM with a column list")
    summary = node.SUMMARY() is not None
    gzip_option, protocol, overwrite = _options(stmt, table, node.withProperties(), summary)
    for name in table.primary_key:
        if table.columns[name].type.kind not in _KEY_KINDS:
            raise not_in_double(f"COPY FROM into a table with a {table.columns[name].type.sql_name} primary key column")
    uris = _uris(stmt.constant(node.expr()))
    rows: dict[str, Summary] = {}
    for uri in uris:
        for shown, data in _read(uri, protocol, writer, gzip_option):
            entry = rows.setdefault(shown, Summary(shown))
            if isinstance(data, str):  # the URI could not be read: a row with NULL counts
                entry.success = entry.error_count = None
                entry.fail(data, None)
            else:
                _load(table, catalog, data, entry, overwrite)
    counted = [row for row in rows.values() if row.counted]
    if not summary:
        return sum(row.success or 0 for row in counted)
    node_value = {"id": node_info["id"], "name": node_info["name"]}
    result = [
        [dict(node_value), row.uri, row.success, row.error_count, row.errors]
        for row in sorted(counted, key=lambda r: r.uri)
    ]
    return list(SUMMARY_COLUMNS), list(SUMMARY_TYPES), result, len(result)


def _options(stmt: Statement, table: Table, with_node: Any, summary: bool) -> tuple[bool, str, bool]:
    values: dict[str, str] = {}
    for key, value_node in generic_properties(with_node):
        expr = stmt.expr(value_node)
        if isinstance(expr, Col):
            table.column_type(expr.path)
            raise not_in_double(f"the column {expr.name} as the value of {key}")
        if key not in _OPTIONS:
            raise not_in_double(f"the COPY FROM option {key}")
        values[key] = _setting_string(stmt.value(expr))
    compression = _allowed(values.get("compression"), ("gzip",))
    overwrite = values.get("overwrite_duplicates", "false")
    if overwrite not in ("true", "false"):
        raise sql_parse(f"Failed to parse value [{overwrite}] as only [true] or [false] are allowed.")
    wait = values.get("wait_for_completion", "true")
    if wait == "false" and summary:
        raise unsupported(
            "Cannot use RETURN SUMMARY with wait_for_completion=false. "
            "Either set wait_for_completion=true, or remove RETURN SUMMARY"
        )
    if wait != "true":
        raise not_in_double(f"COPY FROM with wait_for_completion = {wait!r}")
    if "protocol" not in values:
        # CrateDB 6.4.3 answered OpenDALException[ConfigInvalid ... region is missing ...] for the default https.
        raise not_in_double("COPY FROM without protocol = 'http' (https, AWS regions)")
    _check_protocol(values["protocol"])
    return compression == "gzip", values["protocol"], overwrite == "true"


def _uris(value: Any) -> list[str]:
    """``fileUri must be of type STRING or STRING ARRAY`` as CrateDB's CopyFromPlan checks it."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        if not value:
            raise CrateError("ArrayIndexOutOfBoundsException", "Index 0 out of bounds for length 0", 5000)
        if all(isinstance(v, str) for v in value):
            return list(value)
        first = next((v for v in value if v is not None), None)
        if first is None or isinstance(first, str):
            raise not_in_double("a COPY FROM URI array with NULL or mixed elements")
        raise sql_parse(
            f"fileUri must be of type STRING or STRING ARRAY. Got {coltypes.value_type(first).sql_name}_array"
        )
    if isinstance(value, dict):
        raise not_in_double("a COPY FROM URI of type object")
    raise sql_parse(f"fileUri must be of type STRING or STRING ARRAY. Got {coltypes.source_type_name(value)}")


def _read(uri: str, protocol: str, writer: s3.S3Writer, gzip_option: bool) -> list[tuple[str, bytes | str]]:
    """(URI as the summary shows it, the object's text or the message of a row with NULL counts)."""
    try:
        parsed = javauri.parse(uri)
    except javauri.JavaURISyntaxError as error:
        raise sql_parse(str(error)) from None
    if "?" in uri or "#" in uri:
        raise not_in_double("'?' or '#' in a COPY FROM URI (CrateDB reads them as query or fragment)")
    if (parsed.scheme or "file") != "s3":
        raise not_in_double(f"COPY FROM a {parsed.scheme or 'file'} URI; only s3://")
    target = s3.parse_target(uri)
    if target.endpoint is None:
        raise not_in_double("COPY FROM AWS S3 itself; give the store's host:port in the URI")
    if target.anonymous:
        raise not_in_double("COPY FROM with anonymous S3 access")
    if "*" not in target.key:
        body = _get(writer, target, protocol)
        return [(f"s3://{target.bucket}/{target.key}", _decompress(body, gzip_option or target.key.endswith(".gz")))]
    directory, _, pattern = target.key.rpartition("/")
    directory = directory + "/" if directory else ""
    no_match = [(f"s3://{target.bucket}/", f"Cannot find any URI matching: s3://{target.bucket}/")]
    if "*" in directory:
        return no_match
    regex = re.compile("[^/]*".join(re.escape(part) for part in pattern.split("*")))
    keys = [k for k in _list(writer, target, protocol, directory) if regex.fullmatch(k[len(directory) :])]
    if not keys:
        return no_match
    found = []
    for key in keys:
        body = _get(
            writer, s3.S3Target(target.bucket, key, target.endpoint, target.access_key, target.secret_key), protocol
        )
        found.append((key, _decompress(body, gzip_option or key.endswith(".gz"))))
    return found


def _decompress(body: bytes, compressed: bool) -> bytes | str:
    if not compressed:
        return body
    if body[:2] != b"\x1f\x8b":
        return NOT_GZIP
    try:
        return gzip.decompress(body)
    except (OSError, EOFError, zlib.error) as error:
        raise not_in_double(f"CrateDB's message for a damaged gzip object ({error})") from None


def _get(writer: s3.S3Writer, target: s3.S3Target, protocol: str) -> bytes:
    client = writer.client(target, protocol)
    try:
        return client.get_object(Bucket=target.bucket, Key=target.key)["Body"].read()
    except ClientError as error:
        raise _read_refused(writer, error, target, protocol) from None
    except BotoCoreError as error:
        raise not_in_double(f"CrateDB's message for an S3 endpoint it cannot reach ({error})") from None


def _list(writer: s3.S3Writer, target: s3.S3Target, protocol: str, prefix: str) -> list[str]:
    client = writer.client(target, protocol)
    keys: list[str] = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=target.bucket, Prefix=prefix, Delimiter="/"
        ):
            keys += [item["Key"] for item in page.get("Contents", [])]
    except ClientError as error:
        raise _list_refused(writer, error, target, protocol, prefix) from None
    except BotoCoreError as error:
        raise not_in_double(f"CrateDB's message for an S3 endpoint it cannot reach ({error})") from None
    return sorted(keys)


def _parts(error: ClientError) -> tuple[str, str, int]:
    """OpenDAL's kind, retry state, the ``S3Error {...}`` text and the response's ``Parts {...}``."""
    details = error.response.get("Error", {})
    meta = error.response.get("ResponseMetadata", {})
    status = int(meta.get("HTTPStatusCode") or 0)
    kind, retryable = s3._OPENDAL_KIND_BY_STATUS.get(status, "Unexpected"), status in (499, 500, 502, 503, 504)
    kind, retryable = s3._OPENDAL_KIND_BY_CODE.get(str(details.get("Code")), (kind, retryable))
    s3_error = (
        f'S3Error {{ code: "{details.get("Code", "")}", message: "{details.get("Message", "")}", '
        f'resource: "{details.get("Resource", "")}", request_id: "{meta.get("RequestId", "")}" }}'
    )
    headers = ", ".join(f'"{name}": "{value}"' for name, value in (meta.get("HTTPHeaders") or {}).items())
    response = f"Parts {{ status: {status}, version: HTTP/1.1, headers: {{{headers}}} }}"
    return f"{kind} ({'persistent' if retryable else 'permanent'})", s3_error, response  # type: ignore[return-value]


def _read_refused(writer: s3.S3Writer, error: ClientError, target: s3.S3Target, protocol: str) -> CrateError:
    if not writer.opendal:
        return not_in_double("S3 read failures as CrateDB before 6.3 reports them")
    kind, s3_error, response = _parts(error)
    text = (
        f"Unexpected (permanent) at  => {kind} at read, context: {{ uri: {protocol}://{target.endpoint}/"
        f"{target.bucket}/{target.key}, response: {response}, service: s3, path: {target.key}, range: 0- }} => "
        f"{s3_error}\n\nBacktrace:\n   0: <unknown>\n"
        "   1: Java_org_apache_opendal_OperatorInputStream_readNextBytes\n\n"
    )
    return CrateError("OpenDALException", text, 5000)


def _list_refused(
    writer: s3.S3Writer, error: ClientError, target: s3.S3Target, protocol: str, prefix: str
) -> CrateError:
    if not writer.opendal:
        return not_in_double("S3 list failures as CrateDB before 6.3 reports them")
    kind, s3_error, response = _parts(error)
    query = f"delimiter=%2F&list-type=2&prefix={quote(prefix, safe='')}"
    text = (
        f"{kind} at list => {s3_error}\n\nContext:\n   uri: {protocol}://{target.endpoint}/{target.bucket}?{query}\n"
        f"   response: {response}\n   service: s3\n   path: {prefix}\n   listed: 0\n"
    )
    return CrateError("OpenDALException", text, 5000)


def _load(table: Table, catalog: Catalog, data: bytes, entry: Summary, overwrite: bool) -> None:
    """Insert the object's lines, counting successes and errors per message."""
    text = data.decode("utf-8", errors="replace")
    lines = _LINE_BREAK.split(text)
    with catalog.lock:
        known = set(table.columns)
        docs: list[tuple[int, dict[str, Any]]] = []
        for number, line in enumerate(lines, 1):
            if line == "":
                continue
            try:
                docs.append((number, _row(table, known, line)))
            except CrateError as error:
                if error.code == 4004:
                    raise
                entry.fail(error.text, number)
        # The partitions the object's rows need are opened before any is written; beyond the shard limit
        # the whole statement fails (CrateDB 6.4.3, a small load: nothing written, no summary).
        table.make_room(doc for _, doc in docs)
        for number, doc in docs:
            try:
                table.store(catalog.next_row_id(), doc, overwrite)  # DuplicateKeyException for a taken key
            except CrateError as error:
                if error.code == 4004:
                    raise
                entry.fail(error.text, number)
                continue
            entry.success = (entry.success or 0) + 1


def _row(table: Table, known: set[str], line: str) -> dict[str, Any]:
    stripped = line.lstrip(" \t")
    if not stripped:
        value: Any = {}
    else:
        try:
            value, _ = json.JSONDecoder().raw_decode(stripped)
        except ValueError:
            raise sql_parse(PARSE_FAILED) from None
    if not isinstance(value, dict):
        value = {}
    for name in table.primary_key:
        if table.columns[name].generated is None:  # a generated key column is computed, then checked
            value = {**value, name: _key_value(table, name, value.get(name))}
    values: dict[str, Any] = {}
    for name, item in value.items():
        column: Column | None = table.columns.get(name)
        if column is not None and column.generated is not None:
            continue  # computed again, as CrateDB 6.4.3 did for a date_trunc partition column
        if column is not None and name not in known and item is not None:
            learnt, given = column.type, coltypes.infer_type(item)
            if learnt != given:
                raise sql_parse(
                    f"Column `{name}` already exists with type `{learnt.sql_name}`. "
                    f"Cannot add same column with type `{given.sql_name}`"
                )
        if column is not None and column.type.kind == "text" and isinstance(item, dict):
            item = json.dumps(item, separators=(",", ":"), ensure_ascii=False)
        values[name] = item
    return table.prepare(values, set(values))


def _key_value(table: Table, name: str, value: Any) -> Any:
    """A primary key value of a line, converted before the row's casts as CrateDB 6.4.3 did it."""
    if value is None or isinstance(value, dict):
        raise sql_parse("A primary key value must not be NULL")
    kind = table.columns[name].type.kind
    if kind == "text":
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return value
    elif isinstance(value, str):
        if not _JAVA_LONG.fullmatch(value):
            raise sql_parse(f'For input string: "{value}"')
        return value
    elif isinstance(value, float):
        return int(value)  # truncated, as Java's (long) cast
    elif isinstance(value, int) and not isinstance(value, bool):
        return value
    elif kind == "bigint" and isinstance(value, bool):
        raise sql_parse(f"Can't cast '{'true' if value else 'false'}' to bigint")
    elif kind == "bigint" and isinstance(value, list) and value and all(type(v) is int for v in value):
        raise sql_parse(f"Can't cast '[{', '.join(str(v) for v in value)}]' to bigint")
    raise not_in_double(f"the COPY FROM message for the {kind} primary key value {json.dumps(value)}")
