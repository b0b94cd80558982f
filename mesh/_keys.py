"""Routing keys of a request, computed on first use (re-exported by mesh.codec)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mesh.codec import Headers

__all__ = ["HeaderKeys", "RequestKeys"]


class RequestKeys:
    """Routing keys of one request, computed on first use.

    Codecs subclass this and override the ``_compute_*`` methods they know;
    the rest answer ``None``. ``get(name)`` looks up any header, attachment
    or property by name.
    """

    __slots__ = ("_headers", "_cache")

    def __init__(self, headers: Headers) -> None:
        self._headers = headers
        self._cache: dict[str, str | None] = {}

    def _lazy(self, key: str) -> str | None:
        cache = self._cache
        if key in cache:
            return cache[key]
        value: str | None = getattr(self, "_compute_" + key)()
        cache[key] = value
        return value

    @property
    def service(self) -> str | None:
        """The called service: RPC interface, gRPC service, or the host."""
        return self._lazy("service")

    @property
    def method(self) -> str | None:
        """RPC method name, or the HTTP method."""
        return self._lazy("method")

    @property
    def host(self) -> str | None:
        """HTTP host / authority without the port."""
        return self._lazy("host")

    @property
    def path(self) -> str | None:
        """Request path without the query string."""
        return self._lazy("path")

    @property
    def version(self) -> str | None:
        """Service version (Dubbo ``version``), if the protocol has one."""
        return self._lazy("version")

    @property
    def group(self) -> str | None:
        """Service group (Dubbo ``group``), if the protocol has one."""
        return self._lazy("group")

    def get(self, name: str) -> str | None:
        """Any header, attachment or property by (lower-case) name."""
        return None

    def _compute_service(self) -> str | None:
        return None

    def _compute_method(self) -> str | None:
        return None

    def _compute_host(self) -> str | None:
        return None

    def _compute_path(self) -> str | None:
        return None

    def _compute_version(self) -> str | None:
        return None

    def _compute_group(self) -> str | None:
        return None


class HeaderKeys(RequestKeys):
    """Keys of HTTP-like requests whose fields carry ``:method``/``:path``/``:authority``."""

    __slots__ = ()

    def get(self, name: str) -> str | None:
        wanted = name.lower().encode("latin-1")
        values = [v for n, v in self._headers.fields if n == wanted]
        if not values:
            return None
        return b",".join(values).decode("latin-1")

    def _compute_method(self) -> str | None:
        return self.get(":method")

    def _compute_host(self) -> str | None:
        host = self.get(":authority") or self.get("host")
        if host is None:
            return None
        if host.startswith("["):  # [::1]:8080
            return host[: host.find("]") + 1]
        return host.rpartition(":")[0] if ":" in host else host

    def _compute_path(self) -> str | None:
        path = self.get(":path")
        if path is None:
            return None
        cut = path.find("?")
        return path if cut < 0 else path[:cut]

    def _compute_service(self) -> str | None:
        return self.host
