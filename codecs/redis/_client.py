"""CLIENT role: encode requests (their raw bytes), cut replies out as raw bytes."""

from __future__ import annotations

from collections import deque

from mesh.codec import (
    CLOSED,
    NEED_DATA,
    Buffers,
    ConnectionOptions,
    Event,
    Headers,
    LocalProtocolError,
    NextEvent,
    RemoteProtocolError,
    Status,
)

from ._resp import BadFrame, encode_command, value_end

__all__ = ["ClientConnection"]

_COMPACT = 64 * 1024
class ClientConnection:
    """Each reply is ``Headers(id of the request it answers, fields, True, {"raw": bytes})``.

    ``fields`` is empty for a reply that is not an error, ``[(b":error", b"ERR")]``
    (the error's first word) for one that is.
    """

    def __init__(self, options: ConnectionOptions, resp3: bool = False) -> None:
        #: RESP3 upstream connections open with HELLO 3; its reply is read and dropped
        self._hello = b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n" if resp3 else b""
        self._skip = 1 if resp3 else 0
        self._buf = bytearray()
        self._pos = 0
        self._eof = False
        self._sent: deque[int] = deque()
        self._max_bulk = options.max_frame_size
        self._max_line = max(options.max_header_size, 64 * 1024)
        self.should_close = False

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            self._eof = True
            return
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def next_event(self) -> NextEvent:
        buf, pos = self._buf, self._pos
        if pos >= len(buf):
            if pos > _COMPACT:
                buf.clear()
                self._pos = 0
            return CLOSED if self._eof else NEED_DATA
        try:
            end = value_end(buf, pos, self._max_bulk, self._max_line)
        except BadFrame as exc:
            raise RemoteProtocolError(f"Protocol error: {exc}") from None
        if end < 0:
            return CLOSED if self._eof else NEED_DATA
        if self._skip:
            self._skip = 0
            self._pos = end
            if buf[pos] == 0x2D:
                raise RemoteProtocolError(f"upstream refused HELLO 3: {bytes(buf[pos:end])!r}")
            return self.next_event()
        if not self._sent:
            raise RemoteProtocolError("a reply arrived with no request waiting for it")
        raw = bytes(buf[pos:end])
        self._pos = end
        fields: list[tuple[bytes, bytes]] = []
        if raw[0] == 0x2D:  # '-'
            word = raw[1:].split(None, 1)[0][:32] if len(raw) > 3 else b"ERR"
            fields = [(b":error", word)]
        return Headers(self._sent.popleft(), fields, True, {"raw": raw})

    def send(self, event: Event) -> Buffers:
        if type(event) is not Headers:
            raise LocalProtocolError("Redis requests are single Headers events")
        ext = event.extensions
        raw = ext.get("raw")
        if raw is None:
            args = ext.get("args")
            if not args:
                raise LocalProtocolError("a Redis request needs extensions['raw'] or ['args']")
            raw = encode_command(args)
        self._sent.append(event.stream_id)
        if self._hello:
            raw, self._hello = self._hello + raw, b""
        result: Buffers = raw
        return result

    def send_plain(self, stream_id: int, raw: bytes) -> Buffers:
        """A plain-lane request (its raw bytes, mesh/proxy/plain.py) sent under ``stream_id``."""
        self._sent.append(stream_id)
        if self._hello:
            raw, self._hello = self._hello + raw, b""
        return raw

    def local_reply(self, request: Headers, status: Status, message: str) -> list[Event]:
        raise LocalProtocolError("local_reply belongs to the server role")

    def is_heartbeat(self, event: Event) -> bool:
        return False

    def heartbeat_reply(self, event: Event) -> list[Event]:
        return []
