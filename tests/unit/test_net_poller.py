"""mesh.net.poller: the edge-triggered epoll every data-path wait goes through."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing

from mesh.net import poller
from mesh.net.connection import Connection, ConnectionBroken


@asynccontextmanager
async def running_poller() -> AsyncIterator[trio.Nursery]:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(poller.run_poller)
        await trio.testing.wait_all_tasks_blocked()
        yield nursery
        nursery.cancel_scope.cancel()


def pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    return a, b


def test_a_waiting_reader_wakes_when_data_arrives() -> None:
    async def main() -> None:
        async with running_poller():
            a, b = pair()
            got: list[bytes] = []

            async def reader() -> None:
                await poller.wait_readable(a)
                got.append(a.recv(10))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(reader)
                await trio.testing.wait_all_tasks_blocked()
                assert got == []
                b.send(b"hello")
            assert got == [b"hello"]
            poller.forget(a)
            a.close()
            b.close()

    trio.run(main)


def test_an_edge_seen_before_the_wait_is_not_lost() -> None:
    async def main() -> None:
        async with running_poller():
            a, b = pair()
            with pytest.raises(BlockingIOError):
                a.recv(10)
            # register, then let the data's edge reach the poller while nobody waits
            with trio.move_on_after(0.01):
                await poller.wait_readable(a)
            b.send(b"x")
            await trio.testing.wait_all_tasks_blocked()
            with trio.fail_after(2):
                await poller.wait_readable(a)
            assert a.recv(10) == b"x"
            poller.forget(a)
            a.close()
            b.close()

    trio.run(main)


def test_a_writer_wakes_when_the_peer_makes_room() -> None:
    async def main() -> None:
        async with running_poller():
            a, b = pair()
            sent = 0
            try:
                while True:
                    sent += a.send(b"x" * 65536)
            except BlockingIOError:
                pass
            woke = trio.Event()

            async def writer() -> None:
                await poller.wait_writable(a)
                woke.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(writer)
                await trio.testing.wait_all_tasks_blocked()
                assert not woke.is_set()
                received = 0
                while received < sent:
                    try:
                        received += len(b.recv(1 << 20))
                    except BlockingIOError:
                        await trio.sleep(0.001)
            assert woke.is_set()
            poller.forget(a)
            a.close()
            b.close()

    trio.run(main)


def test_closing_a_connection_wakes_its_reader_with_connection_broken() -> None:
    async def main() -> None:
        async with running_poller():
            a, b = pair()
            conn = Connection(a)
            errors: list[BaseException] = []

            async def reader() -> None:
                try:
                    await conn.recv()
                except ConnectionBroken as exc:
                    errors.append(exc)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(reader)
                await trio.testing.wait_all_tasks_blocked()
                conn.close()
            assert len(errors) == 1
            b.close()

    trio.run(main)


def test_a_cancelled_wait_leaves_no_waiter_behind() -> None:
    async def main() -> None:
        async with running_poller():
            a, b = pair()
            with trio.move_on_after(0.01):
                await poller.wait_readable(a)
            with trio.move_on_after(0.01):
                await poller.wait_readable(a)  # not BusyResourceError: the first one left
            b.send(b"y")
            with trio.fail_after(2):
                await poller.wait_readable(a)
            poller.forget(a)
            a.close()
            b.close()

    trio.run(main)


def test_two_readers_of_one_socket_is_an_error() -> None:
    async def main() -> None:
        async with running_poller():
            a, b = pair()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(poller.wait_readable, a)
                await trio.testing.wait_all_tasks_blocked()
                with pytest.raises(trio.BusyResourceError):
                    await poller.wait_readable(a)
                nursery.cancel_scope.cancel()
            poller.forget(a)
            a.close()
            b.close()

    trio.run(main)


@pytest.mark.parametrize("forget_first", [True, False])
def test_a_reused_descriptor_number_is_registered_afresh(forget_first: bool) -> None:
    async def main() -> None:
        async with running_poller():
            a, b = pair()
            with trio.move_on_after(0.01):
                await poller.wait_readable(a)
            fd = a.fileno()
            if forget_first:
                poller.forget(a)
            a.close()  # closing removes it from the epoll set; a stale watch may remain
            b.close()
            c, d = pair()
            e, f = pair()
            reused = next(s for s in (c, d, e, f) if s.fileno() == fd)
            peer = {c: d, d: c, e: f, f: e}[reused]
            peer.send(b"z")
            with trio.fail_after(2):
                await poller.wait_readable(reused)
            assert reused.recv(10) == b"z"
            for s in (c, d, e, f):
                poller.forget(s)
                s.close()

    trio.run(main)


@pytest.mark.parametrize("wait", [poller.wait_readable, poller.wait_writable])
def test_without_a_running_poller_waits_are_trios(
        wait: Callable[[socket.socket], Awaitable[None]]) -> None:
    async def main() -> None:
        a, b = pair()
        b.send(b"x")
        with trio.fail_after(2):
            await wait(a)
        a.close()
        b.close()

    trio.run(main)


def test_stopping_the_poller_wakes_its_waiters() -> None:
    async def main() -> None:
        a, b = pair()
        errors: list[BaseException] = []

        async def reader() -> None:
            try:
                await poller.wait_readable(a)
            except trio.ClosedResourceError as exc:
                errors.append(exc)

        with trio.fail_after(5):
            async with trio.open_nursery() as outer, trio.open_nursery() as nursery:
                nursery.start_soon(poller.run_poller)
                await trio.testing.wait_all_tasks_blocked()
                outer.start_soon(reader)
                await trio.testing.wait_all_tasks_blocked()
                nursery.cancel_scope.cancel()
        assert len(errors) == 1
        a.close()
        b.close()

    trio.run(main)


@asynccontextmanager
async def running_flusher_and_poller() -> AsyncIterator[trio.Nursery]:
    from mesh.net.flush import run_flusher

    async with trio.open_nursery() as nursery:
        nursery.start_soon(poller.run_poller)
        nursery.start_soon(run_flusher)
        await trio.testing.wait_all_tasks_blocked()
        yield nursery
        nursery.cancel_scope.cancel()


def test_flush_later_needs_the_poller() -> None:
    a, b = pair()
    conn = Connection(a)
    conn.write(b"x")
    assert conn.flush_later() is False  # nothing runs: the caller flushes itself
    assert conn.pending_output == 1
    conn.close()
    b.close()


def test_flush_later_sends_in_the_flushers_turn() -> None:
    async def main() -> None:
        async with running_flusher_and_poller():
            a, b = pair()
            conn = Connection(a)
            conn.write(b"reply")
            assert conn.flush_later() is True
            with trio.fail_after(2):
                while conn.pending_output:
                    await trio.sleep(0.001)
            assert b.recv(10) == b"reply"
            conn.close()
            b.close()

    trio.run(main)


def test_output_the_flusher_could_not_finish_goes_out_before_the_next_read() -> None:
    """A slow peer: the deferred write stalls; the task waiting to read finishes it first."""
    async def main() -> None:
        async with running_flusher_and_poller():
            a, b = pair()
            a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            conn = Connection(a)
            body = bytes(range(256)) * 200  # 51,200 bytes: more than the buffers hold
            conn.write(body)
            assert conn.flush_later() is True
            got: list[bytes] = []

            async def reader() -> None:
                got.append(await conn.recv(wait_first=True))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(reader)
                await trio.testing.wait_all_tasks_blocked()
                assert 0 < conn.pending_output < len(body)  # partly sent, then stalled
                received = bytearray()
                with trio.fail_after(5):
                    while len(received) < len(body):
                        try:
                            received += b.recv(65536)
                        except BlockingIOError:
                            await trio.sleep(0.001)
                assert received == body
                b.send(b"next request")
            assert got == [b"next request"]
            conn.close()
            b.close()

    trio.run(main)


def test_wait_input_offers_edges_to_the_callback_and_wakes_only_when_it_says_so() -> None:
    """``wait_input``: input the callback handles (True) leaves the task parked; False wakes it;
    a callback that raises wakes it too, and the poller goes on serving others."""
    async def main() -> None:
        async with running_poller():
            a, b = pair()
            seen: list[bytes] = []
            answers = [True, True, False]

            def on_input() -> bool:
                while True:
                    try:
                        seen.append(a.recv(100))
                    except BlockingIOError:
                        return answers.pop(0)

            woke: list[bool] = []

            async def reader() -> None:
                await poller.wait_input(a, on_input)
                woke.append(True)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(reader)
                for chunk in (b"one", b"two"):
                    await trio.testing.wait_all_tasks_blocked()
                    b.send(chunk)
                    await trio.testing.wait_all_tasks_blocked()
                    assert woke == [], "handled input must not wake the task"
                b.send(b"three")
            assert woke == [True] and seen == [b"one", b"two", b"three"]

            def broken() -> bool:
                raise RuntimeError("a bug in a callback")

            async def reader2() -> None:
                await poller.wait_input(a, broken)
                woke.append(True)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(reader2)
                await trio.testing.wait_all_tasks_blocked()
                b.send(b"x")
            assert woke == [True, True]
            assert a.recv(10) == b"x"  # still there for the woken task
            poller.forget(a)
            a.close()
            b.close()

    trio.run(main)


def test_wait_input_ends_with_closed_when_the_callback_closes_the_socket() -> None:
    """A callback that closes the socket (``forget``) wakes the task once, with the close."""
    async def main() -> None:
        async with running_poller():
            a, b = pair()

            def closing() -> bool:
                poller.forget(a)
                return False

            async def reader() -> None:
                with pytest.raises(trio.ClosedResourceError):
                    await poller.wait_input(a, closing)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(reader)
                await trio.testing.wait_all_tasks_blocked()
                b.send(b"bye")
            a.close()
            b.close()

    trio.run(main)
