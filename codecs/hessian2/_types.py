"""Python stand-ins for the Java values Python cannot tell apart on its own.

Each keeps exactly what the wire said, so that decode -> encode gives back the bytes a Java
peer (Caucho Hessian) wrote: a long stays a long, a typed list keeps its type, an instance
keeps its class name and field order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from mesh.codec import LocalProtocolError, RemoteProtocolError


class HessianError(RemoteProtocolError):
    """The bytes are not valid Hessian 2.0 (or exceed a limit); the message names offset and tag."""


class HessianEncodeError(LocalProtocolError):
    """A Python value has no Hessian 2.0 form (wrong type, long out of range, ...)."""


class JavaLong(int):
    """A Java ``long``. Plain ``int`` encodes as a Java ``int`` when it fits in 32 bits."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"JavaLong({int(self)})"


class JavaBinary(bytes):
    """A ``byte[]`` that arrived in chunks; ``chunks`` are the piece sizes, re-sent as they came.

    Caucho cuts binary chunks where its 8 KiB output buffer happens to fill, which depends
    on what was written before, so the cut points cannot be recomputed from the value.
    """

    chunks: tuple[int, ...]

    def __new__(cls, data: bytes, chunks: Iterable[int] = ()) -> JavaBinary:
        self = super().__new__(cls, data)
        self.chunks = tuple(chunks)
        return self


class JavaList(list[Any]):
    """A typed list (``[int``, ``java.util.LinkedList``) or one sent in variable-length form.

    ``type_name`` is ``None`` for an untyped list; ``variable`` is True when the wire form
    ended with 'Z' (0x55/0x57) instead of carrying a length. A plain Python list is an
    untyped fixed-length list.
    """

    __slots__ = ("type_name", "variable")

    def __init__(self, type_name: str | None, items: Iterable[Any] = (), *,
                 variable: bool = False) -> None:
        super().__init__(items)
        self.type_name = type_name
        self.variable = variable

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, JavaList):
            return False
        return (self.type_name == other.type_name and self.variable == other.variable
                and list.__eq__(self, other))

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = None

    def __repr__(self) -> str:
        extra = ", variable=True" if self.variable else ""
        return f"JavaList({self.type_name!r}, {list.__repr__(self)}{extra})"


class JavaMap(dict[Any, Any]):
    """A typed map ('M', e.g. ``java.util.TreeMap``). A plain dict is an untyped map ('H')."""

    __slots__ = ("type_name",)

    def __init__(self, type_name: str, items: Mapping[Any, Any] | None = None) -> None:
        super().__init__(items or {})
        self.type_name = type_name

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, JavaMap):
            return False
        return self.type_name == other.type_name and dict.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = None

    def __repr__(self) -> str:
        return f"JavaMap({self.type_name!r}, {dict.__repr__(self)})"


class JavaObject:
    """An instance of a class definition: the class name and its fields in wire order."""

    __slots__ = ("class_name", "fields")

    def __init__(self, class_name: str, fields: dict[str, Any] | None = None) -> None:
        self.class_name = class_name
        self.fields: dict[str, Any] = {} if fields is None else fields

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, JavaObject) or type(other) is not type(self):
            return NotImplemented
        return self.class_name == other.class_name and self.fields == other.fields

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"JavaObject({self.class_name!r}, {self.fields!r})"


class JavaEnum(JavaObject):
    """A Java enum constant: Caucho sends it as an instance of a class whose one field is ``name``.

    A POJO whose only field is a String ``name`` looks the same on the wire and also decodes
    as a JavaEnum; since JavaEnum is a JavaObject, code reading ``fields`` works for both.
    """

    __slots__ = ()

    def __init__(self, class_name: str, name: str) -> None:
        super().__init__(class_name, {"name": name})

    @property
    def name(self) -> Any:
        return self.fields.get("name")

    def __repr__(self) -> str:
        return f"JavaEnum({self.class_name!r}, {self.name!r})"
