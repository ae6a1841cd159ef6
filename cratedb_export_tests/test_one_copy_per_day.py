"""One COPY per day, always: behind a proxy that loses answers, and between runs that reach the same day.

The COPYs here outlast the proxy's patience: against the stand-in they are made slow; against a real
CrateDB (CRATEDB_TEST_URL) the day holds enough rows that its COPY takes longer than the patience.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest
import trustme
from cratedb_export_testbed.proxy import MisbehavingProxy
from cratedb_export_testbed.standin import CrateDouble
from cratedb_export_testbed.support import (
    CrateUnderTest,
    create_metrics_table,
    failure_message,
    instance_text,
    list_keys,
    materialize_command,
    run_export,
    spec_for,
)
from dagster import DagsterInstance

DAY = date(2024, 2, 20)
REAL_ROWS = 1_000_000  # a COPY of 100,000 took 0.27 s on a warm 6.4.3 node, under the proxy's patience: seconds now


@dataclass
class SlowDay:
    """A table whose COPY of DAY takes longer than the proxy's `patience`."""

    name: str
    rows: int
    patience: float
    crate: CrateUnderTest

    @property
    def table(self) -> str:
        return f"doc.{self.name}"

    def make_copies_slow(self, count: int = 1) -> None:
        if self.crate.double is not None:
            self.crate.double.faults.slow_next_copy(seconds=3, count=count)

    def copies(self) -> list[tuple[str, int, int, str | None]]:
        """(statement, started, ended, error) of this table's COPYs in sys.jobs_log, oldest first."""
        rows = self.crate.sql(
            'SELECT "stmt", "started", "ended", "error" FROM "sys"."jobs_log" WHERE "stmt" LIKE ?',
            [f'%COPY "doc"."{self.name}"%'],
        )
        return sorted(((r[0], r[1], r[2], r[3]) for r in rows), key=lambda r: r[1])


@pytest.fixture(scope="module")
def slow_day(crate: CrateUnderTest) -> SlowDay:
    name = f"slow_{uuid.uuid4().hex[:10]}"
    crate.sql(
        f'CREATE TABLE "doc"."{name}" ("id" BIGINT, "timestamp" TIMESTAMP WITH TIME ZONE, "name" TEXT) '
        "CLUSTERED INTO 4 SHARDS"
    )
    start = int(datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC).timestamp() * 1000)
    if crate.double is None:
        rows, patience = REAL_ROWS, 0.3
        step = 86_400_000 // rows
        crate.sql(
            f'INSERT INTO "doc"."{name}" ("id", "timestamp", "name") '
            f"(SELECT x, {start} + x * {step}, 'row ' || x FROM generate_series(0, {rows - 1}) AS g(x))"
        )
    else:
        rows, patience = 30, 1.0
        crate.sql(
            f'INSERT INTO "doc"."{name}" ("id", "timestamp", "name") VALUES (?, ?, ?)',
            bulk_args=[[i, start + i * 60_000, f"row {i}"] for i in range(rows)],
        )
    crate.sql(f'REFRESH TABLE "doc"."{name}"')
    return SlowDay(name, rows, patience, crate)


@pytest.fixture
def proxy(crate: CrateUnderTest, monkeypatch: pytest.MonkeyPatch, export_env) -> MisbehavingProxy:
    with MisbehavingProxy(crate.url) as misbehaving:
        monkeypatch.setenv("CRATEDB_URL", misbehaving.url)
        yield misbehaving


def _spec(slow_day: SlowDay, bucket: str) -> dict:
    return {"table": slow_day.table, "timestamp_column": "timestamp", "target": f"{bucket}/{slow_day.name}"}


MISBEHAVIOURS = {
    "504 gateway time-out": lambda p, patience: p.answer_status("COPY ", 504, patience=patience),
    "502 bad gateway": lambda p, patience: p.answer_status("COPY ", 502, patience=patience, style="haproxy"),
    "503 unavailable": lambda p, patience: p.answer_status("COPY ", 503, patience=patience),
    "509 bandwidth": lambda p, patience: p.answer_status("COPY ", 509, patience=patience),
    # Any other page of a proxy's own, not CrateDB's JSON: the COPY may have reached CrateDB all the same.
    "500 proxy error": lambda p, patience: p.answer_status("COPY ", 500, patience=patience),
    "524 origin timeout": lambda p, patience: p.answer_status("COPY ", 524, patience=patience, style="haproxy"),
    "408 request timeout": lambda p, patience: p.answer_status("COPY ", 408, patience=patience),
    "connection reset": lambda p, patience: p.reset("COPY ", patience=patience),
    "closed without answer": lambda p, patience: p.close_without_answer("COPY ", patience=patience),
}


