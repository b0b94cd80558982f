"""Find the end of a struct without building it (binary and compact protocols).

Used to cut unframed (buffered-transport) messages out of the byte stream: the message
body is one struct, and its end is the message's end. Nothing is decoded but lengths,
counts and type codes; containers of fixed-size elements are skipped in one step.
"""

from __future__ import annotations

import struct

from ._wire import COMPACT, Malformed, Short, read_varint

__all__ = ["MAX_DEPTH", "skip_struct"]

#: Nesting deeper than this is refused (no real IDL nests structs 64 deep).
MAX_DEPTH = 64

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_BIN_HEAD = struct.Struct(">bh")
_BIN_LIST = struct.Struct(">bi")
_BIN_MAP = struct.Struct(">bbi")

Buf = bytes | bytearray | memoryview

# binary type ids: BOOL 2, BYTE 3, DOUBLE 4, I16 6, I32 8, I64 10, UUID 16 are fixed size
_BIN_FIXED = {2: 1, 3: 1, 4: 8, 6: 2, 8: 4, 10: 8, 16: 16}
_STRING, _STRUCT, _MAP, _SET, _LIST = 11, 12, 13, 14, 15
# compact type ids: BYTE 3, DOUBLE 7, UUID 13 fixed; I16/I32/I64 (4, 5, 6) varints;
# bools (1, 2) carry their value in the type nibble (one byte inside containers)
_CPT_FIXED = {3: 1, 7: 8, 13: 16}
_CPT_VARINT = (4, 5, 6)
_CPT_BINARY, _CPT_LIST, _CPT_SET, _CPT_MAP, _CPT_STRUCT = 8, 9, 10, 11, 12


def skip_struct(protocol: str, buf: Buf, pos: int, end: int) -> int:
    """Position just after the struct starting at ``pos``; Short or Malformed otherwise."""
    if protocol == COMPACT:
        return _cpt_struct(buf, pos, end, 0)
    return _bin_struct(buf, pos, end, 0)


def _need(pos: int, end: int) -> None:
    if pos > end:
        raise Short(pos)


# -- binary ---------------------------------------------------------------------------


def _bin_struct(buf: Buf, pos: int, end: int, depth: int) -> int:
    if depth > MAX_DEPTH:
        raise Malformed(f"structs nested more than {MAX_DEPTH} deep")
    while True:
        if pos >= end:
            raise Short(pos + 1)
        ftype = buf[pos]
        if ftype == 0:
            return pos + 1
        _need(pos + 3, end)
        pos = _bin_value(buf, pos + 3, end, ftype, depth)


def _bin_value(buf: Buf, pos: int, end: int, ftype: int, depth: int) -> int:
    size = _BIN_FIXED.get(ftype)
    if size is not None:
        pos += size
        _need(pos, end)
        return pos
    if ftype == _STRING:
        _need(pos + 4, end)
        length = _I32.unpack_from(buf, pos)[0]
        if length < 0:
            raise Malformed(f"negative string length {length}")
        pos += 4 + length
        _need(pos, end)
        return pos
    if ftype == _STRUCT:
        return _bin_struct(buf, pos, end, depth + 1)
    if ftype == _MAP:
        _need(pos + 6, end)
        ktype, vtype, count = _BIN_MAP.unpack_from(buf, pos)
        pos += 6
        if count < 0:
            raise Malformed(f"negative map size {count}")
        ks, vs = _BIN_FIXED.get(ktype), _BIN_FIXED.get(vtype)
        if ks is not None and vs is not None:
            pos += count * (ks + vs)
            _need(pos, end)
            return pos
        for _ in range(count):
            pos = _bin_value(buf, pos, end, ktype, depth + 1)
            pos = _bin_value(buf, pos, end, vtype, depth + 1)
        return pos
    if ftype in (_LIST, _SET):
        _need(pos + 5, end)
        etype, count = _BIN_LIST.unpack_from(buf, pos)
        pos += 5
        if count < 0:
            raise Malformed(f"negative list size {count}")
        size = _BIN_FIXED.get(etype)
        if size is not None:
            pos += count * size
            _need(pos, end)
            return pos
        for _ in range(count):
            pos = _bin_value(buf, pos, end, etype, depth + 1)
        return pos
    raise Malformed(f"unknown binary type id {ftype}")


# -- compact --------------------------------------------------------------------------


def _skip_varint(buf: Buf, pos: int, end: int) -> int:
    return read_varint(buf, pos, end)[1]


def _cpt_struct(buf: Buf, pos: int, end: int, depth: int) -> int:
    if depth > MAX_DEPTH:
        raise Malformed(f"structs nested more than {MAX_DEPTH} deep")
    while True:
        if pos >= end:
            raise Short(pos + 1)
        byte = buf[pos]
        if byte == 0:
            return pos + 1
        pos += 1
        if byte & 0xF0 == 0:  # long form: the field id follows as a zigzag varint
            pos = _skip_varint(buf, pos, end)
        ftype = byte & 0x0F
        if ftype == 1 or ftype == 2:
            continue
        pos = _cpt_value(buf, pos, end, ftype, depth)


def _cpt_value(buf: Buf, pos: int, end: int, ftype: int, depth: int) -> int:
    size = _CPT_FIXED.get(ftype)
    if size is not None:
        pos += size
        _need(pos, end)
        return pos
    if ftype in _CPT_VARINT:
        return _skip_varint(buf, pos, end)
    if ftype == 1 or ftype == 2:  # a bool inside a container: one byte
        _need(pos + 1, end)
        return pos + 1
    if ftype == _CPT_BINARY:
        length, pos = read_varint(buf, pos, end)
        pos += length
        _need(pos, end)
        return pos
    if ftype == _CPT_STRUCT:
        return _cpt_struct(buf, pos, end, depth + 1)
    if ftype in (_CPT_LIST, _CPT_SET):
        if pos >= end:
            raise Short(pos + 1)
        head = buf[pos]
        pos += 1
        count, etype = head >> 4, head & 0x0F
        if count == 15:
            count, pos = read_varint(buf, pos, end)
        return _cpt_elements(buf, pos, end, etype, count, depth)
    if ftype == _CPT_MAP:
        count, pos = read_varint(buf, pos, end)
        if count == 0:
            return pos
        if pos >= end:
            raise Short(pos + 1)
        types = buf[pos]
        pos += 1
        ktype, vtype = types >> 4, types & 0x0F
        ks, vs = _CPT_FIXED.get(ktype), _CPT_FIXED.get(vtype)
        if ks is not None and vs is not None:
            pos += count * (ks + vs)
            _need(pos, end)
            return pos
        for _ in range(count):
            pos = _cpt_value(buf, pos, end, ktype, depth + 1)
            pos = _cpt_value(buf, pos, end, vtype, depth + 1)
        return pos
    raise Malformed(f"unknown compact type id {ftype}")


def _cpt_elements(buf: Buf, pos: int, end: int, etype: int, count: int, depth: int) -> int:
    size = _CPT_FIXED.get(etype) or (1 if etype in (1, 2) else None)
    if size is not None:
        pos += count * size
        _need(pos, end)
        return pos
    if etype not in _CPT_VARINT and etype not in (_CPT_BINARY, _CPT_LIST, _CPT_SET, _CPT_MAP,
                                                  _CPT_STRUCT):
        raise Malformed(f"unknown compact element type id {etype}")
    for _ in range(count):
        pos = _cpt_value(buf, pos, end, etype, depth + 1)
    return pos
