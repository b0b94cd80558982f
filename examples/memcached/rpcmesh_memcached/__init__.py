"""memcached's text protocol as an rpcmesh codec plugin: the worked example of docs/plugins.md.

``codec`` is the object the ``mesh.codecs`` entry point ``memcached`` names
(``protocol: memcached`` in config, ``mesh conformance memcached``). The
recorded traffic the conformance suite runs on ships in ``vectors/``.
"""

from __future__ import annotations

from ._client import ClientConnection
from ._codec import MemcachedCodec, MemcachedKeys
from ._match import match
from ._server import ServerConnection

__all__ = ["ClientConnection", "MemcachedCodec", "MemcachedKeys", "ServerConnection", "codec", "match"]

#: The codec registered as ``mesh.codecs:memcached``.
codec = MemcachedCodec()
