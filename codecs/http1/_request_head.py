"""The CLIENT role's request-head fields: plain lines appended, special fields set aside."""

from __future__ import annotations

from ._framing import SPECIAL, content_length

__all__ = ["plain_fields", "request_head"]


def request_head(
    fields: list[tuple[bytes, bytes]], lines: list[bytes]
) -> tuple[bytes, bytes, bytes, bytes | None]:
    """Append the request's plain fields; return (method, target, authority, content-length).

    The pseudo fields may come in any order (HTTP/2 fixes none); ``send``
    takes the server role's order itself. Host comes from ``:authority``, or
    from a ``host`` field, else it is empty (RFC 9112 3.2).
    """
    special: dict[bytes, bytes] = {}
    length = plain_fields(fields, lines, special)
    method = special.get(b":method", b"")
    authority = special.get(b":authority") or special.get(b"host", b"")
    target = special.get(b":path") or authority  # CONNECT: authority-form
    return method, target, authority, length


def plain_fields(
    fields: list[tuple[bytes, bytes]], lines: list[bytes], special: dict[bytes, bytes] | None
) -> bytes | None:
    """Append ``name: value`` lines; collect special fields; return content-length."""
    length = None
    append = lines.append
    for field in fields:
        name = field[0]
        if name not in SPECIAL:
            append(b": ".join(field))
        elif name == b"content-length":
            if length is None:
                append(b"content-length: " + field[1])
            length = content_length(field[1], length)
        elif special is not None:
            special.setdefault(name, field[1])
    return length
