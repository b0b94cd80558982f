"""One function per check, for a vendor's own tests.

Each takes the codec (object, factory, entry-point name or ``module:attr``)
and its vectors (a path, loaded vectors, or None for the ones it ships),
returns the one-line reason on success, raises :class:`ConformanceError`
(an AssertionError) on failure and :class:`CheckSkipped` when the check
does not apply.
"""

from __future__ import annotations

from ._subject import CodecLike, VectorsLike
from ._suite import run_check

__all__ = [
    "check_frame_limit",
    "check_fuzz",
    "check_header_limit",
    "check_heartbeat",
    "check_local_reply",
    "check_match_foreign",
    "check_match_prefixes",
    "check_match_pure",
    "check_passthrough",
    "check_request_id",
    "check_shape",
    "check_splits",
    "check_vectors",
]


def check_shape(codec: CodecLike, vectors: VectorsLike = None) -> str:
    """The object satisfies mesh.codec.Codec and its connections CodecConnection."""
    return run_check("codec.shape", codec, vectors)


def check_vectors(codec: CodecLike, vectors: VectorsLike = None) -> str:
    """Every vector decodes whole to the events, keys and ids it records."""
    return run_check("vectors.decode", codec, vectors)


def check_match_pure(codec: CodecLike, vectors: VectorsLike = None) -> str:
    """``match`` answers the same twice and in any order."""
    return run_check("match.pure", codec, vectors)


def check_match_prefixes(codec: CodecLike, vectors: VectorsLike = None) -> str:
    """Prefixes of valid requests: never FAIL, MATCH stays MATCH, MATCH by the end."""
    return run_check("match.prefixes", codec, vectors)


def check_match_foreign(codec: CodecLike, vectors: VectorsLike = None) -> str:
    """Other protocols' openings: FAIL, or AGAIN only within 64 bytes."""
    return run_check("match.foreign", codec, vectors)


def check_splits(codec: CodecLike, vectors: VectorsLike = None, *, seed: int = 0) -> str:
    """Whole, byte-at-a-time and split input decode to the same events."""
    return run_check("decode.splits", codec, vectors, seed=seed)


def check_passthrough(codec: CodecLike, vectors: VectorsLike = None) -> str:
    """Decode, send unchanged, decode again: the same events (bytes if exact)."""
    return run_check("encode.passthrough", codec, vectors)


def check_request_id(codec: CodecLike, vectors: VectorsLike = None) -> str:
    """MULTIPLEX: a rewritten stream_id reaches the wire, nothing else changes."""
    return run_check("request_id.rewrite", codec, vectors)


def check_heartbeat(codec: CodecLike, vectors: VectorsLike = None) -> str:
    """Heartbeat vectors are answered; nothing else is taken for a heartbeat."""
    return run_check("heartbeat", codec, vectors)


def check_local_reply(codec: CodecLike, vectors: VectorsLike = None) -> str:
    """Every Status encodes on the server role and decodes on the client role."""
    return run_check("local_reply", codec, vectors)


def check_header_limit(codec: CodecLike, vectors: VectorsLike = None) -> str:
    """A head over max_header_size is refused before it is buffered."""
    return run_check("limits.header", codec, vectors)


def check_frame_limit(codec: CodecLike, vectors: VectorsLike = None) -> str:
    """A body over max_frame_size is refused early or streamed."""
    return run_check("limits.frame", codec, vectors)


def check_fuzz(
    codec: CodecLike, vectors: VectorsLike = None, *, seed: int = 0, fuzz_examples: int = 200
) -> str:
    """Mutated input raises only RemoteProtocolError; events and memory bounded."""
    return run_check("robustness.fuzz", codec, vectors, seed=seed, fuzz_examples=fuzz_examples)
