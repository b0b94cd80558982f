"""The lean engine's streams and its output side: headers, DATA under both windows, credits.

Split from _lean.py (the input side); ``LeanOutput`` is a mixin of ``LeanConnection`` and uses
its state, declared here for the type checker.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from mesh.codec import Buffers, Data, Event, Headers, LocalProtocolError, Reset, Trailers

from . import _frames as f
from ._headers import request_fields, response_fields
from ._hpack import Encoder

__all__ = ["LeanOutput", "Stream"]

_Consumed = Callable[[int], None]


class Stream:
    __slots__ = ("sid", "uid", "send_window", "recv_window", "unacked", "remote_done",
                 "local_done", "responded", "chunks", "trailers", "end_queued", "remaining")

    def __init__(self, sid: int, uid: int, send_window: int, recv_window: int) -> None:
        self.sid = sid
        self.uid = uid  # the proxy's id (client role); the stream id in the server role
        self.send_window = send_window
        self.recv_window = recv_window
        self.unacked = 0  # bytes consumed but not yet credited back (WINDOW_UPDATE)
        self.remote_done = False
        self.local_done = False
        self.responded = False  # client role: the final response head came
        self.chunks: deque[tuple[memoryview, _Consumed | None]] = deque()  # waiting for window
        self.trailers: list[tuple[bytes, bytes]] | None = None
        self.end_queued = False
        self.remaining: int | None = None  # request body bytes its content-length promises


class LeanOutput:
    """Streams and everything the lean connection sends."""

    _client: bool
    _window: int
    _encoder: Encoder
    _out: bytearray
    _events: deque[Event]
    _streams: dict[int, Stream]
    _by_uid: dict[int, Stream]
    _waiting: dict[int, Stream]
    _next_sid: int
    _peer_window: int
    _peer_max_frame: int
    _peer_max_streams: int
    _send_window: int
    _recv_window: int
    _conn_max: int
    _conn_unacked: int
    _closing: bool

    def _idle(self, sid: int) -> bool:
        raise NotImplementedError  # LeanConnection's

    def _apply_settings(self, values: dict[int, int]) -> None:
        for key, value in values.items():
            if key == f.INITIAL_WINDOW_SIZE:
                delta = value - self._peer_window
                self._peer_window = value
                for stream in self._streams.values():
                    stream.send_window += delta
                    if stream.send_window > f.MAX_WINDOW:
                        raise f.ConnectionError_(f.FLOW_CONTROL_ERROR, "stream window overflow")
                if delta > 0:
                    self._release_waiting()
            elif key == f.MAX_FRAME_SIZE:
                self._peer_max_frame = value
            elif key == f.MAX_CONCURRENT_STREAMS:
                self._peer_max_streams = value
            elif key == f.HEADER_TABLE_SIZE:
                self._encoder.table_size_changed()  # RFC 7541 4.2: say so in the next block

    def _on_window_update(self, sid: int, payload: memoryview) -> None:
        if len(payload) != 4:
            raise f.ConnectionError_(f.FRAME_SIZE_ERROR, "WINDOW_UPDATE is not 4 bytes")
        increment = int.from_bytes(payload, "big") & 0x7FFFFFFF
        if not sid:
            if not increment:
                raise f.ConnectionError_(f.PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            self._send_window += increment
            if self._send_window > f.MAX_WINDOW:
                raise f.ConnectionError_(f.FLOW_CONTROL_ERROR, "connection window overflow")
            self._release_waiting()
            return
        stream = self._streams.get(sid)
        if stream is None:
            if self._idle(sid):
                raise f.ConnectionError_(f.PROTOCOL_ERROR, f"WINDOW_UPDATE on idle stream {sid}")
            return
        if not increment:
            self._reset(stream, f.PROTOCOL_ERROR, notify=True)
            return
        stream.send_window += increment
        if stream.send_window > f.MAX_WINDOW:
            self._reset(stream, f.FLOW_CONTROL_ERROR, notify=True)
            return
        if stream.sid in self._waiting:
            self._flush_stream(stream)

    def _open(self, sid: int, uid: int) -> Stream:
        stream = Stream(sid, uid, self._peer_window, self._window)
        self._streams[sid] = stream
        if self._client:
            self._by_uid[uid] = stream
        return stream

    def _remote_end(self, stream: Stream) -> None:
        stream.remote_done = True
        if stream.local_done:
            self._drop(stream)

    def _local_end(self, stream: Stream) -> None:
        stream.local_done = True
        if stream.remote_done:
            self._drop(stream)

    def _drop(self, stream: Stream) -> None:
        """The stream is closed: forget it; credit output it held back to its source."""
        self._streams.pop(stream.sid, None)
        if self._client:
            self._by_uid.pop(stream.uid, None)
        if self._waiting.pop(stream.sid, None) is not None:
            for view, consumed in stream.chunks:
                if consumed is not None:
                    consumed(len(view))
            stream.chunks.clear()

    def _reset(self, stream: Stream, code: int, notify: bool = False) -> None:
        """A stream error (5.4.2): RST_STREAM to the peer; ``notify`` the proxy with a Reset."""
        self._out += f.rst_stream(stream.sid, code)
        self._drop(stream)
        if notify:
            self._events.append(Reset(stream.uid, code))

    # -- output ----------------------------------------------------------------

    def _take(self) -> bytearray:
        out = self._out
        self._out = bytearray()
        return out

    def send(self, event: Event) -> Buffers:
        kind = type(event)
        if kind is Data:
            stream = self._stream_for(event.stream_id)
            if stream is not None:
                self._send_data(stream, event)  # type: ignore[arg-type]
            else:
                consumed = event.extensions.get("consumed")
                if consumed is not None:  # the stream is gone: its credit goes back all the same
                    consumed(len(event.payload))  # type: ignore[union-attr]
        elif kind is Headers:
            if event.extensions.get("control"):
                return self._take()
            self._send_headers(event)  # type: ignore[arg-type]
        elif kind is Trailers:
            stream = self._stream_for(event.stream_id)
            if stream is not None:
                stream.trailers = response_fields(event.fields, trailers=True)  # type: ignore[union-attr]
                self._flush_stream(stream)
        elif kind is Reset:  # also for a stream whose own side is done (a request sent whole)
            stream = self._by_uid.get(event.stream_id) if self._client else \
                self._streams.get(event.stream_id)
            if stream is not None:
                self._reset(stream, event.error_code or f.CANCEL)  # type: ignore[union-attr]
        else:
            raise LocalProtocolError(f"not an event: {event!r}")
        return self._take()

    def _stream_for(self, uid: int) -> Stream | None:
        stream = self._by_uid.get(uid) if self._client else self._streams.get(uid)
        return stream if stream is not None and not stream.local_done else None

    def _send_headers(self, event: Headers) -> None:
        if self._client:
            if self._closing:
                raise LocalProtocolError("the upstream sent GOAWAY: no new streams")
            sid = self._next_sid
            self._next_sid += 2
            stream = self._open(sid, event.stream_id)
            fields = event.fields
            if event.extensions.get("http_version") != "2":
                fields = request_fields(fields)
        else:
            found = self._streams.get(event.stream_id)
            if found is None or found.local_done:
                return  # reset meanwhile: its Reset event is on its way
            stream = found
            fields = response_fields(event.fields)
        self._header_block(stream.sid, fields, event.end_stream)
        if event.end_stream:
            self._local_end(stream)

    def _header_block(self, sid: int, fields: list[tuple[bytes, bytes]], end: bool) -> None:
        block = self._encoder.encode(fields)
        limit = self._peer_max_frame
        flags = f.END_STREAM if end else 0
        if len(block) <= limit:
            self._out += f.frame(f.HEADERS, flags | f.END_HEADERS, sid, block)
            return
        self._out += f.frame(f.HEADERS, flags, sid, block[:limit])
        for start in range(limit, len(block), limit):
            last = start + limit >= len(block)
            self._out += f.frame(f.CONTINUATION, f.END_HEADERS if last else 0, sid,
                                 block[start : start + limit])

    def _send_data(self, stream: Stream, event: Data) -> None:
        consumed: _Consumed | None = event.extensions.get("consumed")
        payload = event.payload
        if payload:
            stream.chunks.append((memoryview(payload), consumed))
        elif consumed is not None:
            consumed(0)
        if event.end_stream:
            stream.end_queued = True
        self._flush_stream(stream)

    def _flush_stream(self, stream: Stream) -> None:
        """Frame what the stream has waiting, as far as both windows allow."""
        chunks, out = stream.chunks, self._out
        sid, limit = stream.sid, self._peer_max_frame
        while chunks:
            room = min(self._send_window, stream.send_window)
            if room <= 0:
                self._waiting[sid] = stream
                return
            view, consumed = chunks[0]
            size = min(len(view), room, limit)
            if size == len(view):
                chunks.popleft()
                last = not chunks and stream.end_queued and stream.trailers is None
            else:
                chunks[0] = (view[size:], consumed)
                last = False
            out += f.frame(f.DATA, f.END_STREAM if last else 0, sid, view[:size])
            self._send_window -= size
            stream.send_window -= size
            if consumed is not None:
                consumed(size)
            if last:
                self._waiting.pop(sid, None)
                self._local_end(stream)
                return
        self._waiting.pop(sid, None)
        if stream.trailers is not None:
            self._header_block(sid, stream.trailers, True)
            self._local_end(stream)
        elif stream.end_queued and not stream.local_done:
            out += f.frame(f.DATA, f.END_STREAM, sid)
            self._local_end(stream)

    def _release_waiting(self) -> None:
        for stream in list(self._waiting.values()):
            if self._send_window <= 0:
                return
            self._flush_stream(stream)

    # -- flow control, heartbeats, replies -----------------------------------------

    def acknowledge(self, stream_id: int, size: int) -> Buffers:
        """Credit ``size`` received bytes of ``stream_id`` back to the peer (WINDOW_UPDATE)."""
        if size:
            self._credit_connection(size)
            stream = self._by_uid.get(stream_id) if self._client else self._streams.get(stream_id)
            if stream is not None and not stream.remote_done:
                stream.unacked += size
                if stream.unacked >= self._window >> 1:
                    self._out += f.window_update(stream.sid, stream.unacked)
                    stream.recv_window += stream.unacked
                    stream.unacked = 0
        return self._take()

    def _credit_connection(self, size: int) -> None:
        self._conn_unacked += size
        if self._conn_unacked >= self._conn_max >> 1:
            self._out += f.window_update(0, self._conn_unacked)
            self._recv_window += self._conn_unacked
            self._conn_unacked = 0

    def stream_capacity(self) -> int:
        """How many more streams the peer lets us open now (client role)."""
        if self._closing:
            return 0
        return self._peer_max_streams - len(self._streams)

    @property
    def should_close(self) -> bool:
        return self._closing and not self._streams
