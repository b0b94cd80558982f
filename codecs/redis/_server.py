"""SERVER role: parse requests (RESP arrays with hiredis, or inline), encode replies."""

from __future__ import annotations

from typing import Any

import hiredis

from mesh.codec import (
    CLOSED,
    NEED_DATA,
    Buffers,
    ConnectionOptions,
    Event,
    Headers,
    LocalProtocolError,
    NextEvent,
    RemoteProtocolError,
    Status,
)

from ._commands import COMMANDS, PLAIN_ARITY
from ._local import LocalAnswers
from ._resp import BadFrame, encode_command, error_reply, request_end

__all__ = ["ServerConnection", "STATUS_TEXT"]

#: What each proxy-made failure says to a Redis client.
STATUS_TEXT = {
    Status.NO_ROUTE: "no route for this command",
    Status.UNAVAILABLE: "upstream unavailable",
    Status.TIMEOUT: "upstream timed out",
    Status.OVERLOADED: "proxy overloaded",
    Status.BAD_REQUEST: "bad request",
    Status.INTERNAL: "proxy internal error",
}

_COMPACT = 64 * 1024
pack_command = hiredis.pack_command


def _protocol_error(reason: str) -> RemoteProtocolError:
    message = f"Protocol error: {reason}"
    return RemoteProtocolError(message, error_reply(message))


