"""The stream layer: codec events grouped into request/response exchanges."""

from mesh.stream.exchange import Exchange, status_class

__all__ = ["Exchange", "status_class"]
