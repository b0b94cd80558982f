"""The ``attachments`` filter: set or remove request metadata on the way upstream.

Protocol-neutral tagging (tracing ids, canary tags, the caller's zone): on a Dubbo call it
rewrites the attachments map (the codec re-encodes that map alone, the arguments' bytes pass
untouched); on an HTTP request it sets or removes header fields. Other protocols are left as
they are. Routing still sees what the client sent: the filter changes what the upstream gets.

    filters:
      - name: attachments
        config:
          set: {x-mesh-zone: zone-a, x-canary: "true"}
          remove: [x-debug]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mesh.codec import Status
from mesh.stream import Exchange

__all__ = ["AttachmentsFilter"]


class AttachmentsFilter:
    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        config = config or {}
        unknown = set(config) - {"set", "remove"}
        if unknown:
            raise ValueError(f"attachments filter: unknown keys {sorted(unknown)}; use set and remove")
        set_: Mapping[str, Any] = config.get("set") or {}
        remove = config.get("remove") or []
        if not isinstance(set_, Mapping) or not isinstance(remove, list | tuple):
            raise ValueError("attachments filter: set is a mapping, remove a list of names")
        changes: dict[str, str | None] = {str(k): None for k in remove}
        changes.update({str(k): str(v) for k, v in set_.items()})
        self._changes = changes
        self._header_names = {name.lower().encode() for name in changes}
        self._headers = [(name.lower().encode(), value.encode())
                         for name, value in changes.items() if value is not None]

    def on_request(self, exchange: Exchange) -> Status | None:
        request = exchange.request
        ext = request.extensions
        if ext.get("call") is not None:  # a Dubbo call in hessian2
            pending = ext.get("set_attachments")
            ext["set_attachments"] = {**pending, **self._changes} if pending else self._changes
            return None
        fields = request.fields
        if fields and fields[0][0] == b":method":
            names = self._header_names
            fields[:] = [f for f in fields if f[0] not in names] + self._headers
        return None