class ServerConnection(LocalAnswers):
    """Requests in (``Headers`` with ``args`` and ``raw``), raw replies out."""

    def __init__(self, options: ConnectionOptions, resp3_codec: object = None) -> None:
        super().__init__(options)
        self._resp3_codec = resp3_codec
        self._buf = bytearray()
        self._pos = 0
        self._eof = False
        self._next_id = 1
        self._max_bulk = options.max_frame_size
        self._max_line = options.max_header_size
        #: parses the arrays of ``_buf`` from ``_pos``; it has been fed up to ``_fed``
        self._reader = hiredis.Reader()
        self._fed = 0
        #: an array ``next_plain`` parsed and left for ``next_event`` (args, raw)
        self._parsed: tuple[Any, bytes] | None = None

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            self._eof = True
            return
        if self._pos:
            del self._buf[: self._pos]
            self._fed -= self._pos
            self._pos = 0
        self._buf += data

    def next_event(self) -> NextEvent:
        while True:
            if self._quit:
                return CLOSED
            parsed = self._parsed
            if parsed is not None:
                self._parsed = None
                args, raw = parsed
            else:
                buf, pos = self._buf, self._pos
                if pos >= len(buf):
                    if pos > _COMPACT:
                        buf.clear()
                        self._pos = self._fed = 0
                    return CLOSED if self._eof else NEED_DATA
                if buf[pos] == 0x2A:  # '*'
                    array = self._array()
                    if array is None:
                        return CLOSED if self._eof else NEED_DATA
                    args, raw = array
                else:
                    inline = self._inline()
                    if inline is None:
                        return CLOSED if self._eof else NEED_DATA
                    args, raw = inline
                if not args:  # *0, *-1 or a blank line: Redis ignores it
                    continue
            sid = self._next_id
            self._next_id = sid + 1
            return Headers(sid, [(b":command", args[0].upper())], True, {"args": args, "raw": raw})

    def next_plain(self) -> tuple[bytes, bytes, bytes] | None:
        """The next request as ``(command, first key, raw bytes)`` if it is plain, consumed.

        Plain: a ``key`` command of the table (GET, SET, HINCRBY...) with a valid arity, on a
        connection in no transaction, authenticated, speaking RESP2. Such a request needs
        nothing from the proxy but its shard, so the multiplexed session's plain lane
        (mesh/proxy/plain.py) forwards it without an exchange. Any other request is left
        for ``next_event``; malformed input raises as ``next_event`` would.
        """
        if (self._parsed is not None or self._tx is not None or not self._authed or self._resp3
                or self._quit or self._watch is not None):
            return None
        while True:
            buf, pos = self._buf, self._pos
            if pos >= len(buf) or buf[pos] != 0x2A:
                return None
            array = self._array()
            if array is None:
                return None
            args = array[0]
            if args:
                break
            # *0 or *-1, consumed: Redis ignores it
        if len(args) > 1:
            arity = PLAIN_ARITY.get(args[0])
            if arity is None:
                cmd = COMMANDS.get(args[0].lower())
                arity = cmd.arity if cmd is not None and cmd.kind == "key" else None
            n = len(args)
            if arity is not None and ((n == arity) if arity > 0 else (n >= -arity)):
                return args[0], args[1], array[1]
        self._parsed = array
        return None

    def _array(self) -> tuple[Any, bytes] | None:
        """The array at ``_pos`` as ``(args, raw)``, consumed; None while incomplete.

        hiredis parses (in C, from all the input at once); the raw bytes, forwarded as they
        are, are the canonical encoding of the arguments, checked against the input. Errors,
        limits and non-canonical input take the careful walk of ``request_end``, which says
        what is wrong (Redis' own wording) before the bytes a length announces are waited for.
        """
        buf, pos = self._buf, self._pos
        reader = self._reader
        try:
            if self._fed < len(buf):
                reader.feed(buf, self._fed)  # type: ignore[arg-type]  # any buffer works
                self._fed = len(buf)
            args = reader.gets()
            if args is False:
                self._careful(buf, pos)  # only checks limits: raises, or it is incomplete
                return None
            if args is None:  # *-1
                self._pos = self._careful(buf, pos)
                return [], b""
            raw = pack_command(tuple(args))
        except (BadFrame, hiredis.ProtocolError, TypeError) as exc:
            self._careful(buf, pos)
            raise _protocol_error(str(exc)) from None
        if not buf.startswith(raw, pos):  # e.g. *0: not the canonical encoding
            end = self._careful(buf, pos)
            raw = bytes(buf[pos:end])
        elif len(raw) > self._max_bulk:  # a bulk string may be over the limit: the walk says
            self._careful(buf, pos)
        self._pos = pos + len(raw)
        return args, raw

    def _careful(self, buf: bytearray, pos: int) -> int:
        try:
            return request_end(buf, pos, self._max_bulk, self._max_line)
        except BadFrame as exc:
            raise _protocol_error(str(exc)) from None

    def _inline(self) -> tuple[list[bytes], bytes] | None:
        """A telnet-style request line; the array parser starts afresh after it."""
        buf, pos = self._buf, self._pos
        eol = buf.find(b"\n", pos)
        if eol < 0 or eol - pos > self._max_line:
            if len(buf) - pos > self._max_line:
                raise _protocol_error("too big inline request")
            return None
        args = bytes(buf[pos:eol]).split()
        self._pos = self._fed = eol + 1
        self._reader = hiredis.Reader()  # it was fed this line; Redis arrays follow
        return args, encode_command(args) if args else b""

    def send(self, event: Event) -> Buffers:
        raw = event.extensions.get("raw") if type(event) is Headers else None
        if raw is None:
            raise LocalProtocolError("a Redis reply is a Headers event carrying extensions['raw']")
        result: Buffers = raw
        return result

    def local_reply(self, request: Headers, status: Status, message: str) -> list[Event]:
        text = f"{STATUS_TEXT[status]} ({message})"
        return [Headers(request.stream_id, [(b":error", b"ERR")], True, {"raw": error_reply(text)})]

    def is_heartbeat(self, event: Event) -> bool:
        return False

    def heartbeat_reply(self, event: Event) -> list[Event]:
        return []

    @property
    def upstream_codec(self) -> object:
        """After HELLO 3, the codec whose pools speak RESP3 upstream; else None."""
        return self._resp3_codec if self._resp3 else None

    @property
    def should_close(self) -> bool:
        return self._quit
