"""Socket readiness for the data path: one edge-triggered epoll shared by every connection.

trio's own ``wait_readable``/``wait_writable`` re-arm the socket with ``EPOLLONESHOT``: an
``epoll_ctl`` syscall and a pass through trio's registration bookkeeping on every wait, which
was about a third of a trio proxy's CPU here (shared/BENCH.md). This poller registers a socket
once, edge-triggered for both directions, the way Go's netpoller does, and keeps per-socket
"an edge arrived while nobody waited" flags; a wait is then a dict entry and a task park, and
one poller task turns every ready socket of a loop turn into ``trio.lowlevel.reschedule`` calls.

The poller task waits on the epoll descriptor itself through trio (one re-arm per idle turn,
not per socket). While sockets keep turning ready it polls again after each scheduler batch
instead of sleeping.

Without a running poller task (codecs and pools used outside the runtime, in tests), the waits
fall back to trio's own.
"""

from __future__ import annotations

import os
import select
import socket
from collections.abc import Callable

import outcome
import structlog
import trio
from trio.lowlevel import Abort, Task, current_task, reschedule, wait_task_rescheduled

from mesh.net.flush import end_of_batch

__all__ = ["forget", "running", "run_poller", "wait_input", "wait_readable", "wait_writable",
           "wake_reader"]

_IN = select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR
_OUT = select.EPOLLOUT | select.EPOLLHUP | select.EPOLLERR
_MASK = select.EPOLLIN | select.EPOLLOUT | select.EPOLLRDHUP | select.EPOLLET
#: events taken per poll; more stay in the kernel's ready list for the next turn
_MAX_EVENTS = 1024
#: a poll returning at least this many ready sockets means load: poll again next turn
_BUSY = 4


class _Watch:
    """What the poller knows about one registered socket."""

    __slots__ = ("sock", "reader", "writer", "readable", "writable", "on_input")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader: Task | None = None
        self.writer: Task | None = None
        #: while the reader waits in ``wait_input``: called first on a read edge
        self.on_input: Callable[[], bool] | None = None
        # An edge seen while no task waited: the next wait returns at once. A stale flag
        # costs one failing syscall by the caller, never a missed wake-up. Registering
        # reports a socket that is ready already, so both start unset.
        self.readable = False
        self.writable = False


log = structlog.get_logger("mesh.net")

_watches: dict[int, _Watch] = {}
_epoll: list[select.epoll | None] = [None]


def _watch(sock: socket.socket) -> _Watch | None:
    epoll = _epoll[0]
    if epoll is None:
        return None
    fd = sock.fileno()
    watch = _watches.get(fd)
    if watch is not None and watch.sock is sock:
        return watch
    # A new socket, or a new one reusing a closed one's descriptor number.
    watch = _watches[fd] = _Watch(sock)
    try:
        epoll.register(fd, _MASK)
    except FileExistsError:
        epoll.modify(fd, _MASK)
    return watch


async def wait_readable(sock: socket.socket) -> None:
    await wait_input(sock, None)


async def wait_input(sock: socket.socket, on_input: Callable[[], bool] | None) -> None:
    """``wait_readable``, but each read edge is first offered to ``on_input()``, called in
    the poller's task; the waiting task is woken only when it returns False.

    For readers whose usual input needs no task of their own (mesh/proxy/input_turn.py,
    shared upstream connections): reading and forwarding right in the poller's turn saves a
    task switch per request. ``on_input`` must not raise, and must read the socket until it
    would block before returning True (edges are only reported again for new input).
    ``on_input=None`` is ``wait_readable``.
    """
    watch = _watch(sock)
    if watch is None:
        await trio.lowlevel.wait_readable(sock)
    elif watch.readable:
        watch.readable = False
    else:
        watch.on_input = on_input
        try:
            await _park(watch, True)
        finally:
            watch.on_input = None


async def wait_writable(sock: socket.socket) -> None:
    watch = _watch(sock)
    if watch is None:
        await trio.lowlevel.wait_writable(sock)
    elif watch.writable:
        watch.writable = False
    else:
        await _park(watch, False)


