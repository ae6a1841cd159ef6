"""CrateDB identifiers: what a configuration may name, and how it is quoted into SQL.

Everything that reaches SQL text goes through `quote_ident` / `quote_column`; the patterns here are
deliberately narrower than CrateDB's (no quotes, dots, spaces, semicolons or comment markers can pass),
so that a configuration can never smuggle SQL into a statement.
"""

from __future__ import annotations

import re

IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# A column reference: a name, optionally followed by subscripts into objects, e.g. tags['host'].
COLUMN = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)((?:\['[A-Za-z_][A-Za-z0-9_]*'\])*)$")
SUBSCRIPT = re.compile(r"\['([A-Za-z_][A-Za-z0-9_]*)'\]")
MAX_IDENT_LENGTH = 255


def check_ident(value: str, what: str) -> str:
    """Return `value` if it is a plain identifier, else raise ValueError saying why."""
    if not value:
        raise ValueError(f"{what} is empty")
    if len(value) > MAX_IDENT_LENGTH:
        raise ValueError(f"{what} is longer than {MAX_IDENT_LENGTH} characters")
    if not IDENT.match(value):
        raise ValueError(
            f"{what} {value!r} is not a plain identifier (letters, digits and '_', not starting with a digit)"
        )
    return value


def check_column(value: str, what: str) -> str:
    """Return `value` if it is a column reference like `name` or `tags['host']`."""
    if not isinstance(value, str) or not COLUMN.match(value):
        raise ValueError(
            f"{what} {value!r} is not a column name (letters, digits and '_', optionally with "
            "subscripts like tags['host'])"
        )
    return value


def quote_ident(name: str) -> str:
    """Quote an identifier for CrateDB; identifiers are validated first, so this cannot be escaped."""
    check_ident(name, "identifier")
    return f'"{name}"'


def quote_column(column: str) -> str:
    """Quote a column reference: `tags['host']` becomes `"tags"['host']`."""
    match = COLUMN.match(column)
    if not match:
        raise ValueError(f"{column!r} is not a column name")
    return quote_ident(match.group(1)) + match.group(2)
