"""One exporter per day across runs: the day's lease in S3 (SeaweedFS), and a clean-up that is complete."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
import time
from datetime import date

import pytest
from cratedb_export_testbed.support import create_metrics_table, failure_message, list_keys, run_export, spec_for

from cratedb_export.core.errors import PermanentError
from cratedb_export.core.lease import DayLeases, Holder
from cratedb_export.core.process import process_gone
from cratedb_export.core.storage import LEASE, ObjectStore
from cratedb_export.core.target import DayDirectory, S3Access

DAY = date(2024, 5, 10)


def _store(s3) -> ObjectStore:
    return ObjectStore(S3Access(s3.access_key, s3.secret_key, endpoint=s3.endpoint, protocol="http"))


def _leases(s3, run_id: str, alive: set[str], running: list[bool] | None = None, **kw) -> DayLeases:
    running = running if running is not None else [False]
    return DayLeases(
        _store(s3), Holder(run_id, lambda other: other in alive), lambda table, day: running[0], poll=0.05, **kw
    )


def test_a_second_run_waits_for_the_first_to_finish_the_day(s3, bucket):
    directory = DayDirectory(bucket, "t-2024-05-10/")
    alive = {"run-a", "run-b"}
    events: list[str] = []
    first_holds, second_waits = threading.Event(), threading.Event()

    def waiting(line: str) -> None:
        events.append(line)
        second_waits.set()

    def first() -> None:
        with _leases(s3, "run-a", alive).hold("doc.t", DAY, directory, events.append):
            first_holds.set()
            events.append("a exporting")
            second_waits.wait(30)  # hold the day until the second run has found it held
            time.sleep(0.2)
            events.append("a done")

    thread = threading.Thread(target=first)
    thread.start()
    first_holds.wait(10)
    with _leases(s3, "run-b", alive).hold("doc.t", DAY, directory, waiting) as lease:
        events.append("b exporting")
        assert lease.waited
    thread.join()
    assert events.index("a done") < events.index("b exporting")
    assert any("run run-a is exporting this day" in e for e in events)
    assert list_keys(s3.client(), bucket, directory.prefix) == []  # released


def test_a_lease_left_by_an_ended_run_is_taken_over_once_no_copy_of_the_day_runs(s3, bucket):
    directory = DayDirectory(bucket, "t-2024-05-10/")
    crashed = _leases(s3, "run-crashed", {"run-crashed"})
    with crashed.hold("doc.t", DAY, directory, print) as lease:
        lease.keep = True  # as after a COPY whose outcome stayed unknown
    assert list_keys(s3.client(), bucket, directory.prefix) == [directory.key(LEASE)]

    running = [True]
    log: list[str] = []
    waiter = _leases(s3, "run-new", {"run-new"}, running, max_wait=0.5)
    held = waiter.hold("doc.t", DAY, directory, log.append)
    with pytest.raises(PermanentError, match="being exported by run run-crashed"), held:
        pytest.fail("got the lease while CrateDB still runs a COPY of the day")

    running[0] = False
    with waiter.hold("doc.t", DAY, directory, log.append) as lease:
        assert lease.waited
    assert any("took over the lease left by run run-crashed" in line for line in log)


def test_a_copy_that_shows_in_sys_jobs_just_after_its_holder_died_is_waited_for(s3, bucket):
    """The holder died right after sending a COPY that CrateDB lists a moment later: the day is looked up
    twice before its lease is taken over, so that COPY is seen, and waited for instead of joined."""
    directory = DayDirectory(bucket, "t-2024-05-11/")
    with _leases(s3, "run-died", {"run-died"}).hold("doc.t", DAY, directory, print) as lease:
        lease.keep = True
    listed = itertools.chain([False], itertools.repeat(True))  # not in sys.jobs yet, then there
    alive = Holder("run-new", lambda other: other == "run-new")
    waiter = DayLeases(_store(s3), alive, lambda table, day: next(listed), poll=0.05, max_wait=0.3)
    held = waiter.hold("doc.t", DAY, directory, print)
    with pytest.raises(PermanentError, match="being exported by run run-died"), held:
        pytest.fail("took the day over while CrateDB had just started a COPY of it")


def test_clearing_a_day_aborts_unfinished_uploads_and_keeps_the_lease(s3, bucket):
    client = s3.client()
    directory = DayDirectory(bucket, "t-2024-05-10/")
    neighbour = DayDirectory(bucket, "t-2024-05-100/")
    store = _store(s3)
    with _leases(s3, "run-a", {"run-a"}).hold("doc.t", DAY, directory, print):
        for d in (directory, neighbour):
            client.put_object(Bucket=bucket, Key=d.key("t_0_.json"), Body=b"{}\n")
            client.put_object(Bucket=bucket, Key=d.key("_SUCCESS"), Body=b"")
            upload = client.create_multipart_upload(Bucket=bucket, Key=d.key("t_1_.json"))
            client.upload_part(
                Bucket=bucket, Key=d.key("t_1_.json"), UploadId=upload["UploadId"], PartNumber=1, Body=b"x"
            )
        assert store.clear_directory(directory) == 3
        assert list_keys(client, bucket, directory.prefix) == [directory.key(LEASE)]
        uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        assert [u["Key"] for u in uploads] == [neighbour.key("t_1_.json")]
    assert list_keys(client, bucket, neighbour.prefix) == [neighbour.key("_SUCCESS"), neighbour.key("t_0_.json")]


def _identity_of_a_child(*, keep_running: bool) -> tuple[dict, subprocess.Popen]:
    """this_process() as recorded by another process, which then exits or keeps running."""
    code = (
        "import json, sys, time; from cratedb_export.core.process import this_process; "
        f"print(json.dumps(this_process()), flush=True); time.sleep({60 if keep_running else 0})"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    return json.loads(child.stdout.readline()), child


def test_a_lease_whose_process_is_gone_from_this_machine_is_seen_ended():
    recorded, child = _identity_of_a_child(keep_running=True)
    try:
        assert not process_gone(recorded)  # alive: its run's status decides
        assert not process_gone({**recorded, "host": "another-host"})  # elsewhere: nothing is concluded
        assert not process_gone({**recorded, "pid_ns": "pid:[1]"})  # another container's PIDs
        assert not process_gone({"host": recorded["host"], "pid": recorded["pid"]})  # an older lease
        assert process_gone({**recorded, "pid_started": "1"})  # the PID now belongs to a newer process
        child.kill()
        deadline = time.monotonic() + 10
        while not process_gone(recorded) and time.monotonic() < deadline:
            time.sleep(0.05)  # killed, not yet reaped: a zombie has ended too
        assert process_gone(recorded)
        child.wait(timeout=10)
        assert process_gone(recorded)
    finally:
        child.kill()
    ended, finished = _identity_of_a_child(keep_running=False)
    finished.wait(timeout=30)
    assert process_gone(ended)


def test_a_lease_of_a_run_this_instance_does_not_know_is_waited_for_never_taken_over(
    export_env, monkeypatch, crate, s3, bucket, instance
):
    """Another deployment (or a command-line run on a throwaway instance) holds the day: Dagster cannot say
    whether that run still goes, and between its COPYs no COPY shows in sys.jobs. The day is waited for, then
    fails naming the holder and how to release it; it is never exported twice at once."""
    table = create_metrics_table(crate, [DAY], per_day=3)
    directory = DayDirectory(bucket, f"{table.name}-{DAY.isoformat()}/")
    theirs = {"run_id": "run-of-another-instance", "since": "2024-05-11T00:00:05+00:00", "host": "elsewhere", "pid": 7}
    s3.client().put_object(Bucket=bucket, Key=directory.key(LEASE), Body=json.dumps(theirs).encode())
    monkeypatch.setenv("CRATEDB_EXPORT_COPY_WAIT", "2")
    copies = 'SELECT count(*) FROM "sys"."jobs_log" WHERE "stmt" LIKE ?', [f'%COPY "doc"."{table.name}"%']

    result = run_export([spec_for(table, bucket)], instance, partition=DAY.isoformat())

    message = failure_message(result)
    assert not result.success and "is being exported by run run-of-another-instance" in message
    assert f"delete {directory.display_uri()}{LEASE} to release the day" in message
    assert list_keys(s3.client(), bucket, directory.prefix) == [directory.key(LEASE)]  # theirs, untouched
    assert crate.sql(*copies) == [[0]]  # no COPY of the day was sent
