"""A Eureka server for the contract tests: the REST subset of py-eureka-client (register,
heartbeat, status, cancel) and of rpcmesh's ``eureka`` source (full and delta fetches, JSON).

- ``POST /eureka/apps/<APP>`` with ``{"instance": {...}}``: register (204); queued as ``ADDED``;
- ``PUT /eureka/apps/<APP>/<id>?status=&lastDirtyTimestamp=``: renew (200, 404 unknown);
- ``PUT /eureka/apps/<APP>/<id>/status?value=``: status override, queued as ``MODIFIED``;
- ``DELETE /eureka/apps/<APP>/<id>``: cancel (200, 404 unknown), queued as ``DELETED``;
- ``GET /eureka/apps``: the registry, ``GET /eureka/apps/delta``: the changes of the last
  ``retention`` seconds (Eureka's recently-changed queue, 3 minutes), each with the
  ``apps__hashcode`` of the whole registry; both in the JSON shape of
  tests/golden/registries/eureka_apps.json (Eureka's JSON codec), whatever ``Accept`` says.
  ``/apps`` is also the service catalog rpcmesh's ``service_routes`` reads (the application
  names).

Not there: XML, lease expiry and self-preservation, peer replication, the 30 s response cache
of a real Eureka server (answers here are always current), ``/apps/<APP>`` and vip queries.
"""

from __future__ import annotations

import copy
import time
from collections import Counter
from typing import Any

from tests.peers.registries._server import RegistryServer, Reply, Request, golden, serve_main

#: the instance keys of Eureka's JSON codec, in its order (from the documented sample)
INSTANCE_KEYS = list(golden("eureka_apps.json")["applications"]["application"][0]["instance"][0])


def reconcile_hash(apps: dict[str, dict[str, dict[str, Any]]], raw: list[tuple[str, Any]]) -> str:
    """Eureka's ``apps__hashcode``: every status with its instance count (raw entries too)."""
    counts = Counter(i["status"] for instances in apps.values() for i in instances.values())
    counts.update(entry["status"] for _, entry in raw
                  if isinstance(entry, dict) and isinstance(entry.get("status"), str))
    return "".join(f"{status}_{count}_" for status, count in sorted(counts.items()))


