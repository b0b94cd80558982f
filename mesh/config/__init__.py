"""rpcmesh configuration: a typed, frozen model and its loader.

A config is one YAML (or JSON) file of listeners, clusters, admin, logging and
sample upstreams; docs/config.md is the reference. :func:`load` and
:func:`loads` read one into a :class:`Config`, a tree of frozen dataclasses
that a running proxy swaps whole; :func:`default_config` is the embedded
default that ``mesh run`` uses without a file; :func:`dump` turns a config
back into plain data for ``/config_dump``.

Every problem is a :class:`ConfigError` that names the file, the place in it,
the reason and the fix, in one line.
"""

from __future__ import annotations

from mesh.config._dump import dump
from mesh.config._errors import ConfigError
from mesh.config._load import default_config, load, loads
from mesh.config._model import (
    Admin,
    Cluster,
    Config,
    Discovery,
    Endpoint,
    FilterConfig,
    HeaderMatch,
    Listener,
    Logging,
    PassiveHealth,
    Route,
    RouteMatch,
    SampleUpstream,
    StringMatch,
    WeightedCluster,
    Xds,
)
from mesh.config._parse import parse
from mesh.config._values import parse_address, parse_duration

__all__ = [
    "Admin",
    "Cluster",
    "Config",
    "ConfigError",
    "Discovery",
    "Endpoint",
    "FilterConfig",
    "HeaderMatch",
    "Listener",
    "Logging",
    "PassiveHealth",
    "Route",
    "RouteMatch",
    "SampleUpstream",
    "StringMatch",
    "WeightedCluster",
    "Xds",
    "default_config",
    "dump",
    "load",
    "loads",
    "parse",
    "parse_address",
    "parse_duration",
]
