"""The export configuration: what loads, and every malformed entry refused with entry and field named."""

import os
import subprocess
import sys
import textwrap
from datetime import date

import pytest
import yaml

from cratedb_export.core.config import ConfigError, ExportSpec, load_export_config, parse_export_specs

GOOD = {"table": "doc.metrics", "timestamp_column": "timestamp", "target": "crate-astro-tutorial/metrics"}


def entry(**changes):
    merged = {**GOOD, **changes}
    return {k: v for k, v in merged.items() if v is not None}


def test_shipped_exports_yaml_is_the_tutorial_table():
    (spec,) = load_export_config()
    assert spec.table == "doc.metrics"
    assert spec.timestamp_column == "timestamp"
    assert spec.directory_for(date(2021, 11, 11)).display_uri() == "s3://crate-astro-tutorial/metrics-2021-11-11/"


def test_defaults_reproduce_the_tutorial_and_hive_is_one_setting_away():
    spec = ExportSpec(**GOOD)
    assert spec.start_date == date(2021, 11, 11)
    assert spec.timezone == "UTC"
    assert spec.verify == "read_back"
    day = spec.directory_for(date(2024, 1, 1))
    assert (day.bucket, day.prefix) == ("crate-astro-tutorial", "metrics-2024-01-01/")
    hive = ExportSpec(**GOOD, directory="{target}/dt={date}/").directory_for(date(2024, 1, 1))
    assert hive.prefix == "metrics/dt=2024-01-01/"


def test_yaml_defaults_apply_to_every_entry(tmp_path):
    path = tmp_path / "exports.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "defaults": {"compression": "gzip", "timezone": "Europe/Vienna"},
                "exports": [GOOD, entry(table="doc.events", target="crate-astro-tutorial/events")],
            }
        )
    )
    specs = load_export_config(path)
    assert [s.compression for s in specs] == ["gzip", "gzip"]
    assert {s.timezone for s in specs} == {"Europe/Vienna"}


BAD_ENTRIES = [
    # (id, entry, field named in the message, words in the message)
    ("missing table", entry(table=None), "table", "required"),
    ("missing timestamp column", entry(timestamp_column=None), "timestamp_column", "required"),
    ("missing target", entry(target=None), "target", "required"),
    ("unknown key", entry(tabel="doc.x"), "tabel", "unknown field"),
    ("unqualified table", entry(table="metrics"), "table", "schema-qualified"),
    ("three-part table", entry(table="crate.doc.metrics"), "table", "schema-qualified"),
    ("quote in table", entry(table='doc.met"rics'), "table", "not a plain identifier"),
    ("semicolon in table", entry(table="doc.metrics;DROP TABLE users"), "table", "not a plain identifier"),
    ("space in table", entry(table="doc.my metrics"), "table", "not a plain identifier"),
    ("comment in table", entry(table="doc.metrics--"), "table", "not a plain identifier"),
    ("injection in table", entry(table="doc.metrics WHERE 1=1 --"), "table", "not a plain identifier"),
    ("quote in schema", entry(table='"doc".metrics'), "table", "not a plain identifier"),
    ("table is a number", entry(table=42), "table", "valid string"),
    (
        "quote in timestamp column",
        entry(timestamp_column='ts"'),
        "timestamp_column",
        "not a plain identifier",
    ),
    ("comment in timestamp column", entry(timestamp_column="/*ts*/"), "timestamp_column", "identifier"),
    ("columns not a list", entry(columns="a,b"), "columns", "tuple"),
    ("injection in columns", entry(columns=["a); DROP TABLE x; --"]), "columns", "not a column name"),
    ("empty columns", entry(columns=[]), "columns", "at least one column"),
    ("duplicate column", entry(columns=["name", "name"]), "columns", "more than once"),
    ("impossible start date", entry(start_date="2021-13-45"), "start_date", "date"),
    ("start date in the future", entry(start_date="2999-01-01"), "start_date", "in the future"),
    ("start date not a date", entry(start_date="yesterday"), "start_date", "date"),
    ("unknown compression", entry(compression="zip"), "compression", "gzip"),
    ("unknown placeholder", entry(directory="{target}/{dt}"), "directory", "unknown placeholder {dt}"),
    ("format spec in template", entry(directory="{target}/{date:%Y}"), "directory", "format spec"),
    ("template without the day", entry(directory="{target}/{year}/{month}"), "directory", "{date}"),
    ("template without target", entry(directory="other-bucket/{date}"), "directory", "{target}"),
    ("invalid bucket", entry(target="Bad_Bucket/metrics"), "target", "not a valid S3 bucket"),
    ("target bucket only", entry(target="crate-astro-tutorial"), "directory", "no path below the bucket"),
    ("dot-dot in target", entry(target="bucket-1/../metrics"), "target", "'..'"),
    ("space in target", entry(target="bucket-1/my metrics"), "target", "characters"),
    ("unknown time zone", entry(timezone="Mars/Olympus"), "timezone", "unknown time zone"),
    ("unknown verification", entry(verify="full"), "verify", "read_back"),
]


