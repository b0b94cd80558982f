"""What decides whether and where the plain lane sends (mesh/proxy/plain.py): ketama's
``pick_key`` on a key's bytes, and ``FilterChain.acts_on`` (filters declare ``protocols``)."""

from __future__ import annotations

import bisect
import random
import time
from collections.abc import Mapping
from typing import Any

from mesh.plugins.forwarded import ForwardedFilter

from mesh.cluster.balancer import Ketama, RingHash, fnv1a_64, hash_tag
from mesh.cluster.endpoint import UpstreamEndpoint
from mesh.proxy.filters import FilterChain, compile_chain
from mesh.stream import Exchange

# -- 7. ketama pick_key ------------------------------------------------------------------------


def _endpoints(n: int = 4) -> list[UpstreamEndpoint]:
    return [UpstreamEndpoint("127.0.0.1", 7000 + i, 1, {}, 5, 30.0) for i in range(n)]


def _ring_owner(ring: Ketama, key: bytes, skip: UpstreamEndpoint | None = None) -> UpstreamEndpoint:
    """The point a key hashes to on ketama's continuum (the next one not owned by ``skip``)."""
    points, owners = ring._points, ring._owners
    slot = bisect.bisect_left(points, fnv1a_64(hash_tag(key))) % len(points)
    while ring.endpoints[owners[slot]] is skip:
        slot = (slot + 1) % len(points)
    return ring.endpoints[owners[slot]]


KEYS = [b"k%d" % i for i in range(500)] + [b"", b"\x00", b"\xff\xfe", b"caf\xe9", b"{}", b"a{}b", b"{"]


def test_ketama_pick_key_is_pick_on_the_text() -> None:
    """pick_key(bytes) and pick(latin-1 text) agree, and both follow the continuum."""
    ring = Ketama(_endpoints())
    for key in KEYS:
        owner = ring.pick_key(key)
        assert owner is ring.pick(key.decode("latin-1")) is _ring_owner(ring, key)
        assert ring.pick_key(key) is owner  # from the cache now
    assert len({ring.pick_key(key).port for key in KEYS}) == 4


def test_ketama_pick_key_follows_the_hash_tag() -> None:
    """Keys sharing a {tag} go where the tag alone goes; an empty {} is not a tag."""
    ring = Ketama(_endpoints())
    for i in range(100):
        tag = b"user%d" % i
        owner = ring.pick_key(tag)
        assert all(ring.pick_key(key) is owner
                   for key in (b"{%s}" % tag, b"{%s}:name" % tag, b"x{%s}y" % tag, b"{%s}{other}" % tag))
    assert ring.pick_key(b"a{}b") is _ring_owner(ring, b"a{}b")


def test_ketama_skips_an_ejected_owner_and_returns_to_it() -> None:
    """An ejected owner's keys go to the next healthy point; the cached owner is used once it is back."""
    ring = Ketama(_endpoints())
    rng = random.Random(5)
    keys = [rng.randbytes(rng.randint(1, 12)) for _ in range(300)]
    owners = {key: ring.pick_key(key) for key in keys}  # cached
    ejected = owners[keys[0]]
    assert len(set(owners.values())) == 4
    ejected.ejected_until = time.monotonic() + 60
    for key in keys:
        picked = ring.pick_key(key)
        assert picked is not ejected
        if owners[key] is ejected:
            assert picked is _ring_owner(ring, key, skip=ejected)
        else:
            assert picked is owners[key]
    assert ring.pick("key:1") is ring.pick_key(b"key:1")
    ejected.ejected_until = time.monotonic() - 1  # the ejection is over
    assert all(ring.pick_key(key) is owners[key] for key in keys)
    assert ejected.ejected_until == 0.0
    # every endpoint ejected: panic, the owner is picked anyway
    for endpoint in ring.endpoints:
        endpoint.ejected_until = time.monotonic() + 60
    assert all(ring.pick_key(key) is owners[key] for key in keys)


def test_other_balancers_pick_key_decodes_latin1() -> None:
    """The default pick_key is pick on the latin-1 text (ring_hash here)."""
    ring = RingHash(_endpoints())
    for key in KEYS[:100] + [b"\xff\xfe", b"caf\xe9"]:
        assert ring.pick_key(key) is ring.pick(key.decode("latin-1"))


# -- 8. filter chains say which protocols they act on ------------------------------------------


class _AnyProtocol:
    def __init__(self, config: Mapping[str, Any]) -> None:
        pass

    def on_request(self, exchange: Exchange) -> None:
        return None


class _Http1Responses:
    protocols = ("http1",)

    def __init__(self, config: Mapping[str, Any]) -> None:
        pass

    def on_response(self, exchange: Exchange) -> None:
        return None


class _NoHooks:
    """No hooks at all: nothing to act with, whatever its protocols."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        pass


def test_forwarded_alone_acts_on_http_only() -> None:
    """A chain of only the forwarded filter acts on HTTP/1 and HTTP/2 exchanges, not Redis ones."""
    chain = compile_chain([(ForwardedFilter, {})])
    assert chain.acts_on("http1") and chain.acts_on("http2")
    assert not chain.acts_on("redis") and not chain.acts_on("redis+resp3")
    assert not chain.acts_on("redis")  # the cached answer is the same


def test_a_filter_without_protocols_acts_on_everything() -> None:
    """One filter without ``protocols`` is enough for the chain to act on every codec."""
    chain = compile_chain([(ForwardedFilter, {}), (_AnyProtocol, {})])
    assert all(chain.acts_on(name) for name in ("http1", "http2", "redis", "thrift", "dubbo"))
    chain = compile_chain([(_Http1Responses, {}), (_NoHooks, {})])
    assert chain.acts_on("http1") and not chain.acts_on("redis")
    assert FilterChain((_AnyProtocol({}).on_request,), ()).acts_on("redis")


def test_an_empty_chain_acts_on_nothing() -> None:
    """No filters (or only filters without hooks): the chain acts on no codec."""
    for chain in (compile_chain([]), compile_chain([(_NoHooks, {})]), FilterChain((), ())):
        assert not any(chain.acts_on(name) for name in ("http1", "http2", "redis"))
