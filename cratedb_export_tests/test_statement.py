"""Statement text, day windows and target URIs: shapes CrateDB accepts, no value or secret in the text."""

from datetime import date
from urllib.parse import unquote

import pytest
from cratedb_sqlparse import sqlparse

from cratedb_export.core.config import ExportSpec
from cratedb_export.core.copy_jobs import CopyTag
from cratedb_export.core.redaction import Redactor
from cratedb_export.core.source import consecutive_spans
from cratedb_export.core.statement import (
    NODES_STATEMENT,
    STATS_STATEMENT,
    columns_statement,
    copy_statement,
    count_statement,
    hourly_count_statement,
    jobs_lookup_statement,
)
from cratedb_export.core.target import DayDirectory, S3Access, target_uri
from cratedb_export.core.window import DayWindow

SPEC = ExportSpec(table="doc.metrics", timestamp_column="timestamp", target="crate-astro-tutorial/metrics")
SECRET = "s3cr/et+with=signs"
ACCESS = S3Access("AKIDEXAMPLE", SECRET, endpoint="127.0.0.1:8333", protocol="http")


def _grammar_ok(sql: str) -> None:
    (parsed,) = sqlparse(sql)
    assert parsed.exception is None, parsed.exception


def test_copy_statement_has_the_documented_shape_and_only_parameters():
    window = DayWindow.for_day("2021-11-11")
    statement = copy_statement(SPEC, window, "s3://k:s@b/p/")
    assert statement.sql == ('COPY "doc"."metrics" WHERE "timestamp" >= ? AND "timestamp" < ? TO DIRECTORY ?')
    assert statement.args == (1636588800000, 1636675200000, "s3://k:s@b/p/")
    _grammar_ok(statement.sql)


def test_copy_statement_options_and_column_list_parse_in_cratedbs_grammar():
    spec = SPEC.model_copy(update={"columns": ("name", "tags['host']"), "compression": "gzip"})
    statement = copy_statement(spec, DayWindow.for_day("2024-01-01"), "uri", protocol="http")
    assert statement.sql == (
        'COPY "doc"."metrics" ("name", "tags"[\'host\']) WHERE "timestamp" >= ? AND "timestamp" < ? '
        "TO DIRECTORY ? WITH (compression = 'gzip', format = 'json_object', protocol = 'http')"
    )
    _grammar_ok(statement.sql)


def test_count_uses_the_same_window_predicate():
    statement = count_statement(SPEC, DayWindow.for_day("2024-01-01"))
    assert statement.sql == 'SELECT count(*) FROM "doc"."metrics" WHERE "timestamp" >= ? AND "timestamp" < ?'
    _grammar_ok(statement.sql)


def test_hourly_count_spans_the_days_with_the_same_predicate():
    first, last = DayWindow.for_day("2024-01-01"), DayWindow.for_day("2024-12-30")
    statement = hourly_count_statement(SPEC, first, last)
    assert statement.sql == (
        'SELECT date_trunc(\'hour\', "timestamp") AS "hour", count(*) AS "rows" FROM "doc"."metrics" '
        'WHERE "timestamp" >= ? AND "timestamp" < ? GROUP BY 1'
    )
    assert statement.args == (first.start_ms, last.end_ms)
    _grammar_ok(statement.sql)


def test_days_split_into_consecutive_spans():
    days = [date(2024, 3, d) for d in (5, 1, 2, 3, 9, 10, 3)]
    assert consecutive_spans(days) == [
        [date(2024, 3, 1), date(2024, 3, 2), date(2024, 3, 3)],
        [date(2024, 3, 5)],
        [date(2024, 3, 9), date(2024, 3, 10)],
    ]


def test_day_window_follows_the_time_zone_including_dst_days():
    vienna = DayWindow.for_day("2024-03-31", "Europe/Vienna")  # clocks go forward: a 23-hour day
    assert vienna.end_ms - vienna.start_ms == 23 * 3600 * 1000
    assert vienna.start.isoformat() == "2024-03-31T00:00:00+01:00"
    utc = DayWindow.for_day(date(2024, 1, 1))
    assert utc.contains_ms(utc.start_ms) and not utc.contains_ms(utc.end_ms)


