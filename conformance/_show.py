"""Rendering bytes and events for failure messages a person can act on.

A failing check must show the bytes that broke the codec, but a 32 MiB
body pasted into a terminal helps nobody: long inputs are cut to their head
and tail (or a window around the interesting offset), and mostly-binary
input is shown as hex, text-like input as an escaped bytes literal.
"""

from __future__ import annotations

from collections.abc import Sequence

from mesh.codec import Data, Event, Headers, Reset, Trailers

__all__ = ["show_bytes", "show_event", "show_events"]

#: Bytes shown before a long input is cut.
LIMIT = 160
_PRINTABLE = frozenset(range(0x20, 0x7F)) | {0x09, 0x0A, 0x0D}


def _is_text(data: bytes) -> bool:
    if not data:
        return True
    printable = sum(1 for b in data if b in _PRINTABLE)
    return printable * 10 >= len(data) * 8  # 80 %: HTTP with a binary body still reads as text


def _render(data: bytes, text: bool) -> str:
    if text:
        return repr(data)
    return "hex " + data.hex(" ")


def show_bytes(data: bytes | bytearray | memoryview, at: int | None = None, limit: int = LIMIT) -> str:
    """``N bytes: b'...'`` or ``N bytes: hex ..``, cut to about ``limit`` bytes.

    With ``at``, the window is centred on that offset (where a split or an
    error happened) and the offset is named.
    """
    raw = bytes(data)
    size = len(raw)
    text = _is_text(raw)
    where = f" (offset {at} marked |)" if at is not None else ""
    if at is not None:
        at = max(0, min(at, size))
        start = 0 if size <= limit else max(0, at - limit // 2)
        end = min(size, start + limit)
        before, after = raw[start:at], raw[at:end]
        cut_head = "..." if start else ""
        cut_tail = "..." if end < size else ""
        shown = f"{cut_head}{_render(before, text)} | {_render(after, text)}{cut_tail}"
        return f"{size} bytes{where}: {shown}"
    if size <= limit:
        return f"{size} bytes: {_render(raw, text)}"
    head, tail = raw[: limit * 2 // 3], raw[-(limit // 3) :]
    skipped = size - len(head) - len(tail)
    return f"{size} bytes: {_render(head, text)} ...[{skipped} bytes]... {_render(tail, text)}"


def _short(data: bytes | bytearray | memoryview, limit: int = 48) -> str:
    raw = bytes(data)
    if len(raw) <= limit:
        return repr(raw)
    return f"{raw[:limit]!r}...({len(raw)} bytes)"


def _fields(fields: Sequence[tuple[bytes, bytes]]) -> str:
    return "[" + ", ".join(f"{_short(n, 24)}: {_short(v)}" for n, v in fields) + "]"


def show_event(event: object) -> str:
    """One line per event: type, stream id, fields or payload, END when it ends the stream."""
    if isinstance(event, Headers):
        end = " END" if event.end_stream else ""
        ext = f" ext={event.extensions!r}" if event.extensions else ""
        return f"Headers(id={event.stream_id} {_fields(event.fields)}{end}{ext})"
    if isinstance(event, Data):
        end = " END" if event.end_stream else ""
        return f"Data(id={event.stream_id} {_short(event.payload)}{end})"
    if isinstance(event, Trailers):
        return f"Trailers(id={event.stream_id} {_fields(event.fields)})"
    if isinstance(event, Reset):
        return f"Reset(id={event.stream_id} code={event.error_code})"
    return repr(event)


def show_events(events: Sequence[Event], indent: str = "      ") -> str:
    """The events one per line, or ``(no events)``."""
    if not events:
        return indent + "(no events)"
    return "\n".join(indent + show_event(e) for e in events)
