"""Typed reads from the untrusted document, each error naming where it happened.

The parsers never index the raw data directly: they wrap each mapping in a
:class:`Section`, which refuses unknown keys (with a suggestion), reports
missing ones, and reads every value through a *reader*, a function
``(where, value) -> typed value`` that raises :class:`ConfigError`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from mesh.config._errors import ConfigError, did_you_mean, one_of
from mesh.config._values import (
    InvalidValue,
    describe,
    parse_address,
    parse_duration,
    parse_hash_key,
)

__all__ = [
    "Reader",
    "Section",
    "Where",
    "address",
    "boolean",
    "check_unique",
    "choice",
    "duration",
    "hash_key",
    "integer",
    "plugin_name",
    "read_list",
    "string",
]

T = TypeVar("T")
Reader = Callable[["Where", Any], T]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


@dataclass(frozen=True, slots=True)
class Where:
    """A place in a document: the file, and a path such as ``listeners[0].routes``."""

    source: str
    path: str = ""

    def key(self, name: str) -> Where:
        if not _IDENTIFIER.fullmatch(name):
            return Where(self.source, f"{self.path}[{name!r}]")
        return Where(self.source, f"{self.path}.{name}" if self.path else name)

    def index(self, i: int) -> Where:
        return Where(self.source, f"{self.path}[{i}]")

    def error(self, reason: str, fix: str) -> ConfigError:
        return ConfigError(self.source, self.path, reason, fix)

    def invalid(self, exc: InvalidValue) -> ConfigError:
        return self.error(exc.reason, exc.fix)


def type_error(where: Where, value: Any, expected: str, fix: str) -> ConfigError:
    """A wrong-type error; an empty value gets its own fix, the commonest slip."""
    if value is None:
        fix = f"write {expected} after the colon, or remove the key where it is optional."
    return where.error(f"expected {expected}, got {describe(value)}", fix)


class Section:
    """One mapping of the document, checked against the keys allowed there."""

    def __init__(
        self, where: Where, value: Any, allowed: Sequence[str], required: Sequence[str] = ()
    ) -> None:
        if not isinstance(value, Mapping):
            raise type_error(where, value, "a mapping", f"write keys such as {allowed[0]}: ...")
        self.where = where
        self.data: Mapping[str, Any] = value
        self._check_keys(allowed, required)

    def _check_keys(self, allowed: Sequence[str], required: Sequence[str]) -> None:
        # Unknown keys first: a misspelt key also shows up as a missing one, and
        # "did you mean 'address'" is the more useful of the two messages.
        for key in self.data:
            if not isinstance(key, str):
                raise self.where.error(f"key {key!r} is not a string", "quote the key.")
            if key not in allowed:
                listed = f"remove it; the keys allowed here are: {', '.join(allowed)}."
                fix = did_you_mean(key, allowed, listed)
                raise self.where.key(key).error(f"unknown key {key!r}", fix)
        for key in required:
            if key not in self.data:
                raise self.where.error(f"missing required key {key!r}", f"add {key}: ...")

    def at(self, key: str) -> Where:
        return self.where.key(key)

    def has(self, key: str) -> bool:
        return key in self.data

    def require(self, key: str, read: Reader[T]) -> T:
        """The value of a key that must be there (checked by the constructor)."""
        return read(self.at(key), self.data[key])

    def get(self, key: str, read: Reader[T], default: T) -> T:
        """The value of an optional key, or ``default`` when the key is absent."""
        return read(self.at(key), self.data[key]) if key in self.data else default

    def optional(self, key: str, read: Reader[T]) -> T | None:
        """The value of a key that may be absent or null (both mean "not set")."""
        value = self.data.get(key)
        return None if value is None else read(self.at(key), value)

    def options(self, readers: Mapping[str, Reader[Any]]) -> dict[str, Any]:
        """Keyword arguments for the keys of ``readers`` present here.

        Absent keys are left out so that the model's own defaults apply; the
        defaults are written once, in _model.py.
        """
        return {key: read(self.at(key), self.data[key]) for key, read in readers.items() if key in self.data}

    def exactly_one(self, keys: Sequence[str]) -> str:
        """The one of ``keys`` that is present; an error if none or several are."""
        present = [key for key in keys if key in self.data]
        if len(present) == 1:
            return present[0]
        quoted = [repr(key) for key in keys]
        names = f"{', '.join(quoted[:-1])} or {quoted[-1]}"
        if not present:
            raise self.where.error(f"needs one of {names}", f"add one of {names}.")
        found = " and ".join(repr(key) for key in present)
        raise self.where.error(f"has {found}, which exclude each other", f"keep only one of {names}.")


def string(where: Where, value: Any) -> str:
    """A non-empty string; numbers are refused rather than silently converted."""
    if isinstance(value, bool) or not isinstance(value, str):
        fix = "write a string."
        if isinstance(value, int | float) and not isinstance(value, bool):
            fix = f"quote it: '{value}'."
        raise type_error(where, value, "a string", fix)
    if not value:
        raise where.error("is an empty string", "write a value, or remove the key if it is optional.")
    return value


def boolean(where: Where, value: Any) -> bool:
    if not isinstance(value, bool):
        raise type_error(where, value, "true or false", "write true or false, without quotes.")
    return value


def integer(minimum: int, maximum: int | None = None) -> Reader[int]:
    """A reader of whole numbers in ``minimum..maximum``."""
    bounds = f"from {minimum} to {maximum}" if maximum is not None else f"of at least {minimum}"

    def read(where: Where, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise type_error(
                where, value, "a whole number", f"write a whole number {bounds}, without quotes."
            )
        if value < minimum or (maximum is not None and value > maximum):
            raise where.error(f"{value} is out of range", f"use a number {bounds}.")
        return value

    return read


def duration(*, positive: bool = False) -> Reader[float]:
    """A reader of durations; ``positive`` refuses 0 where 0 cannot mean "never"."""

    def read(where: Where, value: Any) -> float:
        try:
            seconds = parse_duration(value)
        except InvalidValue as exc:
            raise where.invalid(exc) from None
        if positive and seconds == 0:
            raise where.error("must be longer than 0", "use a duration such as '2s' or '500ms'.")
        return seconds

    return read


def address(where: Where, value: Any) -> tuple[str, int]:
    try:
        return parse_address(value)
    except InvalidValue as exc:
        raise where.invalid(exc) from None


def choice(choices: Collection[str], what: str) -> Reader[str]:
    """A reader of one string out of ``choices``, suggesting the nearest on a typo."""

    def read(where: Where, value: Any) -> str:
        text = string(where, value)
        if text not in choices:
            raise where.error(f"unknown {what} {text!r}", one_of(text, choices))
        return text

    return read


def read_list(where: Where, value: Any, item: str, *, allow_empty: bool = False) -> Sequence[Any]:
    """A list (non-empty unless ``allow_empty``); ``item`` names one entry, for the messages."""
    if not isinstance(value, list | tuple):
        plural = item + ("es" if item.endswith(("s", "sh", "ch", "x")) else "s")
        fix = f"write one {item} per line, each after '- '."
        raise type_error(where, value, f"a list of {plural}", fix)
    if not value and not allow_empty:
        article = "an" if item[0] in "aeiou" else "a"
        raise where.error(f"the list is empty; it needs at least one {item}", f"add {article} {item}.")
    return value


def hash_key(where: Where, value: Any) -> str:
    try:
        return parse_hash_key(string(where, value))
    except InvalidValue as exc:
        raise where.invalid(exc) from None


def plugin_name(known: Collection[str] | None, what: str, extra: Sequence[str] = ()) -> Reader[str]:
    """A reader of a plugin's name: any name when ``known`` is None, else one of them.

    ``extra`` holds names that are always valid (``auto`` for a listener's protocol).
    """

    def read(where: Where, value: Any) -> str:
        name = string(where, value)
        if known is None or name in known or name in extra:
            return name
        names = sorted({*known, *extra})
        hint = did_you_mean(name, names, "")
        installed = ", ".join(names) or "none"
        fix = f"{hint} Known {what}s: {installed}. A plugin's package must be installed to use it."
        fix = fix.lstrip()
        raise where.error(f"unknown {what} {name!r}", fix)

    return read


def check_unique(where: Where, names: Sequence[str], what: str) -> None:
    """Refuse a name used twice in the list at ``where``; stats and lookups key by name."""
    first: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in first:
            earlier = where.index(first[name]).path
            raise (
                where.index(i)
                .key("name")
                .error(
                    f"{what} name {name!r} is already used by {earlier}",
                    f"give each {what} a name of its own.",
                )
            )
        first[name] = i