@pytest.mark.parametrize("misbehaviour", list(MISBEHAVIOURS))
def test_a_lost_answer_never_starts_a_second_copy(
    misbehaviour, proxy, slow_day, s3, bucket, instance, dagster_home, secrets
):
    before = len(slow_day.copies())
    MISBEHAVIOURS[misbehaviour](proxy, slow_day.patience)
    slow_day.make_copies_slow()
    started = time.monotonic()
    result = run_export([_spec(slow_day, bucket)], instance, partition=DAY.isoformat())
    took = time.monotonic() - started
    assert result.success, failure_message(result)
    assert took < 120  # no hang

    # The client sent the COPY once, CrateDB ran it once, and it was waited for, not repeated.
    assert proxy.forwarded(f'COPY "doc"."{slow_day.name}"') == 1
    copies = slow_day.copies()[before:]
    assert len(copies) == 1 and copies[0][3] is None
    assert next(r for r in proxy.requests if "COPY " in r.body).outcome != f"answered {200}"

    prefix = f"{slow_day.name}-{DAY.isoformat()}/"
    keys = list_keys(s3.client(), bucket, prefix)
    assert f"{prefix}_SUCCESS" in keys and f"{prefix}_EXPORTING" not in keys
    manifest = json.loads(s3.client().get_object(Bucket=bucket, Key=f"{prefix}_manifest.json")["Body"].read())
    assert manifest["copy_answer"].startswith("answer lost; sys.jobs_log shows job")
    assert manifest["totals"]["source_rows"] == manifest["totals"]["exported_rows"] == slow_day.rows
    stored = instance_text(dagster_home)
    assert "asking CrateDB what became of it" in stored
    assert not secrets.leaks_in(stored)  # (the wire to CrateDB carries the URI as a parameter, by design)


def test_an_answer_broken_under_tls_never_starts_a_second_copy(
    slow_day, crate, s3, bucket, instance, dagster_home, export_env, monkeypatch, tmp_path
):
    """Over https (CrateDB Cloud's endpoint is), a middlebox that breaks the answer at the TLS layer gives the
    client an SSL error, which urllib3 on its own re-sends up to ten times, each time a new COPY. The
    exporter's client sends it once; the answer counts as lost and CrateDB's jobs tables decide."""
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    trusted = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(trusted))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(trusted))  # the crate client verifies the proxy's certificate
    before = len(slow_day.copies())
    with MisbehavingProxy(crate.url, tls=context) as proxy:
        assert proxy.url.startswith("https://")
        monkeypatch.setenv("CRATEDB_URL", proxy.url)
        proxy.break_tls("COPY ", patience=slow_day.patience)
        slow_day.make_copies_slow()
        result = run_export([_spec(slow_day, bucket)], instance, partition=DAY.isoformat())

    assert result.success, failure_message(result)
    assert proxy.forwarded(f'COPY "doc"."{slow_day.name}"') == 1
    copies = slow_day.copies()[before:]
    assert len(copies) == 1 and copies[0][3] is None
    assert next(r for r in proxy.requests if "COPY " in r.body).outcome == "garbled under TLS"
    prefix = f"{slow_day.name}-{DAY.isoformat()}/"
    manifest = json.loads(s3.client().get_object(Bucket=bucket, Key=f"{prefix}_manifest.json")["Body"].read())
    assert manifest["copy_answer"].startswith("answer lost; sys.jobs_log shows job")
    assert "SSL" in instance_text(dagster_home)  # the lost answer was the TLS layer's


