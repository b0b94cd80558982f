"""Output queued during one turn of the event loop goes out once, at the start of the next.

Readers (downstream sessions, upstream shared connections) decode what one ``recv`` brought
and queue requests and replies on many connections. Instead of waking one writer task per
connection per message, a writer marks itself *dirty* here; the first mark of a turn wakes
the one flusher task, which trio runs after every task already runnable in this turn. So the
requests of fifty clients that share an upstream connection leave in one send, and each
client's replies in one send, per loop turn: one task wakeup per turn instead of two per
message. A writer whose peer is not reading (EAGAIN) wakes its own writer task, which waits
for writability.

One flusher per process: a worker runs one trio loop on one thread. Without a running
flusher (a codec or pool used outside the runtime), a mark sends at once.
"""

from __future__ import annotations

from typing import Protocol

import trio

__all__ = ["Flushable", "flush_dirty", "mark_dirty", "run_flusher"]


class Flushable(Protocol):
    dirty: bool

    def flush_now(self) -> None:
        """Send what is queued without blocking; wake the writer task for any rest."""


_dirty: list[Flushable] = []
_state: dict[str, trio.Event | None] = {"wake": None}


def mark_dirty(writer: Flushable) -> None:
    if writer.dirty:
        return
    wake = _state["wake"]
    if wake is None:
        writer.flush_now()
        return
    writer.dirty = True
    if not _dirty:
        wake.set()
    _dirty.append(writer)


def flush_dirty() -> None:
    """Send the output of every writer marked since the last call."""
    while _dirty:
        batch = _dirty[:]
        _dirty.clear()
        for writer in batch:
            writer.dirty = False
            writer.flush_now()


async def run_flusher() -> None:
    """The flusher task: started once by the runtime."""
    try:
        while True:
            wake = _state["wake"] = trio.Event()
            if _dirty:
                flush_dirty()
                continue
            await wake.wait()
            flush_dirty()
    finally:
        _state["wake"] = None
        flush_dirty()
