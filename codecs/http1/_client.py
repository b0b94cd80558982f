"""CLIENT role: encode requests, parse responses.

One request at a time (PoolMode.PING_PONG): the next request head may be sent
once the previous response has been parsed whole.

httptools' response parser cannot know the request method, and the method
decides whether a response has a body: a response to HEAD never has one, and
a 2xx to CONNECT opens a tunnel. For those two methods the response head is
cut out of the input at its blank line (bytes.find, no per-byte loop) and fed
alone to a throwaway parser, which validates it and reports its fields; the
main parser never sees those bytes and stays at a message boundary.
"""

from __future__ import annotations

from typing import Any

import httptools

from mesh.codec import (
    CLOSED,
    Buffers,
    ConnectionOptions,
    Data,
    Event,
    Headers,
    LocalProtocolError,
    RemoteProtocolError,
    Reset,
    Status,
    Trailers,
)

from ._framing import CHUNKED, LENGTH, NONE, SPECIAL, BodyWriter, content_length
from ._hop import (
    HOP_BY_HOP,
    KEEP_ALIVE,
    KEEP_ALIVE_SPELLINGS,
    connection_tokens,
    note_connection,
    without_named,
)
from ._reader import NEW_EVENT, MessageReader
from ._request_head import request_head as _request_head
from ._status import STATUS_FIELDS

__all__ = ["ClientConnection"]

_PLACEHOLDER = (b"", b"")
# RFC 9110 8.6: a request whose method gives the body a meaning says "0" when empty.
_BODY_METHODS = frozenset({b"POST", b"PUT", b"PATCH"})
_HEAD_ONLY = frozenset({b"HEAD", b"CONNECT"})
_CANONICAL = (b":method", b":scheme", b":authority", b":path")  # the server role's order


