"""The lean HTTP/2 connection: frames parsed in place, HPACK of our own.

h2 builds a frame object, runs a stream state machine and validates fields through a
chain of generators for every frame; a proxy pays that on both of its connections for
every exchange, which bounds an h2-based proxy near 2k exchanges per second per core here.
HPACK is our own (_hpack.py: a Huffman cache, a stateless encoder). This connection
keeps only what a proxy needs: stream open/half-closed/closed, both flow
control windows, SETTINGS, PING, GOAWAY, RST_STREAM and the field checks of RFC 9113 8.2
and 8.3. It has the same interface and events as the h2-based :class:`H2Connection`,
which stays the oracle in the tests and the engine for ``engine: h2`` (docs/http2.md).
"""

from __future__ import annotations

import base64
from collections import deque

from mesh.codec import (
    CLOSED,
    NEED_DATA,
    ConnectionOptions,
    Data,
    Headers,
    NextEvent,
    RemoteProtocolError,
    Reset,
    Role,
    Trailers,
)

from . import _frames as f
from ._common import Http2Common, control_event, upgraded_events
from ._grpc import request_extensions
from ._hpack import Decoder, Encoder
from ._lean_out import LeanOutput, Stream

__all__ = ["LeanConnection"]

_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_DEFAULT_STREAM_WINDOW = 256 * 1024
_DEFAULT_CONNECTION_WINDOW = 1024 * 1024
_DEFAULT_MAX_STREAMS = 1024
_OUR_MAX_FRAME = 16384
_UNLIMITED = 2**31