def test_target_uri_percent_encodes_credentials_as_cratedb_decodes_them():
    uri = target_uri(DayDirectory("crate-astro-tutorial", "metrics-2024-01-01/"), ACCESS)
    assert uri == "s3://AKIDEXAMPLE:s3cr%2Fet%2Bwith%3Dsigns@127.0.0.1:8333/crate-astro-tutorial/metrics-2024-01-01/"
    user_info = uri.removeprefix("s3://").split("@")[0]
    assert unquote(user_info.split(":")[1]) == SECRET  # RFC 3986 decoding: '+' must not become ' '


def test_aws_uri_has_no_endpoint():
    uri = target_uri(DayDirectory("bucket-1", "x/"), S3Access("AKIDEXAMPLE", "secretkey"))
    assert uri == "s3://AKIDEXAMPLE:secretkey@bucket-1/x/"


@pytest.mark.parametrize(
    "text",
    [
        f"raw {SECRET} here",
        "SQLParseException[Invalid uri 's3://AKIDEXAMPLE:s3cr%2Fet%2Bwith%3Dsigns@127.0.0.1:8333/b/p/x.json']",
        "lower-case escapes s3cr%2fet%2bwith%3dsigns",
        "form-encoded s3cr%2Fet%2Bwith%3Dsigns and key AKIDEXAMPLE",
        "user-info form (RFC 3986) s3cr%2Fet+with=signs, outside any URI",
        "and with lower-case escapes s3cr%2fet+with=signs",
    ],
)
def test_redactor_masks_secrets_in_every_encoding(text):
    redactor = Redactor()
    redactor.add("AKIDEXAMPLE", SECRET)
    cleaned = redactor.redact(text)
    for leaked in ("AKIDEXAMPLE", SECRET, "s3cr%2Fet", "s3cr%2fet", "s3cr"):
        assert leaked not in cleaned


def test_redactor_strips_user_info_of_any_s3_or_http_uri_even_for_unknown_secrets():
    cleaned = Redactor().redact("Invalid uri 's3://who:unknown@host:1/b' and http://u:pw@crate:4200/")
    assert cleaned == "Invalid uri 's3://***@host:1/b' and http://***@crate:4200/"


def test_copy_statement_carries_its_tag_in_a_comment_crate_grammar_accepts():
    tag = CopyTag.new("doc.metrics", date(2024, 1, 1))
    statement = copy_statement(SPEC, DayWindow.for_day("2024-01-01"), "s3://k:s@b/p/", comment=tag.comment)
    assert statement.sql.startswith(f"/* cratedb-export copy={tag.token} doc.metrics 2024-01-01 */ COPY ")
    assert tag.pattern.strip("%") in statement.sql and "s3://" not in statement.sql
    _grammar_ok(statement.sql)


def test_wall_clock_window_is_the_local_day_as_stored_whatever_the_time_zone():
    # TIMESTAMP WITHOUT TIME ZONE: CrateDB compares stored wall-clock values as if they were UTC.
    for day in ("2024-03-31", "2024-10-27", "2024-06-01"):  # Vienna's spring-forward, fall-back, summer
        wall = DayWindow.for_day(day, "Europe/Vienna", wall_clock=True)
        utc = DayWindow.for_day(day, "UTC")
        assert (wall.start_ms, wall.end_ms) == (utc.start_ms, utc.end_ms)
        assert wall.start.isoformat() == f"{day}T00:00:00" and wall.wall_clock
    instants = DayWindow.for_day("2024-06-01", "Europe/Vienna")
    assert instants.start_ms == DayWindow.for_day("2024-06-01").start_ms - 2 * 3600 * 1000


def test_cluster_metadata_statements_parse_in_cratedbs_grammar():
    for statement in (NODES_STATEMENT, STATS_STATEMENT, columns_statement(SPEC)):
        _grammar_ok(statement.sql)
    for table in ("jobs", "jobs_log"):
        _grammar_ok(jobs_lookup_statement(table, "%copy=ab%").sql)
