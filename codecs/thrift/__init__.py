"""Thrift codec: framed, buffered and THeader transports; binary (strict and old) and compact.

``codec`` is the object the ``mesh.codecs`` entry point ``thrift`` names. Messages are relayed
as raw bytes; only the seqid is rewritten (docs/thrift.md).
"""

from __future__ import annotations

from ._codec import ThriftCodec, ThriftKeys
from ._conn import APP_EXCEPTION_TYPES, ClientConnection, ServerConnection
from ._frames import BUFFERED, FRAMED, HEADER, Message
from ._match import match
from ._skip import skip_struct

__all__ = ["APP_EXCEPTION_TYPES", "BUFFERED", "FRAMED", "HEADER", "ClientConnection", "Message",
           "ServerConnection", "ThriftCodec", "ThriftKeys", "codec", "match", "skip_struct"]

#: The codec registered as ``mesh.codecs:thrift``.
codec = ThriftCodec()
