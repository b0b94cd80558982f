"""Output queued during one turn of the event loop goes out once, at the start of the next.

Readers (downstream sessions, upstream shared connections) decode what one ``recv`` brought
and queue requests and replies on many connections. Instead of waking one writer task per
connection per message, a writer marks itself *dirty* here; the first mark of a turn wakes
the one flusher task, which trio runs after every task already runnable in this turn.
(With few exchanges in flight a reader sends its own batch at once: ``end_of_batch``.) So the
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

__all__ = ["Flushable", "end_of_batch", "flush_dirty", "in_flight", "mark_dirty", "run_flusher"]


class Flushable(Protocol):
    dirty: bool

    def flush_now(self) -> None:
        """Send what is queued without blocking; wake the writer task for any rest."""


_dirty: list[Flushable] = []
_state: dict[str, trio.Event | None] = {"wake": None}


#: exchanges in flight in this process, kept by the multiplexed sessions
in_flight = [0]
#: below this many exchanges in flight, a reader sends its batch's output itself
FLUSH_NOW_BELOW = 12


def mark_dirty(writer: Flushable) -> None:
    if writer.dirty:
        return
    wake = _state["wake"]
    if wake is None:
        writer.flush_now()
        return
    writer.dirty = True
    _dirty.append(writer)
    if in_flight[0] >= FLUSH_NOW_BELOW:
        wake.set()  # loaded: the flusher's turn gathers every reader of this turn


def end_of_batch() -> None:
    """A reader (or timer) is done with its input: send now when the process is lightly loaded.

    Waiting for the flusher's turn costs a scheduler round per hop, which is all latency when
    few exchanges are in flight and nothing else would join the send; under load the
    flusher's turn is where other clients' requests join the same send.
    """
    if not _dirty:
        return
    if in_flight[0] < FLUSH_NOW_BELOW:
        flush_dirty()
    else:
        wake = _state["wake"]
        if wake is not None:
            wake.set()


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
