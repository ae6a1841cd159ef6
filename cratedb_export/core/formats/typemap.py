"""CrateDB column types → Arrow/Parquet types, and the conversion of one column's JSON values.

COPY TO writes every row as one JSON object: numbers and strings as JSON, timestamps as epoch
milliseconds, objects as JSON objects, arrays as JSON arrays, and the values of partition columns as
strings. Each column is converted as a whole (pyarrow infers what the JSON held, then a *safe* cast
brings it to the column's type), so a value that does not fit — an integer out of range, a fraction in
an integer column, a text in a number column — raises `Unrepresentable` instead of being truncated,
wrapped or dropped.

- byte, smallint, integer, bigint → int8, int16, int32, int64; real, double precision → float32, float64
- boolean → bool; text (also varchar/char) → string
- timestamp with time zone → timestamp[ms, tz=UTC] (an instant); without time zone → timestamp[ms] (naive)
- `<type>_array` → list<that type>; geo_point → list<float64> [lon, lat]; float_vector → list<float32>
- numeric, ip, bit → string, exactly as CrateDB wrote the value (numeric has no declared precision here)
- object, geo_shape and any other type → string holding the value's JSON text, exactly as CrateDB wrote it
  (`RawJSON`: cut out of the line, never parsed and re-written, so `1.10` stays `1.10`): dynamic objects gain keys
  from day to day, a JSON text column keeps one type, so the lake stays one dataset (a struct's type
  would change with every new key), and every reader parses JSON
docs/parquet.md has the same table, with the reasons.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import NoReturn

import orjson
import pyarrow as pa
import pyarrow.compute as pc

_SCALARS: dict[str, pa.DataType] = {
    "byte": pa.int8(),
    "char": pa.int8(),
    "smallint": pa.int16(),
    "short": pa.int16(),
    "integer": pa.int32(),
    "int": pa.int32(),
    "bigint": pa.int64(),
    "long": pa.int64(),
    "real": pa.float32(),
    "float": pa.float32(),
    "double precision": pa.float64(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
    "text": pa.string(),
    "character": pa.string(),
    "character varying": pa.string(),
    "varchar": pa.string(),
    "ip": pa.string(),
    "bit": pa.string(),
    "numeric": pa.string(),
    "timestamp with time zone": pa.timestamp("ms", tz="UTC"),
    "timestamp without time zone": pa.timestamp("ms"),
    "geo_point": pa.list_(pa.float64()),
    "float_vector": pa.list_(pa.float32()),
}
JSON_TEXT = "json"  # the Arrow field metadata value that marks a column holding JSON text


class Unrepresentable(ValueError):
    """A value of a column that its Parquet type cannot hold as it is."""


def arrow_type(data_type: str) -> pa.DataType:
    """The Arrow type a CrateDB column type is written as."""
    base = data_type.lower()
    if base.endswith("_array"):
        return pa.list_(arrow_type(base[: -len("_array")]))
    return _SCALARS.get(base, pa.string())


def holds_json_text(data_type: str) -> bool:
    base = data_type.lower()
    while base.endswith("_array"):
        base = base[: -len("_array")]
    return base not in _SCALARS


def arrow_field(name: str, data_type: str) -> pa.Field:
    """The Parquet column of a CrateDB column; its metadata keeps the CrateDB type for readers and tools."""
    metadata = {"cratedb_type": data_type}
    if holds_json_text(data_type):
        metadata["encoding"] = JSON_TEXT
    return pa.field(name, arrow_type(data_type), nullable=True, metadata=metadata)


def to_arrow(values: list, data_type: str, *, decimals: bool = False) -> pa.Array:
    """One column's JSON values (as `json.loads` gave them) as an Arrow array of the column's type.

    `decimals`: the values were parsed with `parse_float=Decimal` (the table has NUMERIC columns).
    """
    target = arrow_type(data_type)
    if holds_json_text(data_type):
        return pa.array(_json_texts(values, data_type), type=target)
    if data_type.lower() == "numeric":
        return pa.array(_decimal_texts(values), type=target)
    if decimals:
        values = [_undecimal(v) for v in values]
    try:
        inferred = pa.array(values, from_pandas=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
        raise Unrepresentable(_first_odd(values, f"values of mixed or oversized kinds ({exc})")) from None
    return _cast(inferred, target, data_type, values)


def _cast(inferred: pa.Array, target: pa.DataType, data_type: str, values: list) -> pa.Array:
    kind = inferred.type
    if pa.types.is_null(kind):
        return pa.nulls(len(inferred), type=target)
    if pa.types.is_list(target):
        if not pa.types.is_list(kind):
            raise Unrepresentable(_first_odd(values, f"expected JSON arrays, got {kind}"))
        element_type = data_type.lower().removesuffix("_array") if data_type.lower().endswith("_array") else ""
        if data_type.lower() in ("geo_point", "float_vector"):
            element_type = "double precision" if data_type.lower() == "geo_point" else "real"
        flat = _cast(inferred.flatten(), target.value_type, element_type, inferred.flatten().to_pylist())
        offsets = inferred.offsets
        return pa.ListArray.from_arrays(offsets, flat, type=target, mask=inferred.is_null())
    if pa.types.is_string(target):
        if not pa.types.is_string(kind):
            raise Unrepresentable(_first_odd(values, f"expected text, got {kind}"))
        return inferred
    if pa.types.is_timestamp(target):
        if pa.types.is_string(kind):  # partition columns are written as strings of epoch milliseconds
            inferred = _safe(inferred, pa.int64(), values)
            kind = inferred.type
        if not pa.types.is_integer(kind):
            raise Unrepresentable(_first_odd(values, f"expected epoch milliseconds, got {kind}"))
        return _safe(_safe(inferred, pa.int64(), values), target, values)
    if pa.types.is_boolean(target):
        if not (pa.types.is_boolean(kind) or pa.types.is_string(kind)):
            raise Unrepresentable(_first_odd(values, f"expected booleans, got {kind}"))
        return _safe(inferred, target, values)
    if pa.types.is_integer(target):
        # a float (1.0 or 1.5) may come: the safe cast refuses 1.5 rather than truncating it to 1
        if not (pa.types.is_integer(kind) or pa.types.is_string(kind) or pa.types.is_floating(kind)):
            raise Unrepresentable(_first_odd(values, f"expected integers, got {kind}"))
        return _safe(inferred, target, values)
    if pa.types.is_floating(target):
        if not (pa.types.is_floating(kind) or pa.types.is_integer(kind) or pa.types.is_string(kind)):
            raise Unrepresentable(_first_odd(values, f"expected numbers, got {kind}"))
        cast = _safe(inferred, target, values)
        if pa.types.is_float32(target) and not pa.types.is_string(kind):
            # double → float32 turns values beyond float32's range into infinity; refuse that
            before = pc.sum(pc.is_inf(inferred.cast(pa.float64()))).as_py() or 0
            after = pc.sum(pc.is_inf(cast)).as_py() or 0
            if after != before:
                raise Unrepresentable(_first_odd(values, "a value beyond the range of real (float32)"))
        return cast
    raise Unrepresentable(f"no conversion to {target}")  # pragma: no cover - every target is handled above


def _undecimal(value: object) -> object:
    """A JSON value with its Decimals as the doubles json.loads would have made of them."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, list):
        return [_undecimal(v) for v in value]
    return value


