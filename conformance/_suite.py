"""The list of checks, ``check_codec`` that runs them all, and one function per check."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from mesh.codec import Codec, CodecConnection, ConnectionOptions, PoolMode, Role

from . import _fuzz, _limits, _match, _replies, _streams
from ._report import CheckResult, CheckSkipped, ConformanceError, Outcome, Report
from ._subject import CodecLike, Subject, VectorsLike, make_subject

__all__ = ["CHECKS", "Check", "check_codec", "run_check"]


def _shape(subject: Subject) -> str:
    """The object has what mesh.codec.Codec names, and its connections what CodecConnection names."""
    codec = subject.codec
    if not isinstance(codec, Codec):
        missing = [a for a in ("name", "pool_mode", "match", "connection", "request_keys")
                   if not hasattr(codec, a)]
        raise ConformanceError(f"{codec!r} is not a mesh.codec.Codec: missing {', '.join(missing)}")
    if not isinstance(codec.name, str) or not codec.name or not codec.name.isidentifier():
        raise ConformanceError(f"name {codec.name!r} must be a short identifier (used in config files)")
    if not isinstance(codec.pool_mode, PoolMode):
        raise ConformanceError(f"pool_mode {codec.pool_mode!r} is not a mesh.codec.PoolMode")
    for role in Role:
        conn = subject.connection(role, ConnectionOptions())
        if not isinstance(conn, CodecConnection):
            raise ConformanceError(f"connection({role}) gave {conn!r}, not a mesh.codec.CodecConnection")
        if conn.should_close is not False:
            raise ConformanceError(f"a new {role.value} connection says should_close={conn.should_close!r}")
    return f"{codec.name}: {codec.pool_mode.name}, both roles satisfy CodecConnection"


@dataclass(frozen=True, slots=True)
class Check:
    """One named check and the contract text it enforces."""

    name: str
    contract: str
    run: Callable[[Subject], str]


#: Every check, in the order ``check_codec`` runs them.
CHECKS: tuple[Check, ...] = (
    Check("codec.shape", "mesh.codec.Codec", _shape),
    Check("vectors.decode", "mesh.codec.CodecConnection.next_event", _streams.check_vectors),
    Check("match.pure", "mesh.codec.Codec.match", _match.check_match_pure),
    Check("match.prefixes", "mesh.codec.Codec.match", _match.check_match_prefixes),
    Check("match.foreign", "mesh.codec.Codec.match", _match.check_match_foreign),
    Check("decode.splits", "mesh.codec.CodecConnection.receive_data", _streams.check_splits),
    Check("encode.passthrough", "mesh.codec.CodecConnection.send", _streams.check_passthrough),
    Check("request_id.rewrite", "mesh.codec (module doc: the stream_id is the request id)",
          _streams.check_request_id),
    Check("heartbeat", "mesh.codec.CodecConnection.is_heartbeat", _replies.check_heartbeat),
    Check("local_reply", "mesh.codec.CodecConnection.local_reply", _replies.check_local_reply),
    Check("limits.header", "mesh.codec.ConnectionOptions", _limits.check_header_limit),
    Check("limits.frame", "mesh.codec.ConnectionOptions", _limits.check_frame_limit),
    Check("robustness.fuzz", "mesh.codec.CodecConnection", _fuzz.check_fuzz),
)
_BY_NAME = {c.name: c for c in CHECKS}


def _find(name: str) -> Check:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"no check named {name!r}; checks: {', '.join(_BY_NAME)}") from None


def _unexpected(exc: Exception) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return f"unexpected {type(exc).__name__}: {exc}{where}"


def _execute(check: Check, subject: Subject) -> str:
    """Run one check; every failure becomes a ConformanceError naming the check."""
    try:
        return check.run(subject)
    except CheckSkipped:
        raise
    except ConformanceError as exc:
        raise ConformanceError(f"{check.name}: {exc}", check.name, check.contract) from exc
    except Exception as exc:
        raise ConformanceError(f"{check.name}: {_unexpected(exc)}", check.name, check.contract) from exc


def _result(check: Check, subject: Subject) -> CheckResult:
    start = time.perf_counter()
    try:
        reason = _execute(check, subject)
    except CheckSkipped as exc:
        return CheckResult(check.name, Outcome.SKIPPED, str(exc), check.contract,
                           duration=time.perf_counter() - start)
    except ConformanceError as exc:
        reason = exc.reason.removeprefix(f"{check.name}: ")
        return CheckResult(check.name, Outcome.FAILED, reason, check.contract, str(exc),
                           time.perf_counter() - start)
    return CheckResult(check.name, Outcome.PASSED, reason, check.contract,
                       duration=time.perf_counter() - start)


def check_codec(codec_or_factory: CodecLike, vectors: VectorsLike = None, *, fuzz_examples: int = 200,
                seed: int = 0, only: Iterable[str] | None = None) -> Report:
    """Run every check (or the ``only`` ones) and report each outcome; never raises for a failure.

    ``codec_or_factory`` is a codec, a zero-argument factory, an entry-point
    name or ``module:attr``; ``vectors`` is a file, loaded vectors, or None
    for the ones the codec ships. Raises VectorError for an unreadable
    vectors file and PluginError for an unknown codec name.
    """
    subject = make_subject(codec_or_factory, vectors, seed=seed, fuzz_examples=fuzz_examples)
    checks = CHECKS if only is None else tuple(_find(n) for n in only)
    report = Report(subject.name)
    for check in checks:
        report.results.append(_result(check, subject))
    return report


def run_check(name: str, codec: CodecLike | Subject, vectors: VectorsLike = None, *, seed: int = 0,
              fuzz_examples: int = 200) -> str:
    """Run one check by name: its one-line reason on success.

    Raises ConformanceError (an AssertionError) on failure and CheckSkipped
    when the check does not apply.
    """
    check = _find(name)
    if not isinstance(codec, Subject):
        codec = make_subject(codec, vectors, seed=seed, fuzz_examples=fuzz_examples)
    return _execute(check, codec)