def test_without_jobs_tables_a_lost_answer_fails_the_day_unmarked_and_still_leased(
    export_env, s3, bucket, instance, monkeypatch, secrets
):
    """A CrateDB that keeps no jobs tables (`stats.enabled = false`) cannot tell what became of a COPY whose
    answer was lost: the day fails saying so, is not marked, keeps its lease (no other run starts a COPY of
    it) and the COPY is not sent again. Always against a stand-in of its own, started with stats off: on a
    real CrateDB the setting is cluster-wide."""
    with CrateDouble(users={"exporter": secrets.password}, stats_enabled=False) as statless:
        crate = CrateUnderTest(url=statless.url, username="exporter", password=secrets.password, double=statless)
        table = create_metrics_table(crate, [DAY], per_day=3)
        with MisbehavingProxy(statless.url) as proxy:
            monkeypatch.setenv("CRATEDB_URL", proxy.url)
            monkeypatch.setenv("CRATEDB_USERNAME", "exporter")  # the user of this stand-in, whatever the suite's
            monkeypatch.setenv("CRATEDB_PASSWORD", secrets.password)
            proxy.answer_status("COPY ", 504, patience=1.0)
            statless.faults.slow_next_copy(seconds=3)
            result = run_export([spec_for(table, bucket)], instance, partition=DAY.isoformat())
            sent = proxy.forwarded(f'COPY "doc"."{table.name}"')

    message = failure_message(result)
    assert not result.success and "keeps no jobs tables" in message and "it was not sent again" in message
    assert sent == 1
    prefix = f"{table.name}-{DAY.isoformat()}/"
    keys = list_keys(s3.client(), bucket, prefix)
    assert f"{prefix}_EXPORTING" in keys and f"{prefix}_SUCCESS" not in keys and f"{prefix}_manifest.json" not in keys


def test_a_node_leaving_during_the_copy_is_retried_once_the_job_is_gone(
    export_env, slow_day, s3, bucket, instance, double
):
    before = len(slow_day.copies())
    double.faults.fail_next_copy(shape="node_disconnected", files_written=2)
    result = run_export([_spec(slow_day, bucket)], instance, partition=DAY.isoformat())
    assert result.success, failure_message(result)
    first, second = slow_day.copies()[before:]
    assert first[3].startswith("Job killed") or "JobKilledException" in (first[3] or "")
    assert second[3] is None and second[1] >= first[2]  # sent again only after the first had ended
    prefix = f"{slow_day.name}-{DAY.isoformat()}/"
    assert f"{prefix}_SUCCESS" in list_keys(s3.client(), bucket, prefix)


def test_an_unfinished_upload_fails_the_day_and_the_rerun_clears_it(export_env, slow_day, s3, bucket, instance, double):
    double.faults.abandon_next_copy_upload()
    first = run_export([_spec(slow_day, bucket)], instance, partition=DAY.isoformat())
    assert not first.success and "does not match the source" in failure_message(first)
    prefix = f"{slow_day.name}-{DAY.isoformat()}/"
    assert s3.client().list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads")
    assert run_export([_spec(slow_day, bucket)], instance, partition=DAY.isoformat()).success
    assert not s3.client().list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads")
    assert f"{prefix}_SUCCESS" in list_keys(s3.client(), bucket, prefix)


def test_a_range_run_and_a_one_day_run_never_copy_the_same_day_at_once(
    export_env, slow_day, s3, bucket, tmp_path, monkeypatch, secrets
):
    """Two real CLI processes: a backfill over three days and a re-run of the middle one, started together."""
    config = tmp_path / "exports.yaml"
    spec = {**_spec(slow_day, bucket), "start_date": "2024-01-01"}
    config.write_text(json.dumps({"exports": [spec]}))
    monkeypatch.setenv("CRATEDB_EXPORT_CONFIG", str(config))
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    DagsterInstance.from_config(str(home)).dispose()  # create its storage once, not in both processes at once
    before = len(slow_day.copies())
    slow_day.make_copies_slow(count=4)
    asset = ["cratedb_export", "doc", slow_day.name]
    days = ("2024-02-19", DAY.isoformat(), "2024-02-21")
    commands = [materialize_command(asset, f"{days[0]}...{days[2]}"), materialize_command(asset, DAY.isoformat())]
    results: list[subprocess.CompletedProcess] = [None, None]  # type: ignore[list-item]

    def launch(index: int) -> None:
        results[index] = subprocess.run(commands[index], capture_output=True, text=True, timeout=300, check=False)

    threads = [threading.Thread(target=launch, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for done in results:
        assert done.returncode == 0, done.stderr[-3000:]
    output = "".join(r.stdout + r.stderr for r in results)
    assert not secrets.leaks_in(output)

    copies_of_day = [c for c in slow_day.copies()[before:] if f" {DAY.isoformat()} */" in c[0]]
    assert len(copies_of_day) == 2  # each run exported the day, one after the other
    (_, _, first_end, _), (_, second_start, _, _) = copies_of_day
    assert second_start >= first_end, "two COPYs of the same day ran at the same time"
    assert "is exporting this day" in output  # the later one waited for the lease
    prefix = f"{slow_day.name}-{DAY.isoformat()}/"
    keys = list_keys(s3.client(), bucket, prefix)
    assert f"{prefix}_SUCCESS" in keys and f"{prefix}_EXPORTING" not in keys
