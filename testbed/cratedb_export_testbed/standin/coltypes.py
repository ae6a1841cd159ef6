"""Column types, CrateDB's implicit casts, timestamp parsing and ``date_trunc``.

Timestamps are kept as epoch milliseconds (UTC), as CrateDB stores and exports them. Casts follow
CrateDB's ``TimestampType``: integers are milliseconds, *floats are seconds* with a fraction,
strings are epoch-millisecond digits or ISO-8601 (with time zone only for ``WITH TIME ZONE``).
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from cratedb_export_testbed.standin.errors import cannot_cast, not_in_double, sql_parse

# name -> (CrateDB type name, type id used in ``col_types``)
_SCALARS = {
    "bigint": ("bigint", 10),
    "integer": ("integer", 9),
    "smallint": ("smallint", 8),
    "byte": ("byte", 2),  # the type `"char"`
    "ip": ("ip", 5),
    "geo_point": ("geo_point", 13),
    "text": ("text", 4),
    "double": ("double precision", 6),
    "real": ("real", 7),
    "boolean": ("boolean", 3),
    "timestamptz": ("timestamp with time zone", 11),
    "timestamp": ("timestamp without time zone", 15),
    "object": ("object", 12),
    "undefined": ("undefined", 0),
}
_ALIASES = {
    "BIGINT": "bigint", "LONG": "bigint", "INT8": "bigint",
    "INTEGER": "integer", "INT": "integer", "INT4": "integer",
    "SMALLINT": "smallint", "SHORT": "smallint", "INT2": "smallint",
    '"CHAR"': "byte", "BYTE": "byte",
    "IP": "ip", "GEO_POINT": "geo_point",
    "TEXT": "text", "STRING": "text", "VARCHAR": "text", "CHARACTER VARYING": "text",
    "DOUBLE": "double", "DOUBLE PRECISION": "double", "FLOAT8": "double",
    "REAL": "real", "FLOAT": "real", "FLOAT4": "real",
    "BOOLEAN": "boolean", "BOOL": "boolean",
    "TIMESTAMP WITH TIME ZONE": "timestamptz", "TIMESTAMPTZ": "timestamptz",
    "TIMESTAMP": "timestamp", "TIMESTAMP WITHOUT TIME ZONE": "timestamp",
    "OBJECT": "object", "OBJECT ( DYNAMIC )": "object",
}  # fmt: skip


@dataclass(frozen=True)
class ColumnType:
    kind: str  # a key of _SCALARS, or "array"
    inner: ColumnType | None = None

    @property
    def sql_name(self) -> str:
        if self.inner is not None:
            return f"{self.inner.sql_name}_array"
        return _SCALARS[self.kind][0]

    @property
    def type_id(self) -> Any:
        """The ``col_types`` entry: an int, or ``[100, inner]`` for arrays."""
        if self.inner is not None:
            return [100, self.inner.type_id]
        return _SCALARS[self.kind][1]

    @property
    def is_timestamp(self) -> bool:
        return self.kind in ("timestamp", "timestamptz")


TEXT = ColumnType("text")
BIGINT = ColumnType("bigint")
INTEGER = ColumnType("integer")
DOUBLE = ColumnType("double")
BOOLEAN = ColumnType("boolean")
OBJECT = ColumnType("object")
TIMESTAMPTZ = ColumnType("timestamptz")
TIMESTAMP = ColumnType("timestamp")
UNDEFINED = ColumnType("undefined")


def parse_type(words: str) -> ColumnType:
    """Read a type from its tokens joined by single spaces, e.g. ``ARRAY ( TEXT )``."""
    words = words.upper()
    match = re.fullmatch(r"ARRAY \( (.+) \)|(.+) \[ \]|(.+) \[\]", words)
    if match:
        return ColumnType("array", parse_type(next(g for g in match.groups() if g)))
    kind = _ALIASES.get(words)
    if kind is None:
        raise not_in_double(f"the data type {words}")
    return ColumnType(kind)


def infer_type(value: Any) -> ColumnType:
    """The type CrateDB's dynamic mapping gives a new column or object key."""
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, int):
        return BIGINT
    if isinstance(value, float):
        return DOUBLE
    if isinstance(value, dict):
        return OBJECT
    if isinstance(value, list):
        first = next((v for v in value if v is not None), "")
        return ColumnType("array", infer_type(first))
    return TEXT


def value_type(value: Any) -> ColumnType:
    """The type of a literal or parameter value: AstBuilder makes an integer literal INTEGER when it
    fits 31 bits, else BIGINT, and ``DataTypes.guessType`` types JSON parameters the same way
    (Jackson reads them as Integer or Long). NULL is ``undefined`` (type id 0)."""
    if value is None:
        return UNDEFINED
    if isinstance(value, int) and not isinstance(value, bool) and -(2**31) <= value < 2**31:
        return INTEGER
    return infer_type(value)


def source_type_name(value: Any) -> str:
    """How a cast error names the type of a value that came from a literal or parameter."""
    return value_type(value).sql_name


