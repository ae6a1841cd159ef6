"""Shared fixtures: a real SeaweedFS S3 server, and CrateDB — the stand-in, or a real one.

Set CRATEDB_TEST_URL (and CRATEDB_TEST_USERNAME / CRATEDB_TEST_PASSWORD) to run the same end-to-end tests
against a real CrateDB; it must reach the SeaweedFS endpoint on 127.0.0.1 (e.g. run it with host
networking). Tests that inject faults into CrateDB need the stand-in and say so when skipped.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator

import pytest
from cratedb_export_testbed.postgres import EmbeddedPostgres, PostgresDatabase
from cratedb_export_testbed.seaweedfs import SeaweedS3
from cratedb_export_testbed.standin import CrateDouble
from cratedb_export_testbed.support import TEST_SECRETS, CrateUnderTest, Secrets

from cratedb_export.core.connection import ConnectionSettings

SECRETS = TEST_SECRETS
PG_PASSWORD_ENV = "DAGSTER_PG_PASSWORD"


@pytest.fixture(scope="session")
def secrets() -> Secrets:
    return SECRETS


@pytest.fixture(scope="session")
def s3() -> Iterator[SeaweedS3]:
    with SeaweedS3(SECRETS.access_key, SECRETS.secret_key) as server:
        yield server


@pytest.fixture(scope="session")
def crate() -> Iterator[CrateUnderTest]:
    url = os.environ.get("CRATEDB_TEST_URL")
    if url:
        # A real CrateDB outlives the session: the tables the tests made are dropped at its end, so the
        # cluster is left as it was found (up to ~140 tables a run otherwise).
        real = CrateUnderTest(
            url=url,
            username=os.environ.get("CRATEDB_TEST_USERNAME"),
            password=os.environ.get("CRATEDB_TEST_PASSWORD"),
            double=None,
        )
        before = real.tables()
        yield real
        if problems := real.drop_tables_since(before):
            warnings.warn("tables the tests made and could not drop: " + "; ".join(problems), stacklevel=1)
        return
    with CrateDouble(users={"exporter": SECRETS.password}) as double:
        yield CrateUnderTest(url=double.url, username="exporter", password=SECRETS.password, double=double)


@pytest.fixture
def double(crate: CrateUnderTest) -> Iterator[CrateDouble]:
    """The CrateDB stand-in itself, for tests that inject faults real CrateDB cannot be asked to produce."""
    if crate.double is None:
        pytest.skip("fault injection needs the CrateDB stand-in (CRATEDB_TEST_URL points at a real CrateDB)")
    crate.double.faults.reset()
    yield crate.double
    crate.double.faults.reset()


@pytest.fixture
def bucket(s3: SeaweedS3) -> str:
    name = f"exports-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(name)
    return name


@pytest.fixture
def export_env(monkeypatch: pytest.MonkeyPatch, crate: CrateUnderTest, s3: SeaweedS3) -> None:
    """The environment the code location reads its resource from, pointing at the test servers."""
    for name, value in {
        "CRATEDB_URL": crate.url,
        "CRATEDB_USERNAME": crate.username or "",
        "CRATEDB_PASSWORD": crate.password or "",
        "ACCESS_KEY_ID": SECRETS.access_key,
        "SECRET_ACCESS_KEY": SECRETS.secret_key,
        "S3_ENDPOINT": s3.endpoint,
        "S3_PROTOCOL": "http",
        "CRATEDB_EXPORT_RETRY_BASE_DELAY": "0.05",
        "CRATEDB_EXPORT_RETRY_ATTEMPTS": "4",
        "CRATEDB_TIMEOUT": "60",
    }.items():
        if value:
            monkeypatch.setenv(name, value)
        else:
            monkeypatch.delenv(name, raising=False)


@pytest.fixture
def connection(crate: CrateUnderTest, s3: SeaweedS3) -> ConnectionSettings:
    """The core's connection settings for the servers under test (what the resource holds in a run)."""
    return ConnectionSettings(
        url=crate.url,
        username=crate.username,
        password=crate.password,
        access_key_id=SECRETS.access_key,
        secret_access_key=SECRETS.secret_key,
        s3_endpoint=s3.endpoint,
        s3_protocol="http",
        retry_base_delay=0.05,
        timeout=60,
    )


@pytest.fixture
def dagster_home(tmp_path):
    """A Dagster instance directory; tests search every file in it for secrets."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    return home


@pytest.fixture
def instance(dagster_home):
    from dagster import DagsterInstance

    with DagsterInstance.local_temp(str(dagster_home)) as dagster_instance:
        yield dagster_instance


@pytest.fixture(scope="session")
def postgres() -> Iterator[EmbeddedPostgres]:
    """A real PostgreSQL server on 127.0.0.1, started once per session when a test asks for it."""
    with EmbeddedPostgres() as server:
        yield server


@pytest.fixture
def pg_database(postgres: EmbeddedPostgres) -> PostgresDatabase:
    return postgres.create_database()


@pytest.fixture
def pg_instance(postgres, pg_database, dagster_home, monkeypatch):
    """A Dagster instance as production runs it: dagster.yaml with PostgreSQL storage (dagster-postgres),
    the password taken from the environment, never written to the file."""
    import yaml
    from dagster import DagsterInstance

    monkeypatch.setenv(PG_PASSWORD_ENV, postgres.password)
    config = {"storage": pg_database.instance_storage(PG_PASSWORD_ENV), "telemetry": {"enabled": False}}
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(config))
    with DagsterInstance.from_config(str(dagster_home)) as dagster_instance:
        yield dagster_instance
