"""The misbehaving proxy in front of the CrateDB stand-in, as a load balancer would sit in front of CrateDB.

Each misbehaviour leaves the statement running upstream; the tests show what the plain `crate` client
(2.3.0) makes of it: a 504 or a closed connection fails the call once, while a reset makes the client
post the same statement again, without limit (bounded here by the proxy's ``count``).
"""

from __future__ import annotations

import base64
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from crate import client as crate_client
from crate.client.exceptions import ConnectionError as CrateConnectionError
from crate.client.exceptions import ProgrammingError
from cratedb_export_testbed.proxy import MisbehavingProxy, error_page
from cratedb_export_testbed.seaweedfs import SeaweedS3
from cratedb_export_testbed.standin import CrateDouble

from cratedb_export_tests.standin.talk import (
    JOBS,
    JOBS_LOG,
    PASSWORD,
    USER,
    lines_of,
    marker,
    objects,
    seed,
    target,
    wait_for,
)

PATIENCE = 1.0
SLOW = 3.0
COPY = "{comment} COPY {table} TO DIRECTORY ? WITH (protocol = 'http')"


@pytest.fixture
def proxy(stand_in: CrateDouble) -> Iterator[MisbehavingProxy]:
    with MisbehavingProxy(stand_in.url) as running:
        yield running


@pytest.fixture
def table(double: CrateDouble) -> str:
    name = f"t_{uuid.uuid4().hex[:8]}"
    seed(double, name)  # 24 rows on 3 shards
    return name


def cursor(url: str, **options: Any) -> Any:
    return crate_client.connect(url, username=USER, password=PASSWORD, **options).cursor()


def direct(double: CrateDouble, stmt: str, args: list[object]) -> list[list[object]]:
    """Ask the stand-in itself, not through the proxy."""
    found = cursor(double.url)
    found.execute(stmt, args)
    return found.fetchall()


def test_passes_everything_through_by_default(
    double: CrateDouble, proxy: MisbehavingProxy, s3: SeaweedS3, bucket: str, table: str
) -> None:
    through = cursor(proxy.url)
    through.execute(f"SELECT count(*) FROM {table}")
    assert through.fetchall() == [[24]]
    comment, _ = marker()
    through.execute(COPY.format(comment=comment, table=table), [target(s3, bucket, "plain")])
    assert through.rowcount == 24
    assert proxy.forwarded("COPY ") == 1 and proxy.forwarded(comment) == 1 and proxy.forwarded("SELECT count") == 1
    assert [r.outcome for r in proxy.requests if r.method == "POST"] == ["answered 200", "answered 200"]
    with pytest.raises(urllib.error.HTTPError) as caught:  # GET / too, status and headers intact
        urllib.request.urlopen(proxy.url + "/", timeout=5)
    assert caught.value.code == 401 and "WWW-Authenticate" in caught.value.headers


def test_gateway_timeout_while_the_copy_runs_on(
    double: CrateDouble, proxy: MisbehavingProxy, s3: SeaweedS3, bucket: str, table: str
) -> None:
    comment, pattern = marker()
    double.faults.slow_next_copy(SLOW)
    proxy.answer_status("COPY ", 504, patience=PATIENCE)
    started = time.monotonic()
    with pytest.raises(
        ProgrammingError, match="No more Servers available, exception from last server: Gateway Time-out"
    ):
        cursor(proxy.url).execute(COPY.format(comment=comment, table=table), [target(s3, bucket, "gw")])
    assert PATIENCE <= time.monotonic() - started < SLOW
    assert len(direct(double, JOBS, [pattern])) == 1  # CrateDB still runs it
    [[_, _, _, error]] = wait_for(lambda: direct(double, JOBS_LOG, [pattern]))
    assert error is None and len(lines_of(objects(s3, bucket, "gw/"))) == 24
    assert proxy.forwarded("COPY ") == 1  # the client sent it once
    [record] = [r for r in proxy.requests if r.contains("COPY ")]
    assert record.outcome == "status 504"
    wait_for(lambda: record.upstream_status == 200)  # the upstream's late answer was read and dropped