class LeanConnection(LeanOutput, Http2Common):
    """The ``CodecConnection`` of the http2 codec (server or client role), without h2.

    The input side is here; streams and output are in _lean_out.py.
    """

    def __init__(self, role: Role, options: ConnectionOptions,
                 upgrade_settings: bytes | None = None,
                 upgraded_request: Headers | None = None, upgraded_body: bytes = b"") -> None:
        self.role = role
        self._client = client = role is Role.CLIENT
        extra = options.extra
        self._window = int(extra.get("initial_stream_window", _DEFAULT_STREAM_WINDOW))
        conn_window = int(extra.get("initial_connection_window", _DEFAULT_CONNECTION_WINDOW))
        self._max_streams = int(extra.get("max_concurrent_streams", _DEFAULT_MAX_STREAMS))
        self._encoder = Encoder()
        self._decoder = Decoder(max_list_size=options.max_header_size)
        self._max_block = options.max_header_size * 2  # compressed, CONTINUATIONs included
        self._buf = bytearray()
        self._out = bytearray()
        self._events = deque()
        self._streams = {}
        self._by_uid = {}  # client role
        self._waiting = {}  # streams with output held by a window
        self._last_remote = 0  # highest stream id the peer opened (server role)
        self._next_sid = 1
        self._peer_window = 65535  # SETTINGS_INITIAL_WINDOW_SIZE of the peer
        self._peer_max_frame = 16384
        self._peer_max_streams = _UNLIMITED
        self._send_window = 65535  # connection-level, toward the peer
        self._recv_window = conn_window  # connection-level, from the peer
        self._conn_max = conn_window
        self._conn_unacked = 0
        self._continuation: tuple[int, int, bytearray] | None = None  # sid, flags, block
        self._preface = not client  # server: the client's preface comes first (after a 101 too)
        self._settled = False  # the peer's first SETTINGS came
        self._eof = False
        self._error: RemoteProtocolError | None = None
        self._closing = False
        out = self._out
        if client:
            out += _PREFACE
        out += f.settings_frame({
            f.ENABLE_PUSH: 0, f.MAX_CONCURRENT_STREAMS: self._max_streams,
            f.INITIAL_WINDOW_SIZE: self._window, f.MAX_HEADER_LIST_SIZE: options.max_header_size,
        })
        if conn_window > 65535:
            out += f.window_update(0, conn_window - 65535)
        if upgraded_request is not None:  # h2c upgrade (RFC 7540 3.2): the request is stream 1
            if upgrade_settings:
                try:
                    self._apply_settings(f.parse_settings(_b64(upgrade_settings)))
                except f.ConnectionError_ as exc:
                    raise RemoteProtocolError(f"HTTP2-Settings: {exc}") from None
            stream = self._open(1, 1)
            stream.remote_done = True
            self._last_remote = 1
            self._events.extend(upgraded_events(upgraded_request, upgraded_body))

    # -- input -----------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        if self._error is not None:
            return
        if not data:
            self._eof = True
            return
        # Frames are parsed from one immutable copy (slices of it stay valid whatever the
        # buffer does next); what is left of an incomplete frame waits in self._buf.
        if self._buf:
            self._buf += data
            chunk = bytes(self._buf)
            self._buf = bytearray()
        else:
            chunk = bytes(data)
        try:
            if self._preface:
                if len(chunk) < len(_PREFACE):
                    if not _PREFACE.startswith(chunk):
                        raise f.ConnectionError_(f.PROTOCOL_ERROR, "not the HTTP/2 preface")
                    self._buf += chunk
                    return
                if chunk[:24] != _PREFACE:
                    raise f.ConnectionError_(f.PROTOCOL_ERROR, "not the HTTP/2 preface")
                chunk = chunk[24:]
                self._preface = False
            self._frames(chunk)
        except f.ConnectionError_ as exc:
            self._fail(str(exc), exc.code)
        except (ValueError, IndexError) as exc:  # HpackError is a ValueError
            self._fail(f"bad header block: {exc!r}", f.COMPRESSION_ERROR)

    def _frames(self, buf: bytes) -> None:
        pos, end = 0, len(buf)
        view = memoryview(buf)
        try:
            while end - pos >= 9:
                size = (buf[pos] << 16) | (buf[pos + 1] << 8) | buf[pos + 2]
                if size > _OUR_MAX_FRAME:
                    raise f.ConnectionError_(f.FRAME_SIZE_ERROR, f"a {size}-byte frame")
                kind, flags = buf[pos + 3], buf[pos + 4]
                if kind == f.HEADERS or kind == f.CONTINUATION:
                    held = len(self._continuation[2]) if self._continuation is not None else 0
                    if held + size > self._max_block:  # refused before it is buffered
                        raise f.ConnectionError_(f.PROTOCOL_ERROR, "header block larger than "
                                                 f"{self._max_block} bytes")
                if end - pos < 9 + size:
                    break
                sid = int.from_bytes(buf[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
                payload = view[pos + 9 : pos + 9 + size]
                pos += 9 + size
                if not self._settled:
                    if kind != f.SETTINGS or flags & f.ACK:
                        raise f.ConnectionError_(f.PROTOCOL_ERROR,
                                                 "the preface is not followed by SETTINGS")
                    self._settled = True
                if self._continuation is not None and kind != f.CONTINUATION:
                    raise f.ConnectionError_(f.PROTOCOL_ERROR, "a frame inside a header block")
                if kind == f.DATA:
                    self._on_data(sid, flags, payload)
                elif kind == f.HEADERS:
                    self._on_headers(sid, flags, payload)
                else:
                    self._on_control(kind, sid, flags, payload)
        finally:
            if pos < end:
                self._buf += buf[pos:]

    def _on_control(self, kind: int, sid: int, flags: int, payload: memoryview) -> None:
        if kind == f.WINDOW_UPDATE:
            self._on_window_update(sid, payload)
        elif kind == f.SETTINGS:
            if sid:
                raise f.ConnectionError_(f.PROTOCOL_ERROR, "SETTINGS on a stream")
            if flags & f.ACK:
                if payload:
                    raise f.ConnectionError_(f.FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
                return
            self._apply_settings(f.parse_settings(payload))
            self._out += f.frame(f.SETTINGS, f.ACK, 0)
        elif kind == f.PING:
            if sid:
                raise f.ConnectionError_(f.PROTOCOL_ERROR, "PING on a stream")
            if len(payload) != 8:
                raise f.ConnectionError_(f.FRAME_SIZE_ERROR, "PING is not 8 bytes")
            if not flags & f.ACK:
                self._out += f.frame(f.PING, f.ACK, 0, payload)
        elif kind == f.RST_STREAM:
            if len(payload) != 4:
                raise f.ConnectionError_(f.FRAME_SIZE_ERROR, "RST_STREAM is not 4 bytes")
            self._on_reset(sid, int.from_bytes(payload, "big"))
        elif kind == f.GOAWAY:
            if sid or len(payload) < 8:
                raise f.ConnectionError_(f.PROTOCOL_ERROR, "malformed GOAWAY")
            self._on_goaway(int.from_bytes(payload[:4], "big") & 0x7FFFFFFF,
                            int.from_bytes(payload[4:8], "big"))
        elif kind == f.CONTINUATION:
            self._on_continuation(sid, flags, payload)
        elif kind == f.PRIORITY:
            if not sid or len(payload) != 5:
                raise f.ConnectionError_(f.PROTOCOL_ERROR, "malformed PRIORITY")
        elif kind == f.PUSH_PROMISE:
            raise f.ConnectionError_(f.PROTOCOL_ERROR, "PUSH_PROMISE although push is disabled")
        # unknown frame types are ignored (5.5)

    def _unpad(self, flags: int, payload: memoryview) -> memoryview:
        if flags & f.PADDED:
            if not payload:
                raise f.ConnectionError_(f.PROTOCOL_ERROR, "padded frame without pad length")
            pad = payload[0]
            if pad >= len(payload):
                raise f.ConnectionError_(f.PROTOCOL_ERROR, "padding longer than the frame")
            return payload[1 : len(payload) - pad]
        return payload

    def _on_data(self, sid: int, flags: int, payload: memoryview) -> None:
        if not sid:
            raise f.ConnectionError_(f.PROTOCOL_ERROR, "DATA on stream 0")
        size = len(payload)
        self._recv_window -= size
        if self._recv_window < 0:
            raise f.ConnectionError_(f.FLOW_CONTROL_ERROR, "DATA beyond the connection window")
        body = self._unpad(flags, payload)
        stream = self._streams.get(sid)
        if stream is None or stream.remote_done:
            if stream is None and self._idle(sid):
                raise f.ConnectionError_(f.PROTOCOL_ERROR, f"DATA on idle stream {sid}")
            self._credit_connection(size)  # a closed stream: only the connection window counts
            if stream is not None:
                self._reset(stream, f.STREAM_CLOSED, notify=True)
            return
        stream.recv_window -= size
        if stream.recv_window < 0:
            raise f.ConnectionError_(f.FLOW_CONTROL_ERROR, f"DATA beyond stream {sid}'s window")
        end = bool(flags & f.END_STREAM)
        if stream.remaining is not None:
            stream.remaining -= len(body)
            if stream.remaining < 0 or (end and stream.remaining):  # 8.1.1: malformed
                self._credit_connection(size)
                self._reset(stream, f.PROTOCOL_ERROR, notify=True)
                return
        if end:
            self._remote_end(stream)
        self._events.append(Data(stream.uid, bytes(body), end, {"flow": size}))

    def _idle(self, sid: int) -> bool:
        """Never opened: above the last id the peer opened (or we did, client role)."""
        if self._client:
            return sid % 2 == 0 or sid >= self._next_sid
        return sid > self._last_remote

    def _on_headers(self, sid: int, flags: int, payload: memoryview) -> None:
        if not sid:
            raise f.ConnectionError_(f.PROTOCOL_ERROR, "HEADERS on stream 0")
        block = self._unpad(flags, payload)
        if flags & f.PRIORITY_FLAG:
            if len(block) < 5:
                raise f.ConnectionError_(f.PROTOCOL_ERROR, "HEADERS priority too short")
            block = block[5:]
        if flags & f.END_HEADERS:
            self._on_block(sid, flags, block)
        else:
            self._continuation = (sid, flags, bytearray(block))

    def _on_continuation(self, sid: int, flags: int, payload: memoryview) -> None:
        pending = self._continuation
        if pending is None or pending[0] != sid:
            raise f.ConnectionError_(f.PROTOCOL_ERROR, "CONTINUATION out of place")
        block = pending[2]
        block += payload
        if len(block) > self._max_block:
            raise f.ConnectionError_(f.PROTOCOL_ERROR, "header block too large")
        if flags & f.END_HEADERS:
            self._continuation = None
            self._on_block(sid, pending[1], block)

    def _on_block(self, sid: int, flags: int, block: bytes | bytearray | memoryview) -> None:
        fields = self._decoder.decode(bytes(block))
        end = bool(flags & f.END_STREAM)
        stream = self._streams.get(sid)
        if self._client:
            self._on_response_block(sid, stream, fields, end)
            return
        if stream is None:
            if sid % 2 == 0 or sid <= self._last_remote:
                raise f.ConnectionError_(f.PROTOCOL_ERROR, f"HEADERS opening stream {sid}")
            self._last_remote = sid
            if self._closing or len(self._streams) >= self._max_streams:
                self._out += f.rst_stream(sid, f.REFUSED_STREAM)
                return
            checked = f.check_request(fields)
            if isinstance(checked, str) or (end and checked):  # malformed: a stream error
                self._out += f.rst_stream(sid, f.PROTOCOL_ERROR)
                return
            stream = self._open(sid, sid)
            stream.remaining = checked
            if end:
                stream.remote_done = True
            self._events.append(Headers(sid, fields, end, request_extensions(fields)))
            return
        if stream.remote_done:
            self._reset(stream, f.STREAM_CLOSED, notify=True)
            return
        if not end or f.check_trailers(fields) or stream.remaining:  # trailers end it (8.1)
            self._reset(stream, f.PROTOCOL_ERROR, notify=True)
            return
        self._remote_end(stream)
        self._events.append(Trailers(sid, fields))

    def _on_response_block(self, sid: int, stream: Stream | None,
                           fields: list[tuple[bytes, bytes]], end: bool) -> None:
        if stream is None or stream.remote_done:
            if stream is None and self._idle(sid):
                raise f.ConnectionError_(f.PROTOCOL_ERROR, f"HEADERS on idle stream {sid}")
            return  # a stream we reset meanwhile
        if not stream.responded:
            problem = f.check_response(fields)
            if problem:
                self._reset(stream, f.PROTOCOL_ERROR, notify=True)
                return
            if fields[0][1][:1] == b"1":  # 1xx: not relayed (as Envoy by default)
                return
            stream.responded = True
            if end:
                self._remote_end(stream)
            self._events.append(Headers(stream.uid, fields, end, {"http_version": "2"}))
            return
        if not end or f.check_trailers(fields):
            self._reset(stream, f.PROTOCOL_ERROR, notify=True)
            return
        self._remote_end(stream)
        self._events.append(Trailers(stream.uid, fields))

    def _on_reset(self, sid: int, code: int) -> None:
        if not sid:
            raise f.ConnectionError_(f.PROTOCOL_ERROR, "RST_STREAM on stream 0")
        stream = self._streams.get(sid)
        if stream is None:
            if self._idle(sid):
                raise f.ConnectionError_(f.PROTOCOL_ERROR, f"RST_STREAM on idle stream {sid}")
            return
        self._drop(stream)
        self._events.append(Reset(stream.uid, code))

    def _on_goaway(self, last: int, code: int) -> None:
        self._closing = True
        if self._client:
            self._events.append(Headers(0, [], False, {"control": True, "draining": True}))
            for stream in [s for s in self._streams.values() if s.sid > last]:
                self._drop(stream)
                self._events.append(Reset(stream.uid, f.REFUSED_STREAM, {"refused": True}))
        if code:
            self._eof = True

    def _fail(self, message: str, code: int) -> None:
        self._closing = True
        self._out += f.goaway(self._last_remote, code, message.encode()[:256])
        self._error = RemoteProtocolError(message, bytes(self._take()))

    def next_event(self) -> NextEvent:
        events = self._events
        if events:
            return events.popleft()
        if self._error is not None:
            raise self._error
        if self._out:
            return control_event()
        return CLOSED if self._eof else NEED_DATA

    # -- streams ---------------------------------------------------------------

def _b64(value: bytes) -> bytes:
    try:
        return base64.urlsafe_b64decode(value + b"=" * (-len(value) % 4))
    except ValueError:
        return b""

