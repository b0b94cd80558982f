"""Byte-level facts of Hessian 2.0 shared by the decoder, skipper and encoder.

Strings are counted in UTF-16 code units and every unit is written as 1-3 UTF-8 bytes, a
surrogate as its own 3-byte sequence (what Java's ``charAt`` loop produces; CESU-8 in
effect). Python's ``surrogatepass`` handler speaks exactly that, once astral characters
are split into surrogate pairs before encoding and joined again after decoding.
"""

from __future__ import annotations

import re
import struct

from ._types import HessianError

# Tags that are not part of a numeric range (Hessian 2.0 grammar, section 3).
#: the longest string, binary or collection a Decoder accepts unless told otherwise
DEFAULT_MAX_LENGTH = 1 << 24

BINARY_CHUNK = 0x41  # 'A'
BINARY = 0x42  # 'B'
CLASS_DEF = 0x43  # 'C'
DOUBLE = 0x44  # 'D'
FALSE = 0x46  # 'F'
UNTYPED_MAP = 0x48  # 'H'
INT = 0x49  # 'I'
DATE_MS = 0x4A
DATE_MINUTES = 0x4B
LONG = 0x4C  # 'L'
TYPED_MAP = 0x4D  # 'M'
NULL = 0x4E  # 'N'
OBJECT = 0x4F  # 'O'
REF = 0x51  # 'Q'
STRING_CHUNK = 0x52  # 'R'
STRING = 0x53  # 'S'
TRUE = 0x54  # 'T'
LIST_VAR_TYPED = 0x55
LIST_FIXED_TYPED = 0x56  # 'V'
LIST_VAR_UNTYPED = 0x57
LIST_FIXED_UNTYPED = 0x58
LONG_INT32 = 0x59
END = 0x5A  # 'Z'
DOUBLE_ZERO = 0x5B
DOUBLE_ONE = 0x5C
DOUBLE_BYTE = 0x5D
DOUBLE_SHORT = 0x5E
DOUBLE_MILLIS = 0x5F

CHUNK_UNITS = 0x8000  # string and binary chunk size Caucho uses
STRING_TAGS = frozenset([*range(0x00, 0x20), *range(0x30, 0x34), STRING, STRING_CHUNK])
INT_TAGS = frozenset([*range(0x80, 0xD8), INT])

I16 = struct.Struct(">h")
I32 = struct.Struct(">i")
I64 = struct.Struct(">q")
F64 = struct.Struct(">d")
U16 = struct.Struct(">H")


def _fixed_sizes() -> bytes:
    """Byte size of every value whose tag alone decides it (0: not such a tag)."""
    size = bytearray(256)
    for tag in range(0x80, 0xC0):  # int -16..47
        size[tag] = 1
    for tag in range(0xC0, 0xD0):  # int, one more byte
        size[tag] = 2
    for tag in range(0xD0, 0xD8):  # int, two more bytes
        size[tag] = 3
    for tag in range(0xD8, 0xF0):  # long -8..15
        size[tag] = 1
    for tag in range(0xF0, 0x100):  # long, one more byte
        size[tag] = 2
    for tag in range(0x38, 0x40):  # long, two more bytes
        size[tag] = 3
    for tag in range(0x20, 0x30):  # binary of 0..15 bytes
        size[tag] = 1 + tag - 0x20
    for tag, n in ((INT, 5), (LONG, 9), (LONG_INT32, 5), (DOUBLE, 9), (DOUBLE_ZERO, 1),
                   (DOUBLE_ONE, 1), (DOUBLE_BYTE, 2), (DOUBLE_SHORT, 3), (DOUBLE_MILLIS, 5),
                   (DATE_MS, 9), (DATE_MINUTES, 5), (NULL, 1), (TRUE, 1), (FALSE, 1)):
        size[tag] = n
    return bytes(size)


FIXED_SIZE = _fixed_sizes()

