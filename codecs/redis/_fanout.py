"""Multi-key commands split per shard and merged: MGET, MSET, DEL, UNLINK, EXISTS, TOUCH.

The proxy core (mesh/proxy/fanout.py) asks ``ServerConnection.fan_out(request)``
for a :class:`KeyFanout`, routes each *part* (one key, or one key-value pair
for MSET) on its own, and sends every shard ONE command holding the parts that
landed there (``MGET a c``, ``DEL b``), as twemproxy does. Replies are cut back
into parts and merged in key order:

- MGET: one array, each slot the shard's reply for that key (nil kept in place);
- MSET: ``+OK`` once every shard said OK;
- DEL / UNLINK / EXISTS / TOUCH: the integer replies summed.

An error from any shard becomes the whole command's reply (twemproxy does the
same): a partial MGET result would be silently wrong.
"""

from __future__ import annotations

from mesh.codec import Event, Headers

from ._resp import BadFrame, encode_command, error_reply, value_end

__all__ = ["KeyFanout"]

_NO_LIMIT = 1 << 62


class KeyFanout:
    """One multi-key request's parts, and what the shards have answered so far."""

    __slots__ = ("_name", "_kind", "_groups", "_stream_id", "_values", "_total", "_error",
                 "parts")

    def __init__(self, request: Headers, kind: str, args: list[bytes]) -> None:
        self._name = args[0]
        self._kind = kind
        width = 2 if kind == "mset" else 1
        self._groups = [args[i : i + width] for i in range(1, len(args), width)]
        self._stream_id = request.stream_id
        #: number of parts, each routed on its own
        self.parts = len(self._groups)
        self._values: list[bytes] = [b""] * self.parts if kind == "mget" else []
        self._total = 0
        self._error: bytes | None = None

    def part(self, index: int) -> Headers:
        """A request holding only part ``index``: what the router hashes on."""
        return Headers(0, [(b":command", self._name.upper())], True,
                       {"args": [self._name, *self._groups[index]]})

    def request(self, parts: list[int]) -> Headers:
        """The one command that carries ``parts`` to the shard they share."""
        args = [self._name]
        for index in parts:
            args.extend(self._groups[index])
        return Headers(0, [(b":command", self._name.upper())], True,
                       {"args": args, "raw": encode_command(args)})

    def collect(self, parts: list[int], reply: Headers) -> None:
        """Take one shard's reply to ``request(parts)``."""
        raw: bytes = reply.extensions["raw"]
        if self._error is not None:
            return
        kind = raw[:1]
        if kind in (b"-", b"!"):
            self._error = raw if kind == b"-" else _simple_error(raw)
        elif self._kind == "mget":
            self._cut(parts, raw)
        elif self._kind == "mset":
            if raw != b"+OK\r\n":
                self._error = error_reply(f"unexpected MSET reply {raw[:40]!r} from a shard")
        elif kind == b":":
            self._total += int(raw[1:-2])
        else:
            self._error = error_reply(f"unexpected {self._name.decode('latin-1').upper()} "
                                      f"reply {raw[:40]!r} from a shard")

    def _cut(self, parts: list[int], raw: bytes) -> None:
        """Split an MGET array reply into its elements, one per part."""
        eol = raw.find(b"\r\n")
        if raw[:1] != b"*" or not raw[1:eol].isdigit() or int(raw[1:eol]) != len(parts):
            self._error = error_reply(f"unexpected MGET reply {raw[:40]!r} from a shard")
            return
        pos = eol + 2
        try:
            for index in parts:
                end = value_end(raw, pos, _NO_LIMIT, _NO_LIMIT)
                if end < 0:
                    raise BadFrame("the array ends early")
                self._values[index] = raw[pos:end]
                pos = end
        except BadFrame as exc:
            self._error = error_reply(f"unreadable MGET reply from a shard: {exc}")

    def result(self) -> list[Event]:
        """The merged reply, once every shard has answered."""
        if self._error is not None:
            word = self._error[1:].split(None, 1)[0][:32] or b"ERR"
            return [Headers(self._stream_id, [(b":error", word)], True, {"raw": self._error})]
        if self._kind == "mget":
            raw = b"*%d\r\n%s" % (self.parts, b"".join(self._values))
        elif self._kind == "mset":
            raw = b"+OK\r\n"
        else:
            raw = b":%d\r\n" % self._total
        return [Headers(self._stream_id, [], True, {"raw": raw})]


def _simple_error(raw: bytes) -> bytes:
    """A RESP3 bulk error ``!<len>\\r\\n<CODE text>\\r\\n`` as a simple ``-CODE text``."""
    text = raw[raw.find(b"\r\n") + 2 : -2]
    return b"-" + text.replace(b"\r", b" ").replace(b"\n", b" ") + b"\r\n"
