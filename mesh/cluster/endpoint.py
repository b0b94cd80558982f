"""Upstream endpoints with passive failure tracking (outlier ejection)."""

from __future__ import annotations

import time
from collections.abc import Mapping

__all__ = ["UpstreamEndpoint"]


class UpstreamEndpoint:
    """One upstream host:port of a cluster and its health.

    Health is passive, as Envoy's consecutive-gateway-failure outlier
    detection: connect failures, resets and timeouts count; N in a row eject
    the endpoint for ``ejection_time`` seconds; any success resets the count.
    """

    __slots__ = ("host", "port", "weight", "metadata", "address", "active_requests",
                 "open_connections", "consecutive_failures", "ejected_until",
                 "total_failures", "_failure_limit", "_ejection_time")

    def __init__(self, host: str, port: int, weight: int, metadata: Mapping[str, str],
                 failure_limit: int, ejection_time: float) -> None:
        self.host = host
        self.port = port
        self.weight = weight
        self.metadata = metadata
        self.address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.active_requests = 0
        self.open_connections = 0
        self.consecutive_failures = 0
        self.ejected_until = 0.0
        self.total_failures = 0
        self._failure_limit = failure_limit
        self._ejection_time = ejection_time

    def healthy(self, now: float | None = None) -> bool:
        if not self.ejected_until:
            return True
        if (now if now is not None else time.monotonic()) >= self.ejected_until:
            self.ejected_until = 0.0
            return True
        return False

    def drain(self) -> None:
        """The endpoint said it is going away: leave it out for the ejection time."""
        self.ejected_until = time.monotonic() + self._ejection_time

    def record_success(self) -> None:
        self.consecutive_failures = 0

    def record_failure(self) -> bool:
        """Count a gateway failure; True when this one ejected the endpoint."""
        self.total_failures += 1
        self.consecutive_failures += 1
        if self._failure_limit and self.consecutive_failures >= self._failure_limit:
            self.consecutive_failures = 0
            self.ejected_until = time.monotonic() + self._ejection_time
            return True
        return False
