"""One HTTP/2 connection, either role, on the ``h2`` state machine.

Bytes in, protocol-neutral events out; events in, bytes out (docs/http2.md).
What this layer adds to h2:

- Connection-level output nobody asked for (our SETTINGS, SETTINGS and PING acks,
  DATA released by a WINDOW_UPDATE) surfaces as a *control* event: a
  ``Headers(0, [], extensions={"control": True})`` that ``is_heartbeat`` claims and
  ``send`` turns into the pending bytes, so every session that answers heartbeats
  also keeps HTTP/2 going.
- Flow control end to end. A received DATA frame is credited back to the peer
  (WINDOW_UPDATE) only when the proxy calls ``acknowledge`` for it, after the bytes
  went on toward their destination. Outgoing DATA beyond the peer's window waits here,
  per stream, and the ``extensions["consumed"]`` callback of a Data event is called
  with each part as it is framed, so the window of the connection the data came
  from opens only as this one drains.
- Client role: the proxy's request ids are mapped to odd stream ids in order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import h2.stream

from mesh.codec import (
    CLOSED,
    NEED_DATA,
    Buffers,
    ConnectionOptions,
    Data,
    Event,
    Headers,
    LocalProtocolError,
    NextEvent,
    RemoteProtocolError,
    Reset,
    Role,
    Trailers,
)

from ._common import Http2Common, control_event, upgraded_events
from ._grpc import request_extensions
from ._headers import request_fields, response_fields

__all__ = ["H2Connection"]

_Consumed = Callable[[int], None]

_DEFAULT_STREAM_WINDOW = 256 * 1024
_DEFAULT_CONNECTION_WINDOW = 1024 * 1024
_DEFAULT_MAX_STREAMS = 1024

_PROTOCOL_ERROR = h2.errors.ErrorCodes.PROTOCOL_ERROR
_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_OPENING = len(_PREFACE) + 9  # the preface and the header of the first frame


class _Outbound:
    """DATA (and what must follow it) waiting for the peer's window on one stream."""

    __slots__ = ("chunks", "trailers", "end_stream")

    def __init__(self) -> None:
        self.chunks: deque[tuple[memoryview, _Consumed | None]] = deque()
        self.trailers: list[tuple[bytes, bytes]] | None = None
        self.end_stream = False


