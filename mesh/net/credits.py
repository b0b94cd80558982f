"""Flow-control credit held back while a connection's output is backed up.

A flow-controlled codec (HTTP/2) reports body bytes as consumed when it frames them
(``extensions["consumed"]``), and the connection they came from then reopens its window.
But a peer may grant a window of tens of MiB (curl does) and still read slowly: framed
bytes then pile up in our output buffer, not in the peer. So while a connection has more
than ``HIGH_WATER`` bytes queued, the credit of what is framed into it is held here, and
handed back only once the kernel has taken the backlog.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from mesh.codec import Data
from mesh.net.connection import Connection

__all__ = ["HIGH_WATER", "Credit", "Creditor", "OutputCredits"]

#: Queued output above which credit is held back.
HIGH_WATER = 256 * 1024


class Creditor(Protocol):
    """Whoever hands a flow-controlled peer its window back (a session, a shared connection)."""

    def acknowledge(self, stream_id: int, size: int) -> None: ...


class Credit:
    """``extensions["consumed"]`` of a Data event read from a flow-controlled peer: the
    peer's window for that stream reopens by what the other side took."""

    __slots__ = ("creditor", "stream_id")

    def __init__(self, creditor: Creditor, stream_id: int) -> None:
        self.creditor = creditor
        self.stream_id = stream_id

    def __call__(self, size: int) -> None:
        if size:
            self.creditor.acknowledge(self.stream_id, size)


class OutputCredits:
    """The credit held back for one connection's queued output."""

    __slots__ = ("conn", "held")

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.held: list[tuple[Callable[[int], None], int]] = []

    def guard(self, event: Data) -> None:
        """Route ``event``'s consumed callback through this connection's backlog check."""
        consumed = event.extensions.get("consumed")
        if consumed is not None:
            event.extensions["consumed"] = _Deferred(self, consumed)

    def release(self) -> None:
        """Called after a flush: hand the credit back once the backlog is small again."""
        if self.held and self.conn.pending_output <= HIGH_WATER:
            held, self.held = self.held, []
            for consumed, size in held:
                consumed(size)


class _Deferred:
    __slots__ = ("credits", "consumed")

    def __init__(self, credits: OutputCredits, consumed: Callable[[int], None]) -> None:
        self.credits = credits
        self.consumed = consumed

    def __call__(self, size: int) -> None:
        credits = self.credits
        if credits.held or credits.conn.pending_output > HIGH_WATER:
            credits.held.append((self.consumed, size))
        else:
            self.consumed(size)
