"""Keeping credentials out of every message: exceptions, logs, metadata.

CrateDB echoes the full s3:// URI in `Invalid uri` errors, the crate client logs request payloads (args
included) at DEBUG, and botocore logs signing material at DEBUG. So every message that comes back from
CrateDB or a client passes through `redact`, and a log-record factory redacts every record created in
this process once a secret is registered, whatever logger it comes from.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"
_USER_INFO = re.compile(r"((?:s3a?|https?)://)[^\s'\"@/]*(?::[^\s'\"@]*)?@", re.IGNORECASE)
_MIN_SECRET_LENGTH = 4  # shorter values would mask ordinary words; such credentials are refused elsewhere


class Redactor:
    """Replaces registered secrets, raw and in their URL-encoded forms, and any s3:// user-info."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._forms: tuple[str, ...] = ()

    def add(self, *secrets: str | None) -> None:
        with self._lock:
            forms = set(self._forms)
            for secret in secrets:
                if secret and len(secret) >= _MIN_SECRET_LENGTH:
                    forms.update(_encoded_forms(secret))
            # Longest first, so a secret that contains another is masked whole.
            self._forms = tuple(sorted(forms, key=len, reverse=True))

    def redact(self, text: object) -> str:
        message = text if isinstance(text, str) else str(text)
        for form in self._forms:
            if form in message:
                message = message.replace(form, MASK)
        return _USER_INFO.sub(rf"\g<1>{MASK}@", message)

    @property
    def active(self) -> bool:
        return bool(self._forms)


def _encoded_forms(secret: str) -> set[str]:
    forms = {
        secret,
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        quote(quote(secret, safe=""), safe=""),
        # RFC 3986 user-info (Java's URI, Rust's url): sub-delimiters such as '+' and '=' kept, '/' escaped.
        quote(secret, safe="!$&'()*+,;=:"),
    }
    # Percent escapes are case-insensitive; clients differ in which case they print.
    forms |= {re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), f) for f in forms}
    return {f for f in forms if f}


REDACTOR = Redactor()
redact = REDACTOR.redact


def _redacting_factory(base: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        if REDACTOR.active:
            try:
                message = record.getMessage()
            except Exception:  # a malformed record: leave it to the logging machinery to report
                return record
            record.msg, record.args = REDACTOR.redact(message), None
            if record.exc_info and record.exc_info[0] is not None:
                text = logging.Formatter().formatException(record.exc_info)
                record.exc_text, record.exc_info = REDACTOR.redact(text), None
        return record

    factory.redacting = True  # type: ignore[attr-defined]
    return factory


_install_lock = threading.Lock()


def protect_process_logs(*secrets: str | None) -> None:
    """Register secrets and make sure every log record created in this process is redacted."""
    REDACTOR.add(*secrets)
    with _install_lock:
        current = logging.getLogRecordFactory()
        if not getattr(current, "redacting", False):
            logging.setLogRecordFactory(_redacting_factory(current))
