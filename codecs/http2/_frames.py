"""HTTP/2 frames for the lean connection: constants, builders, settings, field checks.

RFC 9113 section numbers in comments. Frame headers are read with ``int.from_bytes`` on
slices and written with ``struct``; no frame objects are made on the hot path.
"""

from __future__ import annotations

import re
import struct

__all__ = [
    "CONNECTION_SPECIFIC_IN", "ConnectionError_", "DATA", "HEADERS", "PRIORITY", "RST_STREAM",
    "SETTINGS", "PUSH_PROMISE", "PING", "GOAWAY", "WINDOW_UPDATE", "CONTINUATION",
    "END_STREAM", "ACK", "END_HEADERS", "PADDED", "PRIORITY_FLAG", "frame", "parse_settings",
    "settings_frame", "check_request", "check_response", "check_trailers", "bad_value",
]

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)

END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

# error codes (7)
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, SETTINGS_TIMEOUT, STREAM_CLOSED, \
    FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR = range(10)

# settings (6.5.2)
HEADER_TABLE_SIZE, ENABLE_PUSH, MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE, \
    MAX_HEADER_LIST_SIZE = range(1, 7)

MAX_WINDOW = 2**31 - 1

_HEAD = struct.Struct(">HBBBL")  # length as 16 + 8 bits, type, flags, stream id
_SETTING = struct.Struct(">HL")
_U32 = struct.Struct(">L")


class ConnectionError_(Exception):
    """A connection error (5.4.1): the connection ends with GOAWAY(code)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def frame(kind: int, flags: int, sid: int, payload: bytes | bytearray | memoryview = b"") -> bytes:
    size = len(payload)
    return _HEAD.pack(size >> 8, size & 0xFF, kind, flags, sid) + payload


def settings_frame(values: dict[int, int]) -> bytes:
    return frame(SETTINGS, 0, 0, b"".join(_SETTING.pack(k, v) for k, v in values.items()))


def window_update(sid: int, increment: int) -> bytes:
    return frame(WINDOW_UPDATE, 0, sid, _U32.pack(increment))


def rst_stream(sid: int, code: int) -> bytes:
    return frame(RST_STREAM, 0, sid, _U32.pack(code))


def goaway(last_sid: int, code: int, debug: bytes = b"") -> bytes:
    return frame(GOAWAY, 0, 0, _U32.pack(last_sid) + _U32.pack(code) + debug)


def parse_settings(payload: bytes | memoryview) -> dict[int, int]:
    """The values of a SETTINGS payload, checked as 6.5.2 asks."""
    if len(payload) % 6:
        raise ConnectionError_(FRAME_SIZE_ERROR, "SETTINGS length is not a multiple of 6")
    values = {}
    for offset in range(0, len(payload), 6):
        key, value = _SETTING.unpack_from(payload, offset)
        if key == ENABLE_PUSH and value > 1:
            raise ConnectionError_(PROTOCOL_ERROR, "SETTINGS_ENABLE_PUSH must be 0 or 1")
        if key == INITIAL_WINDOW_SIZE and value > MAX_WINDOW:
            raise ConnectionError_(FLOW_CONTROL_ERROR, "SETTINGS_INITIAL_WINDOW_SIZE too large")
        if key == MAX_FRAME_SIZE and not 16384 <= value <= 16777215:
            raise ConnectionError_(PROTOCOL_ERROR, "SETTINGS_MAX_FRAME_SIZE out of range")
        values[key] = value
    return values


#: Fields a request or response may not carry in HTTP/2 (8.2.2); ``te`` is checked apart.
CONNECTION_SPECIFIC_IN = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade",
})
_REQUEST_PSEUDO = frozenset({b":method", b":scheme", b":authority", b":path", b":protocol"})


_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+")
#: Fields already found well-formed (names and values repeat from request to request).
_GOOD: dict[tuple[bytes, bytes], None] = {}
_GOOD_LIMIT = 4096


def bad_value(value: bytes) -> bool:
    """CR, LF or NUL in a field value, or white space around it (8.2.1): never forwarded,
    least of all to HTTP/1.1, where it could split or smuggle a request."""
    return (b"\r" in value or b"\n" in value or b"\0" in value
            or (bool(value) and (value[0] in (0x20, 0x09) or value[-1] in (0x20, 0x09))))


def _check_regular(name: bytes, value: bytes) -> str | None:
    if (name, value) in _GOOD:
        return None
    if name in CONNECTION_SPECIFIC_IN:
        return f"connection-specific field {name.decode('latin-1')!r}"
    if name == b"te" and value != b"trailers":
        return "te other than 'trailers'"
    if not _TOKEN.fullmatch(name):
        return f"field name {name!r} is not a lower-case token"
    if bad_value(value):
        return f"field {name.decode('latin-1')!r} has CR, LF, NUL or surrounding white space"
    if len(_GOOD) >= _GOOD_LIMIT:
        _GOOD.clear()
    _GOOD[(name, value)] = None
    return None


def check_request(fields: list[tuple[bytes, bytes]]) -> str | int | None:
    """Why a request head is malformed (8.3.1); else its content-length, or None if none."""
    pseudo: dict[bytes, bytes] = {}
    regular = False
    length: int | None = None
    for name, value in fields:
        if name[:1] == b":":
            if regular or name not in _REQUEST_PSEUDO or name in pseudo:
                return f"bad pseudo-header {name.decode('latin-1')!r}"
            pseudo[name] = value
            if bad_value(value):
                return f"{name.decode('latin-1')} has CR, LF or NUL"
        else:
            regular = True
            problem = _check_regular(name, value)
            if problem:
                return problem
            if name == b"content-length":  # 8.1.1: DATA must add up to it
                if not value.isdigit() or (length is not None and int(value) != length):
                    return "bad content-length"
                length = int(value)
    method = pseudo.get(b":method")
    if not method:
        return "no :method"
    if method == b"CONNECT" and b":protocol" not in pseudo:
        if b":scheme" in pseudo or b":path" in pseudo or b":authority" not in pseudo:
            return "CONNECT takes :authority only"
    elif not pseudo.get(b":scheme") or not pseudo.get(b":path"):
        return "no :scheme or :path"
    return length


def check_response(fields: list[tuple[bytes, bytes]]) -> str | None:
    """Why a response head is malformed (8.3.2), or None."""
    if not fields or fields[0][0] != b":status" or not fields[0][1].isdigit():
        return "no :status first"
    for name, value in fields[1:]:
        if name[:1] == b":":
            return f"bad pseudo-header {name.decode('latin-1')!r}"
        problem = _check_regular(name, value)
        if problem:
            return problem
    return None


def check_trailers(fields: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in fields:
        if name[:1] == b":":
            return "pseudo-header in trailers"
        problem = _check_regular(name, value)
        if problem:
            return problem
    return None