@pytest.mark.parametrize(("status", "style"), [(502, "nginx"), (503, "haproxy"), (509, "nginx")])
def test_error_pages_look_like_a_load_balancers(
    double: CrateDouble, proxy: MisbehavingProxy, status: int, style: str
) -> None:
    double.faults.delay_next(0.6)
    proxy.answer_status("SELECT 42", status, patience=0.2, style=style)
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    request = urllib.request.Request(
        proxy.url + "/_sql", data=b'{"stmt": "SELECT 42"}', headers={"Authorization": f"Basic {token}"}
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    reason, body = error_page(status, style)
    assert (caught.value.code, caught.value.reason) == (status, reason)
    assert caught.value.headers["Content-Type"] == "text/html" and caught.value.read() == body
    assert f"<h1>{status} {reason}</h1>".encode() in body
    # The next request on a fresh connection passes (the rule was for one request).
    with pytest.raises(urllib.error.HTTPError) as unauthorized:
        urllib.request.urlopen(urllib.request.Request(proxy.url + "/_sql", data=b'{"stmt": "SELECT 42"}'), timeout=5)
    assert unauthorized.value.code == 401


def test_a_reset_makes_the_crate_client_post_the_copy_again(
    double: CrateDouble, proxy: MisbehavingProxy, s3: SeaweedS3, bucket: str, table: str
) -> None:
    # crate 2.3.0 keeps a server "active" after ConnectionResetError and posts the statement again, in an
    # endless loop; the proxy resets only the first 2 posts, so the third one is answered.
    comment, pattern = marker()
    double.faults.slow_next_copy(SLOW, count=2)
    proxy.reset("COPY ", count=2, patience=PATIENCE)
    through = cursor(proxy.url)
    through.execute(COPY.format(comment=comment, table=table), [target(s3, bucket, "again")])
    assert through.rowcount == 24
    assert proxy.forwarded("COPY ") == 3  # the client sent the same COPY three times
    assert [r.outcome for r in proxy.requests if r.contains("COPY ")] == ["reset", "reset", "answered 200"]
    # ... and CrateDB ran it three times: two of them still running when the third answered.
    assert len(direct(double, JOBS, [pattern])) == 2
    wait_for(lambda: len(direct(double, JOBS_LOG, [pattern])) == 3)
    assert all(error is None for *_, error in direct(double, JOBS_LOG, [pattern]))


def test_a_closed_connection_fails_once(
    double: CrateDouble, proxy: MisbehavingProxy, s3: SeaweedS3, bucket: str, table: str
) -> None:
    comment, pattern = marker()
    double.faults.slow_next_copy(SLOW)
    proxy.close_without_answer("COPY ", patience=PATIENCE)
    with pytest.raises(CrateConnectionError, match="RemoteDisconnected"):
        cursor(proxy.url).execute(COPY.format(comment=comment, table=table), [target(s3, bucket, "closed")])
    assert proxy.forwarded("COPY ") == 1  # RemoteDisconnected is not re-posted by crate 2.3.0
    assert len(direct(double, JOBS, [pattern])) == 1
    wait_for(lambda: direct(double, JOBS_LOG, [pattern]))
    assert len(lines_of(objects(s3, bucket, "closed/"))) == 24


def test_only_matching_requests_are_afflicted(double: CrateDouble, proxy: MisbehavingProxy, table: str) -> None:
    proxy.answer_status("COPY ", 504, count=5, patience=PATIENCE)
    through = cursor(proxy.url)
    through.execute(f"SELECT count(*) FROM {table}")
    assert through.fetchall() == [[24]]
    # A matching request the upstream answers within the patience is passed through, error and all.
    with pytest.raises(ProgrammingError) as caught:
        through.execute(f"COPY {table} TO DIRECTORY 's3://k:s@127.0.0.1:1/b/x' WITH (compression = 'GZIP')")
    assert caught.value.message == "SQLParseException[Unsupported setting value: GZIP. Supported values are: gzip]"
    assert proxy.forwarded("COPY ") == 1 and proxy.forwarded("SELECT") == 1
    assert [r.outcome for r in proxy.requests if r.method == "POST"] == ["answered 200", "answered 400"]


def test_answers_within_the_patience_pass_through(double: CrateDouble, proxy: MisbehavingProxy, table: str) -> None:
    proxy.answer_status("SELECT", 504, count=1, patience=PATIENCE)
    through = cursor(proxy.url)
    through.execute(f"SELECT count(*) FROM {table}")
    assert through.fetchall() == [[24]]
    double.faults.delay_next(PATIENCE + 0.5)
    through.execute(f"SELECT count(*) FROM {table}")  # the rule was used up by the first SELECT
    assert through.fetchall() == [[24]]
    assert [r.outcome for r in proxy.requests if r.contains("SELECT count")] == ["answered 200", "answered 200"]


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def test_bounded_and_stops_on_close(double: CrateDouble) -> None:
    before = {t.ident for t in threading.enumerate()}
    proxy = MisbehavingProxy(double.url, max_connections=2).start()
    held = [socket.create_connection(address(proxy.url)) for _ in range(2)]
    wait_for(lambda: len([t for t in threading.enumerate() if t.name == "proxy-client"]) == 2)
    extra = socket.create_connection(address(proxy.url))
    extra.settimeout(5)
    assert extra.recv(1) == b""  # over the limit: closed at once
    assert proxy.refused_connections == 1
    double.faults.delay_next(SLOW)  # a request in flight when the proxy closes
    body = b'{"stmt": "SELECT 7"}'
    held[0].sendall(b"POST /_sql HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    wait_for(lambda: proxy.forwarded("SELECT 7") == 1)
    started = time.monotonic()
    proxy.close()
    assert time.monotonic() - started < 2
    assert not [t for t in threading.enumerate() if t.ident not in before and t.name.startswith("proxy-")]
    for sock in [*held, extra]:
        sock.close()
