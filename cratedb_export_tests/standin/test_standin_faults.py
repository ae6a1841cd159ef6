"""The stand-in's COPY faults for "one COPY per day": slow COPYs that outlive their client, COPYs that
fail half-way with CrateDB's messages, and abandoned multipart uploads (CrateDB <= 6.2).

COPYs write to the session's real SeaweedFS server (conftest).
"""

from __future__ import annotations

import base64
import json
import socket
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from crate.client.exceptions import ConnectionError as CrateConnectionError
from crate.client.exceptions import ProgrammingError
from cratedb_export_testbed.seaweedfs import SeaweedS3
from cratedb_export_testbed.standin import CrateDouble
from cratedb_export_testbed.standin.faults import participating_node_disconnected, s3_access_denied

from cratedb_export_tests.standin.talk import (
    JOBS,
    JOBS_LOG,
    PASSWORD,
    USER,
    http,
    in_background,
    lines_of,
    marker,
    objects,
    reader,
    seed,
    sql,
    target,
    wait_for,
)

COPY = "{comment} COPY {table} TO DIRECTORY ? WITH (protocol = 'http')"


def raw_post(double: CrateDouble, body: dict[str, Any]) -> None:
    """Send one /_sql request and hang up at once, without reading the answer."""
    host, port = double.url.removeprefix("http://").split(":")
    payload = json.dumps(body).encode()
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    head = (
        f"POST /_sql HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Authorization: Basic {token}\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    with socket.create_connection((host, int(port))) as connection:
        connection.sendall(head.encode() + payload)


# -- slow COPY ---------------------------------------------------------------------------------------


def test_slow_copy_runs_on_after_the_client_timed_out(
    double: CrateDouble, seaweed: SeaweedS3, bucket: str, table: str
) -> None:
    seed(double, table)
    comment, pattern = marker()
    double.faults.slow_next_copy(1.5)
    started = time.monotonic()
    with pytest.raises(CrateConnectionError):
        sql(double, COPY.format(comment=comment, table=table), [target(seaweed, bucket, "slow")], timeout=0.3)
    assert len(sql(double, JOBS, [pattern])) == 1  # still running, nothing written yet
    assert objects(seaweed, bucket) == {} and sql(double, JOBS_LOG, [pattern]) == []
    [[_, _, ended, error]] = wait_for(lambda: sql(double, JOBS_LOG, [pattern]))
    assert error is None and time.monotonic() - started >= 1.5
    assert sql(double, JOBS, [pattern]) == []
    assert len(lines_of(objects(seaweed, bucket))) == 24  # the work was done though nobody listened


def test_slow_copy_survives_the_connection_closing(
    double: CrateDouble, seaweed: SeaweedS3, bucket: str, table: str
) -> None:
    seed(double, table)
    comment, pattern = marker()
    double.faults.slow_next_copy(0.8, count=2)
    stmt = COPY.format(comment=comment, table=table)
    raw_post(double, {"stmt": stmt, "args": [target(seaweed, bucket, "gone")]})
    wait_for(lambda: sql(double, JOBS, [pattern]))
    wait_for(lambda: sql(double, JOBS_LOG, [pattern]))
    assert len(lines_of(objects(seaweed, bucket, "gone/"))) == 24
    # count=2: the next COPY is slow too, and a third one is not.
    started = time.monotonic()
    assert sql(double, stmt, [target(seaweed, bucket, "second")]) == 24
    assert time.monotonic() - started >= 0.8
    started = time.monotonic()
    assert sql(double, stmt, [target(seaweed, bucket, "third")]) == 24
    assert time.monotonic() - started < 0.8


def test_delay_next_shows_the_statement_in_sys_jobs_while_it_waits(double: CrateDouble, table: str) -> None:
    comment, pattern = marker()
    double.faults.delay_next(0.8)
    thread = in_background(double, f"{comment} CREATE TABLE {table} (a INTEGER)")
    wait_for(lambda: double.jobs)
    assert len(sql(double, JOBS, [pattern])) == 1
    thread.join(timeout=10)
    assert sql(double, JOBS, [pattern]) == [] and len(sql(double, JOBS_LOG, [pattern])) == 1


# -- failing COPY ------------------------------------------------------------------------------------


def test_fail_next_copy_runs_writes_some_files_and_is_logged(
    double: CrateDouble, seaweed: SeaweedS3, bucket: str, table: str
) -> None:
    seed(double, table)
    comment, pattern = marker()
    double.faults.slow_next_copy(0.5)
    message = double.faults.fail_next_copy(shape="s3_access_denied", files_written=1)
    stmt = COPY.format(comment=comment, table=table)
    thread = in_background(double, stmt, [target(seaweed, bucket, "half")])
    wait_for(lambda: double.jobs)
    assert len(sql(double, JOBS, [pattern])) == 1  # it started: unlike fail_next, it runs
    thread.join(timeout=10)
    assert isinstance(thread.outcome, ProgrammingError) and thread.outcome.message == message
    assert message.startswith("NotSerializableExceptionWrapper[AmazonS3Exception: Access Denied (Service: Amazon S3;")
    assert len(objects(seaweed, bucket, "half/")) == 1  # one of the three shards' objects landed
    [[_, _, _, error]] = sql(double, JOBS_LOG, [pattern])
    assert error == message.removeprefix("NotSerializableExceptionWrapper[").removesuffix("]")
    logged = 'SELECT "classification"[\'type\'] FROM "sys"."jobs_log" WHERE "stmt" LIKE ?'
    assert sql(double, logged, [pattern]) == [["COPY"]]  # it failed while running, not before

    double.faults.fail_next_copy(shape="node_disconnected", files_written=0)
    status, _, reply = http(double, {"stmt": stmt, "args": [target(seaweed, bucket, "killed")]})
    assert (status, reply["error"]["code"]) == (500, 5005)
    assert reply["error"]["message"] == participating_node_disconnected(double.faults.other_node_id)
    assert reply["error"]["message"].endswith(
        f"[Job killed. Participating node {double.faults.other_node_id} disconnected]"
    )
    assert objects(seaweed, bucket, "killed/") == {}
    double.faults.fail_next_copy("SQLParseException[custom]", 4000, files_written=99)
    status, _, reply = http(double, {"stmt": stmt, "args": [target(seaweed, bucket, "all")]})
    assert (status, reply["error"]) == (400, {"message": "SQLParseException[custom]", "code": 4000})
    assert len(objects(seaweed, bucket, "all/")) == 3
    assert sql(double, stmt, [target(seaweed, bucket, "fine")]) == 24  # each armed failure is used once


def test_s3_access_denied_reads_as_each_version_says_it() -> None:
    old = s3_access_denied("5.9.2")
    assert old.startswith("NotSerializableExceptionWrapper[amazon_s3_exception: Access Denied (Service: Amazon S3;")
    for version in ("5.10.4", "6.2.4"):
        message = s3_access_denied(version)
        assert message.startswith(
            "NotSerializableExceptionWrapper[AmazonS3Exception: Access Denied (Service: Amazon S3;"
        )
        assert "Status Code: 403; Error Code: AccessDenied; Request ID: " in message and message.endswith(
            "Proxy: null)]"
        )
    for version in ("6.3.0", "6.4.3"):
        assert s3_access_denied(version).startswith(
            "NotSerializableExceptionWrapper[OpenDALException: PermissionDenied (permanent) at "
        )
    assert s3_access_denied("6.4.3", wrapped=False).startswith("OpenDALException[PermissionDenied (permanent) at ")
    with CrateDouble(version="6.4.3") as newer:
        assert newer.faults.fail_next_copy(shape="s3_access_denied").startswith(
            "NotSerializableExceptionWrapper[OpenDALException: "
        )


def test_fail_next_copy_refuses_malformed_arming(double: CrateDouble) -> None:
    for bad in ({"message": "no brackets"}, {}, {"message": "X[y]", "shape": "node_disconnected"}, {"shape": "nope"}):
        with pytest.raises(ValueError):
            double.faults.fail_next_copy(**bad)


# -- abandoned multipart upload ----------------------------------------------------------------------


def test_abandoned_upload_leaves_an_unfinished_multipart_upload_and_reports_success(
    double: CrateDouble, seaweed: SeaweedS3, bucket: str, table: str
) -> None:
    seed(double, table)
    double.faults.abandon_next_copy_upload()
    assert sql(double, COPY.format(comment="", table=table), [target(seaweed, bucket, "lost")]) == 24
    landed = objects(seaweed, bucket, "lost/")
    assert len(landed) == 2 and len(lines_of(landed)) < 24  # one shard's object is missing, not truncated
    s3 = reader(seaweed)
    uploads = s3.list_multipart_uploads(Bucket=bucket, Prefix="lost/").get("Uploads", [])
    assert len(uploads) == 1
    [upload] = uploads
    missing = {f"lost/{table}_{shard}_.json" for shard in range(3)} - set(landed)
    assert {upload["Key"]} == missing
    parts = s3.list_parts(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]).get("Parts", [])
    assert len(parts) == 1 and parts[0]["Size"] > 0
    # Only the next COPY is affected.
    assert sql(double, COPY.format(comment="", table=table), [target(seaweed, bucket, "whole")]) == 24
    assert len(objects(seaweed, bucket, "whole/")) == 3


# -- the admin endpoint ------------------------------------------------------------------------------


def test_copy_faults_can_be_armed_over_http(double: CrateDouble) -> None:
    def arm(spec: dict[str, Any]) -> tuple[int, Any]:
        request = urllib.request.Request(double.url + "/_double/faults", data=json.dumps(spec).encode())
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    status, state = arm({"fault": "slow_next_copy", "seconds": 2, "count": 2})
    assert status == 200 and state["slow_copies"] == [2.0, 2.0]
    status, state = arm({"fault": "fail_next_copy", "shape": "node_disconnected", "files_written": 0})
    assert status == 200 and state["copy_failures"][0]["code"] == 5005
    status, state = arm({"fault": "abandon_next_copy_upload"})
    assert status == 200 and state["abandoned_uploads"] == 1
    assert arm({"fault": "fail_next_copy", "shape": "nope"})[0] == 400
    assert arm({"fault": "reset"})[1]["slow_copies"] == []


@pytest.fixture
def seaweed(s3: SeaweedS3) -> SeaweedS3:
    return s3
