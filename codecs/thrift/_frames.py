"""Transports: cut messages out of the byte stream (framed, buffered, THeader) and frame them.

framed:   ``u32 size | message``
buffered: the message alone; its end is found by skipping the argument/result struct
THeader:  ``u32 size | 0x0fff | u16 flags | i32 seqid | u16 header words | header | message``
          header = ``varint protocol id | varint transform count | transforms | info``,
          info = ``varint 1 (key/value) | varint count | (varint len, bytes) x 2 ...``, zero padded
"""

from __future__ import annotations

import struct

from ._skip import skip_struct
from ._wire import BINARY, COMPACT, Head, Malformed, Short, read_head, read_varint, seqid_bytes, varint

__all__ = ["BUFFERED", "FRAMED", "HEADER", "Message", "cut", "frame", "header_block"]

FRAMED, BUFFERED, HEADER = "framed", "buffered", "header"

_U32 = struct.Struct(">I")
_I32 = struct.Struct(">i")
_THEADER = struct.Struct(">IHHiH")
_TH_FIXED = struct.Struct(">HHiH")
_TH_MAGIC = 0x0FFF
_PROTOCOL_IDS = {0: BINARY, 2: COMPACT}
_INFO_KEYVALUE, _INFO_PKEYVALUE = 1, 2

Buf = bytes | bytearray | memoryview
Fields = list[tuple[bytes, bytes]]


class Message:
    """One message as received: its bytes (``raw``, no transport framing) and header.

    ``headers`` are THeader info headers (names lower-cased), ``th_block`` the header block
    as received, relayed as is unless the event's fields say otherwise.
    """

    __slots__ = ("transport", "head", "raw", "headers", "th_flags", "th_block")

    def __init__(self, transport: str, head: Head, raw: bytes, headers: Fields | None = None,
                 th_flags: int = 0, th_block: bytes = b"") -> None:
        self.transport = transport
        self.head = head
        self.raw = raw
        self.headers: Fields = headers if headers is not None else []
        self.th_flags = th_flags
        self.th_block = th_block

    def _key(self) -> tuple[object, ...]:
        h = self.head
        return (self.transport, self.raw, self.headers, self.th_flags, self.th_block, h.protocol,
                h.strict, h.name, h.mtype, h.seqid, h.seqid_at, h.seqid_end)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Message) and self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        h = self.head
        return f"<thrift {self.transport}/{h.protocol} {h.name!r} {len(self.raw)} bytes>"


def _seqid32(value: int) -> int:
    return ((value + 0x80000000) & 0xFFFFFFFF) - 0x80000000


def header_block(protocol: str, headers: Fields) -> bytes:
    """A THeader header block (no transforms) carrying ``headers``, padded to 4 bytes."""
    out = bytearray(varint(2 if protocol == COMPACT else 0))
    out += b"\x00"
    if headers:
        out += varint(_INFO_KEYVALUE) + varint(len(headers))
        for name, value in headers:
            out += varint(len(name)) + name + varint(len(value)) + value
    out += bytes(-len(out) % 4)
    return bytes(out)


