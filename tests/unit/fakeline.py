"""A deliberately tiny PING_PONG codec for testing the core without HTTP.

Request:  ``LINE <service> <method> <payload>\\r\\n``
Response: ``<code> <payload>\\r\\n`` (code 200 ok, anything else an error)
"""

from __future__ import annotations

from typing import Any

from mesh.codec import (
    AGAIN,
    CLOSED,
    FAIL,
    MATCH,
    NEED_DATA,
    Buffers,
    ConnectionOptions,
    Data,
    Event,
    Headers,
    MatchResult,
    PoolMode,
    RemoteProtocolError,
    RequestKeys,
    Role,
    Status,
)

CODES = {Status.NO_ROUTE: b"404", Status.UNAVAILABLE: b"503", Status.TIMEOUT: b"504",
         Status.OVERLOADED: b"429", Status.BAD_REQUEST: b"400", Status.INTERNAL: b"500"}


class LineKeys(RequestKeys):
    __slots__ = ()

    def _compute_service(self) -> str | None:
        return self._headers.extensions["service"]

    def _compute_method(self) -> str | None:
        return self._headers.extensions["method"]

    def get(self, name: str) -> str | None:
        return None


class LineConnection:
    def __init__(self, role: Role, options: ConnectionOptions) -> None:
        self.role = role
        self.buf = b""
        self.eof = False
        self.next_id = 1
        self.max = options.max_header_size
        self.should_close = False

    def receive_data(self, data: Any) -> None:
        if not data:
            self.eof = True
        self.buf += bytes(data)

    def next_event(self) -> Any:
        cut = self.buf.find(b"\r\n")
        if cut < 0:
            if len(self.buf) > self.max:
                raise RemoteProtocolError("line too long", b"431 too long\r\n")
            if self.eof:
                if self.buf:
                    raise RemoteProtocolError("truncated")
                return CLOSED
            return NEED_DATA
        line, self.buf = self.buf[:cut], self.buf[cut + 2:]
        if self.role is Role.SERVER:
            parts = line.split(b" ", 3)
            if len(parts) != 4 or parts[0] != b"LINE":
                raise RemoteProtocolError("bad request line", b"400 bad request\r\n")
            try:
                service, method = parts[1].decode(), parts[2].decode()
            except UnicodeDecodeError:
                raise RemoteProtocolError("names must be UTF-8", b"400 bad request\r\n") from None
            sid, self.next_id = self.next_id, self.next_id + 1
            return Headers(sid, [(b"payload", parts[3])], True, {"service": service, "method": method})
        code, _, payload = line.partition(b" ")
        return Headers(self.next_id, [(b":status", code), (b"payload", payload)], True)

    def send(self, event: Event) -> Buffers:
        assert isinstance(event, Headers)
        fields = dict(event.fields)
        if self.role is Role.CLIENT:
            ext = event.extensions
            return b"LINE %s %s %s\r\n" % (ext["service"].encode(), ext["method"].encode(),
                                           fields[b"payload"])
        return fields[b":status"] + b" " + fields.get(b"payload", b"") + b"\r\n"

    def local_reply(self, request: Headers, status: Status, message: str) -> list[Event]:
        return [Headers(request.stream_id, [(b":status", CODES[status]),
                                            (b"payload", message.encode())], True)]

    def is_heartbeat(self, event: Event) -> bool:
        return False

    def heartbeat_reply(self, event: Event) -> list[Event]:
        return []


class LineCodec:
    name = "line"
    pool_mode = PoolMode.PING_PONG

    def match(self, prefix: bytes) -> MatchResult:
        if prefix.startswith(b"LINE "):
            return MATCH
        return AGAIN if b"LINE ".startswith(prefix) else FAIL

    def connection(self, role: Role, options: ConnectionOptions) -> LineConnection:
        return LineConnection(role, options)

    def request_keys(self, headers: Headers) -> RequestKeys:
        return LineKeys(headers)


codec = LineCodec()
_ = Data  # the line protocol has no bodies