class ClientConnection(MessageReader):
    """The upstream side of a proxied HTTP/1 connection."""

    # See MessageReader.__slots__.
    __slots__ = (
        "_request", "_request_done", "_writer", "_out", "_head_buffer", "_detour",
        "_informational", "_keep_alive", "_connection", "_transfer_encoding", "_response",
    )

    def __init__(self, options: ConnectionOptions) -> None:
        super().__init__(options, httptools.HttpResponseParser)
        self._request: tuple[int, bytes] | None = None  # (stream id, method) awaiting a response
        self._request_done = True  # its body has been sent whole
        self._writer = BodyWriter(NONE)  # reused: one request body at a time
        self._out: BodyWriter | None = None  # the writer, while a request body is open
        self._head_buffer: bytearray | None = None  # a HEAD/CONNECT response head, gathering
        self._detour = False  # parsing such a head with the throwaway parser
        self._informational = False
        self._keep_alive = True
        self._connection: bytes | None = None
        self._transfer_encoding: bytes | None = None
        self._response: Headers | None = None

    # -- encoding requests -----------------------------------------------------

    def send(self, event: Event) -> Buffers:
        """Encode one request event. Raises LocalProtocolError on misuse."""
        # Hot path, once per exchange: the head is encoded here in one
        # function (request line, fields, framing, the CR/LF check) rather than
        # in ~15-line helpers; each Python call and bytecode saved is
        # measurable (bench/codec_http1.py).
        try:
            if type(event) is not Headers:
                return self._send_other(event)
            if self._request is not None or self._out is not None:
                raise LocalProtocolError("HTTP/1 carries one exchange at a time (PING_PONG)")
            if self._close or self._terminal is not None:
                raise LocalProtocolError("the connection is closing, closed or no longer HTTP")
            fields = event.fields
            try:  # the server role's order: no lookup table (see _request_head)
                (n0, method), (n1, _), (n2, authority), (n3, target) = fields[:4]
                canonical = (n0, n1, n2, n3) == _CANONICAL
            except ValueError:  # fewer fields, or not pairs: _request_head sorts it out
                canonical = False
            if canonical:
                lines = [method, target, authority]  # for the CR/LF check, see below
                append = lines.append
                length = None
                for field in fields[4:]:  # _plain_fields, written out
                    if field[0] not in SPECIAL:
                        append(b": ".join(field))
                    elif field[0] == b"content-length":
                        if length is None:
                            append(b"content-length: " + field[1])
                        length = content_length(field[1], length)
            else:
                lines = [b"", b"", b""]
                append = lines.append
                method, target, authority, length = _request_head(fields, lines)
                lines[:3] = method, target, authority
            if not method or not target or 32 in method or 32 in target:  # 32: b" " (memchr)
                raise LocalProtocolError(f"bad request line from :method {method!r}, :path {target!r}")
            end = event.end_stream
            if length is None:
                if not end:
                    append(b"transfer-encoding: chunked")
                elif method in _BODY_METHODS:
                    append(b"content-length: 0")
            extensions = event.extensions
            if "upgrade" in extensions and extensions["upgrade"].__class__ is bytes:
                lines += (b"connection: upgrade", b"upgrade: " + extensions["upgrade"])
            # finish_head, written out: no CR or LF in any line, nor in the three
            # parts of the request line and Host, which lines[:3] hold until now.
            bare = b"".join(lines)
            if 13 in bare or 10 in bare:
                raise LocalProtocolError("a header name or value contains CR or LF")
            lines[0] = b"".join((method, b" ", target, b" HTTP/1.1\r\nhost: ", authority))
            del lines[1:3]
            append(b"\r\n")
            head = b"\r\n".join(lines)
            self._request = (event.stream_id, method)
            if method in _HEAD_ONLY:
                self._head_buffer = bytearray()
                self._stopped = True  # the main parser must not see this response head
            self._request_done = end
            if not end:
                out = self._out = self._writer
                if length is None:
                    out.mode, out.remaining = CHUNKED, 0
                else:
                    out.mode, out.remaining = LENGTH, int(length)
            elif length is not None and int(length):
                out = self._writer  # the length announces a body that never comes
                out.mode, out.remaining = LENGTH, int(length)
                out.finish()  # raises
            return head
        except (TypeError, ValueError, IndexError, AttributeError) as exc:
            raise LocalProtocolError(f"cannot encode {event!r}: {exc}") from exc

    def _send_other(self, event: Event) -> Buffers:
        """A request body's Data or Trailers, a Reset, or a misuse."""
        if type(event) is Data:
            out = self._out
            if out is None:
                raise LocalProtocolError("request body sent outside a request")
            end = event.end_stream
            buffers = out.data(event.payload, end)
            if end:
                self._end_request()
            return buffers
        if type(event) is Trailers:
            return self._send_trailers(event)
        if type(event) is Reset:  # HTTP/1 cannot abandon one exchange: close instead
            self._close = True
            return b""
        raise LocalProtocolError(f"not an event: {event!r}")

    def _send_trailers(self, event: Trailers) -> Buffers:
        buffers = self._body_writer().trailers(event.fields)
        self._end_request()
        return buffers

    def _body_writer(self) -> BodyWriter:
        if self._out is None:
            raise LocalProtocolError("request body sent outside a request")
        return self._out

    def _end_request(self) -> None:
        self._out = None
        self._request_done = True

    # -- parsing responses: httptools callbacks ------------------------------

    def _new_fields(self) -> list[tuple[bytes, bytes]]:
        return [_PLACEHOLDER]  # :status

    def on_header(self, name: bytes, value: bytes) -> None:
        # Once per field; Connection, which nginx sends on every response, is
        # folded here rather than through a helper call (hot path). rstrip():
        # see the server role.
        name = name.lower()
        if name not in HOP_BY_HOP:
            self._fields.append((name, value.rstrip()))
            return
        if (name == b"connection" and value in KEEP_ALIVE_SPELLINGS
                and self._connection is None and self._in_head):  # fmt: skip
            self._connection = KEEP_ALIVE  # what note_connection() makes of it
            self._dropped += 24  # len(b"connection") + len(b"keep-alive") + 4
            return
        value = value.rstrip()
        self._dropped += len(name) + len(value) + 4
        if not self._in_head:
            return  # a hop-by-hop trailer: dropped
        if name == b"connection":
            seen = self._connection
            if seen is None and value in KEEP_ALIVE_SPELLINGS:
                self._connection = KEEP_ALIVE
            else:
                self._connection = note_connection(seen, value)
        elif name == b"transfer-encoding":
            self._transfer_encoding = value

    def on_headers_complete(self) -> None:
        # Hot path: once per response, written out rather than split in helpers.
        parser = self._parser
        code = parser.get_status_code()
        request = self._request
        if code < 100 or request is None:
            raise self._reject(RemoteProtocolError(f"unexpected response (status {code})"))
        keep_alive = parser.should_keep_alive()
        fields = self._fields
        fields[0] = STATUS_FIELDS[code]
        connection = self._connection
        if connection is None and keep_alive:
            extensions: dict[str, Any] = {"http_version": "1.1"}  # see the server role
        elif connection is KEEP_ALIVE and keep_alive:  # nginx's habit: only the version
            start = self._chunk  # _checked_version(0), its common case written out
            if start is not None and start[:8] == b"HTTP/1.1":
                extensions = {"http_version": "1.1"}
            else:
                extensions = {"http_version": self._checked_version(0)}
            self._connection = None
        else:
            extensions, fields, persistent = self._unusual_head(fields)
            if self._detour:  # llhttp thinks the (absent) body is close-delimited
                keep_alive = persistent
            self._connection = None
        if self._carry + self._unreported + self._chunk_size > self._max_head:
            self._check_head_size(fields, 16)  # it may be too large
        if code < 200:
            self._interim(code, extensions)
        else:
            self._keep_alive = keep_alive
        sid = self._sid = request[0]
        response = self._response = NEW_EVENT(Headers)  # see NEW_EVENT
        response.stream_id = sid
        response.fields = fields
        response.end_stream = False
        response.extensions = extensions
        self._queue.append(response)
        self._in_head = False  # later on_header calls are trailers
        self._dropped = 0
        self._fields = [_PLACEHOLDER]  # the next head's; trailers land after it

    def _unusual_head(
        self, fields: list[tuple[bytes, bytes]]
    ) -> tuple[dict[str, Any], list[tuple[bytes, bytes]], bool]:
        version = self._checked_version(0)
        tokens = frozenset() if self._connection is None else connection_tokens(self._connection)
        fields = without_named(fields, tokens)
        persistent = b"close" not in tokens if version == "1.1" else b"keep-alive" in tokens
        return {"http_version": version}, fields, persistent

    def _interim(self, code: int, extensions: dict[str, Any]) -> None:
        if code == 101:  # the message ends here, then HttpParserUpgrade stops the parser
            extensions["upgrade"] = True
        else:
            extensions["informational"] = True
            self._informational = True

    def on_message_complete(self) -> None:
        self._idle.append(True)  # between messages (see MessageReader._idle)
        self._in_head = True
        self._chunk = None  # the next message does not begin at the read's start
        if self._informational:  # a 1xx: the final response is still to come
            self._informational = False
            return
        # The response is complete: mark its last event, or queue its trailers.
        fields = self._fields
        if len(fields) > 1:  # chunked trailer fields, after the next head's :status
            self._fields = self._new_fields()
            self._queue_trailers(fields[1:])
        else:
            queue = self._queue
            if queue:  # still queued means still ours: the last event carries the end
                queue[-1].end_stream = True
            else:
                queue.append(Data(self._sid, b"", True, {}))
        self._request = None
        self._transfer_encoding = None
        if not (self._keep_alive and self._request_done):
            self._close = True

    def _complete_response(self) -> None:
        """The response ends here (at EOF, or after a HEAD/CONNECT head): never a 1xx."""
        self.on_message_complete()

    def _reply(self, code: int, message: str) -> bytes | None:
        return None  # nobody to answer: the upstream connection is just closed

    def _eof_mid_message(self) -> None:
        if not self._in_head and self._close_delimited():
            self._complete_response()
            self._terminal = CLOSED
        else:
            self._fail(RemoteProtocolError("upstream closed inside a response"))

    def _close_delimited(self) -> bool:
        """Does this response's body end at EOF (RFC 9112 6.3, rule 8)?"""
        if self._informational or self._response is None:
            return False
        coding = self._transfer_encoding
        if coding is not None:
            return not coding.rstrip(b" \t").lower().endswith(b"chunked")
        return all(name != b"content-length" for name, _ in self._response.fields)

    # -- the HEAD / CONNECT detour -----------------------------------------------

    def _receive_stopped(self, data: bytes | bytearray | memoryview) -> None:
        if self._head_buffer is None:
            super()._receive_stopped(data)
        elif not data:
            self._stopped = self._close = True
            partial, self._head_buffer = self._head_buffer, None
            if partial:
                self._fail(RemoteProtocolError("upstream closed inside a response head"))
            else:
                self._terminal = CLOSED
        else:
            self._gather_head(self._head_buffer, data)

    def _gather_head(self, buffer: bytearray, data: bytes | bytearray | memoryview) -> None:
        buffer += data
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > self._max_head:
                self._fail(RemoteProtocolError(f"response head over {self._max_head} bytes"))
            return
        self._head_buffer = None
        self._stopped = False
        method = self._request[1] if self._request is not None else b""
        if method == b"CONNECT" and bytes(buffer[9:10]) not in (b"1", b"2"):
            self.receive_data(buffer)  # a refused CONNECT is a normal response
            return
        end += 4
        rest = bytes(buffer[end:])
        self._parse_detour(bytes(buffer[:end]), method == b"CONNECT")
        if rest:  # routed by the new state: another head, a tunnel, an error or the parser
            self.receive_data(rest)

    def _parse_detour(self, head: bytes, connect: bool) -> None:
        main, self._parser = self._parser, httptools.HttpResponseParser(self)
        self._detour = True
        try:
            self.receive_data(head)
        finally:
            self._parser, self._detour = main, False
        if self._stopped:
            return
        if not self._idle:  # llhttp now waits for a body this response never has
            if connect and self._response is not None:
                self._response.extensions["upgrade"] = True
                self._keep_alive = True
            self._complete_response()
            if connect:
                self._stop(CLOSED)  # tunnel open: what follows is trailing_data
        elif self._request is not None:  # a 1xx came first: gather the next head
            self._head_buffer = bytearray()
            self._stopped = True

    # -- capabilities ----------------------------------------------------------

    def local_reply(self, request: Headers, status: Status, message: str) -> list[Event]:
        """Server role only: a client does not answer requests."""
        raise LocalProtocolError("local_reply belongs to the SERVER role")

    def is_heartbeat(self, event: Event) -> bool:
        """HTTP/1 has no heartbeat of its own."""
        return False

    def heartbeat_reply(self, event: Event) -> list[Event]:
        """Nothing: see ``is_heartbeat``."""
        return []