@pytest.mark.parametrize(("entry_", "field", "words"), [b[1:] for b in BAD_ENTRIES], ids=[b[0] for b in BAD_ENTRIES])
def test_malformed_entry_is_refused_naming_file_entry_and_field(tmp_path, entry_, field, words):
    path = tmp_path / "exports.yaml"
    path.write_text(yaml.safe_dump({"exports": [GOOD | {"table": "doc.first"}, entry_]}))
    with pytest.raises(ConfigError) as raised:
        load_export_config(path)
    message = str(raised.value)
    assert str(path) in message
    assert "exports[1]" in message
    assert f"'{field}'" in message
    assert words in message
    assert "Traceback" not in message


BAD_PAIRS = [
    (
        "duplicate table",
        [GOOD, entry(target="crate-astro-tutorial/other")],
        "table",
        "duplicate of exports[0]",
    ),
    ("same directory", [GOOD, entry(table="doc.events")], "target", "overlaps exports[0]"),
    (
        "nested directory",
        [entry(directory="{target}/{date}"), entry(table="doc.events", directory="{target}/{date}/events")],
        "target",
        "overlaps",
    ),
]


@pytest.mark.parametrize(("entries", "field", "words"), [b[1:] for b in BAD_PAIRS], ids=[b[0] for b in BAD_PAIRS])
def test_conflicting_entries_are_refused(entries, field, words):
    with pytest.raises(ConfigError) as raised:
        parse_export_specs(entries, source="exports.yaml")
    message = str(raised.value)
    assert "exports[1]" in message and f"'{field}'" in message and words in message


def test_neighbouring_day_directories_do_not_count_as_overlapping():
    # metrics-2024-01-1 is a string prefix of metrics-2024-01-10, but not a directory prefix.
    specs = parse_export_specs([GOOD, entry(table="doc.metrics2", target="crate-astro-tutorial/metrics-2")])
    assert len(specs) == 2


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("exports: []", "non-empty list"),
        ("exports: {table: doc.metrics}", "non-empty list"),
        ("expotrs: []", "unknown top-level key"),
        ("exports: [\n  - table: [unclosed", "not valid YAML"),
        ("exports:\n  - just a string", "must be a mapping"),
    ],
)
def test_malformed_files_are_refused(tmp_path, text, words):
    path = tmp_path / "exports.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=words) as raised:
        load_export_config(path)
    assert str(path) in str(raised.value)


def test_missing_file_is_refused_with_its_path(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the export configuration"):
        load_export_config(tmp_path / "nope.yaml")


def test_python_specs_like_the_tutorials_tables_list():
    tables = [{"table": "doc.metrics", "timestamp_column": "timestamp", "target": "crate-astro-tutorial/metrics"}]
    (spec,) = parse_export_specs(tables)
    assert spec.asset_path == ["cratedb_export", "doc", "metrics"]
    with pytest.raises(ConfigError, match=r"python: exports\[0\].*'timestamp_column'"):
        parse_export_specs([{"table": "doc.metrics", "target": "crate-astro-tutorial/metrics"}])


def test_python_file_with_tables_like_the_tutorials_include_table_exports(tmp_path):
    path = tmp_path / "table_exports.py"
    path.write_text(
        textwrap.dedent(
            """
            TABLES = [
                {
                    "table": "doc.metrics",
                    "timestamp_column": "timestamp",
                    "target": "crate-astro-tutorial/metrics",
                }
            ]
            """
        )
    )
    (spec,) = load_export_config(path)
    assert spec.table == "doc.metrics"
    path.write_text('TABLES = [{"table": "doc.metrics", "target": "crate-astro-tutorial/metrics"}]')
    with pytest.raises(ConfigError, match=r"table_exports.py: exports\[0\].*'timestamp_column'"):
        load_export_config(path)
    path.write_text("EXPORTS = []")
    with pytest.raises(ConfigError, match="must define TABLES"):
        load_export_config(path)


def test_code_location_refuses_to_load_a_bad_configuration(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        textwrap.dedent(
            """
            exports:
              - table: doc.metrics
                timestamp_column: timestamp
                target: crate-astro-tutorial/metrics
                directory: "{target}/{when}"
            """
        )
    )
    env = {**os.environ, "CRATEDB_EXPORT_CONFIG": str(path)}
    # Loaded as the code location (the definitions are built when Dagster loads it, not on import).
    loaded = subprocess.run(
        [sys.executable, "-c", "from cratedb_export.definitions import defs; defs()"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert loaded.returncode != 0
    assert str(path) in loaded.stderr
    assert "exports[0] (table 'doc.metrics'): field 'directory': unknown placeholder {when}" in loaded.stderr
