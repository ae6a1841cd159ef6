"""Just enough of ``java.net.URI`` to fail and split ``s3://`` URIs where CrateDB does.

CrateDB builds each shard's target with ``new URI(...)``; a ``URISyntaxException`` becomes
``SQLParseException[Invalid uri '<uri>']``. When the authority is not ``[user@]host[:port]``
Java falls back to a "registry" authority (host null), which is how a raw ``/`` in a secret or
a host that is not a valid host name end up misread. Getters decode ``%XX`` as UTF-8; ``+``
stays ``+`` (RFC 3986, not form decoding).
"""

from __future__ import annotations

import re
import string
import unicodedata
from dataclasses import dataclass
from urllib.parse import unquote

_UNRESERVED = set(string.ascii_letters + string.digits + "-_.!~*'()")
_USERINFO = _UNRESERVED | set(";:&=+$,%")
_REGISTRY = _UNRESERVED | set("$,;:@&=+%")
_ILLEGAL = set(' "<>\\^`{|}[]')
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")
_IPV4 = re.compile(r"(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})")


class JavaURISyntaxError(ValueError):
    """What ``new URI(text)`` would throw; the message mimics Java's."""


@dataclass(frozen=True)
class JavaUri:
    scheme: str | None
    raw_authority: str | None
    raw_user_info: str | None
    host: str | None
    port: int
    raw_path: str | None

    @property
    def authority(self) -> str | None:
        return _decode(self.raw_authority)

    @property
    def user_info(self) -> str | None:
        return _decode(self.raw_user_info)

    @property
    def path(self) -> str | None:
        return _decode(self.raw_path)


def _decode(value: str | None) -> str | None:
    return None if value is None else unquote(value, errors="replace")


def parse(text: str) -> JavaUri:
    _check_characters(text)
    head, _, _fragment = text.partition("#")
    match = re.match(r"([A-Za-z][A-Za-z0-9+.-]*):", head)
    scheme = match.group(1) if match else None
    rest = head[match.end() :] if match else head
    if scheme is not None and not rest.startswith("/"):
        return JavaUri(scheme, None, None, None, -1, None)  # opaque, like "s3:bucket"
    authority = None
    if rest.startswith("//"):
        end = next((i for i, c in enumerate(rest[2:], 2) if c in "/?"), len(rest))
        authority, rest = rest[2:end] or None, rest[end:]
    path = rest.partition("?")[0]
    if authority is None:
        return JavaUri(scheme, None, None, None, -1, path)
    server = _parse_server(authority)
    if server is not None:
        user_info, host, port = server
        return JavaUri(scheme, authority, user_info, host, port, path)
    if not _all_in(authority, _REGISTRY):
        raise JavaURISyntaxError(f"Illegal character in authority at index {text.index('//') + 2}: {text}")
    return JavaUri(scheme, authority, None, None, -1, path)


def _check_characters(text: str) -> None:
    for index, char in enumerate(text):
        if char == "%":
            if not re.fullmatch(r"[0-9A-Fa-f]{2}", text[index + 1 : index + 3]):
                raise JavaURISyntaxError(f"Malformed escape pair at index {index}: {text}")
        elif char == "[" and re.match(r"\[[0-9A-Fa-f:.]+\]", text[index:]) and "//" in text[:index]:
            continue  # an IPv6 literal host
        elif char == "]" and re.search(r"\[[0-9A-Fa-f:.]+$", text[:index]):
            continue
        elif char in _ILLEGAL or _is_control_or_space(char):
            component, at = _component(text, index)
            raise JavaURISyntaxError(f"Illegal character in {component} at index {at}: {text}")
    if text.count("#") > 1:
        index = text.index("#", text.index("#") + 1)
        raise JavaURISyntaxError(f"Illegal character in fragment at index {index}: {text}")


def _all_in(text: str, allowed: set[str]) -> bool:
    """Java also lets non-ASCII "other" characters through in user info, registry names and paths."""
    return all(char in allowed or (ord(char) > 0x7F and not _is_control_or_space(char)) for char in text)


def _is_control_or_space(char: str) -> bool:
    return ord(char) < 0x20 or ord(char) == 0x7F or (ord(char) > 0x7F and unicodedata.category(char)[0] in "ZC")


def _component(text: str, index: int) -> tuple[str, int]:
    """Where an illegal character sits; Java reports authority errors at the authority's start."""
    start = text.find("//")
    if start != -1 and index > start:
        end = next((i for i in range(start + 2, len(text)) if text[i] in "/?#"), len(text))
        if index < end:
            return "authority", start + 2
    return ("query" if "?" in text[:index] else "path"), index


def _parse_server(authority: str) -> tuple[str | None, str, int] | None:
    """``[userinfo@]host[:port]``, or None where Java would fall back to a registry authority."""
    user_info, at, host_port = authority.partition("@")
    if not at:
        user_info, host_port = None, authority
    elif not _all_in(user_info, _USERINFO):
        return None
    host_match = re.match(r"\[[0-9A-Fa-f:.]+\]|[^:]*", host_port)
    host = host_match.group(0) if host_match else ""
    port_text = host_port[len(host) :]
    if not _valid_host(host) or (port_text and not re.fullmatch(r":\d*", port_text)):
        return None
    port = int(port_text[1:]) if len(port_text) > 1 else -1
    return user_info, host, port


def _valid_host(host: str) -> bool:
    if host.startswith("["):
        return True
    ipv4 = _IPV4.fullmatch(host)
    if ipv4:
        return all(int(part) <= 255 for part in ipv4.groups())
    if not _HOSTNAME.fullmatch(host):
        return False
    labels = host.rstrip(".").split(".")
    # In a dotted name the last label must start with a letter ("a.1", "1.2.3" are no hosts).
    return len(labels) == 1 or labels[-1][0].isalpha()
