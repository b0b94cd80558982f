"""Leaf values at an offset: numbers, strings, binary. Pure functions ``(data, pos) -> (value, end)``.

Shared by the decoder and the skipper. They index ``data`` freely: a read past the end raises
IndexError or struct.error, which the public entry points turn into one HessianError, so the
common path pays for no bounds checks of its own.
"""

from __future__ import annotations

import struct

from ._types import HessianError
from ._wire import (
    BINARY,
    BINARY_CHUNK,
    DEFAULT_MAX_LENGTH,
    DOUBLE,
    DOUBLE_BYTE,
    DOUBLE_MILLIS,
    DOUBLE_ONE,
    DOUBLE_SHORT,
    DOUBLE_ZERO,
    F64,
    I16,
    I32,
    I64,
    INT,
    LONG,
    LONG_INT32,
    NULL,
    STRING,
    STRING_CHUNK,
    U16,
    check_length,
    decode_units,
    truncated,
    utf8_end,
)


def bad_tag(pos: int, tag: int, wanted: str) -> HessianError:
    return HessianError(f"hessian2: expected {wanted} at offset {pos}, found tag 0x{tag:02x}")


def int_at(data: bytes | bytearray, pos: int) -> tuple[int, int]:
    """A Java int (compact forms and 'I')."""
    tag = data[pos]
    if 0x80 <= tag < 0xC0:
        return tag - 0x90, pos + 1
    if 0xC0 <= tag < 0xD0:
        return ((tag - 0xC8) << 8) + data[pos + 1], pos + 2
    if 0xD0 <= tag < 0xD8:
        return ((tag - 0xD4) << 16) + (data[pos + 1] << 8) + data[pos + 2], pos + 3
    if tag == INT:
        return I32.unpack_from(data, pos + 1)[0], pos + 5
    raise bad_tag(pos, tag, "an int")


def long_at(data: bytes | bytearray, pos: int) -> tuple[int, int]:
    """A Java long (compact forms, 0x59 and 'L')."""
    tag = data[pos]
    if 0xD8 <= tag < 0xF0:
        return tag - 0xE0, pos + 1
    if tag >= 0xF0:
        return ((tag - 0xF8) << 8) + data[pos + 1], pos + 2
    if 0x38 <= tag < 0x40:
        return ((tag - 0x3C) << 16) + (data[pos + 1] << 8) + data[pos + 2], pos + 3
    if tag == LONG_INT32:
        return I32.unpack_from(data, pos + 1)[0], pos + 5
    if tag == LONG:
        return I64.unpack_from(data, pos + 1)[0], pos + 9
    raise bad_tag(pos, tag, "a long")


def double_at(data: bytes | bytearray, pos: int, tag: int) -> tuple[float, int]:
    if tag == DOUBLE_ZERO:
        return 0.0, pos + 1
    if tag == DOUBLE_ONE:
        return 1.0, pos + 1
    if tag == DOUBLE_BYTE:
        return float(data[pos + 1] - ((data[pos + 1] & 0x80) << 1)), pos + 2
    if tag == DOUBLE_SHORT:
        return float(I16.unpack_from(data, pos + 1)[0]), pos + 3
    if tag == DOUBLE_MILLIS:
        # an int count of thousandths (Caucho, hessian-lite and hessian.js agree), not float32
        return 0.001 * I32.unpack_from(data, pos + 1)[0], pos + 5
    if tag == DOUBLE:
        return F64.unpack_from(data, pos + 1)[0], pos + 9
    raise bad_tag(pos, tag, "a double")


def _piece_header(data: bytes | bytearray, pos: int, tag: int) -> tuple[int, int, bool]:
    """(units, offset of the text, is this a non-final chunk) of one string piece."""
    if tag < 0x20:
        return tag, pos + 1, False
    if 0x30 <= tag < 0x34:
        return ((tag - 0x30) << 8) + data[pos + 1], pos + 2, False
    if tag == STRING:
        return U16.unpack_from(data, pos + 1)[0], pos + 3, False
    if tag == STRING_CHUNK:
        return U16.unpack_from(data, pos + 1)[0], pos + 3, True
    raise bad_tag(pos, tag, "a string")


