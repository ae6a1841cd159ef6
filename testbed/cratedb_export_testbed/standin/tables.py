"""User tables: schema, rows, shard routing and partitions, kept in memory.

Rows carry an id (CrateDB's ``_id``) and are routed to a shard by a stable hash of it, so the
same inserts always land on the same shards. A partitioned table keeps one set of shards per
partition value, as CrateDB keeps one index per partition; a partition exists once a row has
been inserted into it. A table with a primary key keeps its rows unique by their key values
(``DuplicateKeyException`` otherwise); their id is still a generated one, not CrateDB's ``_id``
made of the key's values, which the double does not model.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from cratedb_export_testbed.standin import coltypes
from cratedb_export_testbed.standin.coltypes import ColumnType
from cratedb_export_testbed.standin.errors import (
    column_unknown,
    duplicate_key,
    not_in_double,
    relation_exists,
    relation_unknown,
    schema_unknown,
    shard_limit,
    similar,
    sql_parse,
    write_blocked,
)

BUILTIN_SCHEMAS = {"doc", "sys", "information_schema", "pg_catalog", "blob"}
DEFAULT_MAX_SHARDS_PER_NODE = 1000  # cluster.max_shards_per_node
# The system columns every CrateDB user table has (SysColumns); the double models only _seq_no and _primary_term.
SYSTEM_COLUMNS = frozenset(("_id", "_doc", "_raw", "_score", "_version", "_seq_no", "_primary_term", "_docid"))
# Every write of a row (INSERT, UPDATE, COPY FROM) gives it the next _seq_no. CrateDB numbers per shard (and
# per partition); the double numbers per table, which is faithful for what readers rely on: a row written
# again gets a higher number, so a day's sum(_seq_no) and max(_seq_no) change. _primary_term is 1 (no
# primary ever failed over).
SEQUENCE_COLUMNS = ("_seq_no", "_primary_term")


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    generated: tuple[str, str] | None = None  # date_trunc(unit, source): (unit, source)


@dataclass
class StoredRow:
    row_id: str
    partition: str | None  # partition ident, None for a non-partitioned table
    shard: int
    doc: dict[str, Any]
    seq_no: int = 0

    def view(self) -> dict[str, Any]:
        """The row as a query naming _seq_no or _primary_term reads it."""
        return {**self.doc, "_seq_no": self.seq_no, "_primary_term": 1}


def partition_ident(values: list[str | None]) -> str:
    """CrateDB's ``PartitionName.encodeIdent``: vInt count, then per value vInt(len + 1) and the
    UTF-8 bytes (0 for NULL), in base32hex, lower case, without padding."""
    data = bytearray(_vint(len(values)))
    for value in values:
        if value is None:
            data += _vint(0)
        else:
            raw = value.encode("utf-8")
            data += _vint(len(raw) + 1) + raw
    return base64.b32hexencode(bytes(data)).decode("ascii").lower().rstrip("=")


def _vint(number: int) -> bytes:
    out = bytearray()
    while number > 0x7F:
        out.append((number & 0x7F) | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


def partition_string(value: Any) -> str | None:
    """How a partition value is kept (and exported in ``_doc`` since 5.9): as a string."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass
