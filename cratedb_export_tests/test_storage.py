"""The S3 side against a real S3 server (SeaweedFS): one listing for many day directories."""

from __future__ import annotations

from cratedb_export.core.storage import ObjectStore, RunListing
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
    # What the run's days share lists once, when first asked; a lone day is listed when it is cleared.
    listing = RunListing(_store(s3), [directories[:2], directories[2:]])
    assert [o.key for o in listing.below(directories[3]) or []] == ["t-2024-05-13/t_3_.json"]
    assert RunListing(_store(s3), [directories[:1]]).below(directories[0]) is None


def test_clearing_trusts_a_listing_taken_under_the_lease_and_never_a_run_wide_one(s3, bucket):
    """A current listing of an empty directory costs no delete; a run-wide one (taken before the lease) always
    removes the marker and manifest, which another run may have written since."""
    store = _store(s3)
    sent: list[str] = []
    store._client.meta.events.register("before-call.s3", lambda model, **_: sent.append(model.name))
    directory = DayDirectory(bucket, "clear-2024-05-10/")

    assert store.clear_directory(directory, [], current=True) == 0
    assert sent == []
    s3.client().put_object(Bucket=bucket, Key=directory.key("_SUCCESS"), Body=b"")
    assert store.clear_directory(directory, []) == 0  # stale: shows nothing, yet the marker goes
    assert sent == ["DeleteObjects"]
    assert "Contents" not in s3.client().list_objects_v2(Bucket=bucket, Prefix=directory.prefix)
