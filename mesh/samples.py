"""Sample upstreams built into rpcmesh, so the embedded default needs nothing else.

``http_hello`` answers every request with a short greeting naming the
method and path it saw, so a newcomer can see a request cross the proxy.
"""

from __future__ import annotations

from mesh.admin.responder import serve_http
from mesh.codec import Codec, Headers
from mesh.net.connection import Connection

__all__ = ["HelloUpstream", "SAMPLE_KINDS"]

SAMPLE_KINDS = ("http_hello",)


class HelloUpstream:
    def __init__(self, name: str, codec: Codec) -> None:
        self.name = name
        self._codec = codec

    async def handle(self, conn: Connection) -> None:
        await serve_http(conn, self._codec, self.respond)

    def respond(self, request: Headers) -> tuple[int, str, bytes]:
        head = {name.decode("latin-1"): value.decode("latin-1") for name, value in request.fields}
        body = (f"hello from rpcmesh sample upstream '{self.name}': "
                f"{head.get(':method', '?')} {head.get(':path', '?')}"
                f" via {head.get('x-forwarded-for', 'direct')}\n")
        return 200, "text/plain; charset=utf-8", body.encode()