def cast(value: Any, target: ColumnType, *, param: bool = False) -> Any:
    """CrateDB's implicit cast of a literal or parameter value to a column type.

    A literal that does not cast is ``Cannot cast `'x'` of type `text` to type `t``` (the analyzer's
    ConversionException of a symbol); a parameter is ``Cannot cast value `x` to type `t``` (the
    SymbolEvaluator's ConversionException of a value)."""
    if value is None:
        return None
    try:
        return _cast(value, target)
    except (ValueError, TypeError, OverflowError):
        if param:
            raise sql_parse(f"Cannot cast value `{java_text(value)}` to type `{target.sql_name}`") from None
        raise cannot_cast(value, source_type_name(value), target.sql_name) from None


def java_text(value: Any) -> str:
    """``String.valueOf`` of a JSON value as Jackson reads it (List and Map toString)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(java_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={java_text(v)}" for k, v in value.items()) + "}"
    return str(value)


def _cast(value: Any, target: ColumnType) -> Any:
    kind = target.kind
    if kind == "undefined":  # a column learnt from a NULL takes anything
        return value
    if kind == "array":
        if not isinstance(value, list):
            raise TypeError
        assert target.inner is not None
        return [cast(v, target.inner) for v in value]
    if kind == "object":
        if not isinstance(value, dict):
            raise TypeError
        return value
    if kind == "geo_point":
        return _geo_point(value)
    if isinstance(value, (dict, list)):
        raise TypeError
    if kind == "ip":
        if not isinstance(value, str):
            raise TypeError
        return str(ipaddress.ip_address(value))  # as CrateDB 6.4.3 gives it back: '::1', '10.0.0.1'
    if kind in _INTEGER_BITS:
        if isinstance(value, bool):
            raise TypeError
        number = int(value)  # Long.parseLong / Number.longValue: strings of digits, numbers truncated
        limit = 2 ** (_INTEGER_BITS[kind] - 1)
        if not -limit <= number < limit:
            raise OverflowError
        return number
    if kind in ("double", "real"):
        if isinstance(value, bool):
            raise TypeError
        return float(value)
    if kind == "boolean":
        return _to_bool(value)
    if kind == "text":
        if isinstance(value, bool):
            return "t" if value else "f"
        return value if isinstance(value, str) else str(value)
    return to_epoch_ms(value, with_tz=kind == "timestamptz")


_INTEGER_BITS = {"bigint": 64, "integer": 32, "smallint": 16, "byte": 8}
_WKT_POINT = re.compile(r"\s*POINT\s*\(\s*(\S+)\s+(\S+)\s*\)\s*", re.IGNORECASE)


def _geo_point(value: Any) -> list[float]:
    """``GeoPointType``: ``[lon, lat]`` or WKT ``POINT (lon lat)``, within the earth's bounds."""
    if isinstance(value, str):
        match = _WKT_POINT.fullmatch(value)
        if not match:
            raise ValueError(value)
        value = [float(match[1]), float(match[2])]
    if not isinstance(value, list) or len(value) != 2 or any(isinstance(v, bool) for v in value):
        raise TypeError
    lon, lat = (float(v) for v in value)
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise ValueError(value)
    return [lon, lat]


_BOOLEANS = {"f": False, "false": False, "n": False, "no": False, "off": False, "0": False,
             "t": True, "true": True, "y": True, "yes": True, "on": True, "1": True}  # fmt: skip


def _to_bool(value: Any) -> bool:
    """``BooleanType.implicitCast``: its BOOLEAN_MAP for strings, ``> 0`` for numbers."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _BOOLEANS:
        return _BOOLEANS[value.lower()]
    if isinstance(value, int | float):
        return value > 0
    raise TypeError


def to_epoch_ms(value: Any, with_tz: bool = True) -> int:
    if isinstance(value, bool):
        raise TypeError
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError
        return int(value * 1000)  # CrateDB reads floats as seconds with a fraction
    if isinstance(value, str):
        return _parse_timestamp(value, with_tz)
    raise TypeError


_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?"
    r"(Z|[+-]\d{2}(?::?\d{2})?)?)?",
    re.IGNORECASE,
)


def _parse_timestamp(text: str, with_tz: bool) -> int:
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    match = _ISO.fullmatch(text)
    if not match:
        raise ValueError(text)
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    moment = datetime(
        int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
        int((fraction or "0")[:6].ljust(6, "0")), tzinfo=UTC,
    )  # fmt: skip
    if zone and with_tz and zone.upper() != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:] or 0))
        moment -= sign * offset
    return _ms(moment)


def _ms(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


_UNITS = ("year", "quarter", "month", "week", "day", "hour", "minute", "second")


def date_trunc(unit: str, epoch_ms: int | None) -> int | None:
    """``date_trunc(unit, ts)`` in UTC, as CrateDB computes it for generated partition columns."""
    unit = unit.lower()
    if unit not in _UNITS:
        raise not_in_double(f"date_trunc unit '{unit}'")
    if epoch_ms is None:
        return None
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=epoch_ms)
    if unit in ("year", "quarter", "month"):
        month = {"year": 1, "month": moment.month, "quarter": (moment.month - 1) // 3 * 3 + 1}[unit]
        return _ms(datetime(moment.year, month, 1, tzinfo=UTC))
    if unit == "week":
        monday = date.fromordinal(moment.date().toordinal() - moment.weekday())
        return _ms(datetime(monday.year, monday.month, monday.day, tzinfo=UTC))
    keep = {"day": 3, "hour": 4, "minute": 5, "second": 6}[unit]
    fields = moment.timetuple()[:keep]
    return _ms(datetime(*fields, tzinfo=UTC))  # type: ignore[misc]
