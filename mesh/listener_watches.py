"""What the dynamic route parts share (mesh/service_routes.py, mesh/nacos_routes.py): one
watch task per listener that asks for it, and swapping a config read again in.

A part keeps the config handed to it (``file``: the file's, or with the parts before it),
adds its routes (``expand``) and hands the result on (``apply``: ``ProxyRuntime.apply`` or the
next part's ``reload``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Generic, Protocol, TypeVar

import trio

from mesh.config import Config

__all__ = ["ListenerWatches", "Watch"]


class Watch(Protocol):
    scope: trio.CancelScope


W = TypeVar("W", bound=Watch)


class ListenerWatches(Generic[W]):
    """A dynamic part: ``watches`` per listener name, each followed in a task of its own."""

    def __init__(self, config: Config, apply: Callable[[Config], None]) -> None:
        self._apply = apply
        #: the config handed in last (the file's, or with the parts before this one)
        self.file = config
        self.watches = self._watches(config, {})
        self._nursery: trio.Nursery | None = None

    def _watches(self, config: Config, current: Mapping[str, W]) -> dict[str, W]:
        """The watches ``config`` asks for, keeping those of ``current`` whose settings stand."""
        raise NotImplementedError

    def expand(self, config: Config, watches: Mapping[str, W] | None = None) -> Config:
        """``config`` with this part's routes added."""
        raise NotImplementedError

    async def _follow(self, watch: W) -> None:
        raise NotImplementedError

    def reload(self, config: Config) -> None:
        """Hand on ``config`` (read again) with this part's routes; a listener whose settings
        changed is watched anew. Raises (changing nothing) as ``apply`` does, or ValueError."""
        watches = self._watches(config, self.watches)
        self._apply(self.expand(config, watches))
        for name, watch in self.watches.items():
            if watches.get(name) is not watch:
                watch.scope.cancel()
        fresh = [watch for name, watch in watches.items() if self.watches.get(name) is not watch]
        self.file, self.watches = config, watches
        if self._nursery is not None:
            for watch in fresh:
                self._start(watch)

    async def run(self) -> None:
        """Follows every listener's watch until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for watch in self.watches.values():
                self._start(watch)
            await trio.sleep_forever()

    def _start(self, watch: W) -> None:
        assert self._nursery is not None

        async def follow() -> None:
            with watch.scope:
                await self._follow(watch)

        self._nursery.start_soon(follow)
