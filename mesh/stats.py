"""Counters and latency histograms, rendered in Prometheus text format.

Stats objects are plain attribute bags bumped on the hot path (``s.requests
+= 1``); names and labels are only assembled when ``/stats`` is scraped.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator

__all__ = ["LatencyHistogram", "TrafficStats", "StatsRegistry", "BUCKETS"]

#: Upper bounds in seconds, Prometheus-style cumulative buckets.
_bisect_left = bisect.bisect_left

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class LatencyHistogram:
    __slots__ = ("counts", "total", "count")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds
        self.count += 1

    def add(self, other: LatencyHistogram) -> None:
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.total += other.total
        self.count += other.count

    def render(self, name: str, labels: str) -> Iterator[str]:
        running = 0
        for bound, count in zip(BUCKETS, self.counts, strict=False):
            running += count
            yield f'{name}_bucket{{{labels},le="{bound}"}} {running}'
        yield f'{name}_bucket{{{labels},le="+Inf"}} {self.count}'
        yield f"{name}_sum{{{labels}}} {self.total:.6f}"
        yield f"{name}_count{{{labels}}} {self.count}"


class TrafficStats:
    """Counters for one listener, route or cluster."""

    __slots__ = ("kind", "name", "cx_total", "cx_active", "requests", "responses",
                 "local_replies", "failures", "latency", "shares")

    def __init__(self, kind: str, name: str) -> None:
        self.kind = kind
        self.name = name
        self.cx_total = 0
        self.cx_active = 0
        self.requests = 0
        #: responses by class: "2xx", "4xx", ... (RPC codecs map their status)
        self.responses: dict[str, int] = {}
        self.local_replies: dict[str, int] = {}
        self.failures = 0
        self.latency = LatencyHistogram()
        #: requests, responses and latency counted in other objects that belong to this
        #: scope too (the plain lane bumps one object for its listener, route and cluster:
        #: mesh/proxy/plain.py); added in when rendered
        self.shares: list[TrafficStats] = []

    def response(self, status_class: str, seconds: float) -> None:
        responses = self.responses
        responses[status_class] = responses.get(status_class, 0) + 1
        latency = self.latency  # LatencyHistogram.observe, inlined: three calls per request
        latency.counts[_bisect_left(BUCKETS, seconds)] += 1
        latency.total += seconds
        latency.count += 1

    def render(self) -> Iterator[str]:
        prefix = f"mesh_{self.kind}"
        labels = f'{self.kind}="{self.name}"'
        requests, responses, latency = self.requests, dict(self.responses), self.latency
        if self.shares:
            latency = LatencyHistogram()
            latency.add(self.latency)
            for part in self.shares:
                requests += part.requests
                for status_class, count in part.responses.items():
                    responses[status_class] = responses.get(status_class, 0) + count
                latency.add(part.latency)
        yield f"{prefix}_cx_total{{{labels}}} {self.cx_total}"
        yield f"{prefix}_cx_active{{{labels}}} {self.cx_active}"
        yield f"{prefix}_requests_total{{{labels}}} {requests}"
        yield f"{prefix}_failures_total{{{labels}}} {self.failures}"
        for status_class, count in sorted(responses.items()):
            yield f'{prefix}_responses_total{{{labels},class="{status_class}"}} {count}'
        for status, count in sorted(self.local_replies.items()):
            yield f'{prefix}_local_replies_total{{{labels},status="{status}"}} {count}'
        yield from latency.render(f"{prefix}_request_duration_seconds", labels)


class StatsRegistry:
    """All stats of one worker, keyed by (kind, name)."""

    def __init__(self) -> None:
        self._scopes: dict[tuple[str, str], TrafficStats] = {}

    def scope(self, kind: str, name: str) -> TrafficStats:
        key = (kind, name)
        stats = self._scopes.get(key)
        if stats is None:
            stats = self._scopes[key] = TrafficStats(kind, name)
        return stats

    def render(self) -> str:
        lines: list[str] = []
        for kind in ("listener", "route", "cluster"):
            scopes = [s for (k, _), s in sorted(self._scopes.items()) if k == kind]
            if not scopes:
                continue
            lines.append(f"# TYPE mesh_{kind}_requests_total counter")
            lines.append(f"# TYPE mesh_{kind}_request_duration_seconds histogram")
            for stats in scopes:
                lines.extend(stats.render())
        return "\n".join(lines) + "\n"