class EurekaServer(RegistryServer):
    """A Eureka server (REST subset, JSON) on 127.0.0.1."""

    def __init__(self, retention: float = 180.0) -> None:
        super().__init__()
        self.retention = retention
        self.apps: dict[str, dict[str, dict[str, Any]]] = {}
        self.changes: list[tuple[float, str, dict[str, Any]]] = []  # (time, action, instance)
        self.version = 0
        #: test hooks: entries served as they are, and a wrong delta hash
        self.raw: list[tuple[str, Any]] = []
        #: application entries served as they are in /apps, after the others
        self.raw_applications: list[Any] = []
        self.delta_hash_override: str | None = None
        self.full_fetches = 0
        self.delta_fetches = 0

    # -- test hooks -----------------------------------------------------------------------------

    def forget_changes(self) -> None:
        """Empty the recently-changed queue (a client that missed deltas must reconcile)."""
        with self.cond:
            self.changes.clear()

    def add_unannounced(self, app: str, instance: dict[str, Any]) -> None:
        """An instance that no delta will carry (a client learns it only by reconciling)."""
        with self.cond:
            self.apps.setdefault(app.upper(), {})[instance["instanceId"]] = instance

    def add_raw_application(self, entry: Any) -> None:
        with self.cond:
            self.raw_applications.append(entry)

    def add_raw_instance(self, app: str, entry: Any) -> None:
        with self.cond:
            self.raw.append((app.upper(), entry))

    # -- the API --------------------------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        parts = [p for p in request.path.split("/") if p]
        if not parts or parts[0] != "eureka" or len(parts) < 2 or parts[1] != "apps":
            return Reply(404, "not found")
        rest = parts[2:]
        with self.cond:
            if request.method == "GET" and not rest:
                self.full_fetches += 1
                answer = self._applications(self._full(), reconcile_hash(self.apps, self.raw))
                answer["applications"]["application"] += self.raw_applications
                return Reply(200, answer)
            if request.method == "GET" and rest == ["delta"]:
                self.delta_fetches += 1
                return Reply(200, self._applications(self._delta(), self.delta_hash_override
                                                     or reconcile_hash(self.apps, self.raw)))
            if request.method == "POST" and len(rest) == 1:
                return self._register(rest[0].upper(), request)
            if len(rest) >= 2:
                app, instance_id = rest[0].upper(), rest[1]
                instance = self.apps.get(app, {}).get(instance_id)
                if instance is None:
                    return Reply(404, "")
                if request.method == "PUT" and len(rest) == 2:  # renew
                    instance["leaseInfo"]["lastRenewalTimestamp"] = _now()
                    return Reply(200, "")
                if request.method == "PUT" and rest[2:] == ["status"]:
                    instance["status"] = instance["overriddenStatus"] = request.query.get("value", "UP")
                    self._changed("MODIFIED", instance)
                    return Reply(200, "")
                if request.method == "DELETE" and rest[2:] == ["status"]:
                    instance["overriddenStatus"] = "UNKNOWN"
                    return Reply(200, "")
                if request.method == "DELETE" and len(rest) == 2:
                    del self.apps[app][instance_id]
                    if not self.apps[app]:
                        del self.apps[app]
                    self._changed("DELETED", instance)
                    return Reply(200, "")
        return Reply(404, f"no such API: {request.method} {request.path}")

    def _register(self, app: str, request: Request) -> Reply:
        body = request.json()
        given = body.get("instance") if isinstance(body, dict) else None
        if not isinstance(given, dict):
            return Reply(400, "no instance")
        now = _now()
        instance: dict[str, Any] = {}
        for key in INSTANCE_KEYS:  # the codec's shape, whatever the client sent
            if key in given:
                instance[key] = given[key]
        instance.setdefault("instanceId", given.get("hostName"))
        instance["app"] = app
        instance["overriddenStatus"] = given.get("overriddenStatus",
                                                 given.get("overriddenstatus", "UNKNOWN"))
        lease = dict(given.get("leaseInfo") or {})
        lease.update(registrationTimestamp=now, lastRenewalTimestamp=now, evictionTimestamp=0,
                     serviceUpTimestamp=now)
        instance["leaseInfo"] = lease
        instance["lastUpdatedTimestamp"] = str(now)
        instance["actionType"] = "ADDED"
        instance = {key: instance[key] for key in INSTANCE_KEYS if key in instance}
        self.apps.setdefault(app, {})[instance["instanceId"]] = instance
        self._changed("ADDED", instance)
        return Reply(204, b"")

    def _changed(self, action: str, instance: dict[str, Any]) -> None:
        item = copy.deepcopy(instance)
        item["actionType"] = action
        item["lastUpdatedTimestamp"] = str(_now())
        self.changes.append((time.monotonic(), action, item))
        self.version += 1
        self.changed()

    def _full(self) -> dict[str, list[Any]]:
        apps: dict[str, list[Any]] = {}
        for app, instances in self.apps.items():
            apps[app] = [copy.deepcopy(i) for i in instances.values()]
        for app, entry in self.raw:
            apps.setdefault(app, []).append(entry)
        return apps

    def _delta(self) -> dict[str, list[Any]]:
        horizon = time.monotonic() - self.retention
        self.changes = [change for change in self.changes if change[0] >= horizon]
        apps: dict[str, list[Any]] = {}
        for _, _, instance in self.changes:
            apps.setdefault(instance["app"], []).append(instance)
        return apps

    def _applications(self, apps: dict[str, list[Any]], hashcode: str) -> dict[str, Any]:
        return {"applications": {
            "versions__delta": str(self.version), "apps__hashcode": hashcode,
            "application": [{"name": app, "instance": instances}
                            for app, instances in sorted(apps.items())]}}


def _now() -> int:
    return int(time.time() * 1000)


if __name__ == "__main__":
    serve_main(EurekaServer, 8761)
