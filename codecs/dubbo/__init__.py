"""Dubbo 2 (hessian2) codec plugin: ``protocol: dubbo``.

Frames are relayed whole with only their request id patched; routing reads the interface,
method, version and (on demand) the attachments without decoding the call's arguments.
See docs/dubbo.md.
"""

from __future__ import annotations

from ._codec import DubboCodec, DubboKeys
from ._connection import STATUS_CODES, ClientConnection, ServerConnection

__all__ = ["ClientConnection", "DubboCodec", "DubboKeys", "STATUS_CODES", "ServerConnection",
           "codec"]

#: the object registered in the ``mesh.codecs`` entry-point group
codec = DubboCodec()
