"""Plugin discovery through entry points, done once at start-up.

Built-in codecs and filters are registered through the very same groups a
third-party distribution uses. The result is frozen into plain dicts: the
hot path never touches importlib.metadata.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from mesh.codec import Codec

__all__ = [
    "CODECS_GROUP",
    "DISCOVERY_GROUP",
    "FILTERS_GROUP",
    "Plugin",
    "PluginError",
    "Registry",
    "load_registry",
]

CODECS_GROUP = "mesh.codecs"
FILTERS_GROUP = "mesh.filters"
DISCOVERY_GROUP = "mesh.discovery"


class PluginError(Exception):
    """A plugin could not be loaded, or two plugins claim one name."""


@dataclass(frozen=True, slots=True)
class Plugin:
    """One loaded entry point: its name, object and the distribution providing it."""

    name: str
    obj: Any
    distribution: str
    value: str


@dataclass(frozen=True, slots=True)
class Registry:
    """Codecs and filter factories by name."""

    codecs: dict[str, Plugin]
    filters: dict[str, Plugin]
    #: endpoint sources (mesh.discovery): factories taking the source's settings
    discovery: dict[str, Plugin] = field(default_factory=dict)

    def codec(self, name: str) -> Codec:
        try:
            codec: Codec = self.codecs[name].obj
        except KeyError:
            known = ", ".join(sorted(self.codecs)) or "none"
            raise PluginError(f"no codec named {name!r}; installed codecs: {known}") from None
        return codec


def _distribution(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else "<unknown distribution>"


def _load_group(group: str, instantiate: bool) -> dict[str, Plugin]:
    found: dict[str, Plugin] = {}
    for ep in entry_points(group=group):
        dist = _distribution(ep)
        if ep.name in found:
            first = found[ep.name]
            if first.value == ep.value and first.distribution == dist:
                continue  # the same distribution seen twice on sys.path
            raise PluginError(
                f"{group}: two plugins are named {ep.name!r}: {first.value} from "
                f"{first.distribution} and {ep.value} from {dist}; uninstall one of them"
            )
        try:
            obj = ep.load()
        except Exception as exc:
            raise PluginError(f"{group}: cannot load {ep.name!r} ({ep.value}) from {dist}: {exc}") from exc
        if instantiate and isinstance(obj, type):
            obj = obj()
        found[ep.name] = Plugin(ep.name, obj, dist, ep.value)
    return found


def load_registry() -> Registry:
    """Read the entry-point groups once; raises PluginError on duplicates."""
    return Registry(_load_group(CODECS_GROUP, True), _load_group(FILTERS_GROUP, False),
                    _load_group(DISCOVERY_GROUP, False))
