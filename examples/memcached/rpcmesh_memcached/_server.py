"""SERVER role: parse commands from a memcached client, encode the replies in command order.

Three things make this more than a line parser:

- **One request per key.** ``get a b c`` is handed out as three requests
  (``get a``, ``get b``, ``get c``, consecutive stream ids) so that each key
  is routed on its own, to the shard that holds it. Their replies are joined
  back into the one reply the client expects: the VALUE blocks in key order
  and a single END. If one of them is an error, the client gets that error
  line instead of the rest (as memcached would answer a bad multi-get).
- **noreply is stripped.** A noreply command is forwarded without it, so
  every upstream command has exactly one reply (PIPELINE matching relies on
  it); this role then writes nothing for it, not even an error, which is what
  memcached does (``Headers.extensions["noreply"]`` marks such requests).
- **Whole messages.** A storage command is handed out only once its data
  block and CRLF are all in (at most ``max_frame_size`` bytes, checked on the
  command line, before any of it is buffered), as ``Headers`` then one
  ``Data``. A shared upstream connection writes each request in one go; a
  block streamed in pieces would let another client's command land inside it.

``quit`` ends the input: ``next_event`` answers CLOSED and ``should_close``
turns True. Malformed input raises RemoteProtocolError whose ``reply`` is
``CLIENT_ERROR <reason>\\r\\n``; the proxy writes it and closes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

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

from ._framing import CRLF, Buffer, Malformed, check_key, number, one_line, show, tokens
from ._protocol import COMMAND, COMMANDS, ERRORS, QUIT, REPLIES, REPLY, Command, Family
from ._replies import END, END_LINE, MESSAGE, VALUE, encode_reply, reply_word, value_line

__all__ = ["ServerConnection"]

_INT_MAX = 2**31 - 1
_Fields = list[tuple[bytes, bytes]]


@dataclass(slots=True)
class _Group:
    """The requests one get/gets line became: their replies make one reply."""

    left: int
    failed: bool = False


@dataclass(slots=True)
class _Slot:
    """A request handed out and not answered yet; slots are answered in order."""

    stream_id: int
    family: Family
    noreply: bool
    group: _Group | None
    #: A VALUE head waiting for its Data (the line needs the data's length).
    value: Headers | None = None
    chunks: list[bytes | bytearray | memoryview] = field(default_factory=list)


@dataclass(slots=True)
class _Pending:
    """A storage command whose data block is still arriving."""

    fields: _Fields
    size: int
    noreply: bool


def _refusal(reason: str) -> RemoteProtocolError:
    return RemoteProtocolError(reason, b"CLIENT_ERROR " + one_line(reason.encode()) + CRLF)


class ServerConnection:
    """The downstream side of a proxied memcached connection."""

    def __init__(self, options: ConnectionOptions) -> None:
        self._in = Buffer(options.max_header_size)
        self._max_block = min(options.max_frame_size, _INT_MAX - 2)
        self._ready: deque[Event] = deque()
        self._slots: deque[_Slot] = deque()
        self._pending: _Pending | None = None
        self._last_id = 0
        self._error: RemoteProtocolError | None = None
        self._quit = False
        self.should_close = False

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Take bytes from the client; ``b""`` marks end of input."""
        if not self._quit:  # after quit nothing is read
            self._in.feed(data)

    # -- commands ---------------------------------------------------------------

    def next_event(self) -> NextEvent:
        """The next request event, NEED_DATA, or CLOSED (EOF or quit).

        Raises RemoteProtocolError (reply: a CLIENT_ERROR line) on bytes the
        protocol forbids, and again on every later call.
        """
        if self._ready:
            return self._ready.popleft()
        if self._error is not None:
            raise self._error
        if not self._quit:
            try:
                self._parse()
            except Malformed as exc:
                self._error = _refusal(str(exc))
                raise self._error from None
        if self._ready:
            return self._ready.popleft()
        return CLOSED if self._quit or self._in.eof else NEED_DATA

    def _parse(self) -> None:
        if self._pending is None:
            line = self._in.line()
            if line is None:
                if self._in.eof and self._in.data:
                    raise Malformed("connection closed in the middle of a command line")
                return
            self._command(line)
        if self._pending is not None:
            self._data_block(self._pending)

    def _command(self, line: bytes) -> None:
        words = tokens(line)
        if not words:
            raise Malformed("empty command line")
        name, args = words[0], words[1:]
        command = COMMANDS.get(name)
        if command is None:
            if name != QUIT:
                raise Malformed(f"unknown command {show(name)}")
            if args:
                raise Malformed("usage: quit")
            self._quit = self.should_close = True
        elif command.family is Family.RETRIEVAL:
            self._retrieval(name, args)
        elif command.family is Family.STATS:
            rest = [(b"args", b" ".join(args))] if args else []
            self._hand_out([(COMMAND, name), *rest], Family.STATS)
        else:
            self._arguments(command, args)

    def _retrieval(self, name: bytes, keys: list[bytes]) -> None:
        if not keys:
            raise Malformed(f"usage: {COMMANDS[name].usage}")
        for key in keys:  # all checked before any is handed out
            check_key(key)
        group = _Group(len(keys))
        for key in keys:
            self._hand_out([(COMMAND, name), (b"key", key)], Family.RETRIEVAL, group=group)

    def _arguments(self, command: Command, args: list[bytes]) -> None:
        noreply = command.noreply and bool(args) and args[-1] == b"noreply"
        if noreply:
            args = args[:-1]
        names = command.args + command.optional
        if not len(command.args) <= len(args) <= len(names):
            raise Malformed(f"usage: {command.usage}")
        if command.args[:1] == (b"key",):
            check_key(args[0])
        fields = [(COMMAND, command.name), *zip(names, args, strict=False)]
        if command.data:
            self._pending = _Pending(fields, self._storage_size(args), noreply)
        else:
            self._hand_out(fields, command.family, noreply)

    def _storage_size(self, args: list[bytes]) -> int:
        """The data block's size, after the checks memcached makes on a storage line.

        memcached answers a line it refuses here without reading the data
        block, then reads the block as commands: two replies or more for one
        request, which would put a shared upstream connection out of step.
        """
        number(args[1], "flags", 2**32 - 1)
        number(args[2], "exptime", _INT_MAX, -_INT_MAX - 1)
        if len(args) > 4:
            number(args[4], "cas", 2**64 - 1)
        size = number(args[3], "bytes", _INT_MAX)
        if size > self._max_block:
            raise Malformed(f"a {size}-byte data block is over the limit ({self._max_block} bytes)")
        return size

    def _data_block(self, pending: _Pending) -> None:
        block = self._in.block(pending.size, CRLF)
        if block is None:
            if self._in.eof:
                raise Malformed("connection closed inside a data block")
            return
        self._pending = None
        stream_id = self._hand_out(pending.fields, Family.STORAGE, pending.noreply, end_stream=False)
        self._ready.append(Data(stream_id, block, True))

    def _hand_out(self, fields: _Fields, family: Family, noreply: bool = False,
                  group: _Group | None = None, end_stream: bool = True) -> int:
        stream_id = self._last_id = self._last_id + 1
        extensions = {"noreply": True} if noreply else {}
        self._ready.append(Headers(stream_id, fields, end_stream, extensions))
        self._slots.append(_Slot(stream_id, family, noreply, group or _Group(1)))
        return stream_id

    # -- replies -----------------------------------------------------------------

    def send(self, event: Event) -> Buffers:
        """Encode one reply event; replies come in command order.

        Raises LocalProtocolError for a reply out of order, a reply word the
        command cannot get, or an event memcached has no bytes for.
        """
        if type(event) is Headers:
            return self._send_head(event)
        if type(event) is Data:
            return self._send_data(event)
        raise LocalProtocolError(f"memcached has no way to send {type(event).__name__}")

    def _answering(self, stream_id: int) -> _Slot:
        if not self._slots:
            raise LocalProtocolError(f"a reply for stream {stream_id}, but no command waits for one")
        slot = self._slots[0]
        if slot.stream_id != stream_id:
            raise LocalProtocolError(f"a reply for stream {stream_id} while stream {slot.stream_id} "
                                     "comes first: memcached answers in command order")
        return slot

    def _send_head(self, head: Headers) -> Buffers:
        slot = self._answering(head.stream_id)
        if slot.value is not None:
            raise LocalProtocolError(f"the VALUE of stream {head.stream_id} still waits for its Data")
        word = reply_word(head)
        if word in ERRORS:
            return self._answer(slot, [encode_reply(word, head.fields)], error=True)
        if word not in REPLIES[slot.family]:
            raise LocalProtocolError(f"{show(word)} does not answer a {slot.family.value} command")
        if word == VALUE:
            if head.end_stream:  # no Data follows: an empty value
                return self._answer(slot, [value_line(head.fields, 0), CRLF])
            slot.value = head
            return b""  # written with the Data, whose length the line carries
        if word == END and slot.family is Family.RETRIEVAL:
            return self._answer(slot, [])  # the group's END is added by _answer
        return self._answer(slot, [encode_reply(word, head.fields)])

    def _send_data(self, data: Data) -> Buffers:
        slot = self._answering(data.stream_id)
        if slot.value is None:
            raise LocalProtocolError(f"Data for stream {data.stream_id}, whose reply has no VALUE head")
        slot.chunks.append(data.payload)
        if not data.end_stream:
            return b""
        size = sum(len(chunk) for chunk in slot.chunks)
        return self._answer(slot, [value_line(slot.value.fields, size), *slot.chunks, CRLF])

    def _answer(self, slot: _Slot, parts: list[bytes | bytearray | memoryview],
                error: bool = False) -> Buffers:
        """The bytes of a finished reply, given noreply and the get it was split from."""
        self._slots.popleft()
        if slot.noreply:
            return b""
        group = slot.group
        if group is None or slot.family is not Family.RETRIEVAL:
            return parts
        group.left -= 1
        if group.failed:
            return b""  # an error line already answered the whole get
        if error:
            group.failed = True
        elif not group.left:
            parts.append(END_LINE)
        return parts

    # -- the proxy's own replies ---------------------------------------------------------

    def local_reply(self, request: Headers, status: Status, message: str) -> list[Event]:
        """``CLIENT_ERROR <message>`` for BAD_REQUEST, ``SERVER_ERROR <message>`` otherwise.

        Encoded by ``send`` like any reply, so a noreply request still gets
        nothing and one key of a split get answers for the whole get.
        """
        word = b"CLIENT_ERROR" if status is Status.BAD_REQUEST else b"SERVER_ERROR"
        fields = [(REPLY, word), (MESSAGE, one_line(message.encode("utf-8", "replace")))]
        return [Headers(request.stream_id, fields, True, {"status_class": "error"})]

    def is_heartbeat(self, event: Event) -> bool:
        """memcached has no keep-alive probe of its own: always False."""
        return False

    def heartbeat_reply(self, event: Event) -> list[Event]:
        """Nothing: there are no heartbeats."""
        return []
