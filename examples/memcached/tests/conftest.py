"""Real peers for the example plugin's tests: Debian memcached and rpcmesh's own proxy.

``memcached`` (module) -> two running ``Memcached`` servers (shards A and B).
``mesh_proxy`` (module) -> ``MeshProxy``: ``python -m mesh proxy --protocol memcached`` in
    front of both, ``--lb ring_hash --hash-key header:key``.
``ring`` (module) -> ``pick(key) -> Memcached``: the shard the proxy's ring chooses for a key.

memcached missing is a skip with the reason, except under CI=true, where it is a failure:
CI installs it, so its absence there is a broken job, not a reason to pass. The processes
are started and stopped by memcached_peers.py.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Generator, Iterator

import pytest
from memcached_peers import Memcached, MeshProxy, need, start_memcached, start_proxy, stop


@pytest.fixture(scope="module")
def memcached(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Memcached, Memcached]]:
    binary = shutil.which("memcached", path="/usr/bin:/usr/sbin:/usr/local/bin")
    need(binary, "Debian memcached is not installed (apt-get install -y memcached)")
    assert binary is not None
    tmp = tmp_path_factory.mktemp("memcached")
    servers = [start_memcached(binary, tmp / f"memcached-{name}.log") for name in "ab"]
    yield servers[0], servers[1]
    for server in servers:
        stop(server.proc)


@pytest.fixture(scope="module")
def mesh_proxy(memcached: tuple[Memcached, Memcached],
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeshProxy]:
    proxy = start_proxy([m.address for m in memcached], tmp_path_factory.mktemp("mesh") / "mesh.log")
    yield proxy
    stop(proxy.proc)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item,
                              call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test that used the proxy gets the end of the proxy's log in its report."""
    report: pytest.TestReport = yield
    proxy = getattr(item, "funcargs", {}).get("mesh_proxy")
    if report.failed and isinstance(proxy, MeshProxy):
        report.sections.append(("mesh proxy log (tail)", proxy.log_tail()))
    return report


@pytest.fixture(scope="module")
def ring(memcached: tuple[Memcached, Memcached]) -> Callable[[str], Memcached]:
    """The shard rpcmesh's ring_hash balancer picks for a key (the same class, the same endpoints)."""
    from mesh.cluster.balancer import RingHash
    from mesh.cluster.endpoint import UpstreamEndpoint

    endpoints = [UpstreamEndpoint("127.0.0.1", m.port, 1, {}, 5, 30.0) for m in memcached]
    balancer = RingHash(endpoints)
    by_port = {m.port: m for m in memcached}
    return lambda key: by_port[balancer.pick(key).port]
