"""The suite leaves a real CrateDB as it found it: the tables it made are dropped at the session's end
(conftest.py), and only those, so a table someone else creates meanwhile on a shared cluster stays."""

from __future__ import annotations

import uuid
from datetime import date

from cratedb_export_testbed.support import CrateUnderTest, create_metrics_table


def test_drops_the_tables_the_suite_made_and_nothing_else(crate: CrateUnderTest) -> None:
    before = crate.tables()
    made = create_metrics_table(crate, [date(2024, 1, 1)])
    # Named as a person would, without the suite's random token: not the suite's to drop.
    theirs = f"someone_elses_table_{uuid.uuid4().int % 10**6}"
    crate.sql(f'CREATE TABLE "doc"."{theirs}" ("a" INTEGER)')
    try:
        assert ("doc", made.name) in crate.tables()
        assert crate.drop_tables_since(before) == []
        left = crate.tables()
        assert ("doc", made.name) not in left
        assert ("doc", theirs) in left
        assert before <= left
    finally:
        crate.sql(f'DROP TABLE IF EXISTS "doc"."{theirs}"')
