"""Fixtures of the test bed's own tests: one stand-in for them all, its faults reset around each test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from cratedb_export_testbed.seaweedfs import SeaweedS3
from cratedb_export_testbed.standin import CrateDouble

from cratedb_export_tests.standin.talk import PASSWORD, USER


@pytest.fixture(scope="package")
def stand_in() -> Iterator[CrateDouble]:
    with CrateDouble(users={USER: PASSWORD}) as double:
        yield double


@pytest.fixture
def double(stand_in: CrateDouble) -> Iterator[CrateDouble]:
    stand_in.faults.reset()
    yield stand_in
    stand_in.faults.reset()


@pytest.fixture
def seaweed(s3: SeaweedS3) -> SeaweedS3:
    """The session's SeaweedFS server (the suite's conftest), which accepts ACCESS_KEY / SECRET_KEY."""
    return s3


@pytest.fixture
def table() -> str:
    return f"t_{uuid.uuid4().hex[:8]}"
