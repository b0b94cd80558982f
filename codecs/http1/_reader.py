"""The parsing half shared by both roles: httptools callbacks -> queued events.

httptools (llhttp) parses everything it is fed at once and reports through
callbacks; it cannot stop between two pipelined messages. So ``receive_data``
parses eagerly into a queue and ``next_event`` hands events out, which is
where the server role applies its PAUSED rule. The parser is never given
bytes after an error or a protocol switch.

Header-size limit, accounted per read rather than per field (this is the hot
path). llhttp buffers nothing, but httptools joins a name or value split
across reads before reporting it, and we hold the fields of an unfinished
head. A head, a trailer block or a chunk-size line queues no event, so:

* every read that queued no event holds only such bytes; once those reads add
  up past the limit we fail (a lower bound: never early, at most one read
  late), so nothing unfinished grows past the limit plus one read;
* when a head completes, the bytes it can span are bounded by the last read
  that queued an event, the reads since, and the current read; only when that
  bound passes the limit do we measure the head itself.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from httptools import HttpParserError, HttpParserUpgrade

from mesh.codec import (
    CLOSED,
    NEED_DATA,
    ConnectionOptions,
    Data,
    NextEvent,
    ProtocolError,
    RemoteProtocolError,
    Trailers,
)

__all__ = ["NEW_EVENT", "MessageReader", "field_bytes"]

#: ``NEW_EVENT(Headers)`` then assigning its four fields builds the same event as
#: ``Headers(...)`` at about half the cost: a class call with a Python
#: ``__init__`` is the most expensive step of queueing an event, and the parse
#: callbacks queue one or two per message. Hot path only; elsewhere call the class.
NEW_EVENT = object.__new__


def field_bytes(fields: list[tuple[bytes, bytes]]) -> int:
    """Wire size of ``name: value`` lines (the slow, exact half of the limit)."""
    return sum(len(name) + len(value) + 4 for name, value in fields)


class MessageReader:
    """Feeds one httptools parser and queues the events its callbacks describe.

    Subclasses provide the role: the head callbacks (``on_url`` data,
    ``on_header``, which keeps or consumes each field, ``on_headers_complete``),
    ``on_message_complete`` (which marks the message's last event, or queues
    its trailers), ``_new_fields``, ``_reply`` (the error reply for a status,
    or None) and ``_eof_mid_message``.
    """

    # Slots: every callback reads and writes these; slot access is the cheapest there is
    # (and a plain instance of a role class has more attributes than CPython 3.11 keeps
    # in a shared-key instance dict).
    __slots__ = (
        "_queue", "_terminal", "_stopped", "_close", "_max_head", "_unreported", "_carry",
        "_chunk_size", "_dropped", "_in_head", "_idle", "on_message_begin", "_chunk", "_sid",
        "_fields", "_callback_error", "trailing_data", "_parser",
    )

    def __init__(self, options: ConnectionOptions, parser: Any) -> None:
        # Headers, Data and Trailers waiting for next_event.
        self._queue: deque[Any] = deque()
        # CLOSED or a RemoteProtocolError once the main parser takes no more input.
        self._terminal: Any = None
        self._stopped = False  # the main parser takes no more input (see _receive_stopped)
        self._close = False
        self._max_head = options.max_header_size
        self._unreported = 0  # bytes of the reads since the last one that queued an event
        self._carry = 0  # size of that last read
        self._chunk_size = 0  # size of the read being parsed
        self._dropped = 0  # wire size of head fields consumed rather than kept
        self._in_head = True
        # Between messages while not empty. llhttp's on_message_begin is its
        # clear(): a C-level callable instead of a Python callback (the call
        # alone costs more than the work); on_message_complete appends again.
        self._idle = [True]
        self.on_message_begin: Callable[[], None] = self._idle.clear
        # The read being parsed, while the message being parsed began at its
        # start (or after CRLFs llhttp skips): its start line is readable there,
        # see _checked_version. None once a message ended in it.
        self._chunk: bytes | bytearray | memoryview | None = None
        self._sid = 0
        self._fields = self._new_fields()
        self._callback_error: RemoteProtocolError | None = None
        #: Bytes that followed a protocol switch (101, CONNECT): not HTTP/1.
        self.trailing_data = bytearray()
        self._parser = parser(self)

    @property
    def should_close(self) -> bool:
        """True once the connection must close after the current output."""
        return self._close

    # -- input ---------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Parse bytes from the peer now; ``b""`` marks end of input.

        Hot path (twice per proxied exchange): the feed is written out here
        rather than in a helper, one Python call fewer per read.
        """
        if self._stopped:
            self._receive_stopped(data)
            return
        if not data:
            self._end_of_input()
            return
        queue = self._queue
        queued = len(queue)
        size = self._chunk_size = len(data)
        # A message beginning now begins at data[0] (or after CRLFs llhttp skips).
        self._chunk = data if self._idle else None
        try:
            self._parser.feed_data(data)
        except HttpParserUpgrade as switch:
            self._stop(CLOSED)
            self.trailing_data += data[switch.args[0] :]
        except HttpParserError as exc:
            if self._stopped and self._terminal is None:
                return  # input the role decided to ignore (after Connection: close)
            self._fail(self._translate(exc))
        else:
            if queued != len(queue):
                self._carry = size
                self._unreported = 0
            else:
                self._unreported += size
                if self._unreported > self._max_head:
                    self._fail(self._too_large())

    def _end_of_input(self) -> None:
        self._stopped = True
        self._close = True  # nothing more can come in: the connection is done
        if not self._idle:  # inside a message
            self._eof_mid_message()
        else:
            self._terminal = CLOSED

    def _receive_stopped(self, data: bytes | bytearray | memoryview) -> None:
        """Input the main parser must not see: after an error, EOF or a protocol switch."""
        if self._terminal is CLOSED:
            self.trailing_data += data  # after a protocol switch the bytes are opaque

    def _check_head_size(self, fields: list[tuple[bytes, bytes]], start_line: int) -> None:
        """A head whose reads may add up past the limit: measure it (see module doc)."""
        if field_bytes(fields) + start_line + self._dropped > self._max_head:
            raise self._reject(self._too_large())

    def next_event(self) -> NextEvent:
        """The next queued event, else NEED_DATA / CLOSED, or raise the stored error."""
        queue = self._queue
        if queue:
            return queue.popleft()
        return NEED_DATA if self._terminal is None else self._at_end()

    def _at_end(self) -> NextEvent:
        terminal = self._terminal
        if terminal is None:
            return NEED_DATA
        if isinstance(terminal, ProtocolError):
            raise terminal
        return terminal

    # -- httptools callbacks shared by both roles ----------------------------

    def _checked_version(self, offset: int) -> str:
        """The head's HTTP version, 1.0 or 1.1, else a 505 (server) / error (client).

        httptools' get_http_version() formats a string (~0.5 us); when the head
        began at the start of the read being parsed, its start line is right
        there: at ``offset`` in the request line, at 0 in a status line.
        """
        start = self._chunk
        if start is not None and start[offset : offset + 5] == b"HTTP/":
            number = start[offset + 5 : offset + 8]
            if number == b"1.1":
                return "1.1"
            if number == b"1.0":
                return "1.0"
        version: str = self._parser.get_http_version()
        if version not in ("1.1", "1.0"):
            raise self._reject(self._error(505, f"HTTP/{version} is not supported"))
        return version

    def on_body(self, body: bytes) -> None:
        # Data(self._sid, body, False, {}) without the __init__ round trip (see NEW_EVENT)
        event = NEW_EVENT(Data)
        event.stream_id = self._sid
        event.payload = body
        event.end_stream = False
        event.extensions = {}
        self._queue.append(event)

    def _queue_trailers(self, trailers: list[tuple[bytes, bytes]]) -> None:
        if field_bytes(trailers) > self._max_head:
            raise self._reject(self._error(400, f"trailers larger than {self._max_head} bytes"))
        self._queue.append(Trailers(self._sid, trailers, {}))

    # -- role hooks --------------------------------------------------------------

    def _new_fields(self) -> list[tuple[bytes, bytes]]:
        raise NotImplementedError

    def _reply(self, code: int, message: str) -> bytes | None:
        raise NotImplementedError

    def _eof_mid_message(self) -> None:
        raise NotImplementedError

    # -- errors ----------------------------------------------------------------

    def _stop(self, terminal: Any) -> None:
        self._stopped = True
        self._terminal = terminal

    def _fail(self, error: RemoteProtocolError) -> None:
        self._stop(error)
        self._close = True

    def _reject(self, error: RemoteProtocolError) -> RemoteProtocolError:
        """Remember an error raised inside a callback; httptools wraps it."""
        self._callback_error = error
        return error

    def _error(self, code: int, message: str) -> RemoteProtocolError:
        return RemoteProtocolError(message, self._reply(code, message))

    def _too_large(self) -> RemoteProtocolError:
        if self._in_head:
            return self._error(431, f"header block larger than {self._max_head} bytes")
        return self._error(400, f"chunk line or trailers larger than {self._max_head} bytes")

    def _translate(self, exc: HttpParserError) -> RemoteProtocolError:
        error = self._callback_error
        if error is not None:
            return error
        cause = exc.__context__
        if cause is not None:  # our own callback broke: a codec bug, not the peer's
            return self._error(500, f"http1 codec bug in a parser callback: {cause!r}")
        return self._error(400, f"malformed HTTP/1 message: {exc}")
