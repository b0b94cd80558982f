"""The SERVER role (requests in, responses out) and the CLIENT role (the reverse).

Every frame becomes one ``Headers`` event, ``end_stream=True``, whose ``stream_id`` is the
frame's request id and whose ``extensions["frame"]`` is the whole frame. ``send`` writes the
frame back with the event's ``stream_id`` patched into the header (the multiplexed pool's
id rewrite) and nothing else touched, unless a filter asked for attachment changes
(``extensions["set_attachments"]``), which re-encodes the attachments map alone.

Request extensions: ``frame``, ``call`` (a :class:`Call` with the routing fields, None for
events and for bodies not in hessian2), ``flags``, ``oneway`` (True when not two-way: no
reply will come), ``event`` (heartbeat / readonly). Response extensions: ``frame``,
``status`` (the Dubbo status byte), ``status_class`` (``ok``, ``exception`` for a business
exception, ``error`` for a non-OK status).
"""

from __future__ import annotations

from typing import Any

from mesh.codecs.hessian2 import HessianError

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

from ._body import read_call
from ._frame import (
    BAD_REQUEST,
    FLAG_EVENT,
    FLAG_REQUEST,
    FLAG_TWO_WAY,
    HEADER,
    HESSIAN2,
    OK,
    SERIALIZATION,
    FrameReader,
    error_frame,
    frame,
    with_id,
)

__all__ = ["ClientConnection", "ServerConnection", "STATUS_CODES"]

#: The native status of each proxy-made reply (docs/dubbo.md).
STATUS_CODES = {
    Status.NO_ROUTE: 60,  # SERVICE_NOT_FOUND
    Status.UNAVAILABLE: 70,  # SERVICE_ERROR: no provider could take the call
    Status.TIMEOUT: 31,  # SERVER_TIMEOUT: the proxy, the consumer's server, timed out
    Status.OVERLOADED: 100,  # SERVER_THREADPOOL_EXHAUSTED_ERROR
    Status.BAD_REQUEST: 40,  # BAD_REQUEST
    Status.INTERNAL: 80,  # SERVER_ERROR
}
_STATUS_FIELD = {code: [(b"status", str(code).encode())] for code in range(256)}
#: hessian2 compact ints 0x90..0x95: the result flags of an OK response body
_EXCEPTION_FLAGS = (0x90, 0x93)  # RESPONSE_WITH_EXCEPTION[_WITH_ATTACHMENTS]
_NULL = b"N"
_READONLY = b"\x01R"  # hessian2 "R": the READONLY event a provider sends before it stops


class _Role:
    def __init__(self, options: ConnectionOptions) -> None:
        self._reader = FrameReader(options.max_frame_size)
        self.should_close = False

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        self._reader.feed(data)

    def _next_frame(self) -> tuple[int, int, int, bytes] | Any:
        got = self._reader.next_frame()
        if got is None:
            if self._reader.eof:
                if self._reader.pending:
                    raise RemoteProtocolError("the connection closed in the middle of a frame")
                return CLOSED
            return NEED_DATA
        return got

    def send(self, event: Event) -> Buffers:
        if type(event) is not Headers:
            raise LocalProtocolError("Dubbo messages are single Headers events")
        ext = event.extensions
        raw: bytes | None = ext.get("frame")
        if raw is None:
            raise LocalProtocolError("a Dubbo event carries its frame in extensions['frame']")
        changes = ext.get("set_attachments")
        if changes and ext.get("call") is not None:
            try:
                body = ext["call"].with_attachments(changes)
            except HessianError as exc:
                raise LocalProtocolError(f"cannot rewrite the attachments: {exc}") from None
            return frame(raw[2], raw[3], event.stream_id, body)
        result: Buffers = with_id(raw, event.stream_id)
        return result

    def is_heartbeat(self, event: Event) -> bool:
        """Event frames (heartbeats, READONLY) are the proxy's to answer, never routed."""
        return bool(event.extensions.get("event"))

    def heartbeat_reply(self, event: Event) -> list[Event]:
        flags = event.extensions.get("flags", 0)
        if not flags & FLAG_REQUEST or not flags & FLAG_TWO_WAY:
            return []  # a heartbeat response, or a one-way READONLY notice
        # Byte-exact as Java's ExchangeCodec answers a hessian2 probe: event flag, OK, the same
        # id, body 'N'. The body is hessian2's null whatever the probe's serialization, so the
        # header says hessian2 (Dubbo decodes a response by the id in its own header).
        raw = frame(FLAG_EVENT | HESSIAN2, OK, event.stream_id, _NULL)
        return [Headers(event.stream_id, [], True, {"frame": raw, "event": True})]

    def local_reply(self, request: Headers, status: Status, message: str) -> list[Event]:
        raise LocalProtocolError("local_reply belongs to the server role")


