"""The Dubbo 2 frame: a 16-byte header and a body serialized with the header's serialization.

    0-1   magic 0xdabb
    2     flags: 0x80 request, 0x40 two-way, 0x20 event, low 5 bits serialization id
    3     status (responses): 20 OK, 30 CLIENT_TIMEOUT, 31 SERVER_TIMEOUT, 40 BAD_REQUEST ...
    4-11  request id, 64-bit big-endian
    12-15 body length, 32-bit big-endian

:class:`FrameReader` cuts whole frames out of a byte stream; both roles use it. A frame is
handed on as one ``bytes`` (header included), so forwarding it means patching eight bytes of
request id, never re-encoding the body.
"""

from __future__ import annotations

import struct

from mesh.codecs.hessian2 import Encoder

from mesh.codec import Buffers, RemoteProtocolError

__all__ = [
    "FLAG_EVENT",
    "FLAG_REQUEST",
    "FLAG_TWO_WAY",
    "HEADER",
    "HESSIAN2",
    "MAGIC",
    "STATUS_NAMES",
    "FrameReader",
    "error_frame",
    "frame",
    "with_id",
]

MAGIC = b"\xda\xbb"
HEADER = 16
FLAG_REQUEST = 0x80
FLAG_TWO_WAY = 0x40
FLAG_EVENT = 0x20
SERIALIZATION = 0x1F
HESSIAN2 = 2

OK = 20
#: Dubbo's status codes (org.apache.dubbo.remoting.exchange.Response)
STATUS_NAMES = {
    20: "OK", 30: "CLIENT_TIMEOUT", 31: "SERVER_TIMEOUT", 35: "CHANNEL_INACTIVE",
    40: "BAD_REQUEST", 50: "BAD_RESPONSE", 60: "SERVICE_NOT_FOUND", 70: "SERVICE_ERROR",
    80: "SERVER_ERROR", 90: "CLIENT_ERROR", 100: "SERVER_THREADPOOL_EXHAUSTED_ERROR",
}
BAD_REQUEST = 40

_HEAD = struct.Struct(">2sBBqI")
_ID = struct.Struct(">q")
_COMPACT = 64 * 1024
#: frames up to this size are copied whole when their id is patched; larger ones are sent
#: as a new header plus a view of the body
_COPY_BELOW = 16 * 1024
_TELNET_REPLY = (b"rpcmesh: this port proxies the Dubbo protocol; the telnet console "
                 b"(dubbo>) is not available through the proxy\r\n")


def frame(flags: int, status: int, request_id: int, body: bytes) -> bytes:
    return _HEAD.pack(MAGIC, flags, status, request_id, len(body)) + body


def error_frame(request_id: int, status: int, message: str, event: bool = False) -> bytes:
    """A response with a non-OK status; its body is the message as a hessian2 string."""
    out = Encoder()
    out.write_string(message)
    return frame(HESSIAN2 | (FLAG_EVENT if event else 0), status, request_id, out.getvalue())


def with_id(raw: bytes, request_id: int) -> Buffers:
    """``raw`` with its request id replaced: a new 16-byte header and the body untouched."""
    if len(raw) <= _COPY_BELOW:  # a small frame: one new bytes, as cheap as a header alone
        return raw[:4] + _ID.pack(request_id) + raw[12:]
    return [raw[:4] + _ID.pack(request_id) + raw[12:HEADER], memoryview(raw)[HEADER:]]


class FrameReader:
    """Cuts whole frames out of the input; ``max_body`` bounds a body before it is buffered."""

    def __init__(self, max_body: int) -> None:
        self._buf = bytearray()
        self._pos = 0
        self.eof = False
        self._max_body = max_body

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            self.eof = True
            return
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    @property
    def pending(self) -> int:
        return len(self._buf) - self._pos

    def next_frame(self) -> tuple[int, int, int, bytes] | None:
        """``(flags, status, request id, frame bytes)``, or None until a whole frame is in."""
        buf, pos = self._buf, self._pos
        size = len(buf)
        if size - pos < HEADER:
            if pos >= size and pos > _COMPACT:
                buf.clear()
                self._pos = 0
            if size > pos and buf[pos : pos + 2] != MAGIC[: size - pos]:
                raise self._not_dubbo(buf[pos:size])
            return None
        magic, flags, status, request_id, length = _HEAD.unpack_from(buf, pos)
        if magic != MAGIC:
            raise self._not_dubbo(buf[pos : pos + HEADER])
        if length > self._max_body:
            raise RemoteProtocolError(
                f"Dubbo body of {length} bytes is over the {self._max_body}-byte limit",
                error_frame(request_id, BAD_REQUEST,
                            f"rpcmesh: payload of {length} bytes exceeds the limit of "
                            f"{self._max_body} bytes"))
        end = pos + HEADER + length
        if end > size:
            return None
        raw = bytes(buf[pos:end])
        self._pos = end
        return flags, status, request_id, raw

    @staticmethod
    def _not_dubbo(head: bytes | bytearray) -> RemoteProtocolError:
        text = bytes(head[:16])
        if text[:1].isalpha() or text[:1] in (b"\r", b"\n"):
            return RemoteProtocolError(f"telnet-style text on a Dubbo port: {text!r}", _TELNET_REPLY)
        return RemoteProtocolError(f"not a Dubbo frame (bad magic): {text!r}",
                                   error_frame(0, BAD_REQUEST, "rpcmesh: bad Dubbo magic number"))
