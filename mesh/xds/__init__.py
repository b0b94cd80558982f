"""xDS: listeners, routes and clusters from an Envoy-style management server (docs/xds.md)."""

from __future__ import annotations

from .client import CDS, LDS, RDS, XdsConfigClient
from .translate import TranslationError

__all__ = ["CDS", "LDS", "RDS", "TranslationError", "XdsConfigClient"]
