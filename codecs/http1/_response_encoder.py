"""SERVER role, the way out: response events encoded for the request being answered.

The base of ``ServerConnection`` (codecs/http1/_server.py), which parses the requests. The
state both halves use is here: the request being answered (``_current``), whether its body
was read whole, the open response body's writer, and whether the connection closes.
"""

from __future__ import annotations

from mesh.codec import Buffers, Data, Event, Headers, LocalProtocolError, Reset, Trailers

from ._framing import CHUNKED, CLOSE, LENGTH, NONE, SPECIAL, BodyWriter, finish_head
from ._framing import forwardable as _forwardable
from ._hop import connection_tokens
from ._reader import MessageReader
from ._status import STATUS_LINES

__all__ = ["HEAD_11", "PLAIN_11", "RequestShape", "ResponseEncoder"]

#: The status lines of the responses that may have a body: no 1xx, 204 or 304.
_BODY_STATUS_LINES = {
    status: line
    for status, line in STATUS_LINES.items()
    if status[0] != 0x31 and status not in (b"204", b"304")
}

# What the response encoder must know about the request it answers:
# (is HEAD, is HTTP/1.0, keep-alive asked, tunnel: upgrade token, b"CONNECT" or None).
RequestShape = tuple[bool, bool, bool, bytes | None]
# The usual ones: a keep-alive HTTP/1.1 request, to HEAD or not.
PLAIN_11: RequestShape = (False, False, True, None)
HEAD_11: RequestShape = (True, False, True, None)


class ResponseEncoder(MessageReader):
    """``send`` and its helpers, over the state of the response being written (set up by
    ``ServerConnection.__init__``; the request parsing is ``ServerConnection``'s)."""

    # See MessageReader.__slots__.
    __slots__ = ("_current", "_request_done", "_hold", "_writer", "_out", "_tunnel")

    _current: RequestShape | None  # the request being answered
    _request_done: bool  # its body was read whole
    _hold: bool  # next_event must go through _held()
    _writer: BodyWriter  # reused: one response body at a time
    _out: BodyWriter | None  # the writer, while a response body is open
    _tunnel: bool

    def send(self, event: Event) -> Buffers:
        """Encode one response event. Raises LocalProtocolError on misuse."""
        # Hot path, twice per exchange: a response head and its body are
        # encoded here in one function (fields, framing, connection, the CR/LF
        # check, a content-length body) rather than in ~15-line helpers; each
        # Python call and bytecode saved is measurable (bench/codec_http1.py).
        try:
            if type(event) is Data:
                out = self._out
                if out is None:
                    raise LocalProtocolError("Data sent before a response head")
                end = event.end_stream
                if out.mode == LENGTH:  # BodyWriter.data, its common case written out
                    buffers: Buffers = event.payload
                    remaining = out.remaining = out.remaining - len(buffers)
                    if remaining < 0 or (end and remaining):
                        raise out.mismatch()
                else:
                    buffers = out.data(event.payload, end)
                if end:  # _end_response, written out
                    self._out = self._current = None
                    if not self._request_done:
                        self._close = True  # the rest of the request body was never read
                    self._hold = self._close or self._tunnel
                return buffers
            if type(event) is not Headers:
                return self._send_other(event)
            fields = event.fields
            status = fields[0][1] if fields[0][0] == b":status" else b""
            line = _BODY_STATUS_LINES.get(status)  # 2xx to 5xx but 204 and 304
            if line is None:
                line = STATUS_LINES.get(status)
                if line is None:
                    raise LocalProtocolError(f"a response starts with a valid :status: {fields[0]}")
                bodiless = True
            else:
                bodiless = False
            request = self._current
            if request is None or self._out is not None:
                raise LocalProtocolError("no request is waiting for a response head")
            if bodiless and status[0] == 0x31:  # b"1": informational, the exchange goes on
                return self._send_informational(event, request, status, line)
            lines = [line]
            append = lines.append
            length: bytes | None = None
            close = False
            for field in fields[1:]:  # forwardable(), plus content-length and close
                if field[0] not in SPECIAL:
                    append(b": ".join(field))
                elif field[0] == b"content-length":
                    value = field[1]
                    if length is None:
                        if not value.isdigit():
                            raise LocalProtocolError(f"content-length must be digits, not {value!r}")
                        append(b"content-length: " + value)
                        length = value
                    elif value != length:
                        raise LocalProtocolError(
                            f"conflicting content-length fields {length!r} and {value!r}"
                        )
                elif field[0] == b"connection" and b"close" in connection_tokens(field[1]):
                    close = True  # a filter or the proxy itself asks to close
            if request is PLAIN_11 and length is not None and not (bodiless or close or self._close):
                # The usual answer to the usual request: a content-length body,
                # and the connection stays open (no connection field to add).
                mode = LENGTH
                remaining = int(length)
            else:
                mode, remaining = self._framing(event, request, status, bodiless, length, close, lines)
            bare = b"".join(lines)  # finish_head, written out
            if 13 in bare or 10 in bare:
                raise LocalProtocolError("a header name or value contains CR or LF")
            append(b"\r\n")
            head = b"\r\n".join(lines)
            out = self._writer
            out.mode = mode
            out.remaining = remaining
            if event.end_stream or self._tunnel:
                out.finish()
                self._end_response()
            else:
                self._out = out
            return head
        except (TypeError, ValueError, IndexError, AttributeError) as exc:
            raise LocalProtocolError(f"cannot encode {event!r}: {exc}") from exc

    def _framing(
        self, event: Headers, request: RequestShape, status: bytes, bodiless: bool,
        length: bytes | None, close: bool, lines: list[bytes],
    ) -> tuple[int, int]:
        """How this response's body is delimited (RFC 9112 6.3): (mode, remaining).

        Appends the fields that say so, and ``connection: close`` (or
        ``keep-alive`` for HTTP/1.0) when the connection will close.
        """
        no_body, http10, keep_alive, tunnel = request
        if tunnel is not None:
            # A 2xx opens a CONNECT tunnel; any other answer to CONNECT or to an
            # Upgrade request leaves bytes behind that were never parsed: close.
            self._tunnel = tunnel == b"CONNECT" and status[0] == 0x32
            close = close or not self._tunnel
        remaining = 0
        if no_body or bodiless or self._tunnel:
            mode = NONE  # HEAD keeps the content-length it was given
        elif length is not None:
            mode = LENGTH
            remaining = int(length)
        elif event.end_stream:
            mode = NONE
            lines.append(b"content-length: 0")
        elif http10:
            mode = CLOSE  # HTTP/1.0 knows no chunked framing
        else:
            mode = CHUNKED
            lines.append(b"transfer-encoding: chunked")
        if close or self._close or not keep_alive or mode == CLOSE:
            lines.append(b"connection: close")
            self._close = True
        elif http10:
            lines.append(b"connection: keep-alive")
        return mode, remaining

    def _send_other(self, event: Event) -> Buffers:
        """Trailers, Reset, or a misuse."""
        if type(event) is Trailers:
            out = self._out
            if out is None:
                raise LocalProtocolError("Trailers sent before a response head")
            buffers = out.trailers(event.fields)
            self._end_response()
            return buffers
        if type(event) is Reset:  # HTTP/1 cannot abandon one exchange: close instead
            self._close = self._hold = True
            return b""
        raise LocalProtocolError(f"not an event: {event!r}")

    def _send_informational(
        self, event: Headers, request: RequestShape, status: bytes, line: bytes
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
