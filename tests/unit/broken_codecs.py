"""Deliberately broken codecs: the conformance suite must catch each one.

All three speak fakeline's line protocol and break it in one way:

``lossy``       drops a byte whenever input arrives while a line is half read,
                so whole input decodes and split input does not (decode.splits);
``deaf_client`` answers local replies with a word for a status, which its own
                client side refuses to parse (local_reply);
``fragile``     raises ValueError instead of RemoteProtocolError on a bad tag
                (robustness.fuzz).

Below them, smaller fixtures that each break exactly one other check.
"""

from __future__ import annotations

from typing import Any

from mesh.codec import (
    MATCH,
    Buffers,
    ConnectionOptions,
    Event,
    Headers,
    MatchResult,
    RemoteProtocolError,
    Role,
    Status,
)
from tests.unit.fakeline import LineCodec, LineConnection
from tests.unit.fakemux import MuxCodec, MuxConnection


class SoundLineConnection(LineConnection):
    """fakeline with its one slip fixed, so each fixture below breaks one thing only.

    (fakeline decodes names as UTF-8 unchecked: UnicodeDecodeError escapes.)
    """

    def next_event(self) -> Any:
        try:
            return super().next_event()
        except UnicodeDecodeError as exc:
            raise RemoteProtocolError(f"a name is not UTF-8: {exc}") from None


class LossyConnection(SoundLineConnection):
    def receive_data(self, data: Any) -> None:
        if self.buf and data:
            data = bytes(data)[1:]  # the bug: the first byte after a split is lost
        super().receive_data(data)


class DeafClientConnection(SoundLineConnection):
    def next_event(self) -> Any:
        if self.role is Role.CLIENT and b"\r\n" in self.buf:
            code = self.buf.partition(b" ")[0]
            if not (len(code) == 3 and code.isdigit()):
                raise RemoteProtocolError(f"status {code!r} is not three digits")
        return super().next_event()

    def local_reply(self, request: Headers, status: Status, message: str) -> list[Event]:
        # The bug: a status word the protocol's own client cannot read.
        return [Headers(request.stream_id, [(b":status", status.name.encode()),
                                            (b"payload", message.encode())], True)]


class FragileConnection(SoundLineConnection):
    def next_event(self) -> Any:
        if self.role is Role.SERVER and b"\r\n" in self.buf:
            line, _, rest = self.buf.partition(b"\r\n")
            tag = line.partition(b" ")[0]
            if tag != b"LINE":
                # The bug: the wrong exception; the proxy only catches RemoteProtocolError.
                raise ValueError(f"bad tag {tag!r}")
        return super().next_event()


class _Broken(LineCodec):
    conn: type[LineConnection] = SoundLineConnection

    def connection(self, role: Role, options: ConnectionOptions) -> LineConnection:
        return self.conn(role, options)


class LossyCodec(_Broken):
    name = "lossy"
    conn = LossyConnection


class DeafClientCodec(_Broken):
    name = "deaf_client"
    conn = DeafClientConnection


class FragileCodec(_Broken):
    name = "fragile"
    conn = FragileConnection


lossy = LossyCodec()
deaf_client = DeafClientCodec()
fragile = FragileCodec()


# -- single-check fixtures for the suite's own tests -------------------------------


class GreedyCodec(_Broken):
    """Claims every connection: match.foreign must catch it."""

    name = "greedy"

    def match(self, prefix: bytes) -> MatchResult:
        return MATCH


class ForgetfulMuxConnection(MuxConnection):
    """Writes request id 1 whatever stream_id it is given: request_id.rewrite must catch it."""

    def send(self, event: Event) -> Buffers:
        if self.role is Role.CLIENT and isinstance(event, Headers):
            event = Headers(1, event.fields, event.end_stream, event.extensions)
        return super().send(event)


class ForgetfulMuxCodec(MuxCodec):
    name = "forgetful_mux"
    conn = ForgetfulMuxConnection


greedy = GreedyCodec()
forgetful_mux = ForgetfulMuxCodec()
