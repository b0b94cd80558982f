"""Thrift wire basics: message headers of the binary (strict and old) and compact protocols.

A message is ``head | seqid | tail``: ``head`` the bytes before the seqid, ``tail`` the name
(compact) and the argument or result struct. The proxy relays ``head`` and ``tail`` untouched
and writes only a new seqid between them (binary: 4 bytes; compact: a varint, whose length
may change).

binary strict: ``i32 0x8001_00TT | i32 len | name | i32 seqid | struct``
binary old:    ``i32 len | name | i8 type | i32 seqid | struct``
compact:       ``0x82 | type << 5 | 1 | varint seqid | varint len | name | struct``
"""

from __future__ import annotations

import struct

__all__ = ["BINARY", "CALL", "COMPACT", "EXCEPTION", "MESSAGE_TYPES", "ONEWAY", "REPLY",
           "Head", "Malformed", "Short", "app_exception", "read_head", "read_varint",
           "seqid_bytes", "varint"]

CALL, REPLY, EXCEPTION, ONEWAY = 1, 2, 3, 4
MESSAGE_TYPES = {CALL: b"call", REPLY: b"reply", EXCEPTION: b"exception", ONEWAY: b"oneway"}
BINARY, COMPACT = "binary", "compact"

_I32 = struct.Struct(">i")
_U32 = struct.Struct(">I")


class Malformed(Exception):
    """Bytes the protocol does not allow; turned into RemoteProtocolError by the connection."""


class Short(Exception):  # noqa: N818 (not an error: more bytes are needed)
    """The input ends before the message does; ``need`` is the length that could complete it."""

    def __init__(self, need: int) -> None:
        super().__init__(need)
        self.need = need


def read_varint(buf: bytes | bytearray | memoryview, pos: int, end: int) -> tuple[int, int]:
    """(value, position after it) of an unsigned varint of at most 10 bytes."""
    value = shift = 0
    limit = pos + 10
    while True:
        if pos >= end:
            raise Short(pos + 1)
        if pos >= limit:
            raise Malformed("varint longer than 10 bytes")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def seqid_bytes(protocol: str, seqid: int) -> bytes:
    if protocol == COMPACT:
        return varint(seqid & 0xFFFFFFFF)
    return _I32.pack(((seqid + 0x80000000) & 0xFFFFFFFF) - 0x80000000)


class Head:
    """A decoded message header and where its seqid sits (offsets from the message start)."""

    __slots__ = ("protocol", "strict", "name", "mtype", "seqid", "seqid_at", "seqid_end", "body_at")

    def __init__(self, protocol: str, strict: bool, name: bytes, mtype: int, seqid: int,
                 seqid_at: int, seqid_end: int, body_at: int) -> None:
        self.protocol = protocol
        self.strict = strict
        self.name = name
        self.mtype = mtype
        self.seqid = seqid
        self.seqid_at = seqid_at
        self.seqid_end = seqid_end
        self.body_at = body_at


def _name(buf: bytes | bytearray | memoryview, pos: int, size: int, end: int, max_name: int) -> bytes:
    if size < 0 or size > max_name:
        raise Malformed(f"method name of {size} bytes (limit {max_name})")
    if pos + size > end:
        raise Short(pos + size)
    return bytes(buf[pos:pos + size])


def read_head(buf: bytes | bytearray | memoryview, start: int, end: int, max_name: int) -> Head:
    """The message header at ``buf[start:end]``; Short or Malformed otherwise."""
    if start >= end:
        raise Short(start + 1)
    first = buf[start]
    if first == 0x82:  # compact
        if start + 2 > end:
            raise Short(start + 2)
        flags = buf[start + 1]
        if flags & 0x1F != 1:
            raise Malformed(f"compact protocol version {flags & 0x1F}, expected 1")
        mtype = flags >> 5
        seqid, pos = read_varint(buf, start + 2, end)
        if seqid > 0xFFFFFFFF:
            raise Malformed("seqid does not fit in 32 bits")
        size, at = read_varint(buf, pos, end)
        name = _name(buf, at, size, end, max_name)
        if seqid >= 0x80000000:
            seqid -= 0x100000000
        _check_type(mtype)
        return Head(COMPACT, True, name, mtype, seqid, 2, pos - start, at + size - start)
    if start + 4 > end:
        raise Short(start + 4)
    word = _U32.unpack_from(buf, start)[0]
    if first == 0x80:  # binary strict
        if word & 0xFFFF0000 != 0x80010000:
            raise Malformed(f"binary protocol version {word >> 16:#x}, expected 0x8001")
        mtype = word & 0xFF
        if start + 8 > end:
            raise Short(start + 8)
        size = _I32.unpack_from(buf, start + 4)[0]
        name = _name(buf, start + 8, size, end, max_name)
        seqid_at = 8 + size
    elif first == 0:  # binary without the version word (old clients, strictWrite=False)
        name = _name(buf, start + 4, word, end, max_name)
        if start + 4 + word >= end:
            raise Short(start + 5 + word)
        mtype = buf[start + 4 + word]
        seqid_at = 5 + word
    else:
        raise Malformed(f"not a Thrift message (first byte {first:#04x})")
    _check_type(mtype)
    if start + seqid_at + 4 > end:
        raise Short(start + seqid_at + 4)
    seqid = _I32.unpack_from(buf, start + seqid_at)[0]
    return Head(BINARY, first == 0x80, name, mtype, seqid, seqid_at, seqid_at + 4, seqid_at + 4)


def _check_type(mtype: int) -> None:
    if mtype not in MESSAGE_TYPES:
        raise Malformed(f"message type {mtype}, expected 1-4")


def app_exception(protocol: str, name: bytes, kind: int, message: str) -> tuple[bytes, bytes]:
    """(head, tail) of an EXCEPTION message: TApplicationException{1: message, 2: type}."""
    text = message.encode("utf-8", "replace")
    if protocol == COMPACT:
        head = b"\x82" + bytes([(EXCEPTION << 5) | 1])
        zigzag = (kind << 1) ^ (kind >> 31)
        tail = (varint(len(name)) + name + b"\x18" + varint(len(text)) + text
                + b"\x15" + varint(zigzag & 0xFFFFFFFF) + b"\x00")
        return head, tail
    head = _U32.pack(0x80010000 | EXCEPTION) + _I32.pack(len(name)) + name
    tail = b"\x0b\x00\x01" + _I32.pack(len(text)) + text + b"\x08\x00\x02" + _I32.pack(kind) + b"\x00"
    return head, tail
