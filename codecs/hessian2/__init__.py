"""Hessian 2.0 serialization with Java semantics, for the Dubbo 2 codec.

``Decoder`` reads values from a body (``read``), steps over them without building them
(``skip``, the proxy's path over call arguments) and reads the few typed fields Dubbo needs
(``read_string``, ``read_int``, ``read_map``). ``Encoder`` writes values in the forms Caucho's
Hessian2Output picks, so that what was decoded from a Java peer encodes back to the same
bytes. Java values Python cannot tell apart keep their identity in small wrapper types.
See docs/hessian2.md for the type mapping and the limits.
"""

from __future__ import annotations

from ._decoder import Decoder, decode
from ._encoder import Encoder, encode
from ._scalars import read_strings
from ._types import (
    HessianEncodeError,
    HessianError,
    JavaBinary,
    JavaEnum,
    JavaList,
    JavaLong,
    JavaMap,
    JavaObject,
)
from ._wire import DEFAULT_MAX_LENGTH

__all__ = [
    "DEFAULT_MAX_LENGTH",
    "Decoder",
    "Encoder",
    "HessianEncodeError",
    "HessianError",
    "JavaBinary",
    "JavaEnum",
    "JavaList",
    "JavaLong",
    "JavaMap",
    "JavaObject",
    "decode",
    "encode",
    "read_strings",
]
