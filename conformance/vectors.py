"""Recorded traffic for the conformance suite: the on-disk format, ``load`` and ``dump``.

A vectors file holds records of real traffic: the bytes one peer wrote
(``frames``, as the reads delivered them) and what the codec should make of
them (``expect``). msgpack carries binary frames as they are; the JSON twin
carries every byte string as a latin-1 string (``"\\u00da\\u00bb"`` for
0xda 0xbb) so text protocols stay readable, or as ``{"hex": "dabb"}``.
The format is documented in docs/plugins.md.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import msgpack  # type: ignore[import-untyped]

from mesh.codec import Data, Event, Headers, Reset, Role, Trailers

__all__ = [
    "FORMAT",
    "Expect",
    "Vector",
    "VectorError",
    "dump",
    "expand",
    "for_codec",
    "load",
    "merge_data",
    "summarize",
]

FORMAT = "rpcmesh-vectors"
VERSION = 1
Direction = Literal["request", "response"]
#: One event as recorded in ``expect.events``: a dict with ``type`` and ``stream_id``.
Summary = dict[str, Any]

_RECORD_KEYS = {"name", "direction", "role", "frames", "expect", "exact", "heartbeat",
                "request", "eof", "note"}
_EXPECT_KEYS = {"events", "keys", "stream_ids"}


class VectorError(ValueError):
    """A vectors file is missing, unreadable or not in the documented format."""


@dataclass(frozen=True, slots=True)
class Expect:
    """What decoding a vector must give; every part is optional."""

    #: Event summaries (see :func:`summarize`), adjacent Data merged.
    events: list[Summary] | None = None
    #: Routing keys of the request: ``service``, ``method``, ``host``, ``path``,
    #: ``version``, ``group``, or any other name looked up with ``RequestKeys.get``.
    keys: dict[str, str | None] | None = None
    #: The stream ids of the messages, in the order they start.
    stream_ids: list[int] | None = None


@dataclass(frozen=True, slots=True)
class Vector:
    """One recorded message (or message sequence) on a fresh connection."""

    name: str
    direction: Direction
    frames: tuple[bytes, ...]
    #: The role of the connection that decodes these bytes: SERVER for requests
    #: and CLIENT for responses unless said otherwise (a heartbeat the server sends).
    role: Role = Role.SERVER
    expect: Expect = field(default_factory=Expect)
    #: Re-encoding the decoded events must give these very bytes.
    exact: bool = False
    #: A keep-alive probe: ``is_heartbeat`` must say so and the reply must encode.
    heartbeat: bool = False
    #: For a response: the name of the request vector it answers.
    request: str | None = None
    #: The peer closed the connection after the frames.
    eof: bool = False
    note: str = ""

    @property
    def data(self) -> bytes:
        """All frames joined."""
        return b"".join(self.frames)


def merge_data(events: Iterable[Event]) -> list[Event]:
    """The events with adjacent Data of one stream merged into one.

    How a body is cut into Data events depends on how the bytes arrived, so
    comparisons are made after merging.
    """
    out: list[Event] = []
    for event in events:
        last = out[-1] if out else None
        if isinstance(event, Data) and isinstance(last, Data) and last.stream_id == event.stream_id:
            out[-1] = Data(last.stream_id, bytes(last.payload) + bytes(event.payload),
                           event.end_stream, {**last.extensions, **event.extensions})
        else:
            out.append(event)
    return out


def _summary(event: Event) -> Summary:
    if isinstance(event, Headers):
        return {"type": "headers", "stream_id": event.stream_id,
                "fields": [(bytes(n), bytes(v)) for n, v in event.fields],
                "end_stream": event.end_stream}
    if isinstance(event, Data):
        return {"type": "data", "stream_id": event.stream_id, "payload": bytes(event.payload),
                "end_stream": event.end_stream}
    if isinstance(event, Trailers):
        return {"type": "trailers", "stream_id": event.stream_id,
                "fields": [(bytes(n), bytes(v)) for n, v in event.fields]}
    if isinstance(event, Reset):
        return {"type": "reset", "stream_id": event.stream_id, "error_code": event.error_code}
    raise TypeError(f"not an event: {event!r}")


def expand(summary: Summary) -> Event:
    """The event a summary describes (for showing it, and for building test input)."""
    kind, sid = summary["type"], summary["stream_id"]
    if kind == "headers":
        return Headers(sid, list(summary["fields"]), summary.get("end_stream", False))
    if kind == "data":
        return Data(sid, summary["payload"], summary.get("end_stream", False))
    if kind == "trailers":
        return Trailers(sid, list(summary["fields"]))
    return Reset(sid, summary.get("error_code", 0))


def summarize(events: Iterable[Event]) -> list[Summary]:
    """Event summaries as ``expect.events`` records them (extensions left out)."""
    return [_summary(e) for e in merge_data(events)]


# -- reading -------------------------------------------------------------------


def _bytes(value: Any, where: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        try:
            return value.encode("latin-1")
        except UnicodeEncodeError:
            raise VectorError(f"{where}: byte strings in JSON are latin-1 (\\u0000-\\u00ff); "
                              f'use {{"hex": ...}} for other bytes') from None
    if isinstance(value, dict) and set(value) == {"hex"}:
        try:
            return bytes.fromhex(value["hex"])
        except (TypeError, ValueError) as exc:
            raise VectorError(f"{where}: bad hex: {exc}") from None
    raise VectorError(f"{where}: expected bytes, got {type(value).__name__}")


def _fields(value: Any, where: str) -> list[tuple[bytes, bytes]]:
    if not isinstance(value, list):
        raise VectorError(f"{where}: fields are a list of [name, value] pairs")
    pairs = []
    for i, pair in enumerate(value):
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise VectorError(f"{where}[{i}]: a field is a [name, value] pair")
        pairs.append((_bytes(pair[0], f"{where}[{i}]"), _bytes(pair[1], f"{where}[{i}]")))
    return pairs


def _event_summary(raw: Any, where: str) -> Summary:
    if not isinstance(raw, dict) or raw.get("type") not in ("headers", "data", "trailers", "reset"):
        raise VectorError(f"{where}: an event is a map with type headers|data|trailers|reset")
    out: Summary = {"type": raw["type"], "stream_id": int(raw.get("stream_id", 0))}
    if "fields" in raw:
        out["fields"] = _fields(raw["fields"], f"{where}.fields")
    if "payload" in raw:
        out["payload"] = _bytes(raw["payload"], f"{where}.payload")
    if raw["type"] in ("headers", "data"):
        out["end_stream"] = bool(raw.get("end_stream", False))
    if raw["type"] == "reset":
        out["error_code"] = int(raw.get("error_code", 0))
    return out


def _expect(raw: Any, where: str) -> Expect:
    if raw is None:
        return Expect()
    if not isinstance(raw, dict) or not set(raw) <= _EXPECT_KEYS:
        raise VectorError(f"{where}: expect is a map of {sorted(_EXPECT_KEYS)}")
    events = raw.get("events")
    keys = raw.get("keys")
    ids = raw.get("stream_ids")
    if keys is not None and not isinstance(keys, dict):
        raise VectorError(f"{where}.keys: a map of key name to string or null")
    return Expect(
        events=None if events is None else [
            _event_summary(e, f"{where}.events[{i}]") for i, e in enumerate(events)],
        keys=None if keys is None else {str(k): None if v is None else str(v) for k, v in keys.items()},
        stream_ids=None if ids is None else [int(i) for i in ids],
    )


def _identity(raw: dict[str, Any], where: str) -> tuple[str, Direction, Role]:
    name, direction = raw.get("name"), raw.get("direction")
    if not isinstance(name, str) or not name:
        raise VectorError(f"{where}: every vector needs a name")
    if direction not in ("request", "response"):
        raise VectorError(f"{where} ({name}): direction is 'request' or 'response', not {direction!r}")
    role = raw.get("role", "server" if direction == "request" else "client")
    if role not in ("server", "client"):
        raise VectorError(f"{where} ({name}): role is 'server' or 'client', not {role!r}")
    return name, direction, Role(role)


def _record(raw: Any, where: str) -> Vector:
    if not isinstance(raw, dict):
        raise VectorError(f"{where}: a vector is a map")
    unknown = set(raw) - _RECORD_KEYS
    if unknown:
        raise VectorError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(_RECORD_KEYS)}")
    name, direction, role = _identity(raw, where)
    where = f"{where} ({name})"
    frames = raw.get("frames")
    if not isinstance(frames, list) or not frames:
        raise VectorError(f"{where}: frames is a non-empty list of byte strings")
    return Vector(
        name=name, direction=direction, role=role,
        frames=tuple(_bytes(f, f"{where}.frames[{i}]") for i, f in enumerate(frames)),
        expect=_expect(raw.get("expect"), f"{where}.expect"),
        exact=bool(raw.get("exact", False)), heartbeat=bool(raw.get("heartbeat", False)),
        request=raw.get("request"), eof=bool(raw.get("eof", False)), note=str(raw.get("note", "")),
    )


def _records(doc: Any, where: str) -> list[Vector]:
    if isinstance(doc, dict):
        if doc.get("format") != FORMAT or doc.get("version") != VERSION:
            raise VectorError(f"{where}: not a {FORMAT} version {VERSION} file")
        doc = doc.get("vectors")
    if not isinstance(doc, list):
        raise VectorError(f"{where}: expected a list of vectors")
    vectors = [_record(raw, f"{where}: vector {i}") for i, raw in enumerate(doc)]
    check_names(vectors, where)
    return vectors


def check_names(vectors: Sequence[Vector], where: str = "vectors") -> None:
    """Names are unique and every ``request`` names a request vector before it."""
    seen: dict[str, Vector] = {}
    for vector in vectors:
        if vector.name in seen:
            raise VectorError(f"{where}: two vectors are named {vector.name!r}")
        if vector.request is not None:
            target = seen.get(vector.request)
            if target is None or target.direction != "request":
                raise VectorError(f"{where}: vector {vector.name!r} answers {vector.request!r}, "
                                  "which is not a request vector earlier in the file")
        seen[vector.name] = vector


def load(path: str | Path) -> list[Vector]:
    """Read a ``.msgpack`` or ``.json`` vectors file. Raises VectorError."""
    source = Path(path)
    try:
        raw = source.read_bytes()
    except OSError as exc:
        raise VectorError(f"cannot read vectors {source}: {exc.strerror or exc}") from None
    try:
        if source.suffix.lower() == ".json":
            doc = json.loads(raw)
        else:
            doc = msgpack.unpackb(raw, raw=False, strict_map_key=False)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise VectorError(f"{source}: not valid {source.suffix.lstrip('.') or 'msgpack'}: {exc}") from None
    return _records(doc, str(source))


# -- writing -------------------------------------------------------------------


def _plain_expect(expect: Expect) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    if expect.events is not None:
        out["events"] = [{k: [list(f) for f in v] if k == "fields" else v for k, v in e.items()}
                         for e in expect.events]
    if expect.keys is not None:
        out["keys"] = dict(expect.keys)
    if expect.stream_ids is not None:
        out["stream_ids"] = list(expect.stream_ids)
    return out or None


def _plain(vector: Vector) -> dict[str, Any]:
    out: dict[str, Any] = {"name": vector.name, "direction": vector.direction}
    default_role = Role.SERVER if vector.direction == "request" else Role.CLIENT
    if vector.role is not default_role:
        out["role"] = vector.role.value
    if vector.request is not None:
        out["request"] = vector.request
    out["frames"] = list(vector.frames)
    for key in ("exact", "heartbeat", "eof"):
        if getattr(vector, key):
            out[key] = True
    if vector.note:
        out["note"] = vector.note
    expect = _plain_expect(vector.expect)
    if expect is not None:
        out["expect"] = expect
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


_STRING = r'"(?:[^"\\]|\\.)*"'
_PAIR = re.compile(rf"\[\s*({_STRING}),\s*({_STRING})\s*\]")
_NUMBERS = re.compile(r"\[\s*(-?\d+(?:,\s*-?\d+)*)\s*\]")


def _compact(text: str) -> str:
    """Indented JSON with each field pair and id list on one line, so a record reads top down."""
    text = _PAIR.sub(r"[\1, \2]", text)
    return _NUMBERS.sub(lambda m: "[" + ", ".join(m.group(1).replace(",", " ").split()) + "]", text)


def dump(vectors: Sequence[Vector], path: str | Path, codec: str = "") -> None:
    """Write vectors as msgpack, or as the JSON twin when ``path`` ends in ``.json``."""
    check_names(vectors)
    doc = {"format": FORMAT, "version": VERSION, "codec": codec,
           "vectors": [_plain(v) for v in vectors]}
    target = Path(path)
    if target.suffix.lower() == ".json":
        target.write_text(_compact(json.dumps(_jsonable(doc), indent=1)) + "\n", encoding="ascii")
    else:
        target.write_bytes(msgpack.packb(doc, use_bin_type=True))


def for_codec(codec: object) -> list[Vector]:
    """The vectors a codec ships: every file in a ``vectors/`` folder of its package.

    A ``.msgpack`` file wins over its ``.json`` twin of the same name. Empty
    when the codec ships none.
    """
    module = type(codec).__module__
    package = module if _is_package(module) else module.rpartition(".")[0]
    if not package:
        return []
    try:
        folder = resources.files(package) / "vectors"
    except (ModuleNotFoundError, TypeError):
        return []
    if not folder.is_dir():
        return []
    vectors: list[Vector] = []
    for entry in _vector_files(folder):
        with resources.as_file(entry) as path:
            vectors.extend(load(path))
    check_names(vectors, f"vectors of {package}")
    return vectors


def _vector_files(folder: Any) -> list[Any]:
    """``.msgpack`` and ``.json`` files, a ``.msgpack`` hiding its ``.json`` twin."""
    chosen: dict[str, Any] = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        stem, _, suffix = entry.name.rpartition(".")
        if suffix == "msgpack" or (suffix == "json" and stem not in chosen):
            chosen[stem] = entry
    return list(chosen.values())


def _is_package(module: str) -> bool:
    mod = sys.modules.get(module)
    return mod is not None and hasattr(mod, "__path__")
