"""Both roles of a Thrift connection: one message in, one ``Headers`` event out, and back.

A message is one ``Headers(seqid, fields, end_stream=True, extensions)``:

- ``fields``: ``(b":method", name as on the wire)``, ``(b":type", call|oneway|reply|exception)``,
  then the THeader info headers (names lower-cased), if any;
- ``extensions["thrift"]``: the :class:`Message` (transport, protocol, the raw bytes);
  ``extensions["oneway"]``: True on oneway calls (no reply; see mesh.codec.Headers);
  ``extensions["status_class"]``: ``"error"`` on EXCEPTION replies.

``send`` relays the raw message with the event's ``stream_id`` written in as the seqid (the
proxy's new upstream id in the client role, the client's own seqid in the server role), in
the transport the message came in (client role) or the downstream connection's (server role).
THeader info headers are re-encoded only when the fields differ from those received.
"""

from __future__ import annotations

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

from ._frames import Message, cut, frame, header_block
from ._wire import CALL, EXCEPTION, MESSAGE_TYPES, ONEWAY, REPLY, Head, Malformed, Short, app_exception

__all__ = ["APP_EXCEPTION_TYPES", "ClientConnection", "ServerConnection"]

#: TApplicationException type for each proxy-made failure.
APP_EXCEPTION_TYPES = {
    Status.NO_ROUTE: 1,  # UNKNOWN_METHOD
    Status.UNAVAILABLE: 6,  # INTERNAL_ERROR
    Status.TIMEOUT: 6,
    Status.OVERLOADED: 6,
    Status.BAD_REQUEST: 7,  # PROTOCOL_ERROR
    Status.INTERNAL: 6,
}
_COMPACT_AT = 64 * 1024
_PSEUDO = 2  # :method, :type


class _Connection:
    """Buffering, cutting and the one place parse errors become RemoteProtocolError."""

    _accepts: tuple[int, ...] = ()
    _side = ""

    def __init__(self, options: ConnectionOptions) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._need = 0  # no new attempt before this many bytes are buffered
        self._eof = False
        self._error: RemoteProtocolError | None = None
        self._max_frame = options.max_frame_size
        self._max_header = options.max_header_size
        self.should_close = False

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            self._eof = True
            return
        if self._pos:
            del self._buf[:self._pos]
            self._need -= self._pos
            self._pos = 0
        self._buf += data

    def next_event(self) -> NextEvent:
        if self._error is not None:
            raise self._error
        buf, pos = self._buf, self._pos
        end = len(buf)
        if pos >= end:
            if pos > _COMPACT_AT:
                buf.clear()
                self._pos = self._need = 0
            return CLOSED if self._eof else NEED_DATA
        if end < self._need:
            return self._short()
        try:
            msg, stop = cut(buf, pos, end, self._max_frame, self._max_header)
            if msg.head.mtype not in self._accepts:
                kind = MESSAGE_TYPES[msg.head.mtype].decode()
                raise Malformed(f"a {kind} message where the {self._side} role expects "
                                + "/".join(MESSAGE_TYPES[t].decode() for t in self._accepts))
        except Short as short:
            self._need = short.need
            return self._short()
        except Malformed as exc:
            self._error = RemoteProtocolError(f"Thrift: {exc}")
            raise self._error from None
        self._pos = stop
        self._need = 0
        return self._event(msg)

    def _short(self) -> NextEvent:
        if self._eof:
            self._error = RemoteProtocolError("Thrift: connection closed inside a message")
            raise self._error
        return NEED_DATA

    def _event(self, msg: Message) -> Headers:
        head = msg.head
        fields = [(b":method", head.name), (b":type", MESSAGE_TYPES[head.mtype])]
        if msg.headers:
            fields += msg.headers
        ext = {"thrift": msg}
        return Headers(head.seqid, fields, True, ext)

    def _encode(self, event: Event, transport: str | None) -> Buffers:
        msg = event.extensions.get("thrift") if type(event) is Headers else None
        if not isinstance(msg, Message):
            raise LocalProtocolError("a Thrift message is one Headers event carrying extensions['thrift']")
        assert type(event) is Headers
        plain = event.fields[_PSEUDO:]
        headers = None if plain == msg.headers else plain
        result: Buffers = frame(msg, event.stream_id, transport or msg.transport, headers)
        return result

    def is_heartbeat(self, event: Event) -> bool:
        return False

    def heartbeat_reply(self, event: Event) -> list[Event]:
        return []


class ServerConnection(_Connection):
    """Calls in; replies out in this connection's transport."""

    _accepts = (CALL, ONEWAY)
    _side = "server"

    def __init__(self, options: ConnectionOptions) -> None:
        super().__init__(options)
        self._transport: str | None = None
        #: the listener's protocol_options service: the service of names without a prefix
        service = options.extra.get("service")
        self._service = service if isinstance(service, str) and service else None

    def _event(self, msg: Message) -> Headers:
        if self._transport is None:
            self._transport = msg.transport
        event = super()._event(msg)
        if msg.head.mtype == ONEWAY:
            event.extensions["oneway"] = True
        if self._service is not None:
            event.extensions["service"] = self._service
        return event

    def send(self, event: Event) -> Buffers:
        return self._encode(event, self._transport)

    def local_reply(self, request: Headers, status: Status, message: str) -> list[Event]:
        msg = request.extensions.get("thrift")
        if not isinstance(msg, Message):
            raise LocalProtocolError("local_reply needs the request's extensions['thrift']")
        if msg.head.mtype == ONEWAY:
            return []  # nothing can carry it
        protocol, name = msg.head.protocol, msg.head.name
        head, tail = app_exception(protocol, name, APP_EXCEPTION_TYPES[status], message)
        raw = head + b"\x00\x00\x00\x00" + tail if protocol != "compact" else head + b"\x00" + tail
        seqid_end = len(head) + (1 if protocol == "compact" else 4)
        reply = Message(msg.transport, Head(protocol, True, name, EXCEPTION, request.stream_id,
                                            len(head), seqid_end, seqid_end), raw,
                        th_block=header_block(protocol, []))
        fields = [(b":method", name), (b":type", b"exception")]
        return [Headers(request.stream_id, fields, True, {"thrift": reply, "status_class": "error"})]


class ClientConnection(_Connection):
    """Calls out in the transport they came in; replies in (seqid = the id the proxy sent)."""

    _accepts = (REPLY, EXCEPTION)
    _side = "client"

    def _event(self, msg: Message) -> Headers:
        event = super()._event(msg)
        if msg.head.mtype == EXCEPTION:
            event.extensions["status_class"] = "error"
        return event

    def send(self, event: Event) -> Buffers:
        return self._encode(event, None)

    def local_reply(self, request: Headers, status: Status, message: str) -> list[Event]:
        raise LocalProtocolError("local_reply belongs to the server role")