async def _park(watch: _Watch, reading: bool) -> None:
    """Wait until the poller reschedules this task for ``watch`` (or the wait is cancelled)."""
    if (watch.reader if reading else watch.writer) is not None:
        raise trio.BusyResourceError(
            f"another task is already waiting to {'read' if reading else 'write'} this socket")
    if reading:
        watch.reader = current_task()
    else:
        watch.writer = current_task()

    def abort(_: object) -> Abort:
        if reading:
            watch.reader = None
        else:
            watch.writer = None
        return Abort.SUCCEEDED

    await wait_task_rescheduled(abort)


def running() -> bool:
    """Whether waits go through the poller (its task runs in this process)."""
    return _epoll[0] is not None


def wake_reader(sock: socket.socket) -> None:
    """Make the task waiting to read ``sock`` (or the next one to wait) look again at once."""
    try:
        watch = _watches.get(sock.fileno())
    except OSError:
        return
    if watch is None or watch.sock is not sock:
        return
    task = watch.reader
    if task is None:
        watch.readable = True
    else:
        watch.reader = None
        reschedule(task)


def forget(sock: socket.socket) -> None:
    """Before closing ``sock``: wake its waiters with ClosedResourceError, drop its watch."""
    try:
        fd = sock.fileno()
    except OSError:
        return
    watch = _watches.get(fd)
    if watch is None or watch.sock is not sock:
        return
    del _watches[fd]
    epoll = _epoll[0]
    if epoll is not None:
        try:
            epoll.unregister(fd)
        except OSError:
            pass
    for task in (watch.reader, watch.writer):
        if task is not None:
            reschedule(task, outcome.Error(trio.ClosedResourceError("socket closed")))
    watch.reader = watch.writer = None


def _dispatch(events: list[tuple[int, int]]) -> None:
    watches = _watches
    offered = False
    for fd, mask in events:
        watch = watches.get(fd)
        if watch is None:
            continue
        if mask & _IN:
            task = watch.reader
            if task is None:
                watch.readable = True
            elif watch.on_input is None:
                watch.reader = None
                reschedule(task)
            else:
                offered = True
                # (on_input may have closed the socket, which woke the task already)
                if not _offer(watch.on_input) and watch.reader is task:
                    watch.reader = None
                    reschedule(task)
        if mask & _OUT:
            task = watch.writer
            if task is None:
                watch.writable = True
            else:
                watch.writer = None
                reschedule(task)
    if offered:
        end_of_batch()  # what the on_input callbacks queued, in one send per connection


def _offer(on_input: Callable[[], bool]) -> bool:
    try:
        return on_input()
    except Exception:  # a bug: the waiting task takes over, the poller goes on
        log.exception("on_input_failed")
        return False


async def run_poller() -> None:
    """The poller task: started once per process by the runtime."""
    if os.environ.get("MESH_TRIO_WAITS"):  # diagnosis and A/B benchmarks: trio's own waits
        return
    epoll = select.epoll()
    _epoll[0] = epoll
    poll = epoll.poll
    try:
        while True:
            events = poll(0, _MAX_EVENTS)
            if events:
                _dispatch(events)
                if len(events) >= _BUSY:
                    # Busy: let the woken tasks run, then look again before sleeping; more
                    # sockets will have turned ready by then.
                    await trio.lowlevel.checkpoint()
                    continue
            # Quiet (a few calls in flight): sleep on the epoll descriptor at once. Polling
            # again after the woken tasks ran would mostly find nothing and cost a syscall.
            await trio.lowlevel.wait_readable(epoll.fileno())
    finally:
        _epoll[0] = None
        waiting = list(_watches.values())
        _watches.clear()
        for watch in waiting:
            for task in (watch.reader, watch.writer):
                if task is not None:
                    reschedule(task, outcome.Error(trio.ClosedResourceError("poller stopped")))
        epoll.close()
