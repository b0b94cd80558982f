"""Test helpers for the registry contract tests (tests/unit/test_discovery_{nacos,eureka,consul}.py).

- :class:`Logs` records what the sources log (it replaces the structlog loggers of
  ``mesh.discovery._http``, where the sources log their registry events, and of each source);
- :class:`Watch` runs a source in a trio nursery and keeps what it published and reported;
  ``until`` waits for a condition, with a hang guard (not a timing assertion);
- :class:`AsyncioThread` runs an asyncio client (py-eureka-client) on a loop of its own thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Protocol, TypeVar

import pytest
import trio

from mesh.config import Endpoint

T = TypeVar("T")

#: the hang guard of every wait: far above what any step takes (~0.01-0.3 s here)
GUARD = 10.0


class Logs:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    def _record(self, level: str, event: str, **fields: Any) -> None:
        self.events.append((level, event, fields))

    def info(self, event: str, **fields: Any) -> None:
        self._record("info", event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._record("warning", event, **fields)

    def named(self, event: str) -> list[dict[str, Any]]:
        return [fields for _, name, fields in self.events if name == event]


def record_logs(monkeypatch: pytest.MonkeyPatch) -> Logs:
    import mesh.discovery._http
    import mesh.discovery.consul
    import mesh.discovery.eureka
    import mesh.discovery.nacos

    logs = Logs()
    for module in (mesh.discovery._http, mesh.discovery.consul, mesh.discovery.eureka,
                   mesh.discovery.nacos):
        monkeypatch.setattr(module, "log", logs)
    return logs


class Source(Protocol):
    async def run(self, publish: Callable[[Sequence[Endpoint]], None],
                  report: Callable[[str], None]) -> None: ...


class Watch:
    """A source running under trio; ``published``/``reports`` in order."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.published: list[list[Endpoint]] = []
        self.reports: list[str] = []

    async def run(self) -> None:
        await self.source.run(lambda endpoints: self.published.append(list(endpoints)),
                              self.reports.append)

    @property
    def last(self) -> list[Endpoint]:
        return self.published[-1] if self.published else []

    def addresses(self) -> list[str]:
        return sorted(f"{e.host}:{e.port}" for e in self.last)

    async def until(self, condition: Callable[[], bool], what: str) -> None:
        with trio.move_on_after(GUARD):
            while not condition():
                await trio.sleep(0.01)
            return
        raise AssertionError(f"never happened: {what}; published {self.published}, "
                             f"reports {self.reports[-3:]}")

    async def until_reported(self, *words: str) -> str:
        def found() -> bool:
            return any(all(w in r for w in words) for r in self.reports)

        await self.until(found, f"a report with {words}")
        return next(r for r in reversed(self.reports) if all(w in r for w in words))


class AsyncioThread:
    """An asyncio loop in a thread of its own, for an asyncio client called from trio tests."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                       name="asyncio-client")
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=GUARD)

    async def call(self, factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
        return await trio.to_thread.run_sync(lambda: self.run(factory()))

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()
