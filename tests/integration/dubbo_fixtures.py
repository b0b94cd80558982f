"""Dubbo peer fixtures (helpers in dubbo_peers.py), imported by conftest.py.

``dubbo_provider`` (function) / ``dubbo_provider_module`` (module) -> DubboProviderFactory
    ``dubbo_provider(version="1.0.0", group="")`` starts tests/peers/dubbo_node/provider.js
    (sofa-rpc-node + dubbo-remoting, hessian2, no registry) on a free 127.0.0.1 port and
    returns a DubboProvider once it printed its ready line: ``.port .address .version
    .group .pid .log``.
``dubbo_consumer`` (function) -> DubboConsumerFactory
    ``dubbo_consumer("node" | "python", port_or_peer, version="1.0.0", group="",
    timeout_ms=3000, heartbeat_ms=0)`` starts a consumer with one connection to that port
    (the provider's for a direct call, rpcmesh's to go through the proxy):
    ``.call(method, *args, attachments=None, timeout_ms=None)`` -> CallResult,
    ``.call_many([Call(...), ...])`` (all in flight at once), ``.stats()``,
    ``.wait_heartbeat_acks(n)``, ``.local_port``.

Skipped when node / the npm packages / dubbo-ssl-python are missing, failed under CI=true.
Every process is stopped by PID at teardown.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .dubbo_peers import DubboConsumerFactory, DubboProviderFactory


@pytest.fixture
def dubbo_provider(tmp_path: Path) -> Iterator[DubboProviderFactory]:
    factory = DubboProviderFactory(tmp_path)
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture(scope="module")
def dubbo_provider_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DubboProviderFactory]:
    factory = DubboProviderFactory(tmp_path_factory.mktemp("dubbo-provider"))
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def dubbo_consumer(tmp_path: Path) -> Iterator[DubboConsumerFactory]:
    factory = DubboConsumerFactory(tmp_path)
    try:
        yield factory
    finally:
        factory.close()
