"""Fake MULTIPLEX and PIPELINE codecs for testing shared pools and sessions.

mux request ``MUX <id> <service> <payload>\\r\\n``, reply ``<id> <code> <payload>\\r\\n``.
pipe request ``PIPE <service> <payload>\\r\\n``, reply ``<code> <payload>\\r\\n`` in order.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from mesh.codec import (
    AGAIN,
    CLOSED,
    FAIL,
    MATCH,
    NEED_DATA,
    Buffers,
    ConnectionOptions,
    Event,
    Headers,
    MatchResult,
    PoolMode,
    RemoteProtocolError,
    RequestKeys,
    Role,
    Status,
)
from tests.unit.fakeline import CODES


class Keys(RequestKeys):
    __slots__ = ()

    def _compute_service(self) -> str | None:
        return self._headers.extensions.get("service")


class _Lines:
    def __init__(self, role: Role, options: ConnectionOptions) -> None:
        self.role = role
        self.max = options.max_header_size
        self.buf = b""
        self.eof = False
        self.should_close = False
        self.sent_ids: deque[int] = deque()
        self.next_id = 1

    def receive_data(self, data: Any) -> None:
        self.eof = self.eof or not data
        self.buf += bytes(data)

    def _line(self) -> bytes | None:
        cut = self.buf.find(b"\r\n")
        if cut < 0:
            if len(self.buf) > self.max:
                raise RemoteProtocolError("line too long", b"0 431 too_long\r\n")
            return None
        line, self.buf = self.buf[:cut], self.buf[cut + 2:]
        return line

    def next_event(self) -> Any:
        line = self._line()
        if line is None:
            return CLOSED if self.eof else NEED_DATA
        try:
            return self._parse(line)
        except (ValueError, IndexError, KeyError, UnicodeDecodeError):
            raise RemoteProtocolError(f"bad line {line!r}", b"0 400 bad\r\n") from None

    def local_reply(self, request: Headers, status: Status, message: str) -> list[Event]:
        return [Headers(request.stream_id, [(b":status", CODES[status]),
                                            (b"payload", message.replace(" ", "_").encode())], True)]

    def is_heartbeat(self, event: Event) -> bool:
        return False

    def heartbeat_reply(self, event: Event) -> list[Event]:
        return []


class MuxConnection(_Lines):
    def _parse(self, line: bytes) -> Headers:
        if self.role is Role.SERVER:
            tag, sid, service, payload = line.split(b" ", 3)
            if tag != b"MUX":
                raise ValueError(tag)
            return Headers(int(sid), [(b"payload", payload)], True, {"service": service.decode()})
        sid, code, payload = line.split(b" ", 2)
        return Headers(int(sid), [(b":status", code), (b"payload", payload)], True)

    def send(self, event: Event) -> Buffers:
        assert isinstance(event, Headers)
        f = dict(event.fields)
        if self.role is Role.CLIENT:
            return b"MUX %d %s %s\r\n" % (event.stream_id, event.extensions["service"].encode(),
                                          f[b"payload"])
        return b"%d %s %s\r\n" % (event.stream_id, f[b":status"], f[b"payload"])


class PipeConnection(_Lines):
    def _parse(self, line: bytes) -> Headers:
        if self.role is Role.SERVER:
            tag, service, payload = line.split(b" ", 2)
            if tag != b"PIPE":
                raise ValueError(tag)
            sid, self.next_id = self.next_id, self.next_id + 1
            return Headers(sid, [(b"payload", payload)], True, {"service": service.decode()})
        code, payload = line.split(b" ", 1)
        return Headers(self.sent_ids.popleft(), [(b":status", code), (b"payload", payload)], True)

    def send(self, event: Event) -> Buffers:
        assert isinstance(event, Headers)
        f = dict(event.fields)
        if self.role is Role.CLIENT:
            self.sent_ids.append(event.stream_id)
            return b"PIPE %s %s\r\n" % (event.extensions["service"].encode(), f[b"payload"])
        return b"%s %s\r\n" % (f[b":status"], f[b"payload"])


class _Codec:
    tag = b""
    conn: type[_Lines] = _Lines

    def match(self, prefix: bytes) -> MatchResult:
        if prefix.startswith(self.tag):
            return MATCH
        return AGAIN if self.tag.startswith(prefix) else FAIL

    def connection(self, role: Role, options: ConnectionOptions) -> Any:
        return self.conn(role, options)

    def request_keys(self, headers: Headers) -> RequestKeys:
        return Keys(headers)


class MuxCodec(_Codec):
    name = "mux"
    pool_mode = PoolMode.MULTIPLEX
    tag = b"MUX "
    conn = MuxConnection


class PipeCodec(_Codec):
    name = "pipe"
    pool_mode = PoolMode.PIPELINE
    tag = b"PIPE "
    conn = PipeConnection


mux = MuxCodec()
pipe = PipeCodec()
