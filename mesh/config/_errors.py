"""The one error type of the configuration package, and how it reads."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["ConfigError", "did_you_mean", "one_of"]


class ConfigError(ValueError):
    """A configuration that cannot be used, said in one line.

    Every error names the file (``source``), the place inside it (``path``,
    such as ``listeners[0].routes[2].match.path``, or ``line 7, column 3`` for
    a syntax error; empty for the document as a whole), what is wrong
    (``reason``) and what to do about it (``fix``). ``str()`` joins them as
    ``source: path: reason. Fix: fix``, the line an operator sees at 3 a.m.

    It subclasses :class:`ValueError` so that callers validating user input
    generically still catch it.
    """

    def __init__(self, source: str, path: str, reason: str, fix: str) -> None:
        # Passing every field to Exception keeps the error picklable, so a
        # worker process can hand it to the supervisor unchanged.
        super().__init__(source, path, reason, fix)
        self.source = source
        self.path = path
        self.reason = reason
        self.fix = fix

    def __str__(self) -> str:
        where = f"{self.source}: {self.path}" if self.path else self.source
        return f"{where}: {self.reason}. Fix: {self.fix}"


def did_you_mean(word: str, choices: Iterable[str], otherwise: str | None = None) -> str:
    """A fix suggesting the closest of ``choices`` to ``word``.

    Without a close one: ``otherwise``, or by default a list of all the choices.
    """
    options = sorted(choices)
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    if otherwise is not None:
        return otherwise
    return f"use one of: {', '.join(options)}."


def one_of(word: str, choices: Iterable[str]) -> str:
    """A fix for a value outside a short list: the closest choice if any, and all of them."""
    options = ", ".join(sorted(choices))
    hint = did_you_mean(word, choices, "")
    return f"{hint} The choices are: {options}." if hint else f"use one of: {options}."
