"""The S3 side against a real S3 server (SeaweedFS): one listing for many day directories."""

from __future__ import annotations

import gzip
import re

import pytest
from cratedb_export_testbed.support import list_keys

from cratedb_export.core.errors import VerificationError
from cratedb_export.core.storage import ObjectStore, RunUploads
from cratedb_export.core.target import DayDirectory, S3Access


def _store(s3) -> ObjectStore:
    return ObjectStore(S3Access(s3.access_key, s3.secret_key, endpoint=s3.endpoint, protocol="http"))


def test_one_listing_finds_exactly_each_directorys_objects(s3, bucket):
    client = s3.client()
    days = ["2024-05-09", "2024-05-10", "2024-05-11", "2024-05-13"]  # 05-12 is not part of the run
    directories = [DayDirectory(bucket, f"t-{day}/") for day in days]
    inside = {
        "t-2024-05-09/t_0_.json",
        "t-2024-05-09/_SUCCESS",
        "t-2024-05-11/t_1_.json",
        "t-2024-05-11/deeper/x.json",
        "t-2024-05-13/t_3_.json",
    }
    outside = {
        "t-2024-05-0/x.json",  # sorts before the first directory
        "t-2024-05-090/x.json",  # starts like a directory of the run
        "t-2024-05-10.bak/x.json",
        "t-2024-05-12/x.json",  # a day between two of the run's days
        "t-2024-05-14/x.json",  # after the last
        "u-2024-05-10/x.json",
        "t/x.json",
    }
    for key in inside | outside:
        client.put_object(Bucket=bucket, Key=key, Body=b"{}\n")

    found = _store(s3).list_directories(directories)
    assert {d.prefix: sorted(o.key for o in objects) for d, objects in found.items()} == {
        "t-2024-05-09/": ["t-2024-05-09/_SUCCESS", "t-2024-05-09/t_0_.json"],
        "t-2024-05-10/": [],
        "t-2024-05-11/": ["t-2024-05-11/deeper/x.json", "t-2024-05-11/t_1_.json"],
        "t-2024-05-13/": ["t-2024-05-13/t_3_.json"],
    }
    # A run lists the unfinished uploads of its days once, when first asked (their objects are listed under
    # each day's lease); a lone day is listed when it is cleared.
    store = _store(s3)
    begun = client.create_multipart_upload(Bucket=bucket, Key="t-2024-05-13/t_4_.json")["UploadId"]
    uploads = RunUploads(store, [directories[:2], directories[2:]])
    assert [(o.key, o.upload_id) for o in uploads.below(directories[3]) or []] == [("t-2024-05-13/t_4_.json", begun)]
    assert uploads.below(directories[1]) == []
    assert RunUploads(store, [directories[:1]]).below(directories[0]) is None
    # Aborted since by the run that held the day then: clearing with that listing still succeeds.
    client.abort_multipart_upload(Bucket=bucket, Key="t-2024-05-13/t_4_.json", UploadId=begun)
    listed = [*store.list_directory(directories[3]), *(uploads.below(directories[3]) or [])]
    assert store.clear_directory(directories[3], listed) == 2
    assert list_keys(client, bucket, "t-2024-05-13/") == []


def test_clearing_removes_the_marker_and_manifest_first_and_an_empty_directory_costs_nothing(s3, bucket):
    """The listing a clear-up is given is taken under the day's lease: an empty one sends no request; else the
    marker and manifest go in a request of their own before anything else, so no reader trusts half a day."""
    store = _store(s3)
    sent: list[tuple[str, list[str]]] = []
    store._client.meta.events.register(
        "before-parameter-build.s3",
        lambda model, params, **_: (
            sent.append((model.name, sorted(o["Key"] for o in params["Delete"]["Objects"])))
            if model.name == "DeleteObjects"
            else sent.append((model.name, []))
        ),
    )
    directory = DayDirectory(bucket, "clear-2024-05-10/")

    assert store.clear_directory(directory, []) == 0
    assert sent == []
    names = ("_SUCCESS", "_manifest.json", "t_0_.json", "t_1_.json")
    for name in names:
        s3.client().put_object(Bucket=bucket, Key=directory.key(name), Body=b"{}")
    assert store.clear_directory(directory) == len(names)  # no listing given: the directory is listed first
    assert sent == [
        ("ListObjectsV2", []),
        ("ListMultipartUploads", []),
        ("DeleteObjects", [directory.key("_SUCCESS"), directory.key("_manifest.json")]),
        ("DeleteObjects", [directory.key("t_0_.json"), directory.key("t_1_.json")]),
    ]
    assert "Contents" not in s3.client().list_objects_v2(Bucket=bucket, Prefix=directory.prefix)


def test_gzip_objects_are_read_back_whole_and_a_broken_one_is_named(s3, bucket):
    """Read-back verification inflates every gzip object CrateDB wrote (ISA-L, zlib's format): a multi-member
    stream counts whole, and a corrupt or cut-off object fails naming it, never as a count that is off."""
    store = _store(s3)
    directory = DayDirectory(bucket, "gz-2024-05-10/")
    lines = b"".join(b'{"id":%d,"s":"%s"}\n' % (n, b"x" * (n % 97)) for n in range(60_000))
    whole = gzip.compress(lines[:1_000_000]) + gzip.compress(lines[1_000_000:])  # two members
    broken = bytearray(whole)
    broken[len(broken) // 3 : len(broken) // 3 + 64] = b"\xff" * 64
    objects = {"t_0_.json.gz": whole, "t_1_.json.gz": bytes(broken), "t_2_.json.gz": whole[:-30]}
    for name, body in objects.items():
        s3.client().put_object(Bucket=bucket, Key=directory.key(name), Body=body)
    stored = {o.name: o for o in store.list_directory(directory)}

    assert store.count_rows(directory, stored["t_0_.json.gz"]) == 60_000
    assert b"".join(store.stream(directory, stored["t_0_.json.gz"])) == lines
    where = f"s3://{bucket}/{directory.key('t_1_.json.gz')}"
    with pytest.raises(VerificationError, match=re.escape(where) + " is not a valid gzip stream"):
        store.count_rows(directory, stored["t_1_.json.gz"])
    where = f"s3://{bucket}/{directory.key('t_2_.json.gz')}"
    with pytest.raises(VerificationError, match=re.escape(where) + " is a truncated gzip stream"):
        store.count_rows(directory, stored["t_2_.json.gz"])
