"""SERVER role: parse requests (RESP arrays with hiredis, or inline), encode replies."""

from __future__ import annotations

from typing import Any

import hiredis

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

from ._local import LocalAnswers
from ._resp import BadFrame, encode_command, error_reply, request_end

__all__ = ["ServerConnection", "STATUS_TEXT"]

#: What each proxy-made failure says to a Redis client.
STATUS_TEXT = {
    Status.NO_ROUTE: "no route for this command",
    Status.UNAVAILABLE: "upstream unavailable",
    Status.TIMEOUT: "upstream timed out",
    Status.OVERLOADED: "proxy overloaded",
    Status.BAD_REQUEST: "bad request",
    Status.INTERNAL: "proxy internal error",
}

_COMPACT = 64 * 1024


class ServerConnection(LocalAnswers):
    """Requests in (``Headers`` with ``args`` and ``raw``), raw replies out."""

    def __init__(self, options: ConnectionOptions, resp3_codec: object = None) -> None:
        super().__init__(options)
        self._resp3_codec = resp3_codec
        self._buf = bytearray()
        self._pos = 0
        self._eof = False
        self._next_id = 1
        self._max_bulk = options.max_frame_size
        self._max_line = options.max_header_size
        self._reader = hiredis.Reader()

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            self._eof = True
            return
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def next_event(self) -> NextEvent:
        while True:
            if self._quit:
                return CLOSED
            buf, pos = self._buf, self._pos
            if pos >= len(buf):
                if pos > _COMPACT:
                    buf.clear()
                    self._pos = 0
                return CLOSED if self._eof else NEED_DATA
            try:
                if buf[pos] == 0x2A:  # '*'
                    end = request_end(buf, pos, self._max_bulk, self._max_line)
                    if end < 0:
                        return CLOSED if self._eof else NEED_DATA
                    raw = bytes(buf[pos:end])
                    self._pos = end
                    reader = self._reader
                    reader.feed(raw)
                    args: Any = reader.gets()
                    if not args:  # *0 or *-1: Redis ignores it
                        continue
                else:
                    eol = buf.find(b"\n", pos)
                    if eol < 0 or eol - pos > self._max_line:
                        if len(buf) - pos > self._max_line:
                            raise BadFrame("too big inline request")
                        return CLOSED if self._eof else NEED_DATA
                    args = bytes(buf[pos:eol]).split()
                    self._pos = eol + 1
                    if not args:
                        continue
                    raw = encode_command(args)
            except (BadFrame, hiredis.ProtocolError) as exc:
                message = f"Protocol error: {exc}"
                raise RemoteProtocolError(message, error_reply(message)) from None
            sid = self._next_id
            self._next_id = sid + 1
            return Headers(sid, [(b":command", args[0].upper())], True, {"args": args, "raw": raw})

    def send(self, event: Event) -> Buffers:
        raw = event.extensions.get("raw") if type(event) is Headers else None
        if raw is None:
            raise LocalProtocolError("a Redis reply is a Headers event carrying extensions['raw']")
        result: Buffers = raw
        return result

    def local_reply(self, request: Headers, status: Status, message: str) -> list[Event]:
        text = f"{STATUS_TEXT[status]} ({message})"
        return [Headers(request.stream_id, [(b":error", b"ERR")], True, {"raw": error_reply(text)})]

    def is_heartbeat(self, event: Event) -> bool:
        return False

    def heartbeat_reply(self, event: Event) -> list[Event]:
        return []

    @property
    def upstream_codec(self) -> object:
        """After HELLO 3, the codec whose pools speak RESP3 upstream; else None."""
        return self._resp3_codec if self._resp3 else None

    @property
    def should_close(self) -> bool:
        return self._quit
