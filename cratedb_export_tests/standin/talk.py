"""Talking to the stand-in as its tests do: through the real `crate` client, raw HTTP, and SeaweedFS."""

from __future__ import annotations

import base64
import functools
import gzip
import json
import re
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest
from crate import client as crate_client
from crate.client.exceptions import ProgrammingError
from cratedb_export_testbed.seaweedfs import SeaweedS3
from cratedb_export_testbed.standin import CrateDouble
from cratedb_export_testbed.support import TEST_SECRETS

USER, PASSWORD = "tester", "Pw/with+odd=chars"


ACCESS_KEY, SECRET_KEY = TEST_SECRETS.access_key, TEST_SECRETS.secret_key


SEED_DDL = """CREATE TABLE {name} (
  "hash_id" BIGINT, "timestamp" TIMESTAMP WITH TIME ZONE, "name" TEXT,
  "tags" OBJECT(DYNAMIC), "fields" OBJECT(DYNAMIC),
  "month" TIMESTAMP AS date_trunc('quarter', "timestamp")) {tail}"""


INSERT = 'INSERT INTO {name} ("hash_id", "timestamp", "name", "tags", "fields") VALUES (?, ?, ?, ?, ?)'


WINDOW_COPY = 'COPY {name} WHERE "timestamp" >= ? AND "timestamp" < ? TO DIRECTORY ? WITH ({options})'


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def sql(double: CrateDouble, stmt: str, args: list[Any] | None = None, **connect: Any) -> Any:
    """Run through the real client; returns rows for queries, else the rowcount."""
    connection = crate_client.connect(double.url, username=USER, password=PASSWORD, **connect)
    try:
        cursor = connection.cursor()
        cursor.execute(stmt, args)
        return cursor.fetchall() if cursor.description else cursor.rowcount
    finally:
        connection.close()


def bulk(double: CrateDouble, stmt: str, rows: list[list[Any]]) -> None:
    connection = crate_client.connect(double.url, username=USER, password=PASSWORD)
    try:
        connection.cursor().executemany(stmt, rows)
    finally:
        connection.close()


def refusal(double: CrateDouble, stmt: str, args: list[Any] | None = None) -> str:
    with pytest.raises(ProgrammingError) as caught:
        sql(double, stmt, args)
    return caught.value.message


def http(
    double: CrateDouble,
    body: Any = None,
    path: str = "/_sql",
    method: str = "POST",
    headers: dict[str, str] | None = None,
    auth: tuple[str, str] | None = (USER, PASSWORD),
) -> tuple[int, dict[str, str], Any]:
    """A raw request; returns (status, headers, parsed JSON or text)."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(double.url + path, data=data, method=method, headers=headers or {})
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, head, raw = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        status, head, raw = error.code, dict(error.headers), error.read()
    is_json = head.get("Content-Type", "").startswith("application/json")
    return status, head, json.loads(raw) if is_json else raw.decode()


def target(seaweed: SeaweedS3, bucket: str, directory: str, key: str = ACCESS_KEY, secret: str = SECRET_KEY) -> str:
    return f"s3://{quote(key, safe='')}:{quote(secret, safe='')}@{seaweed.endpoint}/{bucket}/{directory}"


@functools.cache
def reader(seaweed: SeaweedS3) -> Any:
    return seaweed.client()


def objects(seaweed: SeaweedS3, bucket: str, prefix: str = "") -> dict[str, bytes]:
    s3 = reader(seaweed)
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listing}


def lines_of(bodies: dict[str, bytes]) -> list[dict[str, Any]]:
    out = []
    for key, body in bodies.items():
        text = gzip.decompress(body) if key.endswith(".gz") else body
        assert text == b"" or text.endswith(b"\n"), key
        out += [json.loads(line) for line in text.splitlines()]
    return out


def seed(double: CrateDouble, name: str, tail: str = "CLUSTERED INTO 3 SHARDS") -> None:
    """Three days of hourly rows around 2024-02-10, plus rows exactly on the window's edges."""
    sql(double, SEED_DDL.format(name=name, tail=tail))
    rows = []
    for day in ("2024-02-09", "2024-02-10", "2024-02-11"):
        for hour in range(0, 24, 3):
            number = len(rows)
            host = None if number % 5 == 0 else f"h{number % 4}"
            rows.append([number, f"{day}T{hour:02d}:00:00Z", f"m{number}", {"host": host}, {"v": number / 2}])
    bulk(double, INSERT.format(name=name), rows)


def window_ids() -> set[int]:
    return set(range(8, 16))  # the 8 rows of 2024-02-10


JOBS = 'SELECT "id", "started" FROM "sys"."jobs" WHERE "stmt" LIKE ?'


JOBS_LOG = 'SELECT "id", "started", "ended", "error" FROM "sys"."jobs_log" WHERE "stmt" LIKE ?'


STATS = "SELECT \"settings\"['stats']['enabled'], \"settings\"['stats']['jobs_log_size'] FROM \"sys\".\"cluster\""


NODES = 'SELECT "name", "version"[\'number\'], "os_info"[\'arch\'] FROM "sys"."nodes"'


UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def marker() -> tuple[str, str]:
    """A comment like the exporter's, and the LIKE pattern that finds it."""
    token = uuid.uuid4().hex
    return f"/* cratedb-export copy={token} doc.metrics 2024-01-01 */", f"%copy={token}%"


class Background(threading.Thread):
    """Runs one statement through the crate client; ``outcome`` is its result or the exception."""

    def __init__(self, double: CrateDouble, stmt: str, args: list[Any] | None) -> None:
        super().__init__(daemon=True)
        self._call = (double, stmt, args)
        self.outcome: Any = None

    def run(self) -> None:
        try:
            self.outcome = sql(*self._call)
        except Exception as error:  # noqa: BLE001 - handed to the test
            self.outcome = error


def in_background(double: CrateDouble, stmt: str, args: list[Any] | None = None) -> Background:
    thread = Background(double, stmt, args)
    thread.start()
    return thread


def wait_for(condition: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


COLUMNS = (
    'SELECT "column_name", "data_type" FROM "information_schema"."columns" '
    'WHERE "table_schema" = ? AND "table_name" = ? ORDER BY "ordinal_position"'
)