def _decimal_texts(values: list) -> list:
    """NUMERIC values as the exact decimal text CrateDB wrote (parsed with Decimal, never through a double)."""
    out = []
    for value in values:
        if value is None or isinstance(value, str):
            out.append(value)
        elif isinstance(value, int | Decimal) and not isinstance(value, bool):
            out.append(str(value))
        else:
            raise Unrepresentable(f"expected a decimal number, got {_show(value)}")
    return out


def _safe(array: pa.Array, target: pa.DataType, values: list) -> pa.Array:
    try:
        return array.cast(target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise Unrepresentable(_first_odd(values, f"cannot be {target}: {exc}")) from None


def _json_texts(values: list, data_type: str) -> list:
    """The JSON text of each value, as UTF-8 (None stays null)."""
    if data_type.lower().endswith("_array"):
        element = data_type.lower()[: -len("_array")]
        return [None if v is None else _json_texts(v, element) if isinstance(v, list) else _bad(v) for v in values]
    out: list[bytes | None] = []
    dumps = orjson.dumps
    for value in values:
        if value is None:
            out.append(None)
            continue
        if type(value) is RawJSON:  # the text exactly as CrateDB wrote it; NaN/Infinity are no JSON text
            text = value.encode()
            try:
                orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                raise Unrepresentable(f"value {_show(str(value))} has no JSON text ({exc})") from None
            out.append(text)
            continue
        try:
            out.append(dumps(value))
        except TypeError:  # Decimals (tables with NUMERIC columns), integers beyond 64 bits
            try:
                out.append(_DUMPS(value).encode())
            except ValueError as exc:
                raise Unrepresentable(f"value {_show(value)} has no JSON text ({exc})") from None
    return out


def _decimal_json(value: object) -> object:
    if isinstance(value, Decimal):
        as_float = float(value)
        if Decimal(repr(as_float)) == value:
            return as_float
        raise ValueError(f"{value} does not fit a JSON double")
    raise TypeError(f"{type(value).__name__} is not JSON")


_DUMPS = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_decimal_json).encode


class RawJSON(str):
    """The text of a JSON value exactly as it stood in the line (for columns kept as JSON text): written as
    it is, so no number is re-formatted or rounded (`1.10`, `1.000000000000000000001` stay as written)."""


class NonFinite(float):
    """NaN or ±Infinity as json.loads read it (orjson refuses them, and would write NaN as null): a double
    column holds it as is; JSON text cannot, so such a value in an object fails the day."""


def _bad(value: object) -> NoReturn:
    raise Unrepresentable(f"expected a JSON array, got {_show(value)}")


def _first_odd(values: list, reason: str) -> str:
    """The reason, with the first value that is not like the others (for the error message)."""
    kinds: dict[type, object] = {}
    for value in values:
        if value is not None:
            kinds.setdefault(type(value), value)
    shown = ", ".join(f"{t.__name__} {_show(v)}" for t, v in list(kinds.items())[:3])
    return f"{reason}; values seen: {shown}" if shown else reason


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
