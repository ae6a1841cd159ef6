"""How a lost COPY answer is resolved, decision by decision (a scripted CrateDB: every branch, no timing)."""

from __future__ import annotations

from datetime import date

import pytest

from cratedb_export.core.copy_jobs import CopyRunner, CopyTag, JobsSettings
from cratedb_export.core.cratedb import Reply
from cratedb_export.core.errors import AnswerLost, CopyOutcomeUnknown, ExportError, TransientError, classify_crate_error
from cratedb_export.core.statement import Statement

TAG = CopyTag.new("doc.metrics", date(2024, 1, 1))
COPY = Statement(f"{TAG.comment} COPY ...", ())


class ScriptedCrate:
    """Test double of CrateDB for this unit only: the COPY's answer is lost, then sys.jobs / sys.jobs_log
    answer from a script (one entry per lookup), so each branch of the resolution is reached exactly."""

    def __init__(self, jobs: list, jobs_log: list, answer: Exception | None = None) -> None:
        self.jobs, self.jobs_log, self.sent, self.answer = list(jobs), list(jobs_log), 0, answer

    def execute_once(self, statement, *, what, rotate=False):
        self.sent += 1
        raise self.answer or AnswerLost(f"{what}: no answer (504 Server Error: Gateway Time-out)")

    def execute(self, statement, *, what, on_retry=None):
        assert TAG.pattern == statement.args[0]
        script = self.jobs if '"sys"."jobs" ' in statement.sql else self.jobs_log
        answer = script.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return Reply(len(answer), answer)


def _runner(crate, **kw) -> CopyRunner:
    return CopyRunner(crate, sleep=lambda _: None, **kw)  # type: ignore[arg-type]


def _run(runner):
    return runner.run(COPY, TAG, what="COPY of doc.metrics 2024-01-01", rotate=False, log=lambda _: None)


def test_a_running_copy_is_waited_for_and_its_end_taken_from_the_jobs_log():
    crate = ScriptedCrate(jobs=[[["job-1", 1]], [["job-1", 1]], []], jobs_log=[[["job-1", 1, 9, None]]])
    outcome = _run(_runner(crate))
    assert outcome.rowcount is None and "job-1 ended" in outcome.recovered
    assert crate.sent == 1


def test_a_copy_that_ended_with_an_error_reports_that_error():
    crate = ScriptedCrate(jobs=[[]], jobs_log=[[["job-1", 1, 9, "JobKilledException[Job killed. node gone]"]]])
    with pytest.raises(TransientError, match="JobKilledException") as caught:
        _run(_runner(crate))
    assert caught.value.sent


def test_an_error_crate_answered_is_raised_only_once_nothing_of_the_copy_still_runs():
    """CrateDB answered the COPY with an error (an S3 failure on one node) while its job may still wind down on
    the others: the error is raised only once sys.jobs no longer shows the COPY, so the day's lease is released
    (or the COPY sent again) only then."""
    answered = classify_crate_error("AmazonS3Exception[Access Denied (Status Code: 403)]", what="COPY of a day")
    crate = ScriptedCrate(jobs=[[["job-1", 1]], [["job-1", 1]], []], jobs_log=[], answer=answered)
    with pytest.raises(ExportError, match="Access Denied") as caught:
        _run(_runner(crate))
    assert caught.value is answered and crate.jobs == [] and crate.sent == 1  # waited through both lookups


def test_a_copy_crate_never_saw_may_be_sent_again():
    crate = ScriptedCrate(jobs=[[], [], []], jobs_log=[[], [], []])
    with pytest.raises(TransientError, match="no such COPY") as caught:
        _run(_runner(crate, not_seen_checks=3))
    assert not isinstance(caught.value, CopyOutcomeUnknown)


@pytest.mark.parametrize(
    ("crate", "settings", "match"),
    [
        # End to end, against a stand-in without jobs tables: test_one_copy_per_day.py.
        (ScriptedCrate([], []), JobsSettings(enabled=False), "keeps no jobs tables"),
        (ScriptedCrate([TransientError("unreachable")], []), JobsSettings(), "could not be asked"),
        (ScriptedCrate([[["job-1", 1]]] * 50, []), JobsSettings(), "still running in CrateDB"),
    ],
)
def test_whenever_crate_cannot_tell_the_day_fails_and_nothing_is_sent_again(crate, settings, match):
    clock = iter(range(0, 10_000, 100))
    runner = _runner(crate, jobs=settings, max_wait=1000, clock=lambda: float(next(clock)))
    with pytest.raises(CopyOutcomeUnknown, match=match):
        _run(runner)
    assert crate.sent == 1
