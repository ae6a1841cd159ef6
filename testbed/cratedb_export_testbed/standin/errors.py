"""CrateDB's error model: ``<ExceptionName>[<text>]`` messages, numeric codes and HTTP statuses.

Every refusal of the double goes through :class:`CrateError` so that the HTTP layer can answer
exactly as CrateDB's ``HttpError`` does and ``sys.jobs_log.error`` can keep only the text.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import Any

# CrateDB's ``HttpErrorStatus`` (io.crate.rest.action, 6.4.3): every error code it defines, with the
# HTTP status it is answered with. Five-digit codes belong to the range of their first three digits'
# status (40410 is a 404, 40910 a 409), so ``code // 10`` is wrong for them; a code missing here is
# not one CrateDB answers.
_STATUS_BY_CODE = {
    **dict.fromkeys((4000, 4001, 4002, 4003, 4004, 4005, 4006, 4007, 4008, 40000, 40010, 40011, 40012, 40013), 400),
    **dict.fromkeys((4010, 4011), 401),
    **dict.fromkeys(range(4030, 4038), 403),
    **dict.fromkeys((*range(4040, 4050), 40410, 40411), 404),
    **dict.fromkeys((*range(4090, 4100), 40910, 40911), 409),
    4290: 429,
    **dict.fromkeys(range(5000, 5007), 500),
    **dict.fromkeys(range(5030, 5036), 503),
}

DOUBLE_NAME = "the CrateDB test double"


def http_status(code: int) -> int:
    """The HTTP status CrateDB answers an error code with, as its ``HttpErrorStatus`` maps them."""
    try:
        return _STATUS_BY_CODE[code]
    except KeyError:
        raise ValueError(f"{code} is not an error code CrateDB's HttpErrorStatus defines") from None


class CrateError(Exception):
    """An error answered to the client; ``text`` is what CrateDB keeps in ``sys.jobs_log.error``."""

    def __init__(self, name: str, text: str, code: int) -> None:
        super().__init__(f"{name}[{text}]")
        http_status(code)  # only codes CrateDB answers with
        self.name = name
        self.text = text
        self.code = code

    @property
    def message(self) -> str:
        return f"{self.name}[{self.text}]"

    @property
    def status(self) -> int:
        return http_status(self.code)

    def reply(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "code": self.code}}


def sql_parse(text: str) -> CrateError:
    """Invalid SQL, failed casts, and every IllegalArgumentException (CrateDB maps those to 4000)."""
    return CrateError("SQLParseException", text, 4000)


def parsing(text: str) -> CrateError:
    """A grammar error: CrateDB's ``ParsingException`` (``line L:C: ...``), code 4000."""
    return CrateError("ParsingException", text, 4000)


def unsupported(text: str) -> CrateError:
    return CrateError("UnsupportedFeatureException", text, 4004)


def not_in_double(what: str) -> CrateError:
    """A statement CrateDB may accept but the double does not model: refuse it loudly, never fake it."""
    return unsupported(f"{DOUBLE_NAME} does not support {what}")


def relation_unknown(name: str, candidates: Sequence[str] = ()) -> CrateError:
    """``RelationUnknown.of``: ``name`` is ``schema.table`` when the statement qualified it, else the bare
    table name; ``candidates`` are similar table names of the schema (see :func:`similar`)."""
    return CrateError("RelationUnknown", f"Relation '{name}' unknown{_maybe_you_meant(candidates)}", 4041)


def column_unknown(name: str) -> CrateError:
    return CrateError("ColumnUnknownException", f"Column {name} unknown", 4043)


def schema_unknown(schema: str, candidates: Sequence[str] = ()) -> CrateError:
    return CrateError("SchemaUnknownException", f"Schema '{schema}' unknown{_maybe_you_meant(candidates)}", 4045)


def _maybe_you_meant(candidates: Sequence[str]) -> str:
    from cratedb_export_testbed.standin.grammar import quote_if_needed  # grammar imports this module

    if not candidates:
        return ""
    if len(candidates) == 1:
        return f". Maybe you meant '{quote_if_needed(candidates[0])}'"
    return ". Maybe you meant one of: " + ", ".join(quote_if_needed(c) for c in candidates)


def similar(name: str, candidates: Iterable[str]) -> list[str]:
    """CrateDB's ``Schemas.getSimilarTables`` / ``getSimilarSchemas``: the (at most 5) candidates whose
    Lucene ``LevenshteinDistance`` similarity to ``name`` (case-insensitive) is above 0.7, best first."""
    scored = [(_similarity(name.lower(), c.lower()), c) for c in candidates]
    ranked = sorted((pair for pair in scored if pair[0] > _f32(0.7)), key=lambda pair: -pair[0])
    return [candidate for _, candidate in ranked[:5]]


def _similarity(target: str, other: str) -> float:
    """``1 - levenshtein(target, other) / max(len)``, as Lucene's ``LevenshteinDistance.getDistance``."""
    if not target or not other:
        return 1.0 if target == other else 0.0
    previous = list(range(len(target) + 1))
    for j, other_char in enumerate(other, 1):
        current = [j] + [0] * len(target)
        for i, target_char in enumerate(target, 1):
            cost = 0 if target_char == other_char else 1
            current[i] = min(current[i - 1] + 1, previous[i] + 1, previous[i - 1] + cost)
        previous = current
    # Java computes this in float: 1.0f - (float) d / max. Compared with 0.7f, so emulate float32.
    return _f32(1.0 - _f32(previous[-1] / max(len(target), len(other))))


def _f32(value: float) -> float:
    return struct.unpack("f", struct.pack("f", value))[0]


def partition_unknown(fqn: str, ident: str) -> CrateError:
    return CrateError("PartitionUnknownException", f"No partition for table '{fqn}' with ident '{ident}' exists", 4046)


def write_blocked() -> CrateError:
    """A write into a partition with ``blocks.write`` set, as CrateDB 6.4.3 answered an INSERT and an UPDATE."""
    return CrateError("ClusterBlockException", "blocked by: [RELATION_READ_AND_DDL_ONLY/8/index write (api)];", 4035)


def shard_limit(adding: int, held: int, limit: int) -> CrateError:
    """A table or partition beyond ``cluster.max_shards_per_node``, worded as CrateDB 6.4.3 answered it."""
    return sql_parse(
        f"Validation Failed: 1: this action would add [{adding}] total shards, but this cluster currently has "
        f"[{held}]/[{limit}] maximum shards open;"
    )


def relation_exists(fqn: str) -> CrateError:
    return CrateError("RelationAlreadyExists", f"Relation '{fqn}' already exists.", 4093)


def duplicate_key() -> CrateError:
    """A row whose primary key is taken, as CrateDB 6.4.3 answered it (HTTP 409)."""
    return CrateError("DuplicateKeyException", "A document with the same primary key exists already", 4091)


def operation_not_allowed(fqn: str, operation: str) -> CrateError:
    return CrateError(
        "OperationOnInaccessibleRelationException",
        f'The relation "{fqn}" doesn\'t support or allow {operation} operations',
        4007,
    )


def cannot_cast(value: Any, source_type: str, target_type: str) -> CrateError:
    shown = f"'{value}'" if isinstance(value, str) else _sql_literal(value)
    return sql_parse(f"Cannot cast `{shown}` of type `{source_type}` to type `{target_type}`")


def _sql_literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
