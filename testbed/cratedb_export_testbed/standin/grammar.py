"""Check a statement against CrateDB's real grammar before the double tries to evaluate it.

``cratedb_sqlparse`` ships parser code generated from CrateDB's own ``SqlBaseParser.g4``. Its
``sqlparse()`` helper is not used: with ``raise_exception=True`` it crashes on some errors
(AttributeError on ``e.ctx`` in 0.0.17), without it an error it cannot match to a statement is
dropped, and it accepts several statements. CrateDB itself parses a request with the
``singleStatement`` rule and stops at the first syntax error; this module does the same with the
generated lexer and parser and a listener that keeps every error.
"""

from __future__ import annotations

import functools
import re
import threading
from dataclasses import dataclass

from antlr4 import CommonTokenStream
from antlr4.error.ErrorListener import ErrorListener
from antlr4.tree.Tree import TerminalNode

# Importing the parser module also installs the lexer actions that dollar-quoted strings need.
from cratedb_sqlparse.generated_parser.SqlBaseLexer import SqlBaseLexer
from cratedb_sqlparse.generated_parser.SqlBaseParser import SqlBaseParser
from cratedb_sqlparse.parser import CaseInsensitiveStream

from cratedb_export_testbed.standin.errors import parsing

# The ANTLR Python runtime shares its DFA caches between parsers without locking, and the
# server parses on many threads at once.
_PARSE_LOCK = threading.Lock()


class _Collector(ErrorListener):
    def __init__(self) -> None:
        self.errors: list[tuple[int, int, str]] = []

    def syntaxError(self, recognizer, offendingSymbol, line, column, msg, e) -> None:
        self.errors.append((line, column, msg))


@dataclass(frozen=True)
class Parsed:
    """A statement that passed the grammar: the parse tree plus where each ``?`` stands."""

    statement: SqlBaseParser.StatementContext
    placeholder_tokens: tuple[int, ...]

    def placeholder_index(self, token_index: int) -> int:
        """CrateDB numbers ``?`` placeholders from left to right, starting at 0."""
        return self.placeholder_tokens.index(token_index)


def parse(stmt: str) -> Parsed:
    """Parse one statement or raise ``ParsingException[line L:C: ...]`` as CrateDB does.

    The text after ``line L:C:`` is the Python ANTLR runtime's on cratedb-sqlparse's grammar, whose
    ``singleStatement`` requires a statement: where CrateDB 6.4.3's grammar (``statement? SEMICOLON?
    EOF``) expects ``{<EOF>, ..., ';'}`` at the start, or says "extraneous input", the wording differs."""
    collector = _Collector()
    with _PARSE_LOCK:
        lexer = SqlBaseLexer(CaseInsensitiveStream(stmt))
        lexer.removeErrorListeners()
        lexer.addErrorListener(collector)
        tokens = CommonTokenStream(lexer)
        parser = SqlBaseParser(tokens)
        parser.removeErrorListeners()
        parser.addErrorListener(collector)
        tree = parser.singleStatement()
    if collector.errors:
        line, column, msg = collector.errors[0]
        # CrateDB's ParsingException reports a 1-based column.
        raise parsing(f"line {line}:{column + 1}: {msg}")
    _refuse_identifiers(tree)
    placeholders = tuple(t.tokenIndex for t in tokens.tokens if t.type == SqlBaseLexer.QUESTION)
    return Parsed(tree.statement(), placeholders)


_IDENTIFIER_ERRORS = {
    "DigitIdentifierContext": "identifiers must not start with a digit; surround the identifier with double quotes",
    "BackQuotedIdentifierContext": "backquoted identifiers are not supported; use double quotes to quote identifiers",
}


def _refuse_identifiers(node: object) -> None:
    """What CrateDB's AstBuilder refuses while it walks the tree (``exitDigitIdentifier``, ...)."""
    if isinstance(node, TerminalNode):
        return
    for child in node.getChildren():  # type: ignore[attr-defined]
        _refuse_identifiers(child)
    message = _IDENTIFIER_ERRORS.get(type(node).__name__)
    if message is not None:
        token = node.start  # type: ignore[attr-defined]
        raise parsing(f"line {token.line}:{token.column + 1}: {message}")


def _expression_kinds(text: str) -> set[str]:
    """The node classes down the single-child chain of ``text`` parsed with CrateDB's
    ``singleExpression`` rule (empty on errors)."""
    collector = _Collector()
    with _PARSE_LOCK:
        lexer = SqlBaseLexer(CaseInsensitiveStream(text))
        lexer.removeErrorListeners()
        lexer.addErrorListener(collector)
        parser = SqlBaseParser(CommonTokenStream(lexer))
        parser.removeErrorListeners()
        parser.addErrorListener(collector)
        tree = parser.singleExpression()
    if collector.errors:
        return set()
    node, kinds = tree.expr(), set()
    while True:
        kinds.add(type(node).__name__)
        if node.getChildCount() != 1 or isinstance(node.getChild(0), TerminalNode):
            return kinds
        node = node.getChild(0)


_RESERVED_FUNCTIONS = {"current_catalog", "current_role", "current_session", "current_user", "user", "session_user"}


@functools.cache
def reserved_keywords() -> frozenset[str]:
    """CrateDB's ``Identifiers.KEYWORDS`` that are reserved: lexer literals that do not parse as a
    column reference or a function call on their own."""
    reserved = set()
    for literal in SqlBaseLexer.literalNames:
        word = literal.strip("'")
        if not re.fullmatch(r"[a-zA-Z_]+[a-zA-Z0-9_]*", word):
            continue
        kinds = _expression_kinds(word)
        if word.lower() in _RESERVED_FUNCTIONS or not kinds & {"ColumnReferenceContext", "FunctionCallContext"}:
            reserved.add(word.upper())
    return frozenset(reserved)


def quote_if_needed(identifier: str) -> str:
    """``Identifiers.quoteIfNeeded``: quoted when not lower-case letters, digits and ``_`` (first not a
    digit) or when a reserved keyword."""
    plain = re.fullmatch(r"[a-z_][a-z0-9_]*", identifier) is not None
    if plain and identifier.upper() not in reserved_keywords():
        return identifier
    return '"' + identifier.replace('"', '""') + '"'
