"""CLIENT role: encode commands for a memcached server, parse its replies.

memcached answers in command order and puts no id on the wire, so this role
remembers the stream id and reply family of every command it sent and gives
each reply the id of the command it answers (the PIPELINE rule the shared
upstream pool relies on, docs/architecture.md). For that every command must
get exactly one reply: ``noreply`` is never written (the server role strips
it), and a get carries one key (the server role splits multi-key gets).

A reply is handed out whole: a VALUE once its data and the END after it are
in (at most ``max_frame_size`` bytes of data, checked on the VALUE line), a
stats block once its END is in (at most ``max_header_size`` bytes in all).
A reply that does not fit the command it answers means the stream is out of
step, and raises RemoteProtocolError (``reply`` None: a server takes no
error from its client).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from mesh.codec import (
    CLOSED,
    NEED_DATA,
    Buffers,
    ConnectionOptions,
    Data,
    Event,
    Headers,
    LocalProtocolError,
    NextEvent,
    RemoteProtocolError,
    Status,
)

from ._framing import CRLF, Buffer, Malformed, check_text, check_token, number, show, tokens
from ._protocol import BLOCK_TAGS, COMMAND, COMMANDS, ERRORS, REPLIES, REPLY, Command, Family
from ._replies import END, MESSAGE, NUMBER, SINGLE, STATS, VALUE, VERSION

__all__ = ["ClientConnection"]

_Fields = list[tuple[bytes, bytes]]
_END_TRAILER = b"\r\nEND\r\n"
_ERROR_CLASS = {"status_class": "error"}


@dataclass(slots=True)
class _Body:
    """A storage command whose line waits for its data (the line carries the data's length)."""

    command: Command
    args: list[bytes]  # key, flags, exptime[, cas]: wire order without bytes
    chunks: list[bytes | bytearray | memoryview]


@dataclass(slots=True)
class _Value:
    """A VALUE line read; its data block and END are still arriving."""

    stream_id: int
    fields: _Fields
    size: int


def _arguments(command: Command, fields: _Fields) -> list[bytes]:
    """The command's arguments from its fields, in wire order (``bytes`` left out)."""
    values: dict[bytes, bytes] = {}
    keys = []
    for name, value in fields[1:]:
        if name == b"key":
            keys.append(value)
        values.setdefault(name, value)
    if command.family is Family.RETRIEVAL:
        if len(keys) != 1:
            raise LocalProtocolError(f"a {command.name.decode()} request carries one key, not "
                                     f"{len(keys)} (the server role splits multi-key gets)")
        return [check_token(keys[0], "key")]
    if command.family is Family.STATS:
        args = values.get(b"args")
        return [] if args is None else [check_text(args, "stats args")]
    out = []
    for name in command.args:
        if name != b"bytes":
            if name not in values:
                raise LocalProtocolError(f"{command.usage}: the field {name.decode()!r} is missing")
            out.append(check_token(values[name], name.decode()))
    return out + [check_token(values[n], n.decode()) for n in command.optional if n in values]


class ClientConnection:
    """The upstream side of a proxied memcached connection."""

    def __init__(self, options: ConnectionOptions) -> None:
        self._in = Buffer(options.max_header_size)
        self._max_block = options.max_frame_size
        self._max_stats = options.max_header_size
        self._sent: deque[tuple[int, Family]] = deque()
        self._ready: deque[Event] = deque()
        self._body: _Body | None = None
        self._value: _Value | None = None
        self._stats: _Fields | None = None
        self._stats_size = 0
        self._error: RemoteProtocolError | None = None
        self.should_close = False

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Take bytes from the server; ``b""`` marks end of input."""
        self._in.feed(data)

    # -- commands -------------------------------------------------------------------

    def send(self, event: Event) -> Buffers:
        """Encode one command event. Raises LocalProtocolError on misuse.

        A storage command's line is written with its Data (``b""`` for the
        Headers), counting the data instead of trusting the ``bytes`` field.
        """
        if type(event) is Headers:
            return self._send_head(event)
        if type(event) is Data:
            return self._send_data(event)
        raise LocalProtocolError(f"memcached has no way to send {type(event).__name__}")

    def _send_head(self, head: Headers) -> Buffers:
        if self._body is not None:
            raise LocalProtocolError(f"stream {head.stream_id} starts before the data block "
                                     "of the command before it is finished")
        fields = head.fields
        command = COMMANDS.get(fields[0][1]) if fields and fields[0][0] == COMMAND else None
        if command is None:
            raise LocalProtocolError(f"not a memcached command (its first field must be 'command' "
                                     f"naming one): {fields[:1]!r}")
        args = _arguments(command, fields)
        self._sent.append((head.stream_id, command.family))
        if command.data:
            self._body = _Body(command, args, [])
            return self._finish_body() if head.end_stream else b""
        return b" ".join([command.name, *args]) + CRLF

    def _send_data(self, data: Data) -> Buffers:
        if self._body is None:
            raise LocalProtocolError(f"Data for stream {data.stream_id}, whose command has no data block")
        self._body.chunks.append(data.payload)
        return self._finish_body() if data.end_stream else b""

    def _finish_body(self) -> Buffers:
        assert self._body is not None
        body, self._body = self._body, None
        size = b"%d" % sum(len(chunk) for chunk in body.chunks)
        args = body.args
        line = b" ".join([body.command.name, *args[:3], size, *args[3:]]) + CRLF
        return [line, *body.chunks, CRLF]

    # -- replies ----------------------------------------------------------------------

    def next_event(self) -> NextEvent:
        """The next reply event (stream id of the command it answers), NEED_DATA or CLOSED.

        Raises RemoteProtocolError when the server's bytes do not answer the
        commands sent, and again on every later call.
        """
        if self._ready:
            return self._ready.popleft()
        if self._error is not None:
            raise self._error
        try:
            self._parse()
        except Malformed as exc:
            self._error = RemoteProtocolError(f"memcached reply: {exc}")
            raise self._error from None
        if self._ready:
            return self._ready.popleft()
        return CLOSED if self._in.eof else NEED_DATA

    def _parse(self) -> None:
        if self._value is None and self._stats is None:
            if self._in.data and not self._sent:
                raise Malformed(f"bytes with no command waiting for a reply: {show(bytes(self._in.data))}")
            line = self._in.line()
            if line is not None:
                self._reply(line)
        if self._value is not None:
            self._value_block(self._value)
        while self._stats is not None and (line := self._in.line()) is not None:
            self._stats_line(line)
        if self._in.eof and not self._ready and (self._in.data or self._value or self._stats is not None):
            raise Malformed("connection closed in the middle of a reply")

    def _reply(self, line: bytes) -> None:
        stream_id, family = self._sent[0]
        word, space, rest = line.partition(b" ")
        if word in ERRORS:
            self._emit([(REPLY, word), *([(MESSAGE, rest)] if space else [])], _ERROR_CLASS)
        elif family is Family.RETRIEVAL and word == VALUE:
            self._value = self._value_head(stream_id, rest)
        elif family is Family.STATS and (word in BLOCK_TAGS or line == END):
            self._stats, self._stats_size = [], 0
            self._stats_line(line)
        elif family is Family.ARITHMETIC and line.isdigit() and len(line) <= 20:
            self._emit([(REPLY, NUMBER), (b"value", line)])
        elif family is Family.VERSION and word == VERSION and space:
            self._emit([(REPLY, VERSION), (b"version", rest)])
        elif line in SINGLE and line in REPLIES[family]:
            self._emit([(REPLY, line)])
        else:
            raise Malformed(f"{show(line)} does not answer a {family.value} command")

    def _emit(self, fields: _Fields, extensions: dict[str, str] | None = None,
              data: bytes | None = None) -> None:
        stream_id, _ = self._sent.popleft()
        self._ready.append(Headers(stream_id, fields, data is None, dict(extensions or {})))
        if data is not None:
            self._ready.append(Data(stream_id, data, True))

    def _value_head(self, stream_id: int, rest: bytes) -> _Value:
        words = tokens(rest)
        if len(words) not in (3, 4):
            raise Malformed(f"VALUE {show(rest)}: expected <key> <flags> <bytes> [<cas>]")
        number(words[1], "flags", 2**32 - 1)
        size = number(words[2], "bytes", 2**63)
        if size > self._max_block:
            raise Malformed(f"a {size}-byte value is over the limit ({self._max_block} bytes)")
        names = (b"key", b"flags", b"bytes", b"cas")
        if len(words) == 4:
            number(words[3], "cas", 2**64 - 1)
        return _Value(stream_id, [(REPLY, VALUE), *zip(names, words, strict=False)], size)

    def _value_block(self, value: _Value) -> None:
        data = self._in.block(value.size, _END_TRAILER)
        if data is not None:
            self._value = None
            self._emit(value.fields, data=data)

    def _stats_line(self, line: bytes) -> None:
        assert self._stats is not None
        self._stats_size += len(line) + 2
        if self._stats_size > self._max_stats:
            raise Malformed(f"stats reply longer than {self._max_stats} bytes")
        if line == END:
            fields, self._stats = self._stats, None
            self._emit([(REPLY, STATS), *fields])
            return
        tag, _, rest = line.partition(b" ")
        if tag not in BLOCK_TAGS:
            raise Malformed(f"{show(line)} inside a stats block")
        self._stats.append((tag.lower(), rest))

    # -- server role only ----------------------------------------------------------------

    def local_reply(self, request: Headers, status: Status, message: str) -> list[Event]:
        """Local replies are the server role's; here it raises LocalProtocolError."""
        raise LocalProtocolError("local_reply belongs to the server role")

    def is_heartbeat(self, event: Event) -> bool:
        """memcached has no keep-alive probe of its own: always False."""
        return False

    def heartbeat_reply(self, event: Event) -> list[Event]:
        """Nothing: there are no heartbeats."""
        return []
