"""Coarse deadlines for connections, checked by one task instead of a cancel scope per wait.

A trio cancel scope per wait costs a deadline-heap insert and removal; a
proxy waits several times per request. Like nginx's timers, each session
instead keeps one ``deadline`` float that it moves before it waits, and a
single task sweeps the sessions every ``TICK`` seconds, calling ``expire``
on those past due. ``expire`` closes the socket being waited on, which
wakes the waiter (``notify_closing``) with a ConnectionBroken it turns into
the right answer (a 504, or a quiet close for an idle client).

Timeouts are therefore accurate to about ``TICK``; the sweep costs one
float comparison per open connection per tick.
"""

from __future__ import annotations

import time
from typing import Protocol

import trio

from mesh.net.flush import flush_dirty

__all__ = ["Expirable", "DeadlineReaper", "TICK"]

TICK = 0.1


class Expirable(Protocol):
    #: monotonic time after which ``expire`` is called; 0 for none
    deadline: float

    def expire(self) -> None: ...


class DeadlineReaper:
    def __init__(self, tick: float = TICK) -> None:
        self.tick = tick
        self.members: set[Expirable] = set()

    def add(self, member: Expirable) -> None:
        self.members.add(member)

    def discard(self, member: Expirable) -> None:
        self.members.discard(member)

    def sweep(self, now: float) -> None:
        for member in [m for m in self.members if 0 < m.deadline <= now]:
            member.deadline = 0.0
            member.expire()

    async def run(self) -> None:
        while True:
            await trio.sleep(self.tick)
            self.sweep(time.monotonic())
            # a safety net: output a path queued without ending its batch leaves within a tick
            flush_dirty()
