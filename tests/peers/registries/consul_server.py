"""A Consul agent for the contract tests: the HTTP API subset of py-consul (service register and
deregister, TTL checks) and of rpcmesh's ``consul`` source (health of a service, blocking).

- ``PUT /v1/agent/service/register``: a service definition (JSON, keys in any case, as Consul
  reads them), with ``Check``/``Checks`` (a TTL check starts ``critical``, as in Consul; check
  ids ``service:<id>``, ``service:<id>:<n>`` for several);
- ``PUT /v1/agent/service/deregister/<id>``;
- ``PUT /v1/agent/check/pass|warn|fail/<check id>``;
- ``GET /v1/health/service/<name>?passing&tag=&dc=&index=&wait=``: the entries in the shape of
  tests/golden/registries/consul_health_service.json, ``X-Consul-Index`` the registry's index;
  with ``index`` the answer waits until the index moves past it or ``wait`` (at most 10 s here)
  is over. One node (``node-1``, 127.0.0.1, datacenter ``dc1``, ``serfHealth`` passing);
- ``GET /v1/catalog/services?dc=``: every registered service's name with its tags (sorted,
  each once), ``consul`` itself included (``[]``), in the shape of
  tests/golden/registries/consul_catalog_services.json, ``X-Consul-Index`` the registry's
  index; it answers at once (no blocking).

Not there: the rest of the catalog, KV, ACLs (``X-Consul-Token`` is accepted and ignored), HTTP/TCP checks
(their status stays what the definition says), several datacenters (another ``dc`` is a 500
"No path to datacenter", as Consul answers).
"""

from __future__ import annotations

import re
import time
from typing import Any

from tests.peers.registries._server import (
    RegistryServer,
    Reply,
    Request,
    casefold_keys,
    serve_main,
)

MAX_WAIT = 10.0
NODE = {
    "ID": "3e5b2b5e-5c6f-4f65-9a3c-6f1f0c2b6c1a", "Node": "node-1", "Address": "127.0.0.1",
    "Datacenter": "dc1", "TaggedAddresses": {"lan": "127.0.0.1", "wan": "127.0.0.1"},
    "Meta": {"consul-network-segment": ""},
}
SERF = {"CheckID": "serfHealth", "Name": "Serf Health Status", "Status": "passing",
        "ServiceID": "", "ServiceName": "", "ServiceTags": []}


def _duration(text: str) -> float:
    units = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    total = sum(float(n) * units[u] for n, u in re.findall(r"([\d.]+)(ns|us|ms|s|m|h)", text))
    return total or (float(text) if text.replace(".", "", 1).isdigit() else 0.0)


