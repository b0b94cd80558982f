"""``Upgrade: h2c`` (RFC 7540 3.2): an HTTP/1.1 connection goes on as HTTP/2.

The HTTP/1.1 session answers ``101`` and hands its connection to a multiplexed session whose
HTTP/2 connection starts with the upgraded request as stream 1 (docs/http2.md).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from mesh.codec import Headers, RemoteProtocolError, Status
from mesh.stream import Exchange

if TYPE_CHECKING:
    from mesh.proxy.listener import ListenerRuntime
    from mesh.proxy.session import DownstreamSession

__all__ = ["MAX_UPGRADE_BODY", "is_h2c", "upgrade_to_h2"]

#: The largest request body taken along into an h2c upgrade (it is held whole).
MAX_UPGRADE_BODY = 1024 * 1024


def is_h2c(lr: ListenerRuntime, request: Headers) -> bool:
    """``Upgrade: h2c``, with an http2 codec installed here."""
    upgrade = request.extensions["upgrade"]
    return (isinstance(upgrade, bytes) and upgrade.lower() == b"h2c"
            and hasattr(lr.codecs.get("http2"), "upgraded_connection"))


async def upgrade_to_h2(session: DownstreamSession, request: Headers) -> None:
    """Answer 101 and go on as HTTP/2: the request becomes stream 1 of the new session.

    A request body comes whole in HTTP/1.1 before the client's HTTP/2 preface (RFC 7540
    3.2); it is read first (Content-Length only, up to MAX_UPGRADE_BODY) and handed on as
    stream 1's data. An upgrade that cannot be taken is answered 400 in HTTP/1.1.
    """
    from mesh.proxy.multiplex import MultiplexSession
    from mesh.proxy.session import ClientGone

    lr, conn = session.lr, session.conn
    fields = dict(request.fields)
    length = int(fields.get(b"content-length", 0) or 0)
    if b"transfer-encoding" in fields or length > MAX_UPGRADE_BODY:
        await _refuse(session, request, "an Upgrade: h2c request needs a Content-Length body "
                                        f"of at most {MAX_UPGRADE_BODY} bytes")
        return
    early = bytearray(getattr(session.cc, "trailing_data", b""))
    if length and request.extensions.get("expect_continue") and len(early) < length:
        session._write_events([Headers(request.stream_id, [(b":status", b"100")], False,
                                       {"informational": True})])
        await conn.flush()
    while len(early) < length:
        session._idle_deadline()
        data = await conn.recv()
        if not data:
            raise ClientGone("client closed inside an h2c upgrade body")
        early += data
    codec = lr.codecs["http2"]
    try:
        cc = codec.upgraded_connection(  # type: ignore[attr-defined]
            lr.options, fields.get(b"http2-settings"), request, bytes(early[:length]))
    except RemoteProtocolError as exc:  # a malformed HTTP2-Settings
        await _refuse(session, request, str(exc))
        return
    session._write_events([Headers(request.stream_id, [(b":status", b"101")], False,
                                   {"informational": True})])
    await conn.flush()
    session.deadline = 0.0  # the HTTP/2 session keeps its own idle time
    await MultiplexSession(lr, conn, codec, cc).run(bytes(early[length:]))


async def _refuse(session: DownstreamSession, request: Headers, reason: str) -> None:
    exchange = Exchange(session.lr.name, session.conn.peer, request,
                        session.codec.request_keys(request), time.monotonic())
    exchange.upstream_failure = reason
    session._local_reply(exchange, Status.BAD_REQUEST)
    session.close_after_exchange()
    await session.conn.flush()
