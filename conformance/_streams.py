"""Checks on decoding and re-encoding recorded traffic.

The proxy's whole job is: decode what one side wrote, maybe change the
request id, encode it for the other side. These checks do exactly that with
the vectors and compare the events each step gives.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator, Sequence

from mesh.codec import Event, Headers, PoolMode

from ._drive import encode, feed
from ._report import CheckSkipped, ConformanceError
from ._show import show_bytes, show_events
from ._subject import Subject
from .vectors import Summary, Vector, expand, merge_data, summarize

__all__ = ["ID_SHIFT", "check_passthrough", "check_request_id", "check_splits", "check_vectors",
           "stream_ids"]

#: Added to every request id by the rewrite check: even, so HTTP/2's odd
#: client stream ids stay odd, and big enough to change a second byte.
ID_SHIFT = 0x10000
#: Inputs up to this size are also fed one byte at a time and split at every offset.
EXHAUSTIVE_LIMIT = 4096
#: Random multi-way splits per vector.
RANDOM_SPLITS = 24


def _require_vectors(subject: Subject) -> list[Vector]:
    if not subject.vectors:
        raise CheckSkipped("no vectors: pass vectors=PATH, or ship vectors/ next to the codec "
                           "(docs/plugins.md)")
    return subject.vectors


def stream_ids(events: Sequence[Event]) -> list[int]:
    """Stream ids in the order their first event appears."""
    seen: list[int] = []
    for event in events:
        if event.stream_id not in seen:
            seen.append(event.stream_id)
    return seen


def _field_order_free(summaries: list[Summary]) -> list[Summary]:
    """Summaries with plain fields sorted by name, pseudo fields and same-name order kept.

    An encoder may reorder fields of different names (RFC 9110 5.3: their
    order carries no meaning); the order of repeated names does.
    """
    out = []
    for summary in summaries:
        if "fields" in summary:
            fields = summary["fields"]
            pseudo = [f for f in fields if f[0].startswith(b":")]
            plain = sorted((f for f in fields if not f[0].startswith(b":")), key=lambda f: f[0])
            summary = {**summary, "fields": pseudo + plain}
        out.append(summary)
    return out


def _show_summaries(summaries: Sequence[Summary]) -> str:
    return show_events([expand(s) for s in summaries])


def _compare(want: list[Summary], got: list[Summary], what: str, any_order: bool = False) -> None:
    if any_order and _field_order_free(want) == _field_order_free(got):
        return
    if want != got:
        raise ConformanceError(f"{what}\n    expected:\n{_show_summaries(want)}\n"
                               f"    got:\n{_show_summaries(got)}")


def _key(subject: Subject, headers: Headers, name: str) -> str | None:
    try:
        keys = subject.codec.request_keys(headers)
        if name in ("service", "method", "host", "path", "version", "group"):
            value: str | None = getattr(keys, name)
            return value
        return keys.get(name)
    except Exception as exc:
        raise ConformanceError(f"request_keys(...).{name} raised {type(exc).__name__}: {exc}") from exc


def _check_expect(subject: Subject, vector: Vector, events: list[Event]) -> None:
    expect = vector.expect
    if expect.events is not None:
        _compare(expect.events, summarize(events), f"vector {vector.name!r} decodes to other events")
    if expect.stream_ids is not None and stream_ids(events) != expect.stream_ids:
        raise ConformanceError(f"vector {vector.name!r}: stream ids {stream_ids(events)}, "
                               f"expected {expect.stream_ids}\n{show_events(events)}")
    if expect.keys:
        headers = next((e for e in events if isinstance(e, Headers)), None)
        if headers is None:
            raise ConformanceError(f"vector {vector.name!r} names routing keys but decodes to no Headers")
        for name, want in expect.keys.items():
            got = _key(subject, headers, name)
            if got != want:
                raise ConformanceError(f"vector {vector.name!r}: routing key {name} is {got!r}, "
                                       f"expected {want!r}\n{show_events([headers])}")


def check_vectors(subject: Subject) -> str:
    """Each vector fed whole decodes without error to what its ``expect`` says.

    No vectors at all is a failure, not a skip: without recorded traffic
    most checks cannot run, and a codec must not pass by having none.
    """
    vectors = subject.vectors
    if not vectors:
        raise ConformanceError("no vectors: ship recorded traffic in a vectors/ folder next to the "
                               "codec, or pass vectors=PATH / --vectors PATH (docs/plugins.md)")
    for vector in vectors:
        events = subject.decoded(vector)
        if not events:
            raise ConformanceError(f"vector {vector.name!r} decodes to no events\n"
                                   f"  input: {show_bytes(vector.data)}")
        _check_expect(subject, vector, events)
    expected = sum(1 for v in vectors if v.expect.events is not None or v.expect.keys)
    return f"{len(vectors)} vectors decode ({expected} checked against recorded events/keys)"


# -- split points ----------------------------------------------------------------


def _cut(data: bytes, offsets: Sequence[int]) -> list[bytes]:
    bounds = [0, *offsets, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


def _splittings(vector: Vector, seed: int) -> Iterator[tuple[str, list[int]]]:
    data = vector.data
    size = len(data)
    if len(vector.frames) > 1:
        offsets, at = [], 0
        for frame in vector.frames[:-1]:
            at += len(frame)
            offsets.append(at)
        yield f"as recorded ({len(vector.frames)} reads)", offsets
    if size <= 1:
        return
    if size <= EXHAUSTIVE_LIMIT:
        yield "one byte at a time", list(range(1, size))
        for at in range(1, size):
            yield f"split in two at offset {at}", [at]
    rng = random.Random(f"{seed}:{vector.name}")
    for _ in range(RANDOM_SPLITS):
        count = rng.randint(1, min(8, size - 1))
        yield f"random split (seed {seed})", sorted(rng.sample(range(1, size), count))


def check_splits(subject: Subject) -> str:
    """Whole, one byte at a time, at every offset and at random offsets: the same events."""
    vectors = _require_vectors(subject)
    runs = 0
    for vector in vectors:
        reference = merge_data(subject.decoded(vector))
        for how, offsets in _splittings(vector, subject.seed):
            label = f"vector {vector.name!r}, {how}"
            fed = feed(subject.decoder(vector), _cut(vector.data, offsets), eof=vector.eof, label=label)
            runs += 1
            if merge_data(fed.events) != reference:
                shown = offsets if len(offsets) <= 12 else [*offsets[:12], "..."]
                got = merge_data(fed.events)
                raise ConformanceError(
                    f"{label}: different events than the input fed whole\n"
                    f"  split at offsets {shown}\n  input: {show_bytes(vector.data, at=offsets[0])}\n"
                    f"    whole:\n{show_events(reference)}\n    split:\n{show_events(got)}")
    return f"{runs} ways of splitting {len(vectors)} vectors give the events of the whole input"


# -- re-encoding -------------------------------------------------------------------


def _first_difference(a: bytes, b: bytes) -> int:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return min(len(a), len(b))


def _reencode(subject: Subject, vector: Vector, events: list[Event], what: str) -> tuple[bytes, list[Event]]:
    """Encode events in the other role, then decode the bytes as the vector was decoded."""
    encoder = subject.encoder(vector)
    out = encode(encoder, copy.deepcopy(events), f"{what} of vector {vector.name!r}")
    fed = feed(subject.decoder(vector), [out], eof=vector.eof or encoder.should_close,
               label=f"decoding the {what} of vector {vector.name!r}")
    return out, fed.events


def check_passthrough(subject: Subject) -> str:
    """Decode, send the events unchanged, decode again: the same events (and bytes if exact)."""
    vectors = _require_vectors(subject)
    exact = 0
    for vector in vectors:
        events = subject.decoded(vector)
        out, again = _reencode(subject, vector, events, "pass-through")
        if vector.exact:
            exact += 1
            if out != vector.data:
                at = _first_difference(out, vector.data)
                raise ConformanceError(
                    f"vector {vector.name!r} is exact, but re-encoding changed byte {at}\n"
                    f"  recorded: {show_bytes(vector.data, at=at)}\n  re-encoded: {show_bytes(out, at=at)}")
        _compare(summarize(events), summarize(again),
                 f"vector {vector.name!r}: the re-encoded bytes decode to other events\n"
                 f"  re-encoded: {show_bytes(out)}", any_order=True)
    return f"{len(vectors)} vectors survive decode -> send -> decode ({exact} byte-exact)"


def _with_ids(events: list[Event], mapping: dict[int, int]) -> list[Event]:
    moved = copy.deepcopy(events)
    for event in moved:
        event.stream_id = mapping.get(event.stream_id, event.stream_id)
    return moved


def check_request_id(subject: Subject) -> str:
    """MULTIPLEX: a new stream_id on a request is written to the wire, and only it changes."""
    mode = getattr(subject.codec, "pool_mode", None)
    if mode is not PoolMode.MULTIPLEX:
        name = mode.name if isinstance(mode, PoolMode) else repr(mode)
        raise CheckSkipped(f"{name} codecs put no request id on the wire: replies are matched "
                           "by order, so the proxy never rewrites ids")
    if getattr(subject.codec, "numbers_streams", False):
        raise CheckSkipped("the client role numbers its streams itself (HTTP/2: 1, 3, 5... in "
                           "the order sent) and maps the proxy's ids to them; no id is rewritten "
                           "in the bytes")
    requests = [v for v in _require_vectors(subject) if v.direction == "request"]
    if not requests:
        raise CheckSkipped("no request vectors")
    for vector in requests:
        _rewrite(subject, vector)
    return f"{len(requests)} requests carry a rewritten id, and only it changes"


def _rewrite(subject: Subject, vector: Vector) -> None:
    """New ids reach the wire and decode back; putting the old ids back restores the bytes."""
    events = subject.decoded(vector)
    mapping = {sid: sid + ID_SHIFT for sid in stream_ids(events)}
    original, _ = _reencode(subject, vector, events, "pass-through")
    moved = _with_ids(events, mapping)
    out, decoded = _reencode(subject, vector, moved, "id-rewritten encoding")
    _compare(summarize(moved), summarize(decoded),
             f"vector {vector.name!r}: ids {mapping} were not carried by the bytes\n"
             f"  encoded: {show_bytes(out)}", any_order=True)
    back, _ = _reencode(subject, vector, _with_ids(decoded, {v: k for k, v in mapping.items()}),
                        "encoding with the ids put back")
    if back != original:
        at = _first_difference(back, original)
        raise ConformanceError(
            f"vector {vector.name!r}: rewriting the id and back changed other bytes (byte {at})\n"
            f"  before: {show_bytes(original, at=at)}\n  after:  {show_bytes(back, at=at)}")
