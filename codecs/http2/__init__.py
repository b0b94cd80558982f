"""HTTP/2 codec on h2: h2c (prior knowledge and Upgrade), flow control end to end, gRPC.

``codec`` is the object the ``mesh.codecs`` entry point ``http2`` names (docs/http2.md).
"""

from __future__ import annotations

from ._codec import PREFACE, Http2Codec, match
from ._common import control_event
from ._conn import H2Connection
from ._grpc import GRPC_STATUS, HttpKeys, grpc_timeout, is_grpc
from ._headers import request_fields, response_fields
from ._lean import LeanConnection

__all__ = ["GRPC_STATUS", "PREFACE", "H2Connection", "Http2Codec", "LeanConnection", "HttpKeys", "codec",
           "control_event", "grpc_timeout", "is_grpc", "match", "request_fields",
           "response_fields"]

#: The codec registered as ``mesh.codecs:http2``.
codec = Http2Codec()
