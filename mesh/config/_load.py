"""Reading config text (YAML or JSON) from a string, a file or the embedded default."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Collection
from importlib import resources
from typing import Any

# Without the types-PyYAML stubs mypy sees yaml as Any; with them, the ignore is unused.
import yaml  # type: ignore[import-untyped,unused-ignore]

from mesh.config._errors import ConfigError
from mesh.config._model import Config
from mesh.config._parse import parse

__all__ = ["default_config", "load", "loads"]

_DUPLICATE_FIX = "keep one of them; a parser would silently use the last."
_MERGE_TAG = "tag:yaml.org,2002:merge"
DEFAULT_SOURCE = "<embedded default: mesh/config/default.yaml>"


def load(
    path: str | os.PathLike[str],
    *,
    known_protocols: Collection[str] | None = None,
    known_filters: Collection[str] | None = None,
) -> Config:
    """The config in the file at ``path`` (YAML, or JSON); errors name the file as given.

    Raises :class:`ConfigError`, also when the file cannot be read.
    """
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as file:
            text = file.read()
    except FileNotFoundError:
        raise ConfigError(
            source,
            "",
            "no such file",
            "check the path; 'mesh run' with no file runs the embedded default.",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            source,
            "",
            f"cannot read the file: {reason}",
            "check the path and its permissions; save it as UTF-8.",
        ) from None
    return loads(text, source, known_protocols=known_protocols, known_filters=known_filters)


def loads(
    text: str,
    source: str = "<string>",
    *,
    known_protocols: Collection[str] | None = None,
    known_filters: Collection[str] | None = None,
) -> Config:
    """The config in ``text``, YAML or JSON; ``source`` names it in errors.

    Raises :class:`ConfigError`.
    """
    data = _decode(text, source)
    if data is None:
        raise ConfigError(
            source,
            "",
            "the document is empty",
            "write a config; docs/config.md has a complete example.",
        )
    return parse(data, source, known_protocols=known_protocols, known_filters=known_filters)


@functools.cache
def default_config() -> Config:
    """The embedded default: one listener on 127.0.0.1:10000 in front of a built-in hello server.

    Cached, since a frozen config can be shared.
    """
    text = resources.files("mesh.config").joinpath("default.yaml").read_text(encoding="utf-8")
    return loads(text, DEFAULT_SOURCE)


def _decode(text: str, source: str) -> Any:
    # JSON is tried first when it looks like JSON: its error positions are
    # exact, and PyYAML (YAML 1.1) misreads a few valid JSON documents.
    if text.lstrip().startswith(("{", "[")):
        try:
            return json.loads(text, object_pairs_hook=_no_duplicates_json)
        except json.JSONDecodeError as exc:
            json_error = exc
        except _DuplicateKey as exc:
            raise ConfigError(
                source, "", f"key {exc.key!r} appears twice in one JSON object", _DUPLICATE_FIX
            ) from None
        try:
            return _decode_yaml(text, source)
        except ConfigError:
            # Neither reads it; report it as the JSON it looks like.
            raise _json_error(source, json_error) from None
    return _decode_yaml(text, source)


def _json_error(source: str, exc: json.JSONDecodeError) -> ConfigError:
    return ConfigError(
        source,
        f"line {exc.lineno}, column {exc.colno}",
        f"JSON syntax error: {exc.msg}",
        "check the brackets, commas and quotes there (JSON has no trailing commas or comments).",
    )


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates_json(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def _decode_yaml(text: str, source: str) -> Any:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_duplicate_keys(node, source)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(source, exc) from None
    except yaml.YAMLError as exc:
        raise ConfigError(
            source, "", f"cannot read the YAML: {exc}", "save the file as plain UTF-8 text."
        ) from None
    finally:
        loader.dispose()


def _yaml_error(source: str, exc: Any) -> ConfigError:
    mark = exc.problem_mark or exc.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    reason = f"YAML syntax error: {exc.problem or exc.context}"
    if exc.context and exc.problem:
        reason += f" ({exc.context})"
    fix = "check the indentation and the quoting on that line and the one before it."
    if "\\t" in reason:
        fix = "indent with spaces; YAML does not allow tabs."
    return ConfigError(source, where, reason, fix)


def _check_duplicate_keys(root: Any, source: str) -> None:
    # PyYAML keeps the last of two equal keys without a word; a half-edited
    # file would then run with the value its author thought was gone.
    pending, seen = [root], set()
    while pending:
        node = pending.pop()
        if id(node) in seen:  # aliases share nodes, and may even form cycles
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            _check_mapping_keys(node, source)
            pending += [value for _, value in node.value]
        elif isinstance(node, yaml.SequenceNode):
            pending += node.value


def _check_mapping_keys(node: Any, source: str) -> None:
    first_line: dict[tuple[str, str], int] = {}
    for key, _ in node.value:
        # A merge key ("<<: *base") may be overridden by the mapping's own keys.
        if not isinstance(key, yaml.ScalarNode) or key.tag == _MERGE_TAG:
            continue
        mark, identity = key.start_mark, (key.tag, key.value)
        if identity in first_line:
            raise ConfigError(
                source,
                f"line {mark.line + 1}, column {mark.column + 1}",
                f"key {key.value!r} appears twice in one mapping (first on line {first_line[identity]})",
                _DUPLICATE_FIX,
            )
        first_line[identity] = mark.line + 1
