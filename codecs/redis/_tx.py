"""MULTI / EXEC / DISCARD through the sharding proxy, pinned to one shard.

A transaction lives on one Redis server, so the proxy runs it on the client's own upstream
connection to the shard of the transaction's first key (as Envoy's redis_proxy does):

- ``MULTI`` is answered ``+OK`` by the proxy and held back; it is sent ahead of the first
  keyed command, on the dedicated connection to that command's shard (its ``+OK`` is dropped);
- the commands that follow go on the same connection and get the server's ``+QUEUED``;
- a command whose keys hash elsewhere is sent as a command the server does not know
  (``RPCMESH-KEY-ON-ANOTHER-SHARD``), so the server itself answers an error and marks the
  transaction failed: ``EXEC`` then gets Redis' own ``-EXECABORT``;
- ``EXEC`` / ``DISCARD`` go to that connection; with no command queued the proxy answers them
  (``*0`` / ``+OK``) without a server.

``WATCH`` pins the client to the shard of its keys before the transaction starts (they must
share one hash tag): it goes on the client's own connection to that shard, and so do the
MULTI, the queued commands and the EXEC that follow, so the server sees the whole optimistic
transaction (an EXEC after a watched key changed gets the server's null reply). ``UNWATCH``,
``EXEC`` and ``DISCARD`` end the pin.
"""

from __future__ import annotations

from mesh.codec import Headers

from ._commands import Command, hash_slot_key, keys_of
from ._resp import encode_command, error_reply

__all__ = ["Transaction"]

_MULTI = [b"MULTI"]
_FOREIGN = b"RPCMESH-KEY-ON-ANOTHER-SHARD"


class Transaction:
    """One client's open MULTI: the shard it is pinned to, once it is."""

    __slots__ = ("key", "slot", "failed", "pin")

    def __init__(self, pin: tuple[bytes, bytes] | None = None) -> None:
        self.key: bytes | None = None  # the first key: routes every command of the transaction
        self.slot: bytes | None = None
        self.failed = False  # refused before anything reached a server
        #: (key, slot) of a WATCH before MULTI: the transaction runs on that shard
        self.pin = pin

    def queue(self, request: Headers, cmd: Command, args: list[bytes]) -> bytes | None:
        """Mark ``request`` for the transaction's connection; an error reply when it cannot go."""
        keys = keys_of(cmd, args) if cmd.kind not in ("local", "deny") else []
        if cmd.kind == "deny" or not keys:
            if self.key is None:
                self.failed = True
                return error_reply(f"{args[0].decode('latin-1').upper()} cannot run inside MULTI "
                                   "through the sharding proxy (only commands with keys)")
            self._foreign(request, args)
        else:
            if self.key is None:
                self.key, self.slot = self.pin or (keys[0], hash_slot_key(keys[0]))
                request.extensions["before"] = [_multi()]
            if any(hash_slot_key(k) != self.slot for k in keys):
                self._foreign(request, args)
        request.extensions["dedicated"] = True
        request.extensions["route_key"] = self.key
        return None

    def finish(self, request: Headers, name: bytes) -> bytes | None:
        """EXEC or DISCARD: sent to the transaction's connection, or answered here."""
        if self.key is None and self.pin is not None and not self.failed:
            # watched keys: only the server knows whether EXEC runs (null if one changed)
            self.key = self.pin[0]
            request.extensions["before"] = [_multi()]
        elif self.key is None:
            if name == b"discard":
                return b"+OK\r\n"
            if self.failed:
                return b"-EXECABORT Transaction discarded because of previous errors.\r\n"
            return b"*0\r\n"
        request.extensions["dedicated"] = True
        request.extensions["route_key"] = self.key
        return None

    @staticmethod
    def watch(request: Headers, pin: tuple[bytes, bytes]) -> None:
        """WATCH / UNWATCH on the client's own connection to the pinned shard."""
        request.extensions["dedicated"] = True
        request.extensions["route_key"] = pin[0]

    @staticmethod
    def _foreign(request: Headers, args: list[bytes]) -> None:
        """Make the server refuse this command, which fails the transaction there too."""
        words = [_FOREIGN, args[0]]
        request.extensions["args"] = words
        request.extensions["raw"] = encode_command(words)


def _multi() -> Headers:
    return Headers(0, [(b":command", b"MULTI")], True,
                   {"args": list(_MULTI), "raw": encode_command(_MULTI)})
