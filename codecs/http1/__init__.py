"""HTTP/1.1 codec: sans-I/O, parsing with httptools (llhttp).

``codec`` is the object the ``mesh.codecs`` entry point ``http1`` names. See
docs/http1.md for framing decisions, hop-by-hop handling and limits.
"""

from __future__ import annotations

from ._client import ClientConnection
from ._codec import Http1Codec
from ._match import METHODS
from ._server import ServerConnection

__all__ = ["METHODS", "ClientConnection", "Http1Codec", "ServerConnection", "codec"]

#: The codec registered as ``mesh.codecs:http1``.
codec = Http1Codec()