# UTF-8 continuation bytes: deleting them with bytes.translate leaves one byte per code unit.
_CONTINUATION = bytes(range(0x80, 0xC0))
_FOUR_BYTE_LEAD = re.compile(rb"[\xf0-\xff]")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def truncated(start: int, tag: int, size: int) -> HessianError:
    return HessianError(f"hessian2: value at offset {start} (tag 0x{tag:02x}) is truncated: "
                        f"the body ends at byte {size}")


def check_length(length: int, start: int, tag: int, avail: int, limit: int,
                 total: int = -1) -> None:
    """Refuse a declared length before anything is sliced or allocated for it.

    ``length`` is checked against the bytes left, ``total`` (all chunks so far; ``length``
    when not given) against ``max_length``.
    """
    if max(total, length) > limit:
        raise HessianError(f"hessian2: value at offset {start} (tag 0x{tag:02x}) declares "
                           f"length {max(total, length)}, above max_length {limit}")
    if length > avail:
        raise HessianError(f"hessian2: value at offset {start} (tag 0x{tag:02x}) declares "
                           f"length {length} but only {avail} bytes follow")


def utf8_end(data: bytes | bytearray, pos: int, units: int, start: int, tag: int) -> int:
    """Offset just past ``units`` UTF-16 code units written from ``pos``.

    Each pass takes as many bytes as code units are still missing (a unit is at least one
    byte, so it never overshoots) and counts the lead bytes in them; the passes shrink
    geometrically, so this is linear with no Python loop per byte.
    """
    need = units
    end = pos
    while need:
        chunk = data[end:end + need]
        if len(chunk) < need:
            raise truncated(start, tag, len(data))
        end += need
        need -= len(chunk.translate(None, _CONTINUATION))
    if end == pos:
        return end
    lead_at = end - 1
    while data[lead_at] & 0xC0 == 0x80 and lead_at > end - 4 and lead_at > pos:
        lead_at -= 1
    lead = data[lead_at]
    full = lead_at + (1 if lead < 0x80 else 2 if lead < 0xE0 else 3)
    if full > len(data):
        raise truncated(start, tag, len(data))
    return full if full > end else end


def decode_units(raw: bytes | bytearray, start: int, tag: int) -> str:
    """Bytes of a Hessian string -> str, surrogate pairs joined into one character."""
    try:
        if raw.isascii():
            return raw.decode("ascii")
        if _FOUR_BYTE_LEAD.search(raw):
            # Java never writes 4-byte sequences (Caucho rejects them too): a surrogate pair
            # is two 3-byte sequences, and the unit count would not match.
            raise HessianError(f"hessian2: string at offset {start} (tag 0x{tag:02x}) holds a "
                               "4-byte UTF-8 sequence; Hessian writes surrogates one by one")
        text = raw.decode("utf-8", "surrogatepass")
        if b"\xed" in raw:  # 0xED leads every encoded surrogate: join the pairs
            text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
        return text
    except UnicodeDecodeError as exc:
        raise HessianError(f"hessian2: string at offset {start} (tag 0x{tag:02x}) is not valid "
                           f"UTF-8: {exc.reason} at byte {start + exc.start}") from None


def _split_pair(match: re.Match[str]) -> str:
    code = ord(match.group()) - 0x10000
    return chr(0xD800 + (code >> 10)) + chr(0xDC00 + (code & 0x3FF))


def java_units(text: str) -> str:
    """``text`` with astral characters split into surrogate pairs: one char per UTF-16 unit."""
    if text.isascii():
        return text
    return _ASTRAL.sub(_split_pair, text)


def d2i(value: float) -> int:
    """Java's ``(int) double``: NaN -> 0, truncation toward zero, saturation at the int range."""
    if value != value:
        return 0
    if value >= 2147483647.0:
        return 2147483647
    if value <= -2147483648.0:
        return -2147483648
    return int(value)