def frame(msg: Message, seqid: int, transport: str, headers: Fields | None = None) -> list[Buf]:
    """``msg`` with ``seqid`` written in, in ``transport``; its body is not copied.

    ``headers``: THeader info headers to send instead of those received (None: as received).
    """
    head, raw = msg.head, msg.raw
    first = raw[:head.seqid_at] + seqid_bytes(head.protocol, seqid)
    tail = memoryview(raw)[head.seqid_end:]
    size = len(first) + len(tail)
    if transport == FRAMED:
        return [_U32.pack(size) + first, tail]
    if transport == BUFFERED:
        return [first, tail]
    if headers is None and msg.transport == HEADER:
        block, flags = msg.th_block, msg.th_flags
    else:
        block, flags = header_block(head.protocol, headers or []), 0
    prefix = _THEADER.pack(10 + len(block) + size, _TH_MAGIC, flags, _seqid32(seqid), len(block) // 4)
    return [prefix + block + first, tail]


def transport_at(buf: Buf, pos: int, end: int) -> str:
    """Which transport the message at ``pos`` uses (Short when it cannot tell yet)."""
    if pos >= end:
        raise Short(pos + 1)
    first = buf[pos]
    if first == 0x80 or first == 0x82:
        return BUFFERED
    if first != 0:
        if first < 0x80:
            return FRAMED  # a frame of 16 MiB or more: refused by the size check
        raise Malformed(f"not a Thrift message (first byte {first:#04x})")
    if pos + 6 > end:
        raise Short(pos + 6)
    fifth = buf[pos + 4]
    if fifth == 0x0F and buf[pos + 5] == 0xFF:
        return HEADER
    if fifth in (0x80, 0x82, 0x00):
        return FRAMED
    return BUFFERED  # old binary: i32 name length, then the name


def cut(buf: Buf, pos: int, end: int, max_frame: int, max_header: int) -> tuple[Message, int]:
    """The message at ``buf[pos:end]`` and the position after it; Short or Malformed."""
    transport = transport_at(buf, pos, end)
    if transport == BUFFERED:
        try:
            head = read_head(buf, pos, end, max_header)
            stop = skip_struct(head.protocol, buf, pos + head.body_at, end)
        except Short as short:
            if short.need - pos > max_frame:
                raise Malformed(f"unframed message over max_frame_size ({max_frame})") from None
            raise
        return Message(BUFFERED, head, bytes(buf[pos:stop])), stop
    if pos + 4 > end:
        raise Short(pos + 4)
    size = _U32.unpack_from(buf, pos)[0]
    if size > max_frame:
        raise Malformed(f"frame of {size} bytes over max_frame_size ({max_frame})")
    stop = pos + 4 + size
    if transport == HEADER:
        return _theader(buf, pos, end, size, max_header), stop
    if stop > end:
        raise Short(stop)
    raw = bytes(buf[pos + 4:stop])
    return Message(FRAMED, _head_in_frame(raw, max_header), raw), stop


def _head_in_frame(raw: bytes, max_header: int) -> Head:
    try:
        return read_head(raw, 0, len(raw), max_header)
    except Short:
        raise Malformed("frame ends inside the message header") from None


def _theader(buf: Buf, pos: int, end: int, size: int, max_header: int) -> Message:
    if size < 10:
        raise Malformed("THeader header longer than its frame")
    if pos + 14 > end:
        raise Short(pos + 14)
    _, flags, seqid, words = _TH_FIXED.unpack_from(buf, pos + 4)
    block_len = words * 4
    if block_len > max_header:
        raise Malformed(f"THeader header of {block_len} bytes over max_header_size ({max_header})")
    if 10 + block_len > size:
        raise Malformed("THeader header longer than its frame")
    stop = pos + 4 + size
    if stop > end:
        raise Short(stop)
    frame_bytes = bytes(buf[pos + 14:stop])
    block = frame_bytes[:block_len]
    protocol, headers = _read_block(block)
    raw = frame_bytes[block_len:]
    head = _head_in_frame(raw, max_header)
    if head.protocol != protocol:
        raise Malformed(f"THeader says {protocol}, the message is {head.protocol}")
    return Message(HEADER, head, raw, headers, flags, block)


def _read_block(block: bytes) -> tuple[str, Fields]:
    end = len(block)
    try:
        proto_id, pos = read_varint(block, 0, end)
        transforms, pos = read_varint(block, pos, end)
        if transforms:
            raise Malformed("THeader transforms (zlib, snappy...) are not supported")
        protocol = _PROTOCOL_IDS.get(proto_id)
        if protocol is None:
            raise Malformed(f"THeader protocol id {proto_id} (binary 0 and compact 2 are supported)")
        headers: Fields = []
        while pos < end:
            kind, pos = read_varint(block, pos, end)
            if kind == 0:
                break  # padding
            if kind not in (_INFO_KEYVALUE, _INFO_PKEYVALUE):
                raise Malformed(f"THeader info type {kind}")
            count, pos = read_varint(block, pos, end)
            for _ in range(count):
                name, pos = _string(block, pos, end)
                value, pos = _string(block, pos, end)
                headers.append((name.lower(), value))
    except Short:
        raise Malformed("THeader header block ends inside a header") from None
    return protocol, headers


def _string(block: bytes, pos: int, end: int) -> tuple[bytes, int]:
    size, pos = read_varint(block, pos, end)
    if pos + size > end:
        raise Short(pos + size)
    return block[pos:pos + size], pos + size
