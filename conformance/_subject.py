"""The codec under test, its vectors, and connections set up for a vector.

A response can only be decoded by a client that sent the request (HTTP
cannot tell a HEAD response without its request; PIPELINE codecs number
replies by the requests they sent), and only encoded by a server that
received it. ``decoder`` and ``encoder`` set that up from the request vector
a response names, so every check handles requests and responses alike.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mesh.codec import Codec, CodecConnection, ConnectionOptions, Event, Headers, Role

from . import vectors as _vectors
from ._drive import OPPOSITE, encode, feed
from ._report import ConformanceError
from .vectors import Vector

__all__ = ["CodecLike", "Subject", "VectorsLike", "make_subject", "resolve_codec"]

#: A codec object, a zero-argument factory (or class) returning one, an
#: entry-point name (``http1``) or ``module:attribute``.
CodecLike = Any
#: ``None`` (the vectors the codec ships), a file path, or vectors already loaded.
VectorsLike = str | Path | Sequence[Vector] | None


def resolve_codec(codec: CodecLike) -> Codec:
    """The codec object a name, ``module:attr``, factory or object stands for."""
    if isinstance(codec, str):
        if ":" in codec:
            module, _, attr = codec.partition(":")
            codec = getattr(importlib.import_module(module), attr)
        else:
            from mesh.registry import load_registry

            codec = load_registry().codec(codec)
    if isinstance(codec, type) or (callable(codec) and not hasattr(codec, "match")):
        codec = codec()
    resolved: Codec = codec
    return resolved


def _load_vectors(codec: Codec, vectors: VectorsLike) -> list[Vector]:
    if vectors is None:
        return _vectors.for_codec(codec)
    if isinstance(vectors, str | Path):
        return _vectors.load(vectors)
    found = list(vectors)
    _vectors.check_names(found)
    return found


@dataclass
class Subject:
    """One codec and its vectors, with whole-input decodes cached."""

    codec: Codec
    vectors: list[Vector]
    seed: int = 0
    fuzz_examples: int = 200
    _decoded: dict[str, list[Event]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(getattr(self.codec, "name", type(self.codec).__name__))

    def vector(self, name: str) -> Vector:
        for vector in self.vectors:
            if vector.name == name:
                return vector
        raise KeyError(name)

    @property
    def openers(self) -> list[Vector]:
        """Vectors a client opens a connection with: what ``match`` gets to see."""
        return [v for v in self.vectors if v.direction == "request" and v.role is Role.SERVER]

    def connection(self, role: Role, options: ConnectionOptions | None = None) -> CodecConnection:
        try:
            return self.codec.connection(role, options or ConnectionOptions())
        except Exception as exc:
            raise ConformanceError(f"connection({role}, ...) raised {type(exc).__name__}: {exc}") from exc

    def decoded(self, vector: Vector) -> list[Event]:
        """The events of the vector fed whole (a fresh copy: callers may change them)."""
        if vector.name not in self._decoded:
            conn = self.decoder(vector)
            fed = feed(conn, [vector.data], eof=vector.eof, label=f"vector {vector.name!r} fed whole")
            self._decoded[vector.name] = fed.events
        return copy.deepcopy(self._decoded[vector.name])

    def decoder(self, vector: Vector, options: ConnectionOptions | None = None) -> CodecConnection:
        """A connection in the vector's role, which has sent the request it answers."""
        conn = self.connection(vector.role, options)
        if vector.request is not None:
            request = self.vector(vector.request)
            encode(conn, self.decoded(request),
                   f"sending request {request.name!r} through the {vector.role.value} role "
                   f"so that it expects response {vector.name!r}")
        return conn

    def encoder(self, vector: Vector, options: ConnectionOptions | None = None) -> CodecConnection:
        """A connection in the other role, which has received the request the vector answers."""
        conn = self.connection(OPPOSITE[vector.role], options)
        if vector.request is not None:
            request = self.vector(vector.request)
            feed(conn, [request.data], eof=False,
                 label=f"request {request.name!r} fed so that {vector.name!r} can be sent")
        return conn

    def first_headers(self, vector: Vector) -> Headers | None:
        return next((e for e in self.decoded(vector) if isinstance(e, Headers)), None)


def make_subject(codec: CodecLike, vectors: VectorsLike = None, *, seed: int = 0,
                 fuzz_examples: int = 200) -> Subject:
    """Resolve the codec and load its vectors."""
    resolved = resolve_codec(codec)
    return Subject(resolved, _load_vectors(resolved, vectors), seed, fuzz_examples)

