"""Lines, tokens and data blocks: the framing both roles share.

Every parse error inside the codec is :class:`Malformed`; each role's
``next_event`` turns it into ``RemoteProtocolError`` once, at its entry point.
"""

from __future__ import annotations

import re

from mesh.codec import LocalProtocolError

from ._protocol import MAX_KEY

__all__ = [
    "CRLF",
    "Buffer",
    "Malformed",
    "check_key",
    "check_text",
    "check_token",
    "number",
    "one_line",
    "show",
    "tokens",
]

CRLF = b"\r\n"
# A control byte or DEL inside a command line. memcached also ends a line at a
# bare LF, so a line holding one would be two commands to it and one to us: refused.
_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")
_TOKEN = re.compile(rb"[^\x00-\x20\x7f]+")


class Malformed(Exception):
    """The peer's bytes break the protocol; the message says how."""


class Buffer:
    """Bytes received and not parsed yet; a line longer than ``line_limit`` is refused early."""

    __slots__ = ("data", "eof", "line_limit", "_scanned")

    def __init__(self, line_limit: int) -> None:
        self.data = bytearray()
        self.eof = False
        self.line_limit = line_limit
        self._scanned = 0  # no CRLF starts before this offset (bytes fed one at a time stay O(n))

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append bytes; empty means the peer closed."""
        if data:
            self.data += data
        else:
            self.eof = True

    def line(self) -> bytes | None:
        """The next line without its CRLF, consumed; None until it is complete."""
        data = self.data
        end = data.find(CRLF, self._scanned)
        if end < 0:
            # +1: a line exactly at the limit may have its CR in already.
            if len(data) > self.line_limit + 1:
                raise Malformed(f"line longer than {self.line_limit} bytes")
            self._scanned = max(0, len(data) - 1)
            return None
        if end > self.line_limit:
            raise Malformed(f"line longer than {self.line_limit} bytes")
        line = bytes(data[:end])
        del data[: end + 2]
        self._scanned = 0
        return line

    def block(self, size: int, trailer: bytes) -> bytes | None:
        """``size`` bytes followed by ``trailer``, consumed; None until all are in.

        Raises Malformed when the bytes after the block are not ``trailer``.
        """
        data = self.data
        end = size + len(trailer)
        if len(data) < end:
            return None
        if data[size:end] != trailer:
            raise Malformed(f"the {size}-byte data block is not followed by {trailer!r}")
        block = bytes(data[:size])
        del data[:end]
        self._scanned = 0
        return block


def tokens(line: bytes) -> list[bytes]:
    """The line's space-separated tokens (runs of spaces count as one, as in memcached)."""
    if _CONTROL.search(line):
        raise Malformed(f"control character in the line {show(line)}")
    return [t for t in line.split(b" ") if t]


def check_key(key: bytes) -> bytes:
    """A key memcached accepts (tokens hold no space or control byte): at most 250 bytes."""
    if len(key) > MAX_KEY:
        raise Malformed(f"key longer than {MAX_KEY} bytes: {show(key)}")
    return key


def check_token(value: bytes, what: str) -> bytes:
    """A value we may write as one token of a line. Raises LocalProtocolError."""
    if not _TOKEN.fullmatch(value):
        raise LocalProtocolError(f"{what} {show(value)} is not one token (empty, a space or a control byte)")
    if what == "key" and len(value) > MAX_KEY:
        raise LocalProtocolError(f"key longer than {MAX_KEY} bytes: {show(value)}")
    return value


def check_text(value: bytes, what: str) -> bytes:
    """A value we may write as the rest of a line (spaces allowed). Raises LocalProtocolError."""
    if _CONTROL.search(value):
        raise LocalProtocolError(f"{what} {show(value)} holds a control byte")
    return value


def one_line(text: bytes) -> bytes:
    """Text that stays on one line: control bytes become spaces."""
    return _CONTROL.sub(b" ", text)


def number(token: bytes, what: str, high: int, low: int = 0) -> int:
    """A decimal ``token`` within [low, high], as memcached's safe_strto* accept it."""
    digits = token[1:] if token[:1] == b"-" and low < 0 else token
    if not digits.isdigit() or len(digits) > 20:
        raise Malformed(f"{what} {show(token)} is not a number")
    value = int(token)
    if not low <= value <= high:
        raise Malformed(f"{what} {value} is out of range ({low}..{high})")
    return value


def show(value: bytes, limit: int = 40) -> str:
    """Bytes for an error message: escaped, cut at ``limit``."""
    text = repr(value[:limit])[2:-1]
    return f"'{text}...'" if len(value) > limit else f"'{text}'"
