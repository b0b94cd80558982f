"""What the proxy reads of a hessian2 request body, and the one part it may rewrite.

A request body is a sequence of hessian2 values: dubbo version, service path, service
version, method name, parameter types descriptor (JVM form: ``Ljava/lang/String;I[J``), one
value per parameter, then the attachments map. Routing needs the first four strings (read
eagerly: a few microseconds) and sometimes the attachments, which sit behind the arguments:
those are *skipped* (``Decoder.skip``, nothing built) only when a route asks for an
attachment or a filter rewrites them. Rewriting re-encodes the attachments map alone; the
arguments' bytes are copied as they came.
"""

from __future__ import annotations

from typing import Any

from mesh.codecs.hessian2 import Decoder, Encoder, HessianError, read_strings

from ._frame import HEADER

__all__ = ["Call", "count_parameters", "read_call"]

#: Dubbo's generic call (GenericService): the real method and its types are arguments
GENERIC = ("$invoke", "$invokeAsync")


class Call:
    """The routing fields of one hessian2 request; attachments read on first use."""

    __slots__ = ("raw", "dubbo_version", "path", "version", "method", "types", "_args_at",
                 "_attachments", "_attachments_at")

    def __init__(self, raw: bytes, dubbo_version: str, path: str, version: str, method: str,
                 types: str, args_at: int) -> None:
        self.raw = raw
        self.dubbo_version = dubbo_version
        self.path = path
        self.version = version
        self.method = method
        self.types = types
        self._args_at = args_at
        self._attachments: dict[str, Any] | None = None
        self._attachments_at = 0

    # Events compare by value (the same bytes cut into other reads give equal events): a Call
    # is what its frame says, and the attachments cache does not change that.
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Call):
            return NotImplemented
        return self.raw == other.raw

    def __hash__(self) -> int:
        return hash(self.raw)

    @property
    def attachments(self) -> dict[str, Any]:
        """The attachments map (empty when absent); HessianError if the body is bad."""
        if self._attachments is None:
            decoder = Decoder(self.raw, self._args_at)
            for _ in range(count_parameters(self.types)):
                decoder.skip()
            self._attachments_at = decoder.pos
            value = {} if decoder.at_end() else decoder.read_map()
            self._attachments = {str(k): v for k, v in value.items()}
        return self._attachments

    def real_method(self) -> str:
        """The invoked method; for a generic call, the method named in its first argument."""
        if self.method in GENERIC:
            try:
                name = Decoder(self.raw, self._args_at).read_string()
            except HessianError:
                return self.method
            if name:
                return name
        return self.method

    def with_attachments(self, changes: dict[str, str | None]) -> bytes:
        """The body with ``changes`` applied to the attachments (None removes a key)."""
        merged = dict(self.attachments)
        for key, value in changes.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        out = Encoder()
        out.write_map(merged)
        return self.raw[HEADER : self._attachments_at] + out.getvalue()


def read_call(raw: bytes) -> Call:
    """The routing fields of the request frame ``raw``; HessianError if they are not there."""
    fields, args_at = read_strings(raw, HEADER, 5)
    if fields[1] is None or fields[3] is None:
        raise HessianError("hessian2: the request's service path or method name is null")
    return Call(raw, fields[0] or "", fields[1], fields[2] or "", fields[3], fields[4] or "",
                args_at)


def count_parameters(descriptor: str) -> int:
    """How many parameters a JVM descriptor names (``Ljava/lang/String;[II`` is 3)."""
    count, i, n = 0, 0, len(descriptor)
    while i < n:
        char = descriptor[i]
        if char == "[":
            i += 1
            continue
        if char == "L":
            end = descriptor.find(";", i)
            if end < 0:
                raise HessianError(f"hessian2: bad parameter types descriptor {descriptor[:80]!r}")
            i = end
        elif char not in "ZBCSIJFDV":
            raise HessianError(f"hessian2: bad parameter types descriptor {descriptor[:80]!r}")
        count += 1
        i += 1
    return count
