"""SERVER role: parse requests, encode responses.

One exchange at a time (RFC 9112 9.3.2): once a request has been handed out
whole, ``next_event`` holds everything that follows (a pipelined request, an
error, EOF) and answers PAUSED, until the response's ``end_stream`` event has
gone through ``send``. The proxy stops reading while PAUSED, so what waits in
the queue is at most one read.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import httptools

from mesh.codec import (
    CLOSED,
    NEED_DATA,
    PAUSED,
    Buffers,
    ConnectionOptions,
    Data,
    Event,
    Headers,
    LocalProtocolError,
    NextEvent,
    ProtocolError,
    RemoteProtocolError,
    Reset,
    Status,
    Trailers,
)

from ._framing import (
    CHUNKED,
    CLOSE,
    LENGTH,
    NONE,
    SPECIAL,
    BodyWriter,
    content_length,
    finish_head,
)
from ._framing import forwardable as _forwardable
from ._hop import HOP_BY_HOP, KEEP_ALIVE, connection_tokens, note_connection, without_named
from ._match import METHODS
from ._reader import MessageReader
from ._status import STATUS_LINES, error_reply, plain_text_head

__all__ = ["ServerConnection"]

_SPECIAL = HOP_BY_HOP | {b"host", b"expect"}
_PLACEHOLDER = (b"", b"")
_SCHEME = (b":scheme", b"http")
_METHOD_FIELDS = {m: (b":method", m) for m in METHODS}
_CANNED = {code: error_reply(code, msg) for code, msg in ((400, "bad request"),
           (431, "request header fields too large"), (500, "internal error"),
           (505, "HTTP version not supported"))}  # fmt: skip
_LOCAL_STATUS = {
    Status.NO_ROUTE: b"404",
    Status.UNAVAILABLE: b"503",
    Status.TIMEOUT: b"504",
    Status.OVERLOADED: b"429",
    Status.BAD_REQUEST: b"400",
    Status.INTERNAL: b"500",
}

# What the response encoder must know about the request it answers:
# (is HEAD, is HTTP/1.0, keep-alive asked, tunnel: upgrade token, b"CONNECT" or None).
_Request = tuple[bool, bool, bool, bytes | None]


def _copy_fields(fields: list[tuple[bytes, bytes]], lines: list[bytes]) -> tuple[bytes | None, bool]:
    """Append the forwardable fields; return (content-length, close requested)."""
    length: bytes | None = None
    close = False
    append = lines.append
    for field in fields:
        name = field[0]
        if name not in SPECIAL:
            append(b": ".join(field))
        elif name == b"content-length":
            if length is None:
                append(b"content-length: " + field[1])
            length = content_length(field[1], length)
        elif name == b"connection" and b"close" in connection_tokens(field[1]):
            close = True  # a filter or the proxy itself asks to close
    return length, close


def _framing(
    status: bytes, no_body: bool, length: bytes | None, end_stream: bool, http10: bool
) -> tuple[int, bytes]:
    """How the response body is delimited (RFC 9112 6.3), and the field saying so."""
    if no_body or status == b"204" or status == b"304":
        return NONE, b""  # HEAD keeps the content-length it was given
    if length is not None:
        return LENGTH, b""
    if end_stream:
        return NONE, b"content-length: 0"
    if http10:
        return CLOSE, b""  # HTTP/1.0 knows no chunked framing
    return CHUNKED, b"transfer-encoding: chunked"


class ServerConnection(MessageReader):
    """The downstream side of a proxied HTTP/1 connection."""

    def __init__(self, options: ConnectionOptions) -> None:
        super().__init__(options, httptools.HttpRequestParser, _SPECIAL)
        self._requests: deque[_Request] = deque()
        self._url = b""
        self._host: bytes | None = None
        self._expect = False
        self._connection: bytes | None = None
        self._upgrade: bytes | None = None
        self._current: _Request | None = None  # the request being answered
        self._request_done = True
        self._hold = False  # next_event must go through _held()
        self._writer = BodyWriter(NONE)  # reused: one response body at a time
        self._out: BodyWriter | None = None  # the writer, while a response body is open
        self._tunnel = False
        self._keep_alive = True  # of the request being parsed

    # -- parsing: httptools callbacks ----------------------------------------

    def _new_fields(self) -> list[tuple[bytes, bytes]]:
        return [_PLACEHOLDER, _PLACEHOLDER, _PLACEHOLDER, _PLACEHOLDER]  # pseudo fields

    def on_url(self, url: bytes) -> None:
        self._url += url

    def _special(self, name: bytes, value: bytes) -> None:
        if not self._in_head:
            return  # hop-by-hop, Host or Expect as a trailer: meaningless, dropped
        if name == b"host":
            if self._host is not None:  # RFC 9112 3.2: two Hosts are a 400
                raise self._reject(self._error(400, "more than one Host header"))
            self._host = value
        elif name == b"expect":
            if value.lower() == b"100-continue":
                self._expect = True
            else:
                self._fields.append((name, value))
        elif name == b"connection":
            self._connection = note_connection(self._connection, value)
        elif name == b"upgrade":
            self._upgrade = value

    def on_headers_complete(self) -> None:
        parser = self._parser
        method = parser.get_method()
        keep_alive = parser.should_keep_alive()
        fields = self._fields
        fields[0] = _METHOD_FIELDS.get(method) or (b":method", method)
        fields[1] = _SCHEME
        fields[2] = (b":authority", self._host or b"")
        fields[3] = (b":path", self._url)
        connection = self._connection
        if connection is None and keep_alive:
            # Keep-alive without a Connection header can only be HTTP/1.1, and
            # get_http_version() costs a string format per request.
            http10 = False
            extensions: dict[str, Any] = {"http_version": "1.1"}
        elif connection is KEEP_ALIVE:  # nothing to drop; only the version is unknown
            version = self._checked_version(len(method) + len(self._url) + 2)
            http10, extensions = version == "1.0", {"http_version": version}
        else:
            http10, extensions, fields = self._unusual_head(fields)
        if self._carry + self._unreported + self._chunk_size > self._max_head:
            self._check_head_size(fields, len(self._url) + 16)  # it may be too large
        tunnel = None
        if self._expect or self._upgrade is not None or method == b"CONNECT":
            tunnel = self._rare_kinds(method, http10, extensions)
        self._sid += 1
        self._queue.append(Headers(self._sid, fields, False, extensions))
        self._requests.append((method == b"HEAD", http10, keep_alive, tunnel))
        self._keep_alive = keep_alive
        self._url = b""
        self._host = self._connection = self._upgrade = None
        self._expect = False
        self._in_head = False  # later on_header calls are trailers
        self._dropped = 0
        self._fields = []

    def on_message_complete(self) -> None:
        self._end_message()
        if not self._keep_alive:
            # The client said close (or is HTTP/1.0): whatever it sends next is
            # never answered, so it is not parsed (llhttp would call it an error
            # in the same read and not in the next: ignoring it is the same
            # outcome however the reads fall).
            self._stopped = True

    def _rare_kinds(self, method: bytes, http10: bool, extensions: dict[str, Any]) -> bytes | None:
        """Expect: 100-continue, Upgrade and CONNECT: their extensions, and the tunnel kind."""
        if self._expect and not http10:  # RFC 9110 10.1.1: HTTP/1.0 expectations are ignored
            extensions["expect_continue"] = True
        if self._upgrade is None and method != b"CONNECT":
            return None
        if not self._parser.should_upgrade():  # Upgrade without "Connection: upgrade"
            return None
        if self._upgrade is not None:
            extensions["upgrade"] = self._upgrade
        return self._upgrade or method

    def _unusual_head(
        self, fields: list[tuple[bytes, bytes]]
    ) -> tuple[bool, dict[str, Any], list[tuple[bytes, bytes]]]:
        method = self._fields[0][1]
        version = self._checked_version(len(method) + len(self._url) + 2)
        if self._connection is not None:
            fields = without_named(fields, connection_tokens(self._connection))
        return version == "1.0", {"http_version": version}, fields

    def _reply(self, code: int, message: str) -> bytes | None:
        return _CANNED.get(code) or error_reply(code, message)

    def _eof_mid_message(self) -> None:
        if self._in_head:  # the client half-closed on a partial head: it may still read
            self._fail(self._error(400, "connection closed inside a request head"))
        else:  # a response may already be under way: there is nothing to add to it
            self._fail(RemoteProtocolError("connection closed inside a request body"))

    # -- handing events out ----------------------------------------------------

    def next_event(self) -> NextEvent:
        """The next request event; PAUSED while a complete request awaits its response."""
        if self._hold:
            return self._held()
        queue = self._queue
        if not queue:
            return self._at_end()
        event = queue.popleft()
        if event.__class__ is Headers:
            self._current = self._requests.popleft()
            self._request_done = False
        if event.end_stream:
            self._request_done = True
            self._hold = self._current is not None
        return event

    def _held(self) -> NextEvent:
        if self._tunnel:
            return CLOSED
        terminal = self._terminal
        if self._current is not None:  # a complete request awaits its response
            if self._queue or terminal is not None:
                return PAUSED  # what follows waits for it
            return NEED_DATA  # keep reading: EOF or the next request may come
        if isinstance(terminal, ProtocolError):
            raise terminal  # answered, now closing: the error may still have a reply
        return CLOSED if terminal is CLOSED else PAUSED  # answered, closing: nothing is read

    # -- encoding responses ----------------------------------------------------

    def send(self, event: Event) -> Buffers:
        """Encode one response event. Raises LocalProtocolError on misuse."""
        try:
            if type(event) is Data:
                return self._send_data(event)
            if type(event) is Headers:
                return self._send_headers(event)
            if type(event) is Trailers:
                return self._send_trailers(event)
        except (TypeError, ValueError, IndexError, AttributeError) as exc:
            raise LocalProtocolError(f"cannot encode {event!r}: {exc}") from exc
        if type(event) is Reset:  # HTTP/1 cannot abandon one exchange: close instead
            self._close = self._hold = True
            return b""
        raise LocalProtocolError(f"not an event: {event!r}")

    def _send_data(self, event: Data) -> Buffers:
        out = self._out
        if out is None:
            raise LocalProtocolError("Data sent before a response head")
        buffers = out.data(event.payload, event.end_stream)
        if event.end_stream:
            self._end_response()
        return buffers

    def _send_trailers(self, event: Trailers) -> Buffers:
        out = self._out
        if out is None:
            raise LocalProtocolError("Trailers sent before a response head")
        buffers = out.trailers(event.fields)
        self._end_response()
        return buffers

    def _send_headers(self, event: Headers) -> bytes:
        status = event.fields[0][1] if event.fields[0][0] == b":status" else b""
        line = STATUS_LINES.get(status)
        if line is None:
            raise LocalProtocolError(f"a response starts with a valid :status: {event.fields[0]}")
        request = self._current
        if request is None or self._out is not None:
            raise LocalProtocolError("no request is waiting for a response head")
        if status[0] == 0x31:  # b"1": informational, the exchange goes on
            return self._send_informational(event, request, status, line)
        return self._send_final(event, request, status, line)

    def _send_final(self, event: Headers, request: _Request, status: bytes, line: bytes) -> bytes:
        head, http10, keep_alive, tunnel = request
        lines = [line]
        length, close = _copy_fields(event.fields, lines)
        if tunnel is not None:
            # A 2xx opens a CONNECT tunnel; any other answer to CONNECT or to an
            # Upgrade request leaves bytes behind that were never parsed: close.
            self._tunnel = tunnel == b"CONNECT" and status[0] == 0x32
            close = close or not self._tunnel
        mode, framing = _framing(status, head or self._tunnel, length, event.end_stream, http10)
        if framing:
            lines.append(framing)
        close = close or self._close or not keep_alive or mode == CLOSE
        if close:
            lines.append(b"connection: close")
            self._close = True
        elif http10:
            lines.append(b"connection: keep-alive")
        encoded = finish_head(lines)
        out = self._writer
        out.mode = mode
        out.remaining = int(length) if length is not None and mode == LENGTH else 0
        if event.end_stream or self._tunnel:
            out.finish()
            self._end_response()
        else:
            self._out = out
        return encoded

    def _send_informational(
        self, event: Headers, request: _Request, status: bytes, line: bytes
    ) -> bytes:
        lines = [line]
        _forwardable(event.fields, lines)  # no framing, no connection options
        tunnel = request[3]
        if status == b"101":
            if tunnel is None or tunnel == b"CONNECT":
                raise LocalProtocolError("101 Switching Protocols answers no Upgrade request")
            lines += (b"connection: upgrade", b"upgrade: " + tunnel)
            encoded = finish_head(lines)
            self._tunnel = True
            self._end_response()
            return encoded
        if request[1]:
            return b""  # RFC 9110 15.2: never send a 1xx to an HTTP/1.0 client
        return finish_head(lines)

    def _end_response(self) -> None:
        self._out = None
        self._current = None
        if not self._request_done:
            self._close = True  # the rest of the request body was never read
        self._hold = self._close or self._tunnel

    # -- capabilities ----------------------------------------------------------

    def local_reply(self, request: Headers, status: Status, message: str) -> list[Event]:
        """A ``text/plain`` response with the HTTP status for ``status``."""
        body = (message + "\n").encode("utf-8")
        fields = plain_text_head(_LOCAL_STATUS[status], len(body))
        if request.fields and request.fields[0] == (b":method", b"HEAD"):
            return [Headers(request.stream_id, fields, True, {})]
        return [Headers(request.stream_id, fields, False, {}), Data(request.stream_id, body, True, {})]

    def is_heartbeat(self, event: Event) -> bool:
        """HTTP/1 has no heartbeat of its own."""
        return False

    def heartbeat_reply(self, event: Event) -> list[Event]:
        """Nothing: see ``is_heartbeat``."""
        return []
