"""Endpoint sources: where a cluster's endpoints come from when the config does not list them.

A source plugin is registered in the ``mesh.discovery`` entry-point group as a factory taking
the source's settings (``discovery: {source: NAME, config: {...}}`` of a cluster) and returning
an :class:`EndpointSource`. The factory refuses bad settings with ``ValueError`` (the runtime
turns it into a start-up error naming the cluster). ``run`` publishes the complete endpoint set
each time it changes; the core swaps it in at once (in-flight requests finish where they are).

When a source fails (``run`` raises), the runtime logs it once, keeps the last endpoints it
published, says so on the admin ``/clusters`` page, and starts ``run`` again after a backoff.
A source that loses its registry for a while should keep running and simply not publish.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from mesh.config import Endpoint

__all__ = ["Endpoint", "EndpointSource", "Publish", "Report"]

#: what a source calls with the complete, current endpoint set
Publish = Callable[[Sequence[Endpoint]], None]
#: what a source calls to say how its registry is doing ("disconnected; keeping 3 endpoints"),
#: shown as the cluster's ``discovery`` state on the admin /clusters page
Report = Callable[[str], None]


class EndpointSource(Protocol):
    """One cluster's endpoints, watched in a registry."""

    async def run(self, publish: Publish, report: Report) -> None:
        """Watch the registry and ``publish`` every change; runs until cancelled."""
