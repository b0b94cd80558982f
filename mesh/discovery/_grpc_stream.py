"""One gRPC bidirectional stream over h2c, on rpcmesh's own HTTP/2 client (the lean codec).

Control planes speak gRPC (xDS's ADS is a bidi stream). The data path already has an
HTTP/2 client; this puts gRPC's framing on it (a message is 1 flag byte, a 4-byte length
and the protobuf bytes) instead of pulling a second HTTP/2 stack (grpcio) into the worker.
Messages are bytes here; the caller encodes and decodes them.
"""

from __future__ import annotations

from collections import deque

import trio

from mesh.codec import CLOSED, NEED_DATA, ConnectionOptions, Data, Headers, Reset, Role, Trailers
from mesh.net.connection import Connection, ConnectionBroken, connect

__all__ = ["GrpcStream", "GrpcStreamError"]

_MAX_MESSAGE = 64 * 1024 * 1024


class GrpcStreamError(Exception):
    """The stream ended: a gRPC status other than OK, a reset, or the connection went."""


class GrpcStream:
    """A client's bidi stream: ``send`` messages, ``receive`` them until the server ends it."""

    def __init__(self, conn: Connection, authority: str, path: str) -> None:
        from mesh.codecs.http2 import LeanConnection  # the codec is a plugin package

        self.conn = conn
        self.cc = LeanConnection(Role.CLIENT, ConnectionOptions())
        self._buffer = bytearray()
        self._messages: deque[bytes] = deque()
        self._ended: str | None = None
        self.conn.write_buffers(self.cc.send(Headers(1, [
            (b":method", b"POST"), (b":scheme", b"http"), (b":authority", authority.encode()),
            (b":path", path.encode()), (b"content-type", b"application/grpc"),
            (b"te", b"trailers"),
        ], False, {"http_version": "2"})))

    @classmethod
    async def open(cls, host: str, port: int, path: str, timeout: float = 5.0) -> GrpcStream:
        with trio.fail_after(timeout):
            conn = await connect(host, port)
        return cls(conn, f"{host}:{port}", path)

    async def send(self, message: bytes) -> None:
        frame = b"\x00" + len(message).to_bytes(4, "big") + message
        self.conn.write_buffers(self.cc.send(Data(1, frame, False)))
        await self.conn.flush()

    async def receive(self) -> bytes:
        """The next message; raises GrpcStreamError when the stream is over."""
        while not self._messages:
            if self._ended is not None:
                raise GrpcStreamError(self._ended)
            await self._pump()
        return self._messages.popleft()

    async def _pump(self) -> None:
        cc, conn = self.cc, self.conn
        while True:
            event = cc.next_event()
            if event is NEED_DATA:
                await conn.flush()
                try:
                    data = await conn.recv()
                except ConnectionBroken as exc:
                    self._ended = f"connection lost: {exc}"
                    return
                if not data:
                    self._ended = "the server closed the connection"
                    return
                cc.receive_data(data)
                continue
            if event is CLOSED:
                self._ended = "the server closed the connection"
                return
            if cc.is_heartbeat(event):
                conn.write_buffers(cc.send(event))
                continue
            if type(event) is Headers:
                status = dict(event.fields).get(b":status")
                if status != b"200":
                    self._ended = f"HTTP status {status!r}"
                    return
                grpc_status = dict(event.fields).get(b"grpc-status")
                if event.end_stream:  # trailers-only: an error before any message
                    self._ended = _status_text(grpc_status, event.fields)
                    return
            elif type(event) is Data:
                self._take(event)
                conn.write_buffers(cc.acknowledge(1, event.extensions.get("flow", 0)))
                if self._messages:
                    return
            elif type(event) is Trailers:
                self._ended = _status_text(dict(event.fields).get(b"grpc-status"), event.fields)
                return
            elif type(event) is Reset:
                self._ended = f"stream reset (HTTP/2 error {event.error_code})"
                return

    def _take(self, event: Data) -> None:
        buffer = self._buffer
        buffer += event.payload
        while len(buffer) >= 5:
            size = int.from_bytes(buffer[1:5], "big")
            if size > _MAX_MESSAGE:
                raise GrpcStreamError(f"a {size}-byte message")
            if buffer[0]:
                raise GrpcStreamError("compressed gRPC messages are not asked for")
            if len(buffer) < 5 + size:
                return
            self._messages.append(bytes(buffer[5 : 5 + size]))
            del buffer[: 5 + size]

    def close(self) -> None:
        self.conn.close()


def _status_text(status: bytes | None, fields: list[tuple[bytes, bytes]]) -> str:
    message = dict(fields).get(b"grpc-message", b"").decode("utf-8", "replace")
    return f"gRPC status {status.decode() if status else '?'}: {message}"