class Table:
    schema: str
    name: str
    columns: dict[str, Column]
    shards: int
    partitioned_by: str | None = None
    dynamic: bool = False  # column_policy; CrateDB's default for tables is 'strict'
    object_keys: dict[tuple[str, ...], ColumnType] = field(default_factory=dict)
    rows: list[StoredRow] = field(default_factory=list)
    partitions: dict[str, Any] = field(default_factory=dict)  # ident -> partition value
    write_blocked: set[str] = field(default_factory=set)  # idents of partitions with "blocks.write" = true
    # information_schema.columns.ordinal_position of every column and object key, as CrateDB numbers
    # them: the CREATE TABLE columns 1..n in order, then each column or key added later the next number.
    positions: dict[tuple[str, ...], int] = field(default_factory=dict)
    # System tables model only some of CrateDB's columns: a column CrateDB has but the double does not
    # model (``unmodelled``), or a key below one of the ``partial`` objects, is refused as unsupported
    # rather than answered as unknown.
    unmodelled: frozenset[str] = frozenset()
    partial: frozenset[tuple[str, ...]] = frozenset()
    # PRIMARY KEY columns in the table's column order (CrateDB's order of the key's values in ``_id``),
    # and the stored rows by their key values.
    primary_key: tuple[str, ...] = ()
    by_key: dict[tuple[Any, ...], StoredRow] = field(default_factory=dict)
    last_seq_no: int = -1  # the table's sequence (SEQUENCE_COLUMNS): CrateDB's first _seq_no is 0
    # The catalog's shard-limit check (Catalog.make_room), given when the table is created.
    room: Callable[[int], None] | None = None

    def __post_init__(self) -> None:
        for name in self.columns:
            self._position((name,))
        for path in self.object_keys:
            self._position(path)

    def _position(self, path: tuple[str, ...]) -> None:
        self.positions.setdefault(path, len(self.positions) + 1)

    @property
    def fqn(self) -> str:
        return f"{self.schema}.{self.name}"

    def column_type(self, path: tuple[str, ...]) -> ColumnType:
        """The type of a column or object key, or ColumnUnknownException like CrateDB."""
        column = self.columns.get(path[0])
        known = column.type if column else None
        if known is not None and len(path) > 1:
            known = self.object_keys.get(path) if column.type.kind == "object" else None
        user_table = self.schema not in ("sys", "information_schema")
        if known is None and len(path) == 1 and path[0] in SEQUENCE_COLUMNS and user_table:
            return coltypes.BIGINT
        if known is None:
            name = path[0] + "".join(f"['{key}']" for key in path[1:])
            if path[0] in SYSTEM_COLUMNS and self.schema not in ("sys", "information_schema"):
                raise not_in_double(f"the system column {name} (CrateDB has it, the double does not model it)")
            if path[0] in self.unmodelled or any(path[:end] in self.partial for end in range(1, len(path))):
                raise not_in_double(f"the column {name} of {self.fqn} (CrateDB has it, the double does not model it)")
            raise column_unknown(name)
        return known

    @property
    def complete(self) -> bool:
        """Whether every column CrateDB has is modelled (``SELECT *`` needs that)."""
        return not self.unmodelled and not self.partial

    def prepare(self, values: dict[str, Any], params: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
        """Cast an inserted row (``params``: the columns whose value is a ``?``), add dynamic columns
        and compute generated ones."""
        doc: dict[str, Any] = {}
        for name, value in values.items():
            column = self.columns.get(name)
            if column is None:
                if not self.dynamic:
                    raise column_unknown(name)
                column = self.columns[name] = Column(name, coltypes.infer_type(value))
                self._position((name,))
            doc[name] = coltypes.cast(value, column.type, param=name in params)
            if column.type.kind == "object" and doc[name] is not None:
                undefined: list[tuple[str, ...]] = []
                self._learn_keys((name,), doc[name], undefined)
                for path in undefined:  # CrateDB numbers the keys first seen as NULL after the others
                    self._position(path)
        for column in self.columns.values():
            if column.generated is None:
                continue
            unit, source = column.generated
            computed = coltypes.date_trunc(unit, doc.get(source))
            if column.name in doc and doc[column.name] != computed:
                raise sql_parse(
                    f"Given value {doc[column.name]} for generated column {column.name} does not match "
                    f"calculation date_trunc('{unit}', {source}) = {computed}"
                )
            doc[column.name] = computed
        return {name: doc[name] for name in self.columns if name in doc}

    def _learn_keys(self, path: tuple[str, ...], value: dict[str, Any], undefined: list[tuple[str, ...]]) -> None:
        for key, inner in value.items():
            sub = path + (key,)
            known = self.object_keys.get(sub)
            if known is None and inner is None:
                # A key first seen with NULL is a column of type undefined, as CrateDB's dynamic mapping
                # makes it; it gets its type with the first value (CrateDB then also renumbers it).
                self.object_keys[sub] = coltypes.UNDEFINED
                undefined.append(sub)
            elif known is None:
                self.object_keys[sub] = coltypes.infer_type(inner)
                self._position(sub)
            elif known == coltypes.UNDEFINED and inner is not None:
                self.object_keys[sub] = coltypes.infer_type(inner)
            if isinstance(inner, dict):
                self._learn_keys(sub, inner, undefined)

    def key_of(self, doc: dict[str, Any]) -> tuple[Any, ...] | None:
        """The row's primary key values, None without a primary key; a NULL (or missing) value is
        ``SQLParseException[A primary key value must not be NULL]``, as CrateDB 6.4.3 answered it."""
        if not self.primary_key:
            return None
        key = tuple(doc.get(name) for name in self.primary_key)
        if any(value is None for value in key):
            raise sql_parse("A primary key value must not be NULL")
        return key

    def has_key(self, doc: dict[str, Any]) -> bool:
        key = self.key_of(doc)
        return key is not None and key in self.by_key

    def reindex(self) -> None:
        """After rows were removed: the key index again."""
        self.by_key = {}
        for row in self.rows:
            key = self.key_of(row.doc)
            if key is not None:
                self.by_key[key] = row

    def partition_of(self, doc: dict[str, Any]) -> str | None:
        """The row's partition ident (None: not partitioned)."""
        if self.partitioned_by is None:
            return None
        return partition_ident([partition_string(doc.get(self.partitioned_by))])

    def check_writable(self, doc: dict[str, Any]) -> str | None:
        """The row's partition ident (None: not partitioned); ClusterBlockException (4035) when writes into
        that partition are blocked, as CrateDB refuses INSERT, UPDATE and COPY FROM there."""
        ident = self.partition_of(doc)
        if ident is not None and ident in self.write_blocked:
            raise write_blocked()
        return ident

    @property
    def shards_held(self) -> int:
        """Shards open: a partitioned table's per partition, none before its first row."""
        return self.shards * len(self.partitions) if self.partitioned_by is not None else self.shards

    def make_room(self, docs: Iterable[dict[str, Any]]) -> None:
        """Before rows are written: the partitions they need that do not exist yet must fit the cluster's
        shard limit, or the whole statement is refused (CrateDB creates a write's partitions first)."""
        new = {ident for doc in docs if (ident := self.partition_of(doc)) is not None} - set(self.partitions)
        if new and self.room is not None:
            self.room(self.shards * len(new))

    def store(self, row_id: str, doc: dict[str, Any], overwrite: bool = False) -> None:
        """Keep a row; with a primary key a row with the same key is ``DuplicateKeyException`` (4091), or,
        with ``overwrite`` (COPY FROM's ``overwrite_duplicates``), replaced in place."""
        ident = self.check_writable(doc)
        key = self.key_of(doc)
        if key is not None and key in self.by_key:
            if not overwrite:
                raise duplicate_key()
            self.by_key[key].doc = doc
            self.written(self.by_key[key])
            return
        if ident is not None and ident not in self.partitions:
            if self.room is not None:
                self.room(self.shards)
            self.partitions[ident] = doc.get(self.partitioned_by or "")
        digest = hashlib.blake2b(row_id.encode(), digest_size=8).digest()
        shard = int.from_bytes(digest, "big") % self.shards
        row = StoredRow(row_id, ident, shard, doc)
        self.written(row)
        self.rows.append(row)
        if key is not None:
            self.by_key[key] = row

    def written(self, row: StoredRow) -> None:
        """A write of the row: its next sequence number (SEQUENCE_COLUMNS)."""
        self.last_seq_no += 1
        row.seq_no = self.last_seq_no


class Catalog:
    """All user tables; ``lock`` guards schema changes and row inserts across server threads.

    ``max_shards``: ``cluster.max_shards_per_node`` of the one node (transient over persistent over
    CrateDB's default, 1,000): a table or partition that would open more shards is refused."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._tables: dict[tuple[str, str], Table] = {}
        self._ids = itertools.count(1)
        self.max_shards_settings: dict[str, int] = {}  # "transient" / "persistent" -> value

    @property
    def max_shards(self) -> int:
        settings = self.max_shards_settings
        return settings.get("transient", settings.get("persistent", DEFAULT_MAX_SHARDS_PER_NODE))

    def make_room(self, adding: int) -> None:
        held = sum(table.shards_held for table in self._tables.values())
        if held + adding > self.max_shards:
            raise shard_limit(adding, held, self.max_shards)

    def next_row_id(self) -> str:
        return f"row{next(self._ids):012d}"

    def get(self, schema: str, name: str, qualified: bool = True) -> Table:
        """The table, or CrateDB's ``Schemas.findRelation`` errors: SchemaUnknownException for a
        schema without tables, RelationUnknown naming what the statement wrote (``doc.t`` or ``t``),
        both with "Maybe you meant" candidates."""
        with self.lock:
            table = self._tables.get((schema, name))
            if table is not None:
                return table
            schemas = BUILTIN_SCHEMAS | {s for s, _ in self._tables}
            if qualified and schema not in schemas:
                raise schema_unknown(schema, similar(schema, sorted(schemas)))
            names = [n for s, n in self._tables if s == schema]
            raise relation_unknown(f"{schema}.{name}" if qualified else name, similar(name, names))

    def tables(self) -> list[Table]:
        with self.lock:
            return list(self._tables.values())

    def create(self, table: Table, if_not_exists: bool) -> bool:
        with self.lock:
            key = (table.schema, table.name)
            if key in self._tables:
                if if_not_exists:
                    return False
                raise relation_exists(table.fqn)
            if table.partitioned_by is None:  # a partitioned table opens shards with its partitions
                self.make_room(table.shards)
            table.room = self.make_room
            self._tables[key] = table
            return True

    def drop(self, schema: str, name: str, if_exists: bool, qualified: bool = True) -> bool:
        with self.lock:
            if self._tables.pop((schema, name), None) is not None:
                return True
            if if_exists:
                return False
            self.get(schema, name, qualified)  # raises what CrateDB raises for an unknown relation
            return False
