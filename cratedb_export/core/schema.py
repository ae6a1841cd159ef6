"""The source table as CrateDB describes it, read when a run starts: its columns, and how to read a day.

What day D means depends on the type of the timestamp column. `TIMESTAMP WITH TIME ZONE` holds instants:
day D is [D 00:00, D+1 00:00) in the export's time zone. `TIMESTAMP WITHOUT TIME ZONE` holds wall-clock
time, which CrateDB compares as if it were UTC: day D is [D 00:00, D+1 00:00) of wall clock, whatever
`timezone` says (passing the UTC instants of local midnights would shift the day by the zone's offset).
`BIGINT` columns are read as epoch milliseconds (CrateDB's own representation of a timestamp), i.e. as
instants. Any other type is refused before any COPY.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from cratedb_export.core.config import ExportSpec
from cratedb_export.core.cratedb import CrateDB
from cratedb_export.core.errors import PermanentError
from cratedb_export.core.statement import columns_statement
from cratedb_export.core.window import DayWindow

WITH_TIME_ZONE = "timestamp with time zone"
WITHOUT_TIME_ZONE = "timestamp without time zone"
EPOCH_MILLISECONDS = "bigint"
_READINGS = {
    WITH_TIME_ZONE: "instants: [D 00:00, D+1 00:00) in the export's time zone",
    WITHOUT_TIME_ZONE: "wall-clock time: [D 00:00, D+1 00:00) as stored, whatever the export's time zone",
    EPOCH_MILLISECONDS: "epoch milliseconds (instants): [D 00:00, D+1 00:00) in the export's time zone",
}


@dataclass(frozen=True)
class Column:
    name: str
    data_type: str


@dataclass(frozen=True)
class SourceTable:
    """One exported table as CrateDB describes it; decides each day's window."""

    spec: ExportSpec
    columns: tuple[Column, ...]

    @property
    def timestamp_type(self) -> str:
        return next(c.data_type for c in self.columns if c.name == self.spec.timestamp_column)

    @property
    def wall_clock(self) -> bool:
        return self.timestamp_type == WITHOUT_TIME_ZONE

    @property
    def window_reading(self) -> str:
        """How the window was read, for the manifest and the metadata."""
        return f"{self.spec.timestamp_column} is {self.timestamp_type}, read as {_READINGS[self.timestamp_type]}"

    @property
    def hourly_counts(self) -> bool:
        """Whether CrateDB's date_trunc('hour', column) buckets the column (not so for BIGINT)."""
        return self.timestamp_type != EPOCH_MILLISECONDS

    @property
    def exported_columns(self) -> tuple[Column, ...]:
        """The columns a day's files hold: all top-level ones, or those configured in `columns`."""
        if not self.spec.columns:
            return tuple(c for c in self.columns if "[" not in c.name)
        by_name = {c.name: c for c in self.columns}
        return tuple(by_name.get(name) or Column(name, "unknown") for name in self.spec.columns)

    def window(self, day: date) -> DayWindow:
        return DayWindow.for_day(day, self.spec.timezone, wall_clock=self.wall_clock)

    @classmethod
    def assumed(cls, spec: ExportSpec) -> SourceTable:
        """Without reading CrateDB: the timestamp column taken as TIMESTAMP WITH TIME ZONE."""
        return cls(spec, (Column(spec.timestamp_column, WITH_TIME_ZONE),))


def read_source_table(crate: CrateDB, spec: ExportSpec, log: Callable[[str], None] = lambda _: None) -> SourceTable:
    """Read the table's columns from information_schema; refuse a missing table or an unusable column."""
    reply = crate.execute(columns_statement(spec), what=f"reading the columns of {spec.table}", on_retry=log)
    columns = tuple(Column(str(name), str(data_type)) for name, data_type in reply.rows)
    if not columns:
        raise PermanentError(
            f"{spec.table}: CrateDB has no such table (information_schema.columns lists no column of it); "
            "check 'table' in the export configuration and the CrateDB user's privileges"
        )
    found = {c.name: c.data_type for c in columns}
    column = spec.timestamp_column
    if column not in found:
        raise PermanentError(
            f"{spec.table}: timestamp_column {column!r} is not a column of the table (it has: "
            f"{', '.join(c.name for c in columns if '[' not in c.name)}); check 'timestamp_column'"
        )
    if found[column] not in _READINGS:
        raise PermanentError(
            f"{spec.table}: timestamp_column {column!r} is of type {found[column]}; a day can be read from "
            "TIMESTAMP WITH TIME ZONE, TIMESTAMP WITHOUT TIME ZONE or BIGINT (epoch milliseconds) columns only"
        )
    missing = [name for name in spec.columns or () if name.split("[", 1)[0] not in found]
    if missing:
        raise PermanentError(f"{spec.table}: 'columns' names {missing} which the table does not have")
    return SourceTable(spec, columns)