def string_at(data: bytes | bytearray, pos: int, limit: int) -> tuple[str | None, int]:
    """A string or null. The one-piece ASCII case costs one slice, one check, one decode."""
    tag = data[pos]
    if tag < 0x20:
        end = pos + 1 + tag
        raw = data[pos + 1:end]
        if raw.isascii() and end <= len(data):
            return raw.decode("ascii"), end
    elif tag == NULL:
        return None, pos + 1
    start = pos
    pieces = []
    total = 0
    more = True
    while more:
        tag = data[pos]
        units, text_at, more = _piece_header(data, pos, tag)
        total += units
        check_length(units, start, tag, len(data) - text_at, limit, total)
        pos = utf8_end(data, text_at, units, start, tag)
        pieces.append(data[text_at:pos])
    raw = pieces[0] if len(pieces) == 1 else b"".join(pieces)
    return decode_units(raw, start, data[start]), pos


def string_end(data: bytes | bytearray, pos: int, limit: int) -> int:
    """Offset past the string (or null) at ``pos``, without decoding or validating the text."""
    tag = data[pos]
    if tag < 0x20:
        end = pos + 1 + tag
        if data[pos + 1:end].isascii() and end <= len(data):
            return end
    elif tag == NULL:
        return pos + 1
    start = pos
    total = 0
    more = True
    while more:
        tag = data[pos]
        units, text_at, more = _piece_header(data, pos, tag)
        total += units
        check_length(units, start, tag, len(data) - text_at, limit, total)
        pos = utf8_end(data, text_at, units, start, tag)
    return pos


def binary_at(data: bytes | bytearray, pos: int, limit: int) -> tuple[bytes, list[int], int]:
    """The bytes of a binary value, the size of each piece (more than one: chunked), the end."""
    start = pos
    pieces: list[bytes] = []
    sizes: list[int] = []
    total = 0
    while True:
        tag = data[pos]
        size, at, more = _binary_piece(data, pos, tag)
        total += size
        check_length(size, start, tag, len(data) - at, limit, total)
        pos = at + size
        pieces.append(bytes(data[at:pos]))
        sizes.append(size)
        if not more:
            return b"".join(pieces), sizes, pos


def _binary_piece(data: bytes | bytearray, pos: int, tag: int) -> tuple[int, int, bool]:
    """(size, where the bytes start, more pieces follow) of the binary piece at ``pos``."""
    if 0x20 <= tag < 0x30:
        return tag - 0x20, pos + 1, False
    if 0x34 <= tag < 0x38:
        return ((tag - 0x34) << 8) + data[pos + 1], pos + 2, False
    if tag == BINARY or tag == BINARY_CHUNK:  # noqa: SIM109 (two int compares beat a tuple)
        return U16.unpack_from(data, pos + 1)[0], pos + 3, tag == BINARY_CHUNK
    raise bad_tag(pos, tag, "a binary piece")


def binary_end(data: bytes | bytearray, pos: int, limit: int) -> int:
    start = pos
    total = 0
    while True:
        tag = data[pos]
        size, at, more = _binary_piece(data, pos, tag)
        total += size
        check_length(size, start, tag, len(data) - at, limit, total)
        pos = at + size
        if not more:
            return pos


def read_strings(data: bytes, pos: int, count: int,
                 max_length: int = DEFAULT_MAX_LENGTH) -> tuple[list[str | None], int]:
    """``count`` strings (or nulls) in a row from ``pos``, and the offset after them.

    The Dubbo codec's hot path (the request's first five fields) without a Decoder: no
    references or class definitions can occur among plain strings.
    """
    values: list[str | None] = []
    for _ in range(count):
        start = pos
        try:
            value, pos = string_at(data, pos, max_length)
        except (IndexError, struct.error):
            if start >= len(data):
                raise HessianError(f"hessian2: no value at offset {start}: the body ends there"
                                   ) from None
            raise truncated(start, data[start], len(data)) from None
        values.append(value)
    return values, pos
