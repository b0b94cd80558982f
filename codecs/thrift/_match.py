"""Sniffing: does a connection open with a Thrift call, in any transport and protocol?

MATCH once a whole message header is in (a CALL or ONEWAY with a printable name), or at the
THeader magic; AGAIN while the bytes so far could still be one; FAIL otherwise.
"""

from __future__ import annotations

import struct

from mesh.codec import AGAIN, FAIL, MATCH, MatchResult

from ._frames import BUFFERED, HEADER, transport_at
from ._wire import CALL, ONEWAY, Malformed, Short, read_head, read_varint

__all__ = ["match"]

#: Longest method name (with a ``Service:`` prefix) sniffing accepts.
MAX_NAME = 256
_I32 = struct.Struct(">i")


def _printable(data: bytes) -> bool:
    return all(0x21 <= byte <= 0x7E for byte in data)


def match(prefix: bytes) -> MatchResult:
    end = len(prefix)
    try:
        transport = transport_at(prefix, 0, end)
        if transport == HEADER:
            return MATCH if _U32(prefix) >= 14 else FAIL
        start = 0 if transport == BUFFERED else 4
        if start and prefix[0] != 0:
            return FAIL  # sniffing expects frames under 16 MiB
        head = read_head(prefix, start, end, MAX_NAME)
    except Malformed:
        return FAIL
    except Short:
        return AGAIN if _partial_name_ok(prefix, end) else FAIL
    if head.mtype not in (CALL, ONEWAY) or not head.name or not _printable(head.name):
        return FAIL
    return MATCH


def _U32(prefix: bytes) -> int:  # noqa: N802
    value: int = struct.unpack_from(">I", prefix)[0]
    return value


def _partial_name_ok(prefix: bytes, end: int) -> bool:
    """While the header is incomplete: whatever part of the name is in is printable."""
    try:
        transport = transport_at(prefix, 0, end)
    except Short:
        return True
    start = 0 if transport == BUFFERED else 4
    if start >= end:
        return True
    first = prefix[start]
    try:
        if first == 0x82:
            if start + 1 < end and prefix[start + 1] >> 5 not in (CALL, ONEWAY):
                return False
            pos = read_varint(prefix, start + 2, end)[1]
            size, pos = read_varint(prefix, pos, end)
        elif first == 0x80:
            if bytes(prefix[start + 1:start + 3]) not in (b"", b"\x01", b"\x01\x00"):
                return False
            if start + 4 <= end and prefix[start + 3] not in (CALL, ONEWAY):
                return False
            if start + 8 > end:
                return True
            size, pos = _I32.unpack_from(prefix, start + 4)[0], start + 8
        else:
            if start + 4 > end:
                return True
            size, pos = _I32.unpack_from(prefix, start)[0], start + 4
    except Short:
        return True
    if not 0 < size <= MAX_NAME:
        return False
    return _printable(prefix[pos:min(end, pos + size)])
