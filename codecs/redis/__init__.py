"""Redis codec: RESP2/RESP3 and inline commands, requests parsed with hiredis.

``codec`` is the object the ``mesh.codecs`` entry point ``redis`` names. See
docs/redis.md for the events, the command table and what the proxy answers
itself.
"""

from __future__ import annotations

from ._client import ClientConnection
from ._codec import RedisCodec, RedisKeys, match
from ._commands import COMMANDS, Command, hash_slot_key, keys_of
from ._server import ServerConnection

__all__ = ["COMMANDS", "ClientConnection", "Command", "RedisCodec", "RedisKeys",
           "ServerConnection", "codec", "hash_slot_key", "keys_of", "match"]

#: The codec registered as ``mesh.codecs:redis``.
codec = RedisCodec()