class ServerConnection(_Role):
    """Requests from a consumer; responses to it."""

    def next_event(self) -> NextEvent:
        got = self._next_frame()
        if type(got) is not tuple:
            return got
        flags, _status, request_id, raw = got
        if flags & FLAG_EVENT:
            return Headers(request_id, [], True, {"frame": raw, "flags": flags, "event": True,
                                                  "call": None})
        if not flags & FLAG_REQUEST:
            raise RemoteProtocolError(
                "a consumer sent a Dubbo response frame",
                error_frame(request_id, BAD_REQUEST, "rpcmesh: expected a request frame"))
        ext: dict[str, Any] = {"frame": raw, "flags": flags, "call": None}
        if not flags & FLAG_TWO_WAY:
            ext["oneway"] = True
        if flags & SERIALIZATION == HESSIAN2:
            try:
                ext["call"] = read_call(raw)
            except HessianError as exc:
                raise RemoteProtocolError(
                    f"bad Dubbo request body: {exc}",
                    error_frame(request_id, BAD_REQUEST, f"rpcmesh: bad request body: {exc}")
                ) from None
        return Headers(request_id, [], True, ext)

    def local_reply(self, request: Headers, status: Status, message: str) -> list[Event]:
        code = STATUS_CODES[status]
        flags = request.extensions.get("flags", HESSIAN2)
        if status is Status.NO_ROUTE and flags & SERIALIZATION != HESSIAN2:
            # the body was not read: say why no interface/method/version route could match
            message += (f" (serialization id {flags & SERIALIZATION} is not hessian2, so the call "
                        "is routed by its header alone: give it a route that matches no body "
                        "field, e.g. a catch-all route)")
        raw = error_frame(request.stream_id, code, f"rpcmesh: {message}")
        return [Headers(request.stream_id, _STATUS_FIELD[code], True,
                        {"frame": raw, "status": code, "status_class": "error"})]


class ClientConnection(_Role):
    """Requests to a provider; its responses (and its heartbeats / READONLY events)."""

    def next_event(self) -> NextEvent:
        got = self._next_frame()
        if type(got) is not tuple:
            return got
        flags, status, request_id, raw = got
        if flags & FLAG_EVENT:
            ext: dict[str, Any] = {"frame": raw, "flags": flags, "event": True}
            if flags & FLAG_REQUEST and raw[HEADER:] == _READONLY:
                ext["draining"] = True  # the provider is going away (mesh.codec Headers)
            return Headers(request_id, [], True, ext)
        if flags & FLAG_REQUEST:
            raise RemoteProtocolError("a provider sent a Dubbo request frame")
        if status != OK:
            klass = "error"
        elif len(raw) > HEADER and raw[HEADER] in _EXCEPTION_FLAGS:
            klass = "exception"
        else:
            klass = "ok"
        return Headers(request_id, _STATUS_FIELD[status], True,
                       {"frame": raw, "status": status, "status_class": klass})
