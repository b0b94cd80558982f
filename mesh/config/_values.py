"""Parsers for the small value syntaxes of the config: durations, addresses, hash keys.

They are public because the command line (``mesh proxy --listen ADDR``) reads
the same syntaxes as the file. Each raises :class:`InvalidValue`, a
:class:`ValueError` that keeps the reason and the fix apart so the loader can
wrap them into a :class:`~mesh.config.ConfigError` that also names the place.
"""

from __future__ import annotations

import ipaddress
import math
import re

from mesh.config._errors import one_of

__all__ = [
    "HASH_KEYS",
    "InvalidValue",
    "describe",
    "format_address",
    "parse_address",
    "parse_duration",
    "parse_hash_key",
]

# Go/Envoy-style units, compound forms allowed ("1m30s"). "ms" and "us" come
# before "m" and "s" in the alternation so that "250ms" is not read as 250 m + "s".
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(ms|us|h|m|s)")
_PLAIN_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 0.000001}
_DURATION_FIX = "write a number of seconds (15, 0.25) or a string with units: '15s', '250ms', '1m30s'."

_HOSTNAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?")

HASH_KEYS = ("path", "host", "service", "method", "source_ip", "header:<name>")


class InvalidValue(ValueError):
    """A value that does not follow its syntax; ``reason`` and ``fix`` are one sentence each."""

    def __init__(self, reason: str, fix: str) -> None:
        super().__init__(reason, fix)
        self.reason = reason
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.reason}. Fix: {self.fix}"


def parse_duration(value: object) -> float:
    """Seconds in ``value``: a non-negative number, or a string such as "250ms" or "1m30s".

    Units are h, m, s, ms and us, and may be combined; a string without a unit
    ("15") is seconds, like a number. Raises :class:`InvalidValue`.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidValue(f"expected a duration, got {describe(value)}", _DURATION_FIX)
    seconds = _duration_from_text(value.strip()) if isinstance(value, str) else float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise InvalidValue(f"duration {value!r} is not a finite, non-negative time", _DURATION_FIX)
    return seconds


def _duration_from_text(text: str) -> float:
    if _PLAIN_NUMBER.fullmatch(text):
        # Seconds, as a number would be: command-line flags and env-substituted
        # YAML arrive as strings, and "15" meaning 15 s surprises nobody.
        return float(text)
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise InvalidValue(f"{text!r} is not a duration", _DURATION_FIX)
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def parse_address(value: object) -> tuple[str, int]:
    """``(host, port)`` from "host:port" or "[ipv6]:port"; the brackets are dropped.

    The port must be in 1..65535. Raises :class:`InvalidValue`.
    """
    fix = "write it as 'host:port', such as '127.0.0.1:10000' or '[::1]:10000'."
    if not isinstance(value, str):
        raise InvalidValue(f"expected an address string, got {describe(value)}", fix)
    host, sep, port_text = value.strip().rpartition(":")
    if not sep:
        raise InvalidValue(f"address {value!r} has no port", fix)
    if not host:
        raise InvalidValue(
            f"address {value!r} has no host",
            f"add one: '0.0.0.0:{port_text}' for every interface,"
            f" '127.0.0.1:{port_text}' for this machine only.",
        )
    return _parse_host(host, value), _parse_port(port_text, value)


def _parse_host(host: str, value: str) -> str:
    if host.startswith("[") and host.endswith("]"):
        try:
            return str(ipaddress.IPv6Address(host[1:-1]))
        except ValueError:
            raise InvalidValue(
                f"{host!r} in {value!r} is not an IPv6 address", "check the address."
            ) from None
    if ":" in host:
        raise InvalidValue(
            f"address {value!r} looks like IPv6 without brackets",
            f"put the IPv6 host in brackets: '[{host}]:PORT'.",
        )
    if not _HOSTNAME.fullmatch(host):
        raise InvalidValue(
            f"{host!r} in {value!r} is not a host name or IP address",
            "use a name such as 'backend.local' or an IP such as '10.0.0.7'.",
        )
    return host


def _parse_port(text: str, value: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise InvalidValue(
            f"port {text!r} in {value!r} is not a number in 1..65535",
            "use a port between 1 and 65535, such as '127.0.0.1:10000'.",
        )
    return int(text)


def format_address(host: str, port: int) -> str:
    """The inverse of :func:`parse_address`: brackets around an IPv6 host."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_hash_key(value: str) -> str:
    """A hash key in canonical form (header names lower-cased).

    One of "path", "host", "service", "method", "source_ip" or "header:<name>".
    Raises :class:`InvalidValue`.
    """
    if value in HASH_KEYS[:-1]:
        return value
    kind, sep, name = value.partition(":")
    if kind == "header" and sep:
        if not name.strip():
            raise InvalidValue(
                f"hash key {value!r} names no header",
                "write 'header:<name>', e.g. 'header:x-user'.",
            )
        return f"header:{name.strip().lower()}"
    raise InvalidValue(f"unknown hash key {value!r}", one_of(value, HASH_KEYS))


def describe(value: object) -> str:
    """How a YAML value reads in an error message: its kind, and itself when short."""
    if value is None:
        return "null (an empty value)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    kinds = {int: "the integer", float: "the number", str: "the string"}
    for kind, words in kinds.items():
        if isinstance(value, kind):
            text = repr(value)
            return f"{words} {text if len(text) <= 40 else text[:37] + '...'}"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"
