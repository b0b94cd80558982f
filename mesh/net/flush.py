"""Output written while a batch of input is handled goes out once, when the batch ends.

A reader task (a downstream session, an upstream shared connection) decodes every event of
one ``recv``; the replies and requests they produce are queued on many connections. Instead
of waking each connection's writer task (a trip through trio's scheduler per connection per
message), the writers mark themselves *dirty* here, and the reader, before it waits for input
again, sends everything marked with one non-blocking send per connection. Only a connection
whose peer is not reading (EAGAIN) wakes its writer task, which waits for writability.

One list per process: a worker runs one trio loop on one thread.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Flushable", "flush_dirty", "mark_dirty"]


class Flushable(Protocol):
    dirty: bool

    def flush_now(self) -> None:
        """Send what is queued without blocking; wake the writer task for any rest."""


_dirty: list[Flushable] = []


def mark_dirty(writer: Flushable) -> None:
    if not writer.dirty:
        writer.dirty = True
        _dirty.append(writer)


def flush_dirty() -> None:
    """Send the output of every writer marked since the last call."""
    while _dirty:
        batch = _dirty[:]
        _dirty.clear()
        for writer in batch:
            writer.dirty = False
            writer.flush_now()
