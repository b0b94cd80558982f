"""Parsing of route match conditions: string matches, header matches, ``match:``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from mesh.config._model import HeaderMatch, RouteMatch, StringMatch
from mesh.config._reading import Section, Where, boolean, read_list, string, type_error

__all__ = ["parse_route_match", "parse_string_match"]

_KINDS = ("exact", "prefix", "regex", "present")
_REQUEST_KEYS = ("host", "path", "method", "service", "version", "group")


def parse_string_match(where: Where, value: Any) -> StringMatch:
    """A plain string (exact), or a mapping with one of exact, prefix, regex, present."""
    if isinstance(value, str):
        return StringMatch(exact=value)
    if not isinstance(value, Mapping):
        raise type_error(
            where,
            value,
            "a string or a mapping",
            "write 'value' for an exact match, or {prefix: /api}.",
        )
    section = Section(where, value, _KINDS)
    return _condition(section)


def _condition(section: Section) -> StringMatch:
    """The one condition of ``section`` (which may hold other keys, such as a header name)."""
    kind = section.exactly_one(_KINDS)
    if kind == "present":
        if not section.require("present", boolean):
            raise section.at("present").error(
                "'present: false' matches nothing",
                "to match when a header is absent, write 'present: true' with 'invert: true'.",
            )
        return StringMatch(present=True)
    if kind == "regex":
        return StringMatch(regex=section.require("regex", _regex))
    # Empty strings are legitimate here: 'exact: ""' matches an empty header.
    text = section.require(kind, _match_text)
    return StringMatch(exact=text) if kind == "exact" else StringMatch(prefix=text)


def _match_text(where: Where, value: Any) -> str:
    return "" if value == "" else string(where, value)


def _regex(where: Where, value: Any) -> re.Pattern[str]:
    pattern = string(where, value)
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise where.error(
            f"invalid regex {pattern!r}: {exc}",
            "correct the pattern (Python 're' syntax; it must match the whole value).",
        ) from None


def _header_match(where: Where, value: Any) -> HeaderMatch:
    section = Section(where, value, ("name", *_KINDS, "invert"), required=("name",))
    name = section.require("name", string)
    if any(char.isspace() for char in name):
        raise section.at("name").error(f"header name {name!r} has spaces", "remove the spaces.")
    return HeaderMatch(
        name=name.lower(), match=_condition(section), invert=section.get("invert", boolean, False)
    )


def parse_route_match(where: Where, value: Any) -> RouteMatch:
    """A route's ``match:`` mapping; every condition given must hold."""
    section = Section(where, value, (*_REQUEST_KEYS, "headers"))
    keys = {key: section.optional(key, parse_string_match) for key in _REQUEST_KEYS}
    headers: tuple[HeaderMatch, ...] = ()
    if section.has("headers"):
        at = section.at("headers")
        items = read_list(at, section.data["headers"], "header match", allow_empty=True)
        headers = tuple(_header_match(at.index(i), item) for i, item in enumerate(items))
    return RouteMatch(**keys, headers=headers)
