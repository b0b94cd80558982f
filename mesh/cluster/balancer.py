"""Load balancers: pick an endpoint for a request.

Each balancer skips ejected endpoints; when every endpoint is ejected it
picks among all of them (Envoy's panic mode) rather than fail the request.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import math
import random
import struct
from collections.abc import Sequence

from mesh.cluster.endpoint import UpstreamEndpoint

__all__ = ["LoadBalancer", "RoundRobin", "WeightedRandom", "LeastRequest", "RingHash", "Ketama",
           "make_balancer", "BALANCERS"]


class LoadBalancer:
    """Base: ``pick(hash_value)`` returns an endpoint; hash_value only for hashing LBs."""

    def __init__(self, endpoints: Sequence[UpstreamEndpoint]) -> None:
        self.endpoints = tuple(endpoints)

    def pick(self, hash_value: str | None = None) -> UpstreamEndpoint:
        raise NotImplementedError

    def pick_key(self, key: bytes) -> UpstreamEndpoint:
        """``pick`` for a value still in bytes (a Redis key): balancers that hash bytes
        (ketama) skip the text round trip."""
        return self.pick(key.decode("latin-1"))

    def _first_healthy(self, candidates: Sequence[UpstreamEndpoint], start: int) -> UpstreamEndpoint:
        n = len(candidates)
        for i in range(n):
            endpoint = candidates[(start + i) % n]
            if endpoint.healthy():
                return endpoint
        return candidates[start % n]  # panic: everyone is ejected


class RoundRobin(LoadBalancer):
    """Weighted round robin: each endpoint appears ``weight`` times per cycle."""

    def __init__(self, endpoints: Sequence[UpstreamEndpoint]) -> None:
        super().__init__(endpoints)
        self._schedule = [e for e in self.endpoints for _ in range(max(1, e.weight))]
        random.shuffle(self._schedule)  # workers sharing a port should not move in lockstep
        self._counter = itertools.count()

    def pick(self, hash_value: str | None = None) -> UpstreamEndpoint:
        schedule = self._schedule
        endpoint = schedule[next(self._counter) % len(schedule)]
        if endpoint.healthy():
            return endpoint
        return self._first_healthy(schedule, next(self._counter))


class WeightedRandom(LoadBalancer):
    def __init__(self, endpoints: Sequence[UpstreamEndpoint]) -> None:
        super().__init__(endpoints)
        self._cumulative = list(itertools.accumulate(max(1, e.weight) for e in self.endpoints))

    def pick(self, hash_value: str | None = None) -> UpstreamEndpoint:
        point = random.randrange(self._cumulative[-1])
        index = bisect.bisect_right(self._cumulative, point)
        endpoint = self.endpoints[index]
        return endpoint if endpoint.healthy() else self._first_healthy(self.endpoints, index)


class LeastRequest(LoadBalancer):
    """Power of two choices on active requests (Envoy's default least_request)."""

    def pick(self, hash_value: str | None = None) -> UpstreamEndpoint:
        endpoints = self.endpoints
        if len(endpoints) == 1:
            return endpoints[0]
        a, b = random.sample(endpoints, 2)
        a_ok, b_ok = a.healthy(), b.healthy()
        if a_ok != b_ok:
            return a if a_ok else b
        if not a_ok:
            return self._first_healthy(endpoints, random.randrange(len(endpoints)))
        return a if a.active_requests <= b.active_requests else b


class RingHash(LoadBalancer):
    """Consistent hashing on a request key: 160 points per unit of weight (ketama-like)."""

    POINTS = 160

    def __init__(self, endpoints: Sequence[UpstreamEndpoint]) -> None:
        super().__init__(endpoints)
        ring: list[tuple[int, int]] = []
        for index, endpoint in enumerate(self.endpoints):
            for i in range(self.POINTS * max(1, endpoint.weight)):
                ring.append((_hash(f"{endpoint.address}-{i}"), index))
        ring.sort()
        self._points = [p for p, _ in ring]
        self._owners = [i for _, i in ring]

    def pick(self, hash_value: str | None = None) -> UpstreamEndpoint:
        if hash_value is None:
            return self._first_healthy(self.endpoints, random.randrange(len(self.endpoints)))
        slot = bisect.bisect(self._points, _hash(hash_value)) % len(self._points)
        endpoint = self.endpoints[self._owners[slot]]
        if endpoint.healthy():
            return endpoint
        return self._first_healthy(self.endpoints, self._owners[slot] + 1)


class Ketama(LoadBalancer):
    """twemproxy's ``distribution: ketama`` with ``hash: fnv1a_64`` and ``hash_tag: "{}"``.

    The same continuum as twemproxy (src/hashkit/nc_ketama.c), so a fleet moves
    between the two without reshuffling keys: 160 points per server scaled by
    weight, four per md5 of ``"NAME-i"``, NAME being the endpoint's metadata
    ``name`` or ``host:port`` (``host`` alone on port 11211, as twemproxy does).
    Keys hash with twemproxy's 32-bit fnv1a_64, on the ``{tag}`` when there is one.
    An ejected server's keys go to the next healthy point on the ring.
    """

    def __init__(self, endpoints: Sequence[UpstreamEndpoint]) -> None:
        super().__init__(endpoints)
        total = sum(max(1, e.weight) for e in self.endpoints)
        count = len(self.endpoints)
        ring: list[tuple[int, int]] = []
        for index, endpoint in enumerate(self.endpoints):
            name = twemproxy_name(endpoint)
            pct = _f32(max(1, endpoint.weight) / total)
            points = int(math.floor(_f32(_f32(pct * 160 / 4) * count) + 0.0000000001)) * 4
            for i in range(points // 4):
                digest = hashlib.md5(f"{name}-{i}".encode()).digest()
                for x in range(4):
                    ring.append((int.from_bytes(digest[4 * x : 4 * x + 4], "little"), index))
        ring.sort(key=lambda item: item[0])  # stable: equal values keep server order, like qsort mostly
        self._points = [p for p, _ in ring]
        self._owners = [i for _, i in ring]
        #: the endpoint owning each recent key's point (fnv1a is a per-byte Python loop and
        #: keys repeat); bounded, and health is checked on every use
        self._owner: dict[bytes, UpstreamEndpoint] = {}

    def pick(self, hash_value: str | None = None) -> UpstreamEndpoint:
        if hash_value is None:
            return self._first_healthy(self.endpoints, random.randrange(len(self.endpoints)))
        return self.pick_key(hash_value.encode("latin-1"))

    def pick_key(self, key: bytes) -> UpstreamEndpoint:
        owner = self._owner.get(key)
        if owner is not None and not owner.ejected_until:
            return owner
        points = self._points
        n = len(points)
        slot = bisect.bisect_left(points, key_hash(hash_tag(key))) % n
        owner = self.endpoints[self._owners[slot]]
        if len(self._owner) >= _SLOT_CACHE:
            self._owner.clear()
        self._owner[key] = owner
        if owner.healthy():
            return owner
        # an ejected server's keys go to the next healthy point on the ring
        for step in range(1, n):
            endpoint = self.endpoints[self._owners[(slot + step) % n]]
            if endpoint.healthy():
                return endpoint
        return owner  # panic: everyone is ejected


class Modula(LoadBalancer):
    """twemproxy's ``distribution: modula`` with ``hash: fnv1a_64`` and ``hash_tag: "{}"``.

    As src/hashkit/nc_modula.c: every server appears ``weight`` times in server order, and a
    key goes to entry ``hash % entries``. Ejected servers leave the list (twemproxy rebuilds
    it without them), so while one is out the other keys move too, as in twemproxy.
    """

    def __init__(self, endpoints: Sequence[UpstreamEndpoint]) -> None:
        super().__init__(endpoints)
        # twemproxy sorts a pool's servers by name when it validates its config (shorter
        # names first, then bytewise: nc_conf.c conf_validate_server), and modula counts
        # in that order, not the order of the config file
        ordered = sorted(self.endpoints, key=lambda e: (len(twemproxy_name(e).encode()),
                                                        twemproxy_name(e).encode()))
        self._points = [e for e in ordered for _ in range(max(1, e.weight))]

    def pick(self, hash_value: str | None = None) -> UpstreamEndpoint:
        if hash_value is None:
            return self._first_healthy(self.endpoints, random.randrange(len(self.endpoints)))
        points = self._points
        if not all(e.healthy() for e in self.endpoints):
            points = [e for e in points if e.healthy()] or points  # all out: panic, use all
        return points[key_hash(hash_tag(hash_value.encode("latin-1"))) % len(points)]


#: keys whose ring slot a Ketama balancer remembers
_SLOT_CACHE = 1 << 16


def twemproxy_name(endpoint: UpstreamEndpoint) -> str:
    """The server's name in twemproxy: metadata ``name``, else host:port (host on 11211)."""
    name = endpoint.metadata.get("name")
    if name:
        return name
    return endpoint.host if endpoint.port == 11211 else f"{endpoint.host}:{endpoint.port}"


def _f32(value: float) -> float:
    """Round to a C float, as twemproxy's point count arithmetic does."""
    result: float = struct.unpack("f", struct.pack("f", value))[0]
    return result


def hash_tag(key: bytes) -> bytes:
    """The content of the first non-empty ``{...}`` in ``key``, else the key."""
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


#: each byte as twemproxy's C char sign-extends it to 32 bits
_SIGN_EXTENDED = [b if b < 0x80 else b | 0xFFFFFF00 for b in range(256)]


def fnv1a_64(key: bytes, value: int = 0x84222325) -> int:
    """twemproxy's hash_fnv1a_64: 32-bit arithmetic, bytes sign-extended as C chars.

    ``value`` is the state to go on from (the hash of a prefix: ``key_hash``).
    """
    extended = _SIGN_EXTENDED
    for byte in key:
        value = ((value ^ extended[byte]) * 0x1B3) & 0xFFFFFFFF
    return value


#: fnv1a states of recent key prefixes (all but the last 4 bytes), bounded
_prefix_states: dict[bytes, int] = {}


def key_hash(key: bytes) -> int:
    """``fnv1a_64(key)``, going on from the remembered state of its prefix when it has one.

    fnv1a is a per-byte Python loop (about 0.1 us a byte), and keys mostly share prefixes
    with other keys ("user:1234..."): only the last 4 bytes are hashed for those.
    """
    if len(key) <= 8:
        return fnv1a_64(key)
    head = key[:-4]
    state = _prefix_states.get(head)
    if state is None:
        if len(_prefix_states) >= _SLOT_CACHE:
            _prefix_states.clear()
        state = _prefix_states[head] = fnv1a_64(head)
    return fnv1a_64(key[-4:], state)


def _hash(value: str) -> int:
    return int.from_bytes(hashlib.md5(value.encode()).digest()[:8], "little")


BALANCERS: dict[str, type[LoadBalancer]] = {
    "round_robin": RoundRobin,
    "random": WeightedRandom,
    "least_request": LeastRequest,
    "ring_hash": RingHash,
    "ketama": Ketama,
    "modula": Modula,
}


def make_balancer(name: str, endpoints: Sequence[UpstreamEndpoint]) -> LoadBalancer:
    return BALANCERS[name](endpoints)
