"""Route tables over protocol-neutral request keys."""

from mesh.router.table import CompiledRoute, RouteTable

__all__ = ["CompiledRoute", "RouteTable"]