class H2Connection(Http2Common):
    """The ``CodecConnection`` of the http2 codec (server or client role), on h2."""

    def __init__(self, role: Role, options: ConnectionOptions,
                 upgrade_settings: bytes | None = None,
                 upgraded_request: Headers | None = None, upgraded_body: bytes = b"") -> None:
        self.role = role
        client = role is Role.CLIENT
        self._client = client
        config = h2.config.H2Configuration(
            client_side=client, header_encoding=None,
            # Outgoing fields are built by us (lower case, no connection-specific fields:
            # mesh.codecs.http2._headers), so h2's checks of them would only cost time.
            validate_outbound_headers=False, normalize_outbound_headers=False,
            # Incoming ones come from the peer: malformed requests must be refused.
            validate_inbound_headers=True, normalize_inbound_headers=False)
        self._h2 = conn = h2.connection.H2Connection(config)
        extra = options.extra
        stream_window = int(extra.get("initial_stream_window", _DEFAULT_STREAM_WINDOW))
        conn_window = int(extra.get("initial_connection_window", _DEFAULT_CONNECTION_WINDOW))
        conn.local_settings = h2.settings.Settings(client=client, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS:
                int(extra.get("max_concurrent_streams", _DEFAULT_MAX_STREAMS)),
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: stream_window,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: options.max_header_size,
            h2.settings.SettingCodes.ENABLE_PUSH: 0,
        })
        if upgraded_request is not None:
            conn.initiate_upgrade_connection(upgrade_settings)
        else:
            conn.initiate_connection()
        if conn_window > 65535:
            conn.increment_flow_control_window(conn_window - 65535)
        self._events: deque[Event] = deque()
        self._pending = bytearray()  # output taken from h2 while decoding input
        self._outbound: dict[int, _Outbound] = {}  # streams with DATA waiting for window
        self._eof = False
        self._error: RemoteProtocolError | None = None
        #: server role: the first bytes, until the frame after the preface is known
        self._opening: bytes | None = None if client or upgraded_request else b""
        self._closing = False  # we sent GOAWAY or got one
        # client role: proxy request id <-> HTTP/2 stream id
        self._sid_of: dict[int, int] = {}
        self._uid_of: dict[int, int] = {}
        if upgraded_request is not None:  # h2c upgrade: the HTTP/1.1 request is stream 1
            self._events.extend(upgraded_events(upgraded_request, upgraded_body))

    # -- input ---------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        if self._error is not None:
            return
        if not data:
            self._eof = True
            return
        if self._opening is not None and not self._check_opening(bytes(data)):
            return
        try:
            events = self._h2.receive_data(bytes(data))
        except h2.exceptions.ProtocolError as exc:
            self._fail(str(exc) or type(exc).__name__, _error_code(exc))
            return
        except Exception as exc:  # noqa: BLE001 - h2 may raise others on hostile input
            self._fail(f"malformed HTTP/2 input: {exc!r}", _PROTOCOL_ERROR)
            return
        convert = self._convert
        for event in events:
            convert(event)

    def _check_opening(self, data: bytes) -> bool:
        """Server role: the preface must be followed by a SETTINGS frame (RFC 9113 3.4),
        which h2 does not check. False when that is already known to be broken."""
        opening = self._opening = (self._opening or b"") + data
        if len(opening) < _OPENING:
            return True
        self._opening = None
        if opening[:len(_PREFACE)] == _PREFACE and opening[_OPENING - 6] != 0x4:
            self._fail("the client preface is not followed by a SETTINGS frame",
                       _PROTOCOL_ERROR)
            return False
        return True

    def _fail(self, message: str, code: int) -> None:
        self._h2.close_connection(error_code=code)
        self._closing = True
        self._error = RemoteProtocolError(message, bytes(self._take()))

    def next_event(self) -> NextEvent:
        events = self._events
        if events:
            return events.popleft()
        if self._error is not None:
            raise self._error
        pending = self._h2.data_to_send()
        if pending:
            self._pending += pending
        if self._pending:
            return control_event()
        return CLOSED if self._eof else NEED_DATA

    def _convert(self, ev: Any) -> None:
        kind = type(ev)
        append = self._events.append
        if kind is h2.events.DataReceived:
            sid = ev.stream_id
            append(Data(self._uid_of.get(sid, 0) if self._client else sid, ev.data,
                        ev.stream_ended is not None, {"flow": ev.flow_controlled_length}))
        elif kind is h2.events.RequestReceived:
            append(Headers(ev.stream_id, ev.headers, ev.stream_ended is not None,
                           request_extensions(ev.headers)))
        elif kind is h2.events.ResponseReceived:
            uid = self._uid_of.get(ev.stream_id)
            if uid is not None:
                append(Headers(uid, ev.headers, ev.stream_ended is not None))
        elif kind is h2.events.TrailersReceived:
            sid = ev.stream_id
            uid = self._uid_of.get(sid) if self._client else sid
            if uid is not None:
                append(Trailers(uid, ev.headers))
        elif kind is h2.events.StreamReset:
            self._stream_gone(ev.stream_id)
            sid = ev.stream_id
            uid = self._forget(sid) if self._client else sid
            if uid is not None:
                append(Reset(uid, ev.error_code))
        elif kind is h2.events.WindowUpdated or kind is h2.events.RemoteSettingsChanged:
            self._release_outbound()
        elif kind is h2.events.ConnectionTerminated:
            self._terminated(ev)
        elif kind is h2.events.StreamEnded and self._client:
            self._forget(ev.stream_id)  # the response is complete
        # PingReceived / SettingsAcknowledged / PriorityUpdated...: h2 already answered;
        # InformationalResponseReceived: 1xx are not relayed (as Envoy by default).

    def _terminated(self, ev: Any) -> None:
        """GOAWAY: streams above ``last_stream_id`` were never processed; they are reset."""
        self._closing = True
        last = ev.last_stream_id if ev.last_stream_id is not None else 0
        if self._client:
            self._events.append(Headers(0, [], False, {"control": True, "draining": True}))
            refused = int(h2.errors.ErrorCodes.REFUSED_STREAM)
            for sid in [s for s in self._uid_of if s > last]:
                uid = self._forget(sid)
                if uid is not None:
                    self._events.append(Reset(uid, refused, {"refused": True}))
        if ev.error_code:
            self._eof = True

    # -- output --------------------------------------------------------------

    def _take(self) -> bytearray:
        out = self._pending
        out += self._h2.data_to_send()
        self._pending = bytearray()
        return out

    def send(self, event: Event) -> Buffers:
        kind = type(event)
        try:
            if kind is Data:
                self._send_data(event)  # type: ignore[arg-type]
            elif kind is Headers:
                if event.extensions.get("control"):
                    return self._take()
                self._send_headers(event)  # type: ignore[arg-type]
            elif kind is Trailers:
                self._send_trailers(event)  # type: ignore[arg-type]
            elif kind is Reset:
                self._send_reset(event)  # type: ignore[arg-type]
        except h2.exceptions.StreamClosedError:
            pass  # the peer reset the stream meanwhile; its Reset event is on its way
        except h2.exceptions.ProtocolError as exc:
            raise LocalProtocolError(f"cannot send {kind.__name__}: {exc}") from None
        return self._take()

    def _forget(self, sid: int) -> int | None:
        """Client role: drop a stream's id mapping; the proxy's id it had, if any."""
        uid = self._uid_of.pop(sid, None)
        if uid is not None:
            self._sid_of.pop(uid, None)
        return uid

    def _sid(self, uid: int) -> int:
        if not self._client:
            return uid
        sid = self._sid_of.get(uid)
        if sid is None:
            raise h2.exceptions.StreamClosedError(uid)
        return sid

    def _send_headers(self, event: Headers) -> None:
        conn = self._h2
        if self._client:
            sid = conn.get_next_available_stream_id()
            self._sid_of[event.stream_id] = sid
            self._uid_of[sid] = event.stream_id
            fields = event.fields
            if event.extensions.get("http_version") != "2":  # not HTTP/2 already
                fields = request_fields(fields)
            conn.send_headers(sid, fields, event.end_stream)
        else:
            conn.send_headers(event.stream_id, response_fields(event.fields), event.end_stream)

    def _send_data(self, event: Data) -> None:
        sid = self._sid(event.stream_id)
        consumed: _Consumed | None = event.extensions.get("consumed")
        queue = self._outbound.get(sid)
        if queue is None:
            queue = self._outbound[sid] = _Outbound()
        payload = event.payload
        if payload:
            queue.chunks.append((memoryview(payload), consumed))
        elif consumed is not None:
            consumed(0)
        if event.end_stream:
            queue.end_stream = True
        self._flush_stream(sid, queue)

    def _send_trailers(self, event: Trailers) -> None:
        sid = self._sid(event.stream_id)
        queue = self._outbound.get(sid)
        if queue is not None:
            queue.trailers = response_fields(event.fields, trailers=True)
            self._flush_stream(sid, queue)
        else:
            self._h2.send_headers(sid, response_fields(event.fields, trailers=True), True)

    def _send_reset(self, event: Reset) -> None:
        sid = self._sid(event.stream_id)
        self._stream_gone(sid)
        if self._client:
            self._forget(sid)
        self._h2.reset_stream(sid, event.error_code or int(h2.errors.ErrorCodes.CANCEL))

    def _flush_stream(self, sid: int, queue: _Outbound) -> None:
        """Frame as much of the stream's waiting output as the peer's windows allow."""
        conn = self._h2
        chunks = queue.chunks
        window = conn.local_flow_control_window(sid)
        frame = conn.max_outbound_frame_size
        while chunks and window > 0:
            view, consumed = chunks[0]
            size = min(len(view), window, frame)
            last = size == len(view)
            if last:
                chunks.popleft()
            else:
                chunks[0] = (view[size:], consumed)
            conn.send_data(sid, bytes(view[:size]), end_stream=last and not chunks
                           and queue.end_stream and queue.trailers is None)
            window -= size
            if consumed is not None:
                consumed(size)
        if chunks:
            return
        del self._outbound[sid]
        if queue.trailers is not None:
            conn.send_headers(sid, queue.trailers, True)
        elif queue.end_stream and not _ended(conn, sid):
            conn.send_data(sid, b"", end_stream=True)

    def _release_outbound(self) -> None:
        for sid, queue in list(self._outbound.items()):
            try:
                self._flush_stream(sid, queue)
            except h2.exceptions.StreamClosedError:
                self._stream_gone(sid)

    def _stream_gone(self, sid: int) -> None:
        """Output for a stream that ended: credit the bytes it held back to their source."""
        queue = self._outbound.pop(sid, None)
        if queue is not None:
            for view, consumed in queue.chunks:
                if consumed is not None:
                    consumed(len(view))

    # -- flow control, heartbeats, replies --------------------------------------

    def acknowledge(self, stream_id: int, size: int) -> Buffers:
        """Credit ``size`` received bytes of ``stream_id`` back to the peer (WINDOW_UPDATE)."""
        if size:
            sid = self._sid_of.get(stream_id, 0) if self._client else stream_id
            try:
                if sid:
                    self._h2.acknowledge_received_data(size, sid)
                else:  # the stream is gone: only the connection window matters
                    self._h2.acknowledge_received_data(size, 2**31 - 1)
            except (h2.exceptions.ProtocolError, ValueError):
                pass
        return self._take()

    def stream_capacity(self) -> int:
        """How many more streams the peer lets us open now (client role)."""
        conn = self._h2
        if self._closing:
            return 0
        return conn.remote_settings.max_concurrent_streams - conn.open_outbound_streams

    @property
    def should_close(self) -> bool:
        return self._closing and not self._h2.open_outbound_streams and not self._h2.open_inbound_streams


def _ended(conn: h2.connection.H2Connection, sid: int) -> bool:
    stream = conn.streams.get(sid)
    return stream is None or stream.closed or stream.state_machine.state in (
        h2.stream.StreamState.HALF_CLOSED_LOCAL, h2.stream.StreamState.CLOSED)


def _error_code(exc: Exception) -> int:
    code = getattr(exc, "error_code", None)
    return int(code) if code is not None else int(_PROTOCOL_ERROR)

