"""SERVER role: parse requests (responses are encoded by ``ResponseEncoder``,
codecs/http1/_response_encoder.py).

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
    ConnectionOptions,
    Data,
    Event,
    Headers,
    NextEvent,
    ProtocolError,
    RemoteProtocolError,
    Status,
)

from ._framing import NONE, BodyWriter
from ._hop import HOP_BY_HOP, KEEP_ALIVE, connection_tokens, note_connection, without_named
from ._reader import NEW_EVENT
from ._response_encoder import HEAD_11, PLAIN_11, RequestShape, ResponseEncoder
from ._status import error_reply, plain_text_head

__all__ = ["ServerConnection"]

_SPECIAL = HOP_BY_HOP | {b"host", b"expect"}
_PLACEHOLDER = (b"", b"")
_SCHEME = (b":scheme", b"http")
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


class ServerConnection(ResponseEncoder):
    """The downstream side of a proxied HTTP/1 connection."""

    # See MessageReader.__slots__.
    __slots__ = (
        "_requests", "_url", "_host", "_expect", "_unusual", "_connection", "_upgrade",
        "_keep_alive",
    )

    def __init__(self, options: ConnectionOptions) -> None:
        super().__init__(options, httptools.HttpRequestParser)
        self._requests: deque[RequestShape] = deque()
        self._url = b""
        self._host: bytes | None = None
        self._expect = False
        self._unusual = False  # the head has a hop-by-hop field or Expect
        self._connection: bytes | None = None
        self._upgrade: bytes | None = None
        self._current: RequestShape | None = None  # the request being answered
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

    def on_header(self, name: bytes, value: bytes) -> None:
        # Once per field: Host, the one special field nearly every request has,
        # is taken here without a call to _special. llhttp keeps trailing OWS,
        # which is not part of the value; it rejects every space but SP and
        # HTAB in a value, so rstrip() with no argument (cheaper) is exact.
        name = name.lower()
        if name not in _SPECIAL:
            self._fields.append((name, value.rstrip()))
        elif name == b"host" and self._host is None and self._in_head:
            self._host = value.rstrip()  # its size is counted in _check_request_size
        else:
            value = value.rstrip()
            self._dropped += len(name) + len(value) + 4
            self._special(name, value)

    def _special(self, name: bytes, value: bytes) -> None:
        if not self._in_head:
            return  # hop-by-hop, Host or Expect as a trailer: meaningless, dropped
        self._unusual = True
        if name == b"host":  # the first Host never comes here (on_header keeps it)
            raise self._reject(self._error(400, "more than one Host header"))  # RFC 9112 3.2
        if name == b"expect":
            if value.lower() == b"100-continue":
                self._expect = True
            else:
                self._fields.append((name, value))
        elif name == b"connection":
            self._connection = note_connection(self._connection, value)
        elif name == b"upgrade":
            self._upgrade = value

    def on_headers_complete(self) -> None:
        # Hot path: once per request, written out rather than split in helpers.
        parser = self._parser
        method = parser.get_method()
        keep_alive = parser.should_keep_alive()
        fields = self._fields
        fields[0] = (b":method", method)
        fields[1] = _SCHEME
        fields[2] = (b":authority", self._host or b"")
        fields[3] = (b":path", self._url)
        if self._unusual or not keep_alive or method == b"CONNECT":
            http10, extensions, fields, tunnel = self._unusual_head(fields, method, keep_alive)
            request: RequestShape = (method == b"HEAD", http10, keep_alive, tunnel)
        else:
            # Keep-alive without a Connection header can only be HTTP/1.1, and
            # get_http_version() costs a string format per request.
            extensions = {"http_version": "1.1"}
            request = HEAD_11 if method == b"HEAD" else PLAIN_11
        if self._carry + self._unreported + self._chunk_size > self._max_head:
            self._check_request_size(fields)  # it may be too large
        sid = self._sid = self._sid + 1
        event = NEW_EVENT(Headers)  # Headers(sid, fields, False, extensions), see NEW_EVENT
        event.stream_id = sid
        event.fields = fields
        event.end_stream = False
        event.extensions = extensions
        self._queue.append(event)
        self._requests.append(request)
        self._keep_alive = keep_alive
        self._url = b""
        self._host = None
        self._in_head = False  # later on_header calls are trailers
        self._dropped = 0
        # The next head's list, made now: trailers (rare) land after its pseudo
        # fields, so on_message_complete makes no list when there are none.
        self._fields = [_PLACEHOLDER, _PLACEHOLDER, _PLACEHOLDER, _PLACEHOLDER]

    def _check_request_size(self, fields: list[tuple[bytes, bytes]]) -> None:
        host = self._host  # consumed, not in fields: counted as a dropped field
        self._dropped += 0 if host is None else len(host) + 8
        self._check_head_size(fields, len(self._url) + 16)

    def on_message_complete(self) -> None:
        # Once per request: mark its last event, or queue its trailers.
        self._idle.append(True)  # between messages (see MessageReader._idle)
        self._in_head = True
        self._chunk = None  # a message that begins next does not begin at the read's start
        fields = self._fields
        if len(fields) > 4:  # chunked trailer fields, after the next head's placeholders
            self._fields = self._new_fields()
            self._queue_trailers(fields[4:])
        else:
            queue = self._queue
            if queue:  # still queued means still ours: the last event carries the end
                queue[-1].end_stream = True
            else:
                queue.append(Data(self._sid, b"", True, {}))
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
        self, fields: list[tuple[bytes, bytes]], method: bytes, keep_alive: bool
    ) -> tuple[bool, dict[str, Any], list[tuple[bytes, bytes]], bytes | None]:
        """A head with a hop-by-hop field or Expect, not keep-alive, or CONNECT.

        Returns (is HTTP/1.0, extensions, fields minus those Connection named, tunnel).
        """
        connection = self._connection
        if connection is None and keep_alive:
            version = "1.1"  # as in on_headers_complete
        else:
            version = self._checked_version(len(method) + len(self._url) + 2)
            if connection is not None and connection is not KEEP_ALIVE:
                fields = without_named(fields, connection_tokens(connection))
        http10 = version == "1.0"
        extensions: dict[str, Any] = {"http_version": version}
        tunnel = None
        if self._expect or self._upgrade is not None or method == b"CONNECT":
            tunnel = self._rare_kinds(method, http10, extensions)
        self._connection = self._upgrade = None
        self._expect = self._unusual = False
        return http10, extensions, fields, tunnel

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
            if self._queue or self._terminal is not None or self._tunnel or self._current is None:
                return self._held()
            return NEED_DATA  # a request awaits its response and nothing follows yet
        queue = self._queue
        if not queue:
            return NEED_DATA if self._terminal is None else self._at_end()
        event = queue.popleft()
        if event.__class__ is Headers:
            self._current = self._requests.popleft()
            if event.end_stream:  # the whole request: hold what follows
                self._request_done = self._hold = True
            else:
                self._request_done = False
        elif event.end_stream:
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