class ConsulServer(RegistryServer):
    """A Consul agent (HTTP API subset) on 127.0.0.1."""

    def __init__(self) -> None:
        super().__init__()
        self.index = 10  # the raft index: moves on every change
        self.services: dict[str, dict[str, Any]] = {}  # service id -> Service object
        self.checks: dict[str, dict[str, Any]] = {}  # check id -> check (with ServiceID)
        self.raw: list[Any] = []  # entries served as they are (a test's malformed ones)
        self.raw_catalog: dict[str, Any] = {}  # catalog entries served as they are
        self.blocking_queries = 0  # health queries with an index (a test reads it)
        self.generation = 0  # moves when the state is replaced: waiting queries answer at once

    # -- test hooks -----------------------------------------------------------------------------

    def add_raw_entry(self, entry: Any) -> None:
        with self.cond:
            self.raw.append(entry)
            self._bump()

    def add_raw_catalog_entry(self, name: str, tags: Any) -> None:
        with self.cond:
            self.raw_catalog[name] = tags
            self._bump()

    def restore_older_snapshot(self) -> None:
        """The index goes backwards, as after a snapshot restore (clients must reset to 0);
        blocking queries answer at once, as Consul's restore abandons them."""
        with self.cond:
            self.index = 2
            self.generation += 1
            self.changed()

    # -- the API --------------------------------------------------------------------------------

    def _bump(self) -> None:
        self.index += 1
        self.changed()

    def handle(self, request: Request) -> Reply:
        path, method = request.path, request.method
        if method == "GET" and path.startswith("/v1/health/service/"):
            return self._health(path.removeprefix("/v1/health/service/"), request)
        if method == "GET" and path == "/v1/catalog/services":
            return self._catalog(request)
        with self.cond:
            if method == "PUT" and path == "/v1/agent/service/register":
                return self._register(request.json())
            if method == "PUT" and path.startswith("/v1/agent/service/deregister/"):
                service_id = path.removeprefix("/v1/agent/service/deregister/")
                if self.services.pop(service_id, None) is None:
                    return Reply(404, f'Unknown service ID "{service_id}"')
                self.checks = {k: c for k, c in self.checks.items() if c["ServiceID"] != service_id}
                self._bump()
                return Reply(200, b"")
            match = re.fullmatch(r"/v1/agent/check/(pass|warn|fail)/(.+)", path)
            if method == "PUT" and match:
                check = self.checks.get(match.group(2))
                if check is None:
                    return Reply(404, f'Unknown check ID "{match.group(2)}"')
                status = {"pass": "passing", "warn": "warning", "fail": "critical"}[match.group(1)]
                check["Output"] = request.query.get("note", "")
                if check["Status"] != status:
                    check["Status"] = status
                    self._bump()
                return Reply(200, b"")
        return Reply(404, f"no such API: {method} {path}")

    def _register(self, body: Any) -> Reply:
        if not isinstance(body, dict):
            return Reply(400, "Request decode failed: not an object")
        spec = casefold_keys(body)
        name = spec.get("name")
        if not isinstance(name, str) or not name:
            return Reply(400, "Missing service name")
        service_id = spec.get("id") or name
        weights = casefold_keys(spec.get("weights") or {})
        self.services[service_id] = {
            "ID": service_id, "Service": name, "Tags": list(spec.get("tags") or []),
            "Address": spec.get("address") or "",
            "TaggedAddresses": spec.get("taggedaddresses") or spec.get("tagged_addresses") or {},
            "Meta": dict(spec.get("meta") or {}), "Port": int(spec.get("port") or 0),
            "Weights": {"Passing": weights.get("passing", 1), "Warning": weights.get("warning", 1)},
            "Namespace": "default",
        }
        checks = list(spec.get("checks") or []) + ([spec["check"]] if spec.get("check") else [])
        self.checks = {k: c for k, c in self.checks.items() if c["ServiceID"] != service_id}
        for n, given in enumerate(checks, 1):
            check = casefold_keys(given)
            check_id = check.get("checkid") or check.get("id") or (
                f"service:{service_id}" if len(checks) == 1 else f"service:{service_id}:{n}")
            self.checks[check_id] = {
                "CheckID": check_id, "Name": check.get("name") or f"Service '{name}' check",
                "Status": check.get("status") or "critical", "Notes": check.get("notes") or "",
                "Output": "", "ServiceID": service_id, "ServiceName": name,
                "ServiceTags": list(spec.get("tags") or []),
            }
        self._bump()
        return Reply(200, b"")

    def _health(self, name: str, request: Request) -> Reply:
        dc = request.query.get("dc")
        if dc and dc != NODE["Datacenter"]:
            return Reply(500, "No path to datacenter")
        with self.cond:
            if "index" in request.query:
                self.blocking_queries += 1
                wanted = int(request.query["index"] or 0)
                wait = min(MAX_WAIT, _duration(request.query.get("wait", "5m")) or MAX_WAIT)
                deadline = time.monotonic() + wait
                generation = self.generation
                while self.index <= wanted and self.running and self.generation == generation:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self.cond.wait(left)
                if not self.running:
                    return Reply(500, "agent stopping")
            entries = [self._entry(s) for s in self.services.values() if s["Service"] == name]
            tags = [value for key, value in request.queries if key == "tag"]
            entries = [e for e in entries if all(t in e["Service"]["Tags"] for t in tags)]
            if "passing" in request.query and request.query["passing"] not in ("false", "0"):
                entries = [e for e in entries if all(c["Status"] == "passing" for c in e["Checks"])]
            return Reply(200, entries + list(self.raw),
                         {"X-Consul-Index": str(self.index), "X-Consul-Knownleader": "true",
                          "X-Consul-Lastcontact": "0"})

    def _catalog(self, request: Request) -> Reply:
        dc = request.query.get("dc")
        if dc and dc != NODE["Datacenter"]:
            return Reply(500, "No path to datacenter")
        with self.cond:
            tags: dict[str, set[str]] = {"consul": set()}
            for service in self.services.values():
                tags.setdefault(service["Service"], set()).update(service["Tags"])
            answer: dict[str, Any] = {name: sorted(tags[name]) for name in sorted(tags)}
            answer.update(self.raw_catalog)
            return Reply(200, answer, {"X-Consul-Index": str(self.index),
                                       "X-Consul-Knownleader": "true",
                                       "X-Consul-Lastcontact": "0"})

    def _entry(self, service: dict[str, Any]) -> dict[str, Any]:
        checks = [{"Node": NODE["Node"], **SERF, "Notes": "", "Output": "Agent alive and reachable",
                   "Namespace": "default"}]
        for check in self.checks.values():
            if check["ServiceID"] == service["ID"]:
                checks.insert(0, {"Node": NODE["Node"], **check, "Namespace": "default"})
        ordered = [{key: c[key] for key in ("Node", "CheckID", "Name", "Status", "Notes", "Output",
                                            "ServiceID", "ServiceName", "ServiceTags", "Namespace")}
                   for c in checks]
        return {"Node": dict(NODE), "Service": dict(service), "Checks": ordered}


if __name__ == "__main__":
    serve_main(ConsulServer, 8500)
