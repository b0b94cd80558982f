from __future__ import annotations

import collections

import pytest

from mesh.cluster import BALANCERS, UpstreamEndpoint, make_balancer


def _endpoints(*weights: int, limit: int = 2) -> list[UpstreamEndpoint]:
    return [UpstreamEndpoint("127.0.0.1", 8000 + i, w, {}, limit, 30.0)
            for i, w in enumerate(weights)]


def test_round_robin_follows_weights() -> None:
    eps = _endpoints(1, 3)
    lb = make_balancer("round_robin", eps)
    counts = collections.Counter(lb.pick().port for _ in range(400))
    assert counts == {8000: 100, 8001: 300}


def test_weighted_random_follows_weights() -> None:
    eps = _endpoints(1, 9)
    lb = make_balancer("random", eps)
    counts = collections.Counter(lb.pick().port for _ in range(5000))
    assert 0.05 < counts[8000] / 5000 < 0.15


def test_least_request_prefers_idle_endpoint() -> None:
    eps = _endpoints(1, 1)
    eps[0].active_requests = 10
    lb = make_balancer("least_request", eps)
    assert all(lb.pick().port == 8001 for _ in range(50))


def test_ring_hash_is_stable_and_consistent() -> None:
    eps = _endpoints(1, 1, 1)
    lb = make_balancer("ring_hash", eps)
    keys = [f"user-{i}" for i in range(300)]
    first = {k: lb.pick(k).port for k in keys}
    assert first == {k: lb.pick(k).port for k in keys}
    assert len(set(first.values())) == 3
    # Removing one endpoint only moves the keys it owned.
    smaller = make_balancer("ring_hash", eps[:2])
    moved = [k for k in keys if first[k] != 8002 and smaller.pick(k).port != first[k]]
    assert moved == []


@pytest.mark.parametrize("name", sorted(BALANCERS))
def test_ejected_endpoints_are_skipped_and_panic_uses_all(name: str) -> None:
    eps = _endpoints(1, 1, limit=1)
    assert eps[0].record_failure() is True  # limit 1: ejected at once
    lb = make_balancer(name, eps)
    assert {lb.pick(f"k{i}").port for i in range(60)} == {8001}
    eps[1].record_failure()
    assert {lb.pick(f"k{i}").port for i in range(60)} <= {8000, 8001}  # panic: still answers


def test_success_resets_the_failure_count() -> None:
    (ep,) = _endpoints(1, limit=3)
    ep.record_failure()
    ep.record_failure()
    ep.record_success()
    assert ep.record_failure() is False and ep.healthy()
