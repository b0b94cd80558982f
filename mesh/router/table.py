"""First-match route table, compiled from config once per snapshot.

A route's match is flattened into a tuple of (key name, matcher) checks so
matching a request is a short loop over lazily computed request keys: a key
no route asks for is never computed.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Sequence

from mesh.codec import RequestKeys
from mesh.config import HeaderMatch, Route, StringMatch

__all__ = ["CompiledRoute", "RouteTable"]

_KEY_FIELDS = ("host", "path", "method", "service", "version", "group")


class CompiledRoute:
    """One route ready to match: checks, destination clusters and timeout."""

    __slots__ = ("config", "name", "_checks", "_headers", "clusters", "_cumulative", "_total",
                 "timeout", "hash_key", "prefix_rewrite", "path_prefix")

    def __init__(self, route: Route) -> None:
        self.config = route
        self.name = route.name
        match = route.match
        checks: list[tuple[str, StringMatch]] = []
        for key in _KEY_FIELDS:
            matcher = getattr(match, key)
            if matcher is not None:
                checks.append((key, matcher))
        self._checks = tuple(checks)
        self._headers: tuple[HeaderMatch, ...] = tuple(match.headers)
        self.clusters = tuple(wc.cluster for wc in route.clusters)
        cumulative, total = [], 0
        for wc in route.clusters:
            total += wc.weight
            cumulative.append(total)
        self._cumulative = cumulative
        self._total = total
        self.timeout = route.timeout
        self.hash_key = route.hash_key
        #: (matched prefix, replacement) as bytes for the :path rewrite, or None
        self.prefix_rewrite = route.prefix_rewrite
        self.path_prefix = (route.match.path.prefix or "") if route.match.path else ""

    @property
    def catches_all(self) -> bool:
        return not self._checks and not self._headers

    def matches(self, keys: RequestKeys) -> bool:
        for key, matcher in self._checks:
            if not matcher.matches(getattr(keys, key)):
                return False
        return all(h.match.matches(keys.get(h.name)) != h.invert for h in self._headers)

    def pick_cluster(self) -> str:
        """The destination cluster; weighted clusters split by weight."""
        clusters = self.clusters
        if len(clusters) == 1:
            return clusters[0]
        point = random.randrange(self._total) if self._total > 0 else 0
        return clusters[bisect.bisect_right(self._cumulative, point)]


class RouteTable:
    """Ordered routes; the first that matches wins (as in Envoy's virtual host)."""

    __slots__ = ("routes", "catch_all")

    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = tuple(CompiledRoute(r) for r in routes)
        first = self.routes[0] if self.routes else None
        #: the first route when it matches every request (then it is the only one that can)
        self.catch_all = first if first is not None and first.catches_all else None

    def match(self, keys: RequestKeys) -> CompiledRoute | None:
        if self.catch_all is not None:
            return self.catch_all  # a sidecar's usual single route: no loop
        for route in self.routes:
            if route.matches(keys):
                return route
        return None
