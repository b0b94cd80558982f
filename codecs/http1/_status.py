"""Status lines with their reason phrases, and the canned error replies."""

from __future__ import annotations

from http import HTTPStatus

__all__ = ["STATUS_FIELDS", "STATUS_LINES", "error_reply", "plain_text_head"]


def _phrase(code: int) -> bytes:
    try:
        return HTTPStatus(code).phrase.encode("ascii")
    except ValueError:
        return b"Unknown"


#: ``b"200"`` -> ``b"HTTP/1.1 200 OK"``, for every status we may send. A dict
#: lookup is both the validation of ``:status`` and the whole status line.
STATUS_LINES: dict[bytes, bytes] = {
    b"%d" % code: b"HTTP/1.1 %d %s" % (code, _phrase(code)) for code in range(100, 600)
}

#: ``(b":status", b"200")`` per code llhttp can report (100-999), built once so a
#: response head costs no formatting.
STATUS_FIELDS: dict[int, tuple[bytes, bytes]] = {
    code: (b":status", b"%d" % code) for code in range(100, 1000)
}


def plain_text_head(status: bytes, length: int) -> list[tuple[bytes, bytes]]:
    """Fields of a small ``text/plain`` reply (local replies, error replies)."""
    return [
        (b":status", status),
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", b"%d" % length),
    ]


def error_reply(code: int, message: str) -> bytes:
    """A complete response that tells the client why we hang up on it."""
    body = (message + "\n").encode("utf-8")
    head = b"\r\n".join(b": ".join(f) for f in plain_text_head(b"%d" % code, len(body))[1:])
    status = STATUS_LINES[b"%d" % code]
    return status + b"\r\n" + head + b"\r\nconnection: close\r\n\r\n" + body
