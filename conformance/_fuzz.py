"""Robustness: a seeded, bounded hypothesis run over mutated vectors.

Whatever bytes a peer sends, ``receive_data`` / ``next_event`` may only
raise RemoteProtocolError (the proxy catches nothing else), must keep the
number of events bounded, and must not allocate far beyond the input (a
length field of 0xffffffff must not become a 4 GiB buffer).
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mesh.codec import CodecConnection, Role

from ._drive import feed
from ._match import FOREIGN_SAMPLES, SNIFF_LIMIT, answer
from ._report import CheckSkipped, ConformanceError
from ._show import show_bytes
from ._subject import Subject
from .vectors import Vector

if TYPE_CHECKING:
    import hypothesis

__all__ = ["MEMORY_BASE", "MEMORY_FACTOR", "check_fuzz"]

#: Peak traced allocation allowed for one input: this much ...
MEMORY_BASE = 1 << 20
#: ... plus this many times the input size.
MEMORY_FACTOR = 64
#: Positions per vector the deterministic sweep mutates (all of them in shorter vectors).
SWEEP_POSITIONS = 512
#: Values worth writing over a length or count field, and text protocols' delimiters.
_INTERESTING = [b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\x00\x00\x00\x00", b"\x80",
                b"99999999999999999999", b"-1", b"\r\n", b"\r\n\r\n", b"\x00", b" "]


@dataclass(frozen=True, slots=True)
class _Seed:
    """A corpus entry: bytes, and how to set up the connection that reads them."""

    label: str
    data: bytes
    vector: Vector | None = None
    role: Role = Role.SERVER


def _corpus(subject: Subject) -> list[_Seed]:
    seeds = [_Seed(f"vector {v.name!r}", v.data, v) for v in subject.vectors]
    seeds += [_Seed(f"{s.protocol} sample", s.data) for s in FOREIGN_SAMPLES]
    seeds.append(_Seed("nothing (client role)", b"", role=Role.CLIENT))
    return seeds


def _apply(data: bytes, op: tuple[Any, ...]) -> bytes:
    kind, where = op[0], op[1] % (len(data) + 1)
    if kind == "flip" and data:
        where %= len(data)
        return data[:where] + bytes([data[where] ^ (1 << op[2])]) + data[where + 1 :]
    if kind == "insert":
        inserted: bytes = op[2]
        return data[:where] + inserted + data[where:]
    if kind == "delete":
        return data[:where] + data[where + op[2] :]
    if kind == "truncate":
        return data[:where]
    if kind == "duplicate":
        return data[:where] + data[where : where + op[2]] + data[where:]
    return data


def _strategy(corpus: Sequence[_Seed]) -> Any:
    from hypothesis import strategies as st

    pos = st.integers(0, 1 << 16)
    op = st.one_of(
        st.tuples(st.just("flip"), pos, st.integers(0, 7)),
        st.tuples(st.just("insert"), pos, st.one_of(st.binary(min_size=1, max_size=16),
                                                   st.sampled_from(_INTERESTING))),
        st.tuples(st.just("delete"), pos, st.integers(1, 32)),
        st.tuples(st.just("truncate"), pos),
        st.tuples(st.just("duplicate"), pos, st.integers(1, 256)),
    )

    @st.composite
    def case(draw: Any) -> tuple[_Seed, bytes, list[int], bool]:
        seed = draw(st.sampled_from(corpus))
        data = draw(st.one_of(st.just(seed.data), st.binary(max_size=512)))
        for step in draw(st.lists(op, max_size=6)):
            data = _apply(data, step)
        cuts = sorted({c % (len(data) + 1) for c in draw(st.lists(pos, max_size=6))})
        return seed, data, cuts, draw(st.booleans())

    return case()


def _connection(subject: Subject, seed: _Seed) -> CodecConnection:
    if seed.vector is not None:
        return subject.decoder(seed.vector)
    return subject.connection(seed.role)


def _measured(fn: Callable[[], object]) -> int:
    """Peak bytes allocated (traced) while ``fn`` runs."""
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        if not tracing:
            tracemalloc.stop()


def _run_one(subject: Subject, seed: _Seed, data: bytes, cuts: list[int], eof: bool,
             stats: dict[str, int]) -> None:
    answer(subject, data[:SNIFF_LIMIT])
    conn = _connection(subject, seed)
    bounds = [0, *cuts, len(data)]
    chunks = [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a]
    role = seed.role if seed.vector is None else seed.vector.role
    label = f"fuzz input grown from {seed.label}, {role.value} role"
    outcome: list[Any] = []
    peak = _measured(lambda: outcome.append(feed(conn, chunks, eof=eof, label=label, allow_remote=True)))
    stats["examples"] += 1
    stats["refused"] += outcome[0].error is not None
    limit = MEMORY_BASE + MEMORY_FACTOR * len(data)
    if peak > limit:
        raise ConformanceError(f"decoding {len(data)} bytes allocated {peak} bytes at peak (bound "
                               f"{limit}) ({label})\n  input: {show_bytes(data)}")


def _positions(size: int) -> list[int]:
    if size <= SWEEP_POSITIONS:
        return list(range(size))
    step = size / SWEEP_POSITIONS
    return sorted({*range(64), *(int(i * step) for i in range(SWEEP_POSITIONS))})


def _sweep(subject: Subject) -> int:
    """Every vector with one byte changed, and cut short then closed, at each position.

    Deterministic and cheap, so the common slips (an unchecked tag, a
    length read past the end) are found whatever hypothesis draws.
    """
    runs = 0
    for vector in subject.vectors:
        data = vector.data
        for at in _positions(len(data)):
            for variant, eof in ((data[:at] + bytes([data[at] ^ 0x20]) + data[at + 1 :], False),
                                 (data[:at] + b"\xff" + data[at + 1 :], False), (data[:at], True)):
                conn = subject.decoder(vector)
                label = f"vector {vector.name!r} with byte {at} changed" if not eof else \
                    f"vector {vector.name!r} cut to {at} bytes, then closed"
                feed(conn, [variant], eof=eof, label=label, allow_remote=True)
                runs += 1
    return runs


def _settings(examples: int) -> hypothesis.settings:
    """Bounded, quiet and reproducible: no example database, no deadline, no health checks."""
    import hypothesis

    return hypothesis.settings(
        max_examples=examples, database=None, deadline=None, derandomize=False,
        suppress_health_check=list(hypothesis.HealthCheck), report_multiple_bugs=False,
        verbosity=hypothesis.Verbosity.quiet, print_blob=False)


def check_fuzz(subject: Subject) -> str:
    """Mutated and random input: only RemoteProtocolError escapes; events and memory bounded."""
    try:
        import hypothesis
    except ImportError:
        raise CheckSkipped("hypothesis is not installed (pip install 'rpcmesh[test]')") from None
    examples = subject.fuzz_examples
    if examples <= 0:
        raise CheckSkipped("fuzzing turned off (fuzz_examples=0)")
    swept = _sweep(subject)
    stats = {"examples": 0, "refused": 0}

    @hypothesis.seed(subject.seed)
    @_settings(examples)
    @hypothesis.given(_strategy(_corpus(subject)))
    def run(case: tuple[_Seed, bytes, list[int], bool]) -> None:
        _run_one(subject, *case, stats)

    try:
        run()
    except ConformanceError:
        raise
    except Exception as exc:  # hypothesis' own verdicts, e.g. a failure that did not reproduce
        raise ConformanceError(f"fuzzing stopped: {type(exc).__name__}: {exc}") from exc
    return (f"{swept} one-byte mutations and {stats['examples']} hypothesis inputs (seed {subject.seed}): "
            "only RemoteProtocolError raised, events and memory bounded")
