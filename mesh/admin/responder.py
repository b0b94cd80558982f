"""A tiny HTTP/1.1 responder on the http1 codec, for the admin API and samples.

Not on the proxy's data path: handlers are plain functions returning
(status, content type, body).
"""

from __future__ import annotations

from collections.abc import Callable

from mesh.codec import (
    CLOSED,
    NEED_DATA,
    Codec,
    CodecConnection,
    ConnectionOptions,
    Data,
    Headers,
    RemoteProtocolError,
    Role,
)
from mesh.net.connection import Connection, ConnectionBroken

__all__ = ["Handler", "serve_http"]

#: (request head) -> (status code, content type, body)
Handler = Callable[[Headers], tuple[int, str, bytes]]


async def serve_http(conn: Connection, codec: Codec, handler: Handler) -> None:
    cc = codec.connection(Role.SERVER, ConnectionOptions())
    try:
        while True:
            try:
                event = cc.next_event()
            except RemoteProtocolError as exc:
                if exc.reply:
                    conn.write(exc.reply)
                    await conn.flush()
                return
            if event is NEED_DATA:
                await conn.flush()
                cc.receive_data(await conn.recv())
            elif event is CLOSED:
                return
            elif type(event) is Headers:
                _respond(conn, cc, event, handler)
                if cc.should_close:
                    await conn.flush()
                    return
    except ConnectionBroken:
        return


def _respond(conn: Connection, cc: CodecConnection, request: Headers, handler: Handler) -> None:
    status, content_type, body = handler(request)
    fields = [(b":status", str(status).encode()), (b"content-type", content_type.encode()),
              (b"content-length", str(len(body)).encode())]
    for event in (Headers(request.stream_id, fields, False), Data(request.stream_id, body, True)):
        conn.write_buffers(cc.send(event))
