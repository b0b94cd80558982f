"""RESP framing: where one value ends, without decoding it.

``value_end`` walks RESP2 and RESP3 values (aggregates included) by their
length prefixes and returns the offset just past the value, or -1 while it is
incomplete. Bulk bodies are skipped by length, never scanned, so a 3 MiB value
costs one bounds check. Limits are checked on the length prefixes, before the
bytes they announce are waited for.
"""

from __future__ import annotations

import re

__all__ = ["BadFrame", "encode_command", "error_reply", "request_end", "value_end"]

_CRLF = b"\r\n"
# aggregate types: * array, ~ set, > push  (one child per count); % map, | attribute (two)
_ONE = frozenset(b"*~>")
_TWO = frozenset(b"%|")
_BULK = frozenset(b"$!=")  # bulk string, bulk error, verbatim string
_SIMPLE = frozenset(b"+-:_,#(")  # simple string, error, integer, null, double, boolean, big number
_LINE = frozenset(b"+-:")  # simple string, error, integer: the common one-line replies
_BULK_HEAD = re.compile(rb"\$(\d{1,18})\r\n")
#: Most elements one aggregate header may announce (Redis' own limit is 1024*1024*1024).
MAX_ELEMENTS = 1024 * 1024


class BadFrame(ValueError):
    """The bytes are not RESP; the message says what was wrong, Redis-style."""


def _int(buf: bytes | bytearray, start: int, end: int, what: str) -> int:
    digits = buf[start:end]
    if digits.isdigit() and end - start < 19:  # the common case: one check, one int()
        return int(digits)
    body = digits[1:] if digits[:1] == b"-" else digits
    if not body or not body.isdigit() or len(body) > 18:
        raise BadFrame(f"invalid {what} {bytes(digits)[:32]!r}")
    return int(digits)


def value_end(buf: bytes | bytearray, pos: int, max_bulk: int, max_line: int) -> int:
    """Offset just past the RESP value at ``pos``; -1 if more bytes are needed.

    The most common replies (+OK, -ERR..., :1, a bulk string) take a short path; anything
    else (aggregates, nulls, RESP3 types, incomplete or malformed input) the full walk.
    """
    size = len(buf)
    if pos < size:
        kind = buf[pos]
        if kind == 0x24:  # '$'
            head = _BULK_HEAD.match(buf, pos)
            if head is not None and int(head[1]) <= max_bulk:
                end = head.end() + int(head[1]) + 2
                if end > size:
                    return -1
                if buf[end - 2] == 13 and buf[end - 1] == 10:
                    return end
        elif kind in _LINE:
            eol = buf.find(_CRLF, pos, pos + max_line + 2)
            if eol > 0:
                return eol + 2
    return _value_end(buf, pos, max_bulk, max_line)


def _value_end(buf: bytes | bytearray, pos: int, max_bulk: int, max_line: int) -> int:
    size = len(buf)
    pending = 1
    while pending:
        if pos >= size:
            return -1
        eol = buf.find(_CRLF, pos)
        if eol < 0 or eol - pos > max_line:
            if size - pos > max_line:
                raise BadFrame("too big line")
            return -1
        kind = buf[pos]
        pending -= 1
        if kind in _BULK:
            length = _int(buf, pos + 1, eol, "bulk length")
            if length < -1 or length > max_bulk:
                raise BadFrame(f"invalid bulk length {length}")
            pos = eol + 2
            if length >= 0:
                end = pos + length
                if end + 2 > size:
                    return -1
                if buf[end : end + 2] != _CRLF:
                    raise BadFrame("bulk string not terminated by CRLF")
                pos = end + 2
        elif kind in _SIMPLE:
            pos = eol + 2
        elif kind in _ONE or kind in _TWO:
            count = _int(buf, pos + 1, eol, "multibulk length")
            if count < -1 or count > MAX_ELEMENTS:
                raise BadFrame(f"invalid multibulk length {count}")
            if count > 0:
                pending += count * 2 if kind in _TWO else count
                if kind == 0x7C:  # an attribute map precedes the value it describes
                    pending += 1
            pos = eol + 2
        else:
            raise BadFrame(f"unknown reply type {chr(kind)!r}")
    return pos


_ARRAY_HEAD = re.compile(rb"\*(\d{1,18})\r\n")


def request_end(buf: bytes | bytearray, pos: int, max_bulk: int, max_line: int) -> int:
    """Offset past a request ``*N`` of N bulk strings at ``pos``; -1 if incomplete.

    The common case, complete and well formed, is one compiled-regex match per line; any
    other case (incomplete, malformed, over a limit) takes the careful walk, which says why.
    """
    head = _ARRAY_HEAD.match(buf, pos)
    if head is None:
        return _request_end(buf, pos, max_bulk, max_line)
    count = int(head[1])
    if count > MAX_ELEMENTS:
        raise BadFrame("invalid multibulk length")
    end = head.end()
    size = len(buf)
    bulk = _BULK_HEAD.match
    for _ in range(count):
        line = bulk(buf, end)
        if line is None:
            return _request_end(buf, pos, max_bulk, max_line)
        length = int(line[1])
        if length > max_bulk:
            raise BadFrame("invalid bulk length")
        end = line.end() + length + 2
        if end > size:
            return -1
        if buf[end - 2] != 13 or buf[end - 1] != 10:
            raise BadFrame("bulk string not terminated by CRLF")
    return end


def _request_end(buf: bytes | bytearray, pos: int, max_bulk: int, max_line: int) -> int:
    size = len(buf)
    eol = buf.find(_CRLF, pos)
    if eol < 0 or eol - pos > max_line:
        if size - pos > max_line:
            raise BadFrame("too big mbulk count string")
        return -1
    count = _int(buf, pos + 1, eol, "multibulk length")
    if count > MAX_ELEMENTS:
        raise BadFrame("invalid multibulk length")
    pos = eol + 2
    for _ in range(count):
        if pos >= size:
            return -1
        if buf[pos] != 0x24:  # '$'
            raise BadFrame(f"expected '$', got {chr(buf[pos])!r}")
        eol = buf.find(_CRLF, pos)
        if eol < 0 or eol - pos > max_line:
            if size - pos > max_line:
                raise BadFrame("too big bulk count string")
            return -1
        length = _int(buf, pos + 1, eol, "bulk length")
        if length < 0 or length > max_bulk:
            raise BadFrame("invalid bulk length")
        end = eol + 2 + length
        if end + 2 > size:
            return -1
        if buf[end : end + 2] != _CRLF:
            raise BadFrame("bulk string not terminated by CRLF")
        pos = end + 2
    return pos


def encode_command(args: list[bytes]) -> bytes:
    """``args`` as a RESP array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


def error_reply(message: str) -> bytes:
    """A RESP error line; CR and LF in the message become spaces."""
    text = message.replace("\r", " ").replace("\n", " ")
    if not text.startswith(("ERR ", "WRONGTYPE ", "NOAUTH ", "NOPROTO ", "WRONGPASS ")):
        text = "ERR " + text
    return b"-" + text.encode("utf-8", "replace") + b"\r\n"
